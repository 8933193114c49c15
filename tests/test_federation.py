"""The checks that refuse a federation sized differently from --num-clients."""

from __future__ import annotations

import pytest

from fl_sim import federation
from fl_sim.config import ConfigError, RunConfig

CFG = RunConfig(num_clients=5)


def test_a_supernode_gets_its_partition():
    assert federation.partition_id({"partition-id": 3, "num-partitions": 5}, CFG) == 3


@pytest.mark.parametrize(
    "node_config, words",
    [
        ({}, "no partition-id"),
        ({"partition-id": 1, "num-partitions": 3}, "num-partitions=3"),
        ({"partition-id": 5, "num-partitions": 5}, "partition-id=5"),
        ({"partition-id": -1, "num-partitions": 5}, "partition-id=-1"),
    ],
)
def test_a_supernode_outside_the_partition_is_refused(node_config, words):
    with pytest.raises(ConfigError, match=words):
        federation.partition_id(node_config, CFG)


def test_waiting_ends_when_the_nodes_are_there(monkeypatch):
    monkeypatch.setattr(federation, "POLL_S", 0.01)
    counts = iter([3, 4, 5])
    federation.wait_for_nodes(lambda: next(counts), 5, timeout=5)


def test_a_surplus_is_refused_at_once():
    with pytest.raises(ConfigError, match="federation has 6 SuperNode"):
        federation.wait_for_nodes(lambda: 6, 5, timeout=60)


def test_a_shortfall_is_refused_after_the_timeout(monkeypatch):
    monkeypatch.setattr(federation, "POLL_S", 0.01)
    with pytest.raises(ConfigError, match="num-supernodes=5"):
        federation.wait_for_nodes(lambda: 2, 5, timeout=0.05)
