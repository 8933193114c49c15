"""fl-sim's legacy server loop without Ray: real clients on a small MNIST slice, called
in this process through a minimal ClientProxy."""

from __future__ import annotations

import gc
import json
import weakref

from flwr.common import DisconnectRes
from flwr.server.client_proxy import ClientProxy

from fl_sim.client_app import FlowerClient
from fl_sim.config import RunConfig
from fl_sim.console import RunConsole
from fl_sim.server_app import legacy_components


class LocalProxy(ClientProxy):
    """Hands Flower's instructions to a FlowerClient in this process; before each fit,
    notes how many updates of earlier rounds are still alive anywhere."""

    def __init__(self, cid: str, client: FlowerClient, updates: list, alive: list) -> None:
        super().__init__(cid)
        self.client, self.updates, self.alive = client.to_client(), updates, alive

    def get_properties(self, ins, timeout, group_id):
        return self.client.get_properties(ins)

    def get_parameters(self, ins, timeout, group_id):
        return self.client.get_parameters(ins)

    def fit(self, ins, timeout, group_id):
        gc.collect()
        earlier = [ref for server_round, ref in self.updates if server_round < group_id]
        self.alive.append((group_id, sum(ref() is not None for ref in earlier)))
        res = self.client.fit(ins)
        self.updates.append((group_id, weakref.ref(res.parameters)))
        return res

    def evaluate(self, ins, timeout, group_id):
        return self.client.evaluate(ins)

    def reconnect(self, ins, timeout, group_id):
        return DisconnectRes(reason="")


def test_a_round_trains_without_holding_the_previous_rounds_updates(small_npz, tmp_path):
    cfg = RunConfig(data=small_npz, num_clients=3, rounds=3, seed=1, output=str(tmp_path / "run"))
    server = legacy_components(cfg, RunConsole()).server
    updates, alive = [], []
    for pid in range(cfg.num_clients):
        server.client_manager().register(
            LocalProxy(f"node-{pid}", FlowerClient(cfg, pid), updates, alive)
        )
    server.fit(num_rounds=cfg.rounds, timeout=None)
    assert sorted(server_round for server_round, _ in alive) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert all(count == 0 for _, count in alive), alive
    rounds = json.loads((tmp_path / "run" / "history.json").read_text())["rounds"]
    assert rounds[-1]["test"]["accuracy"] > rounds[0]["test"]["accuracy"]
