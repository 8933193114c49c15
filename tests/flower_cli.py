"""For the slow tests: a simulation SuperLink on a free loopback port, and ``flwr run`` on it.

Each test gets its own Flower home (``FLWR_HOME``), so neither the user's
``~/.flwr`` nor a SuperLink they keep running is touched.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from fl_sim.certs import LOOPBACK
from fl_sim.deploy import wait_healthy
from fl_sim.processes import server_env, start, stop

ROOT = Path(__file__).resolve().parent.parent
SMALL_RUN = "num-clients=2 rounds=2"  # every SuperNode loads TensorFlow: keep it small


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def simulation_superlink(folder: Path, **extra_env: str) -> Iterator[dict[str, str]]:
    """A SuperLink in simulation mode, known to ``flwr`` as ``sim``; yields the env to use.

    It runs in ``folder``, where relative outputs of the ServerApp land.
    """
    home, port = folder / "flwr-home", free_port()
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "sim"\n\n[superlink.sim]\n'
        f'address = "{LOOPBACK}:{port}"\ninsecure = true\n'
    )
    env = server_env(FLWR_HOME=str(home), **extra_env)
    command = ["flower-superlink", "--insecure", "--simulation", "--host", LOOPBACK]
    proc = start([*command, "--port", str(port)], folder / "superlink.log", env, cwd=folder)
    try:
        wait_healthy(f"{LOOPBACK}:{port}", None)
        yield env
    finally:
        stop(proc)


def flwr_run(
    app: Path, connection: str, env: dict[str, str], *options: str, timeout: float = 900
) -> tuple[str, dict]:
    """``flwr run APP CONNECTION OPTIONS --stream``: the streamed log and the finished run.

    ``flwr run`` exits 0 whether the run succeeded or not, so the run's record
    (status and details) comes from ``flwr list --run-id``.
    """
    result = _flwr(["run", str(app), connection, *options, "--stream"], env, timeout)
    found = re.search(r"Successfully started run (\d+)", result)
    assert found, result
    deadline = time.monotonic() + 60
    while True:
        listing = _flwr(["list", connection, "--run-id", found[1], "--format", "json"], env)
        run = json.loads(listing)["runs"][0]
        if run["status"].startswith("finished") or time.monotonic() > deadline:
            return result, run
        time.sleep(1)


def _flwr(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        ["flwr", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    while True:
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind((LOOPBACK, port))
            return first
        except OSError:
            continue
