"""Checks that the federation the app runs on is the one its config describes.

``python -m fl_sim.run`` starts one simulated SuperNode per client, but under
``flwr run`` the federation is sized elsewhere (``num-supernodes`` for a
simulation, the SuperNodes started for a deployment), and each SuperNode names
its own partition in its node config. A mismatch would otherwise hang the server
(waiting for clients that never come) or train on the wrong shards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from fl_sim.config import ConfigError, RunConfig

NODE_WAIT_S = 60.0
POLL_S = 1.0


def partition_id(node_config: Mapping[str, Any], cfg: RunConfig) -> int:
    """This SuperNode's partition, refused unless it is one of ``cfg``'s clients."""
    if "partition-id" not in node_config:
        raise ConfigError(
            "this SuperNode has no partition-id; start it with "
            "--node-config 'partition-id=<i> num-partitions=<num-clients>'"
        )
    pid = int(node_config["partition-id"])
    parts = int(node_config.get("num-partitions", cfg.num_clients))
    if parts != cfg.num_clients or not 0 <= pid < parts:
        raise ConfigError(
            f"this SuperNode is partition-id={pid} of num-partitions={parts}, "
            f"but --num-clients is {cfg.num_clients}"
        )
    return pid


def wait_for_nodes(count: Callable[[], int], expected: int, timeout: float = NODE_WAIT_S) -> None:
    """Return once ``count()`` SuperNodes equal ``expected``; refuse a surplus or a shortfall.

    SuperNodes of a deployment connect over some seconds, so a shortfall is only
    an error once ``timeout`` has passed.
    """
    deadline = time.monotonic() + timeout
    while (found := count()) < expected and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if found != expected:
        raise ConfigError(
            f"--num-clients is {expected} but the federation has {found} SuperNode(s); "
            f"with flwr run, pass --federation-config 'num-supernodes={expected}' "
            "or start that many SuperNodes"
        )
