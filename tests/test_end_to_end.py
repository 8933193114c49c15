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


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["fedmedian"])
def test_run_trains_and_writes_every_output(small_npz, tmp_path, strategy):
    out = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fl_sim.run",
            "--strategy",
            strategy,
            "--num-clients",
            "3",
            "--rounds",
            "2",
            "--data",
            small_npz,
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "round   2" in result.stdout and "Traceback" not in result.stderr
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    for pid in range(3):
        assert (out / "clients" / f"client_{pid}" / "curves.png").exists()
        assert (
            "macro avg"
            in (out / "clients" / f"client_{pid}" / "classification_report.txt").read_text()
        )
    rounds = json.loads((out / "history.json").read_text())["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[2]["test"]["accuracy"] > rounds[0]["test"]["accuracy"] + 0.3
    assert rounds[1]["updates_used"] == 3 and rounds[1]["updates_rejected"] == 0
    assert {"loss", "accuracy", "f1"} <= rounds[2]["evaluate"].keys()
    assert json.loads((out / "config.json").read_text())["strategy"] == strategy
