"""Client sampling that repeats from run to run.

Flower's ``SimpleClientManager`` draws with ``random.sample`` over node ids, and a
simulation makes new random node ids on every start, so ``--fraction-fit`` below 1
picked other clients each run. Here the draw is over partition ids (asked once per
node) with a generator seeded by (seed, round), and resuming at round r draws what
an uninterrupted run drew at round r.
"""

from __future__ import annotations

import numpy as np
from flwr.common import GetPropertiesIns
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.criterion import Criterion


class SeededClientManager(SimpleClientManager):
    """A client manager whose samples depend on the seed and the round alone."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed
        self.server_round = 0  # set by the server before each round
        self._partitions: dict[str, int] = {}

    def sample(
        self,
        num_clients: int,
        min_num_clients: int | None = None,
        criterion: Criterion | None = None,
    ) -> list[ClientProxy]:
        self.wait_for(num_clients if min_num_clients is None else min_num_clients)
        available = [
            proxy for proxy in self.clients.values() if criterion is None or criterion.select(proxy)
        ]
        if num_clients > len(available):
            return []
        if num_clients == len(available):
            return available
        ordered = sorted(available, key=self._partition_of)
        rng = np.random.default_rng([self.seed, self.server_round])
        return [ordered[i] for i in sorted(rng.choice(len(ordered), num_clients, replace=False))]

    def _partition_of(self, proxy: ClientProxy) -> int:
        """The node's partition id, asked once (a node keeps its partition for the run)."""
        if proxy.cid not in self._partitions:
            answer = proxy.get_properties(GetPropertiesIns(config={}), None, self.server_round)
            self._partitions[proxy.cid] = int(answer.properties["partition_id"])
        return self._partitions[proxy.cid]
