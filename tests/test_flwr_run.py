"""``flwr run`` on a simulation SuperLink, from a folder holding only the app's pyproject.toml.

That folder is what ``flwr run`` packs into the FAB (no code), and fl_sim is
imported from a copy laid out as ``pip install .`` lays it out, not from the
checkout: the installed-package case.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from flower_cli import ROOT, SMALL_RUN, flwr_run, simulation_superlink

OUTPUTS = ["config.json", "partition.json", "history.json", "model.keras"]
OUTPUTS += ["classification_report.txt", "confusion_matrix.png", "curves.png"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(app folder, environment): the FAB's files, and fl-sim importable from a copy only."""
    root = tmp_path_factory.mktemp("installed")
    app, site = root / "app", root / "site"
    app.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, app / name)
    no_cache = shutil.ignore_patterns("__pycache__")
    for package in ("fl_sim", "strategies"):
        shutil.copytree(ROOT / package, site / package, ignore=no_cache)
    # Bytecode written next to the copy shows that the apps were imported from it.
    with simulation_superlink(root, PYTHONPATH=str(site), PYTHONDONTWRITEBYTECODE="") as env:
        yield app, site, root, env


@pytest.mark.slow
def test_flwr_run_trains_and_writes_the_cli_layout(installed, small_npz):
    app, site, folder, env = installed
    log, run = flwr_run(
        app,
        "sim",
        env,
        "--run-config",
        f"{SMALL_RUN} strategy='fedprox' proximal-mu=0.1 data='{small_npz}' output='runs/sim'",
        "--federation-config",
        "num-supernodes=2",
    )
    assert run["status"] == "finished:completed", log[-3000:]
    out = folder / "runs" / "sim"
    assert f"outputs in {out}/" in log and "round   2" in log
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for pid in range(2):
        assert (out / "clients" / f"client_{pid}" / "curves.png").exists()
    rounds = json.loads((out / "history.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[2]["test"]["accuracy"] > rounds[0]["test"]["accuracy"] + 0.3
    config = json.loads((out / "config.json").read_text())
    assert (config["strategy"], config["proximal_mu"]) == ("fedprox", 0.1)
    assert (site / "fl_sim" / "__pycache__").is_dir()


@pytest.mark.slow
def test_a_bad_value_fails_the_run_with_the_cli_line(installed):
    app, _, _, env = installed
    cli = subprocess.run(
        [sys.executable, "-m", "fl_sim.run", "--strategy", "fedsgd"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    line = cli.stderr.strip()
    assert cli.returncode == 2 and line.startswith("fl-sim: error: unknown --strategy 'fedsgd'")
    log, run = flwr_run(app, "sim", env, "--run-config", "strategy='fedsgd'")
    assert run["status"] == "finished:failed"
    assert line in log.splitlines()
    assert run["status-details"].endswith(line.removeprefix("fl-sim: error: "))
