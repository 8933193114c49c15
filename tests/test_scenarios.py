"""Client-side scenarios: attack updates, label flips, stragglers, quantity skew."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fl_sim.client_app import FlowerClient
from fl_sim.config import ConfigError, RunConfig
from fl_sim.data import load_mnist
from fl_sim.models import build_model
from fl_sim.partition import partition, skewed_sizes
from fl_sim.scenarios import (
    attacked_update,
    malicious_clients,
    poisoned,
    straggler_epochs,
)
from fl_sim.task import client_data

FIT_CONFIG = {"server_round": 1, "local_epochs": 1, "batch_size": 32, "learning_rate": 1e-3}
GLOBAL = [np.zeros((4, 3), np.float32), np.ones(3, np.float32)]
TRAINED = [np.full((4, 3), 0.5, np.float32), np.full(3, 2.0, np.float32)]


def _attacked(**fields):
    """Every client malicious, so partition 0 attacks."""
    cfg = RunConfig(num_clients=5, malicious=5, **fields)
    return attacked_update(cfg, 0, 1, GLOBAL, TRAINED)


def test_sign_flip_sends_global_minus_scaled_true_update():
    sent = _attacked(attack="sign-flip", attack_scale=3.0)
    for s, g, w in zip(sent, GLOBAL, TRAINED, strict=True):
        np.testing.assert_allclose(s, g - 3.0 * (w - g))
        assert s.dtype == g.dtype


def test_gaussian_sends_global_plus_large_seeded_noise():
    cfg = RunConfig(num_clients=5, malicious=5, attack="gaussian", attack_scale=2.0)
    big = [np.zeros((200, 200), np.float32)]
    sent = attacked_update(cfg, 0, 1, big, big)[0]
    assert sent.std() == pytest.approx(2.0, rel=0.02) and abs(sent.mean()) < 0.05
    np.testing.assert_array_equal(sent, attacked_update(cfg, 0, 1, big, big)[0])
    assert not np.array_equal(sent, attacked_update(cfg, 0, 2, big, big)[0])


def test_honest_clients_and_label_flippers_send_what_they_trained():
    assert _attacked(attack="label-flip") is TRAINED
    honest = RunConfig(num_clients=5, malicious=0, attack="sign-flip")
    assert attacked_update(honest, 0, 1, GLOBAL, TRAINED) is TRAINED


def test_malicious_clients_come_from_the_seed():
    picks = {s: malicious_clients(RunConfig(num_clients=5, malicious=2, seed=s)) for s in range(8)}
    assert all(len(set(p)) == 2 and set(p) <= set(range(5)) for p in picks.values())
    assert picks[3] == malicious_clients(RunConfig(num_clients=5, malicious=2, seed=3))
    assert len({tuple(p) for p in picks.values()}) > 1


def test_label_flippers_train_on_nine_minus_y(small_npz):
    cfg = RunConfig(data=small_npz, num_clients=3, seed=4, malicious=1, attack="label-flip")
    (bad,) = malicious_clients(cfg)
    for pid in range(3):
        clean = client_data(cfg, pid)
        data = FlowerClient(cfg, pid).data
        expected = (9 - clean.y_train) if pid == bad else clean.y_train
        np.testing.assert_array_equal(data.y_train, expected)
    assert poisoned(cfg.replace(attack="gaussian"), bad, clean) is clean


def test_a_sign_flipping_client_reverses_its_real_update(small_npz):
    cfg = RunConfig(data=small_npz, num_clients=3, seed=4)
    initial = build_model("mlp", 4).get_weights()
    honest, _, _ = FlowerClient(cfg, 0).fit(initial, FIT_CONFIG)
    attacker = cfg.replace(malicious=3, attack="sign-flip", attack_scale=2.0)
    sent, _, _ = FlowerClient(attacker, 0).fit(initial, FIT_CONFIG)
    for s, g, w in zip(sent, initial, honest, strict=True):
        np.testing.assert_allclose(s, g - 2.0 * (w - g), rtol=1e-5, atol=1e-6)


def test_stragglers_run_fewer_epochs_each_round():
    cfg = RunConfig(num_clients=10, local_epochs=4, stragglers=0.5, rounds=20)
    for rnd in range(1, 21):
        epochs = [straggler_epochs(cfg, rnd, pid, 4) for pid in range(10)]
        assert sum(e < 4 for e in epochs) == 5 and min(epochs) >= 1
    drawn = {straggler_epochs(cfg, r, p, 4) for r in range(1, 21) for p in range(10)}
    assert drawn == {1, 2, 3, 4}
    assert straggler_epochs(cfg.replace(stragglers=0.0), 1, 0, 4) == 4


def test_a_straggling_client_trains_fewer_epochs(small_npz):
    cfg = RunConfig(data=small_npz, num_clients=3, seed=4, local_epochs=3, stragglers=1.0)
    expected = straggler_epochs(cfg, 1, 0, 3)
    _, _, metrics = FlowerClient(cfg, 0).fit(
        build_model("mlp", 4).get_weights(), {**FIT_CONFIG, "local_epochs": 3}
    )
    assert expected < 3 and len(json.loads(metrics["curve"])["loss"]) == expected


def test_quantity_skew_gives_the_requested_sizes():
    labels = load_mnist().y_train
    sizes = skewed_sizes(len(labels), 5, 20.0)
    assert sizes.sum() == len(labels)
    assert sizes[-1] / sizes[0] == pytest.approx(20.0, rel=0.01)
    ratios = sizes[1:] / sizes[:-1]
    np.testing.assert_allclose(ratios, 20.0**0.25, rtol=0.01)
    parts = partition(labels, 5, "iid", seed=1, quantity_skew=20.0)
    assert [len(p) for p in parts] == sizes.tolist()
    assert len(np.unique(np.concatenate(parts))) == len(labels)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"malicious": 6}, "--malicious"),
        ({"attack": "flood"}, "--attack"),
        ({"stragglers": 0.5}, "--local-epochs 2"),
        ({"stragglers": 1.5, "local_epochs": 2}, "--stragglers"),
        ({"quantity_skew": 0.5}, "--quantity-skew"),
        ({"quantity_skew": 5.0, "partition": "shards"}, "--quantity-skew"),
        ({"attack_scale": 0.0}, "--attack-scale"),
    ],
)
def test_impossible_scenarios_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(num_clients=5, **fields)
