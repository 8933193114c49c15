"""The simulation on an existing Ray cluster (`ray start --head`, loopback), chosen by RAY_ADDRESS.

Every Ray driver that attaches leaves a ``python-core-driver-*`` log in the
cluster's session folder; a run that started a Ray of its own would not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from flower_cli import ROOT, SMALL_RUN, flwr_run, free_port, simulation_superlink

from fl_sim.certs import LOOPBACK
from fl_sim.processes import server_env, start, stop

PORT_FLAGS = [
    "--ray-client-server-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A 2-CPU head node on free loopback ports; yields (address, session logs). Always stopped."""
    # Ray's socket paths must stay short, so not under pytest's deep tmp folders.
    temp = Path(tempfile.mkdtemp(prefix="ray-"))
    log = tmp_path_factory.mktemp("ray") / "ray.log"
    port = free_port()
    command = ["ray", "start", "--head", "--block", "--node-ip-address", LOOPBACK]
    command += ["--port", str(port), "--num-cpus", "2", "--include-dashboard", "false"]
    command += ["--disable-usage-stats", "--temp-dir", str(temp)]
    command += [arg for flag in PORT_FLAGS for arg in (flag, str(free_port()))]
    proc = start(command, log, server_env())
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(1)
        yield f"{LOOPBACK}:{port}", temp / "session_latest" / "logs"
    finally:
        stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _drivers(logs: Path) -> int:
    return len(list(logs.glob("python-core-driver-*.log")))


@pytest.mark.slow
def test_cli_and_flwr_run_train_on_the_cluster_alike(ray_cluster, small_npz, tmp_path):
    address, logs = ray_cluster
    env = server_env(RAY_ADDRESS=address)
    flags = ["--num-clients", "2", "--rounds", "2", "--data", small_npz]
    cli = subprocess.run(
        [sys.executable, "-m", "fl_sim.run", *flags, "--output", str(tmp_path / "cli")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert _drivers(logs) == 1

    with simulation_superlink(tmp_path, RAY_ADDRESS=address) as sim_env:
        log, run = flwr_run(
            ROOT,
            "sim",
            sim_env,
            "--run-config",
            f"{SMALL_RUN} data='{small_npz}' output='{tmp_path / 'flwr'}'",
            "--federation-config",
            "num-supernodes=2",
        )
    assert run["status"] == "finished:completed", log[-3000:]
    assert _drivers(logs) == 2

    cli_rounds, flwr_rounds = (
        json.loads((tmp_path / name / "history.json").read_text())["rounds"]
        for name in ("cli", "flwr")
    )
    assert [r["test"]["accuracy"] for r in flwr_rounds] == pytest.approx(
        [r["test"]["accuracy"] for r in cli_rounds]
    )
    assert cli_rounds[2]["test"]["accuracy"] > cli_rounds[0]["test"]["accuracy"] + 0.3
