"""The NumPyClient on a real shard, without Ray: what fit and evaluate hand to Flower."""

from __future__ import annotations

import json

import numpy as np

from fl_sim.client_app import FlowerClient
from fl_sim.config import RunConfig
from fl_sim.models import build_model

FIT_CONFIG = {"server_round": 1, "local_epochs": 2, "batch_size": 32, "learning_rate": 1e-3}


def _client(small_npz, pid=0):
    return FlowerClient(RunConfig(data=small_npz, num_clients=3, seed=4), pid)


def test_fit_trains_from_the_global_weights_and_reports_curves(small_npz):
    client = _client(small_npz)
    initial = build_model("mlp", 4).get_weights()
    weights, n, metrics = client.fit(initial, FIT_CONFIG)
    assert n == 900  # 3,000 / 3 clients, less the 10% kept for validation
    assert [w.shape for w in weights] == [w.shape for w in initial]
    assert not np.allclose(weights[0], initial[0])
    curve = json.loads(metrics["curve"])
    assert curve["round"] == 1 and len(curve["loss"]) == len(curve["val_accuracy"]) == 2
    assert metrics["partition_id"] == 0 and metrics["train_loss"] == curve["loss"][-1]


def test_fit_is_reproducible_whatever_ran_before(small_npz):
    client = _client(small_npz, pid=1)
    initial = build_model("mlp", 4).get_weights()
    first, _, _ = client.fit(initial, FIT_CONFIG)
    _client(small_npz, pid=2).fit(initial, {**FIT_CONFIG, "server_round": 3})
    again, _, _ = client.fit(initial, FIT_CONFIG)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_evaluate_scores_the_local_validation_split(small_npz):
    client = _client(small_npz)
    loss, n, metrics = client.evaluate(build_model("mlp", 4).get_weights(), {"final": True})
    assert n == 100
    assert loss > 1.5 and 0.0 <= metrics["accuracy"] <= 0.3
    assert {"precision", "recall", "f1"} <= metrics.keys()
    assert "macro avg" in metrics["classification_report"]
