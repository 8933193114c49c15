"""Stopping a server stops everything it started, in its own session or not."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from fl_sim.processes import descendants, server_env, start, stop

# A parent that starts one child in a new session (as flower-superlink starts
# flower-superexec) and one grandchild in its own group, then waits.
TREE = """
import subprocess, sys, time
cmd = [sys.executable, "-c", "import time; time.sleep(300)"]
subprocess.Popen(cmd, start_new_session=True)
subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                  "subprocess.Popen(sys.argv[1:]); time.sleep(300)", *cmd])
time.sleep(300)
"""


def test_stop_ends_the_whole_tree(tmp_path):
    proc = start([sys.executable, "-c", TREE], tmp_path / "tree.log", server_env())
    deadline = time.monotonic() + 30
    while len(descendants(proc.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    tree = descendants(proc.pid)
    assert len(tree) == 3
    stop(proc, timeout=10)
    assert proc.returncode is not None
    assert not [pid for pid in tree if _alive(pid)]


def _alive(pid: int) -> bool:
    """Running, not a zombie (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_server_env_finds_this_interpreters_scripts():
    env = server_env(FLWR_HOME="/x")
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["FLWR_HOME"] == "/x" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
