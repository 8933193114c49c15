"""Splitting the training set across clients: IID, Dirichlet label skew, label shards.

A partition is a list of index arrays into the training set, one per client,
computed from the seed alone so every process (server or Ray actor) derives the
same split without shipping it around.
"""

from __future__ import annotations

import functools

import numpy as np

from fl_sim.config import ConfigError, RunConfig
from fl_sim.data import load_mnist

NUM_CLASSES = 10
VALIDATION_FRACTION = 0.1
MIN_PART_SIZE = 10


def partition(
    labels: np.ndarray,
    num_clients: int,
    method: str = "iid",
    seed: int = 0,
    alpha: float = 0.5,
    min_size: int = MIN_PART_SIZE,
    quantity_skew: float = 1.0,
) -> list[np.ndarray]:
    """Indices of each client's part; every example lands in exactly one part."""
    if num_clients > len(labels):
        raise ConfigError(
            f"--num-clients {num_clients} is more than the {len(labels)} training examples"
        )
    rng = np.random.default_rng(seed)
    if method == "iid" and quantity_skew > 1:
        return quantity_skewed(len(labels), num_clients, quantity_skew, rng)
    if method == "iid":
        return iid(labels, num_clients, rng)
    if method == "dirichlet":
        return dirichlet(labels, num_clients, alpha, rng, min(min_size, len(labels) // num_clients))
    if method == "shards":
        return shards(labels, num_clients, rng)
    raise ConfigError(f"unknown --partition '{method}'")


def iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Statistically equivalent parts: stratified by label, dealt round-robin.

    Dealing the label-sorted (and within-label shuffled) indices one by one makes
    part sizes differ by at most 1 and each label's count within 1 of the ideal.
    """
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in _classes(labels)])
    return [rng.permutation(order[i::num_clients]) for i in range(num_clients)]


def skewed_sizes(total: int, num_clients: int, ratio: float) -> np.ndarray:
    """Part sizes in geometric progression from smallest to largest = ``ratio`` x smallest.

    Client 0 gets the smallest part; sizes are rounded by largest remainders so they
    add up to ``total``.
    """
    shares = ratio ** (np.arange(num_clients) / max(num_clients - 1, 1))
    ideal = shares / shares.sum() * total
    sizes = np.floor(ideal).astype(int)
    sizes[np.argsort(sizes - ideal)[: total - sizes.sum()]] += 1
    return sizes


def quantity_skewed(
    total: int, num_clients: int, ratio: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Quantity skew: IID labels (a random split) but parts of very different sizes,
    so that weighting by examples and the plain mean aggregate differently."""
    cuts = np.cumsum(skewed_sizes(total, num_clients, ratio))[:-1]
    return np.split(rng.permutation(total), cuts)


def dirichlet(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    rng: np.random.Generator,
    min_size: int,
    max_tries: int = 1000,
) -> list[np.ndarray]:
    """Label skew after Hsu et al. 2019: each class spread over clients by Dir(alpha).

    Draws again until every part holds at least ``min_size`` examples, as the
    usual implementations do; small alpha makes parts nearly single-class.
    """
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in _classes(labels)]
    for _ in range(max_tries):
        parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for idx in by_class:
            shares = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for client, piece in enumerate(np.split(idx, cuts)):
                parts[client].append(piece)
        merged = [np.concatenate(p) for p in parts]
        if min(len(p) for p in merged) >= min_size:
            return [rng.permutation(p) for p in merged]
    raise ConfigError(
        f"--alpha {alpha} gave no Dirichlet split with {min_size}+ examples per client "
        f"in {max_tries} draws; raise --alpha or lower --num-clients"
    )


def shards(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """McMahan et al. 2017's pathological split: sort by label, 2 shards per client.

    Shards are cut inside each label's run (label-pure) whenever there are at
    least as many shards as labels, so each client sees at most 2 labels.
    """
    num_shards = 2 * num_clients
    classes = _classes(labels)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    if num_shards >= len(classes):
        counts = _apportion(np.array([len(i) for i in by_class]), num_shards)
        pieces = [
            p for idx, k in zip(by_class, counts, strict=True) for p in np.array_split(idx, k)
        ]
    else:
        pieces = np.array_split(np.concatenate(by_class), num_shards)
    order = rng.permutation(num_shards)
    return [
        rng.permutation(np.concatenate([pieces[order[2 * i]], pieces[order[2 * i + 1]]]))
        for i in range(num_clients)
    ]


def train_val_split(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A client's local split: the last 10% of its (already shuffled) part validates."""
    n_val = int(round(len(indices) * VALIDATION_FRACTION))
    if len(indices) > 1:
        n_val = max(n_val, 1)
    return indices[: len(indices) - n_val], indices[len(indices) - n_val :]


def label_counts(labels: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """Per-client label histogram, shape (num_clients, 10)."""
    return np.stack([np.bincount(labels[p], minlength=NUM_CLASSES) for p in parts])


def _classes(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels)


def _apportion(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` shards over classes in proportion to size, at least 1 each."""
    extra = total - len(sizes)
    ideal = sizes / sizes.sum() * extra
    counts = np.floor(ideal).astype(int)
    remainder = extra - counts.sum()
    counts[np.argsort(counts - ideal)[:remainder]] += 1
    return counts + 1


@functools.lru_cache(maxsize=4)
def client_parts(
    data: str, num_clients: int, method: str, seed: int, alpha: float, skew: float = 1.0
) -> list[np.ndarray]:
    """The partition's indices, derived from the seed in every process alike."""
    labels = load_mnist(data).y_train
    return partition(labels, num_clients, method, seed, alpha, quantity_skew=skew)


def partition_key(cfg: RunConfig) -> tuple:
    """The config fields that decide the partition, as ``client_parts`` takes them."""
    return (
        cfg.data,
        cfg.num_clients,
        cfg.partition,
        cfg.seed,
        cfg.dirichlet_alpha,
        cfg.quantity_skew,
    )


def partition_of(cfg: RunConfig) -> list[np.ndarray]:
    """The partition a config asks for."""
    return client_parts(*partition_key(cfg))
