"""Per-process Keras work shared by the clients and the server.

Ray reuses its actors across rounds and clients, so each process keeps one built
and compiled model per architecture and one copy of each client's data; a fit
only assigns weights and optimizer state in place (``fl_sim.training``) and never
retraces.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import keras
import numpy as np

from fl_sim.config import RunConfig
from fl_sim.data import load_mnist
from fl_sim.models import ProximalModel, build_model
from fl_sim.partition import client_parts, partition_key, train_val_split
from fl_sim.training import epoch_runner, predict_probabilities


@dataclass(frozen=True)
class ClientData:
    """One client's local training and validation split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@functools.lru_cache(maxsize=1024)
def _client_data(
    data: str, num_clients: int, method: str, seed: int, alpha: float, skew: float, pid: int
) -> ClientData:
    mnist = load_mnist(data)
    train, val = train_val_split(client_parts(data, num_clients, method, seed, alpha, skew)[pid])
    return ClientData(
        mnist.x_train[train], mnist.y_train[train], mnist.x_train[val], mnist.y_train[val]
    )


def client_data(cfg: RunConfig, partition_id: int) -> ClientData:
    """A client's local data, sliced once per process."""
    return _client_data(*partition_key(cfg), partition_id)


@functools.lru_cache(maxsize=2)
def local_model(name: str, seed: int) -> ProximalModel:
    """The client-side model of this process, built and compiled once."""
    return build_model(name, seed, proximal=True)


@functools.lru_cache(maxsize=2)
def global_model(name: str, seed: int) -> keras.Model:
    """The server-side model: the shared initial weights, later the global ones."""
    return build_model(name, seed)


def train(
    model: ProximalModel,
    data: ClientData,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    proximal_mu: float,
    seed: int,
) -> dict[str, list[float]]:
    """Local training from the weights already in ``model``; returns the per-epoch curves."""
    runner = epoch_runner(model)
    runner.reset_optimizer(learning_rate)
    runner.reseed(seed)
    model.anchor(proximal_mu)
    validation = (data.x_val, data.y_val) if len(data.y_val) else None
    return runner.fit(
        data.x_train,
        data.y_train,
        epochs=epochs,
        batch_size=batch_size,
        rng=np.random.default_rng(seed),
        validation=validation,
    )


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Class probabilities (inference mode: no dropout, BatchNorm's moving statistics).

    Renormalised in float64, since float32 softmax rows miss 1 by rounding. A model
    wrecked by an attack (e.g. negative BatchNorm variances) outputs NaN; such rows
    count as uniform guesses, so it scores at chance instead of crashing the metrics.
    """
    probs = np.asarray(predict_probabilities(model, x), dtype=np.float64)
    probs[~np.isfinite(probs).all(axis=1)] = 1.0
    return probs / probs.sum(axis=1, keepdims=True)


def fit_seed(seed: int, server_round: int, partition_id: int) -> int:
    """A distinct, reproducible seed for each client's fit in each round."""
    return int(np.random.SeedSequence([seed, server_round, partition_id]).generate_state(1)[0])


class SimulatedFailure(RuntimeError):
    """A client crash injected by ``--fail-rate``."""


def fails(seed: int, server_round: int, partition_id: int, rate: float) -> bool:
    """Whether this client crashes in this round: seeded, so runs repeat."""
    return rate > 0 and np.random.default_rng([seed, server_round, partition_id, 1]).random() < rate
