"""The Deployment Engine for real: a SuperLink and SuperNodes as processes on loopback.

TLS with the project's own CA and SuperNode authentication, as
``python -m fl_sim.deploy`` starts them; ``flwr run`` from the checkout.
"""

from __future__ import annotations

import json

import pytest
from flower_cli import ROOT, SMALL_RUN, flwr_run, free_port, free_ports

from fl_sim.certs import write_node_key
from fl_sim.deploy import CONNECTION, Deployment
from fl_sim.processes import server_env

NODES = 2


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The SuperNodes; the ServerApp works in ``work/``. Stopped even when a test fails."""
    root = tmp_path_factory.mktemp("deploy")
    (root / "work").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLWR_HOME", str(root / "flwr-home"))
        with Deployment(
            root / "deployment",
            nodes=NODES,
            port=free_port(),
            node_port=free_ports(NODES),
            cwd=root / "work",
        ) as running:
            yield running
    assert all(proc.returncode is not None for proc in running.processes)


@pytest.mark.slow
def test_a_supernode_with_an_unregistered_key_is_refused(deployment, tmp_path):
    stranger = tmp_path / "stranger"
    write_node_key(stranger)
    node = deployment.start_node(0, key=stranger, port=free_port())
    assert node.wait(timeout=120) == 1
    logs = deployment.folder / "logs"
    assert "Failed to activate SuperNode" in (logs / "node_0_stranger.log").read_text()
    assert "No SuperNode found with the given public key" in (logs / "superlink.log").read_text()


@pytest.mark.slow
def test_two_rounds_over_tls_with_authenticated_nodes(deployment, small_npz):
    log, run = flwr_run(
        ROOT,
        CONNECTION,
        server_env(),
        "--run-config",
        f"{SMALL_RUN} data='{small_npz}' output='runs/deployed'",
    )
    assert run["status"] == "finished:completed", log[-3000:]
    out = deployment.cwd / "runs" / "deployed"
    rounds = json.loads((out / "history.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[2]["test"]["accuracy"] > rounds[0]["test"]["accuracy"] + 0.3
    assert [r["updates_used"] for r in rounds[1:]] == [NODES, NODES]
    assert (out / "model.keras").stat().st_size > 0
    clients = sorted(p.name for p in (out / "clients").iterdir())
    assert clients == [f"client_{i}" for i in range(NODES)]
