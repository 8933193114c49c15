"""A real Flower simulation on Ray, started the way a user starts it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

OUTPUTS = [
    "config.json",
    "partition.json",
    "history.json",
    "model.keras",
    "classification_report.txt",
    "confusion_matrix.png",
    "curves.png",
]


_RUNS: dict[str, object] = {}


def _run(api: str, small_npz: str, tmp_path_factory):
    """One real 3-client, 2-round FedMedian run per Flower API, shared by the tests."""
    if api not in _RUNS:
        out = tmp_path_factory.mktemp(api) / "run"
        result = subprocess.run(
            [sys.executable, "-m", "fl_sim.run", "--strategy", "fedmedian", "--api", api,
             "--num-clients", "3", "--rounds", "2", "--data", small_npz, "--output", str(out)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        _RUNS[api] = (result, out)
    return _RUNS[api]


@pytest.fixture(params=["legacy", "message"])
def run(request, small_npz, tmp_path_factory):
    return _run(request.param, small_npz, tmp_path_factory)


@pytest.mark.slow
def test_run_trains_and_writes_every_output(run):
    result, out = run
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round   2" in result.stdout and "Traceback" not in result.stderr
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for pid in range(3):
        client = out / "clients" / f"client_{pid}"
        assert (client / "curves.png").exists()
        assert "macro avg" in (client / "classification_report.txt").read_text()
    rounds = json.loads((out / "history.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[2]["test"]["accuracy"] > rounds[0]["test"]["accuracy"] + 0.3
    assert rounds[1]["updates_used"] == 3 and rounds[1]["updates_rejected"] == 0
    assert {"loss", "accuracy", "f1"} <= rounds[2]["evaluate"].keys()
    assert json.loads((out / "config.json").read_text())["strategy"] == "fedmedian"


@pytest.mark.slow
def test_both_flower_apis_give_the_same_run(small_npz, tmp_path_factory):
    (_, legacy), (_, message) = (
        _run(api, small_npz, tmp_path_factory) for api in ("legacy", "message")
    )
    history = [
        json.loads((out / "history.json").read_text())["rounds"] for out in (legacy, message)
    ]
    for a, b in zip(*history, strict=True):
        assert a["test"] == pytest.approx(b["test"], rel=1e-9)
