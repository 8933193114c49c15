"""Partitions: stratified IID, Dirichlet label skew, label shards, local validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy

from fl_sim.config import ConfigError
from fl_sim.data import load_mnist
from fl_sim.partition import label_counts, partition, train_val_split

LABELS = load_mnist().y_train


def _is_exact_cover(parts, n):
    joined = np.concatenate(parts)
    return len(joined) == n and len(np.unique(joined)) == n


@pytest.mark.parametrize("num_clients", [3, 5, 7])
def test_iid_is_stratified_and_balanced(num_clients):
    parts = partition(LABELS, num_clients, "iid", seed=1)
    assert _is_exact_cover(parts, len(LABELS))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    ideal = np.bincount(LABELS) / num_clients
    assert np.all(np.abs(label_counts(LABELS, parts) - ideal) < 1)


def test_iid_parts_are_shuffled_not_sorted_by_label():
    part = partition(LABELS, 5, "iid", seed=1)[0]
    assert not np.all(np.diff(LABELS[part]) >= 0)


@pytest.mark.parametrize("method", ["iid", "dirichlet", "shards"])
def test_same_seed_same_partition_other_seed_other_partition(method):
    a = partition(LABELS, 5, method, seed=3)
    b = partition(LABELS, 5, method, seed=3)
    c = partition(LABELS, 5, method, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def _mean_label_entropy(parts):
    return float(np.mean(entropy(label_counts(LABELS, parts), axis=1)))


def test_dirichlet_skew_grows_as_alpha_falls():
    entropies = [
        np.mean(
            [_mean_label_entropy(partition(LABELS, 10, "dirichlet", s, alpha=a)) for s in range(3)]
        )
        for a in (100.0, 1.0, 0.1)
    ]
    assert entropies[0] > entropies[1] > entropies[2]
    assert entropies[0] > 0.95 * np.log(10)


def test_dirichlet_respects_minimum_part_size():
    parts = partition(LABELS, 20, "dirichlet", seed=0, alpha=0.05, min_size=50)
    assert _is_exact_cover(parts, len(LABELS))
    assert min(len(p) for p in parts) >= 50


def test_shards_give_at_most_two_labels_per_client():
    for num_clients in (5, 10, 50):
        parts = partition(LABELS, num_clients, "shards", seed=2)
        assert _is_exact_cover(parts, len(LABELS))
        per_client = (label_counts(LABELS, parts) > 0).sum(axis=1)
        assert per_client.max() <= 2
    assert (per_client == 2).mean() > 0.5


def test_more_clients_than_examples_is_refused():
    with pytest.raises(ConfigError, match="--num-clients 11"):
        partition(LABELS[:10], 11, "iid")


def test_validation_split_keeps_ten_percent():
    train, val = train_val_split(np.arange(1000))
    assert len(val) == 100 and len(train) == 900
    assert len(np.intersect1d(train, val)) == 0
