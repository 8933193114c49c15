"""The centralized baseline: the same model trained on the union of the clients' data.

It answers "what would pooling the data have given?": the same architecture and
initial weights as the federation (from the seed), trained on the union of every
client's training split for rounds x local_epochs epochs, and tested after each
round's worth of epochs, so its curve lines up with the federated ones. No Flower,
no Ray: the clients' own training epochs, in this process.
"""

from __future__ import annotations

import time

import numpy as np

from fl_sim.config import RunConfig
from fl_sim.data import load_mnist
from fl_sim.metrics import classification_metrics
from fl_sim.models import build_model
from fl_sim.outputs import output_dir, write_json
from fl_sim.partition import partition_of, train_val_split
from fl_sim.task import fit_seed, predict
from fl_sim.training import epoch_runner


def pooled_training_set(cfg: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """The union of the clients' training splits (their validation splits left out)."""
    mnist = load_mnist(cfg.data)
    index = np.concatenate([train_val_split(part)[0] for part in partition_of(cfg)])
    return mnist.x_train[index], mnist.y_train[index]


def run_centralized(cfg: RunConfig) -> list[dict]:
    """Train, test after every round's worth of epochs, write history.json like a run."""
    x, y = pooled_training_set(cfg)
    test = load_mnist(cfg.data)
    model = build_model(cfg.model, cfg.seed, learning_rate=cfg.learning_rate)
    runner = epoch_runner(model)
    rows = [{"round": 0, "test": classification_metrics(test.y_test, predict(model, test.x_test))}]
    for rnd in range(1, cfg.rounds + 1):
        start = time.perf_counter()
        seed = fit_seed(cfg.seed, rnd, cfg.num_clients)
        runner.reseed(seed)
        rng = np.random.default_rng(seed)
        runner.fit(x, y, epochs=cfg.local_epochs, batch_size=cfg.batch_size, rng=rng)
        scores = classification_metrics(test.y_test, predict(model, test.x_test))
        rows.append({"round": rnd, "seconds": time.perf_counter() - start, "test": scores})
    out = output_dir(cfg)
    write_json(out / "config.json", {**cfg.to_dict(), "strategy": "centralized"})
    write_json(out / "history.json", {"rounds": rows})
    return rows
