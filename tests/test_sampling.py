"""Client sampling by partition id: the same clients each run, whatever their node ids."""

from __future__ import annotations

import random

from flwr.common import Code, GetPropertiesRes, Status
from flwr.server.client_proxy import ClientProxy

from fl_sim.sampling import SeededClientManager


class FakeNode(ClientProxy):
    """A node that only answers get_properties, as a simulated SuperNode would."""

    def __init__(self, cid: str, partition_id: int) -> None:
        super().__init__(cid)
        self.partition_id = partition_id
        self.asked = 0

    def get_properties(self, ins, timeout, group_id):
        self.asked += 1
        return GetPropertiesRes(Status(Code.OK, ""), {"partition_id": self.partition_id})

    get_parameters = fit = evaluate = reconnect = None


def _manager(seed: int, node_seed: int) -> SeededClientManager:
    """Ten nodes with fresh random node ids, registered in a random order."""
    rng = random.Random(node_seed)
    nodes = [FakeNode(str(rng.getrandbits(63)), pid) for pid in range(10)]
    rng.shuffle(nodes)
    manager = SeededClientManager(seed)
    for node in nodes:
        manager.register(node)
    return manager


def _sampled(manager: SeededClientManager, server_round: int, k: int = 4) -> list[int]:
    manager.server_round = server_round
    return sorted(proxy.partition_id for proxy in manager.sample(k))


def test_same_seed_and_round_pick_the_same_partitions_whatever_the_node_ids():
    assert [_sampled(_manager(7, 1), r) for r in (1, 2, 3)] == [
        _sampled(_manager(7, 2), r) for r in (1, 2, 3)
    ]


def test_rounds_and_seeds_pick_differently():
    manager = _manager(7, 1)
    picks = {tuple(_sampled(manager, r)) for r in range(1, 9)}
    assert len(picks) > 1
    seven, eight = _manager(7, 1), _manager(8, 1)
    assert [_sampled(seven, r) for r in (1, 2, 3)] != [_sampled(eight, r) for r in (1, 2, 3)]


def test_partitions_are_asked_once_and_full_rounds_ask_nothing():
    manager = _manager(7, 1)
    assert len(manager.sample(10)) == 10
    assert all(node.asked == 0 for node in manager.clients.values())
    for server_round in (1, 2):
        _sampled(manager, server_round)
    assert all(node.asked == 1 for node in manager.clients.values())
