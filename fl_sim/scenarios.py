"""Client-side scenarios: Byzantine clients and stragglers, drawn from the seed alone.

Every process derives who is malicious and how many epochs a straggler runs from
the run's seed (plus round and client id), never from global random state, so all
processes agree without messages and a seeded run repeats exactly. Each draw has its
own stream tag so the scenarios never share a generator.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from fl_sim.config import RunConfig
from fl_sim.task import ClientData

NUM_CLASSES = 10
_MALICIOUS, _STRAGGLERS, _NOISE = 1, 2, 3


def malicious_clients(cfg: RunConfig) -> list[int]:
    """The ``cfg.malicious`` partition ids that attack, the same in every process."""
    rng = np.random.default_rng([cfg.seed, _MALICIOUS])
    return sorted(int(i) for i in rng.choice(cfg.num_clients, cfg.malicious, replace=False))


def poisoned(cfg: RunConfig, partition_id: int, data: ClientData) -> ClientData:
    """A label-flipping client's data: every label y becomes 9 - y (train and validation)."""
    if cfg.attack != "label-flip" or partition_id not in malicious_clients(cfg):
        return data
    flip = NUM_CLASSES - 1
    return dataclasses.replace(data, y_train=flip - data.y_train, y_val=flip - data.y_val)


def attacked_update(
    cfg: RunConfig,
    partition_id: int,
    server_round: int,
    global_weights: list[np.ndarray],
    trained: list[np.ndarray],
) -> list[np.ndarray]:
    """What a client sends: its trained weights, or the attack's replacement.

    sign-flip: w_global - scale * (w_trained - w_global), pushing against the descent.
    gaussian: w_global + N(0, scale^2) per coordinate, noise from a seeded generator.
    Label flippers send what they trained (their harm is in the data).
    """
    if cfg.attack == "label-flip" or partition_id not in malicious_clients(cfg):
        return trained
    scale = cfg.attack_scale
    if cfg.attack == "sign-flip":
        return [
            (g - scale * (w - g)).astype(g.dtype)
            for g, w in zip(global_weights, trained, strict=True)
        ]
    rng = np.random.default_rng([cfg.seed, _NOISE, server_round, partition_id])
    return [(g + rng.normal(0.0, scale, g.shape)).astype(g.dtype) for g in global_weights]


def straggler_count(cfg: RunConfig) -> int:
    """How many clients straggle in each round (``stragglers`` x clients, half rounds up)."""
    return math.floor(cfg.stragglers * cfg.num_clients + 0.5)


def straggler_epochs(cfg: RunConfig, server_round: int, partition_id: int, epochs: int) -> int:
    """Local epochs this client runs this round.

    As in Li et al. 2020, each round a fixed share of the clients is drawn as
    stragglers, and each runs a number of epochs drawn uniformly below ``epochs``
    (1 .. epochs - 1); the others run ``epochs``.
    """
    count = straggler_count(cfg)
    if count == 0 or epochs < 2:
        return epochs
    rng = np.random.default_rng([cfg.seed, _STRAGGLERS, server_round])
    if partition_id not in rng.choice(cfg.num_clients, count, replace=False):
        return epochs
    own = np.random.default_rng([cfg.seed, _STRAGGLERS, server_round, partition_id])
    return int(own.integers(1, epochs))


def scenario_record(cfg: RunConfig) -> dict[str, Any]:
    """What ``config.json`` adds: the malicious ids and each round's epochs per client."""
    record: dict[str, Any] = {"malicious_clients": malicious_clients(cfg)}
    if straggler_count(cfg):
        record["local_epochs_per_round"] = [
            [straggler_epochs(cfg, r, pid, cfg.local_epochs) for pid in range(cfg.num_clients)]
            for r in range(1, cfg.rounds + 1)
        ]
    return record
