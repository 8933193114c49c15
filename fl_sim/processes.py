"""Start Flower and Ray servers as child processes, and stop them with everything they started.

``flower-superlink`` and ``flower-supernode`` start ``flower-superexec`` in a new
session, which starts the ServerApp and ClientApp processes; ``ray start``
starts its own daemons. Killing one process group would leave some of them
behind, so stopping walks the process tree first and signals every process in
it, by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

# Offline, quiet, and on loopback only. Ray's switch for one-machine clusters makes
# it bind 127.0.0.1 rather than the machine's network address.
LOCAL_SERVER_ENV = {
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}


def server_env(**extra: str) -> dict[str, str]:
    """This environment plus LOCAL_SERVER_ENV, with this interpreter's scripts first on PATH.

    Flower starts ``flower-superexec`` and friends by name, so they must be found
    even when the virtual environment was never activated.
    """
    env = {**os.environ, **LOCAL_SERVER_ENV, **extra}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def start(
    command: list[str], log: Path, env: dict[str, str], cwd: Path | None = None
) -> subprocess.Popen:
    """Run ``command`` in its own session with stdout and stderr going to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM ``proc`` and its descendants; SIGKILL whatever is left after ``timeout``."""
    pids = [proc.pid, *descendants(proc.pid)]
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running(pids):
        proc.poll()
        time.sleep(0.2)
    _signal(_running(pids), signal.SIGKILL)
    proc.wait(timeout=timeout)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree, children first."""
    children: dict[int, list[int]] = defaultdict(list)
    for fields in _ps("pid=", "ppid="):
        children[int(fields[1])].append(int(fields[0]))
    found, todo = [], [pid]
    while todo:
        for child in children[todo.pop(0)]:
            found.append(child)
            todo.append(child)
    return found


def _running(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (zombies have finished)."""
    alive = {int(f[0]) for f in _ps("pid=", "stat=") if not f[1].startswith("Z")}
    return [pid for pid in pids if pid in alive]


def _ps(*columns: str) -> list[list[str]]:
    args = ["ps", "-A"] + [arg for col in columns for arg in ("-o", col)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout
    return [line.split() for line in out.splitlines() if line.strip()]


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
