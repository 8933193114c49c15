"""Real Flower simulations on Ray, started the way a user starts them.

All runs are 3 clients, 2 rounds of FedMedian on a 3,000-image slice of MNIST, so
their histories can be compared: across the two Flower APIs, across two runs with
the same seed, and against a run that was killed and resumed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fl_sim.history import TIMINGS

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


def _command(small_npz: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "fl_sim.run", "--strategy", "fedmedian", "--num-clients", "3",
            "--rounds", "2", "--data", small_npz, *args]  # fmt: skip


def _run(key: str, small_npz: str, tmp_path_factory, *args: str):
    """One run per key (``--api`` value, or a repeat), shared by the tests."""
    if key not in _RUNS:
        out = tmp_path_factory.mktemp(key) / "run"
        command = _command(small_npz, "--output", str(out), *args)
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        _RUNS[key] = (result, out)
    return _RUNS[key]


def _rounds(out) -> list[dict]:
    """The history, flat ("test.loss": ...), without the wall times no two runs share."""
    rounds = json.loads((out / "history.json").read_text())["rounds"]
    return [_flat({k: v for k, v in r.items() if k not in TIMINGS}) for r in rounds]


def _flat(row: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


@pytest.fixture(params=["legacy", "message"])
def run(request, small_npz, tmp_path_factory):
    return _run(request.param, small_npz, tmp_path_factory, "--api", request.param)


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
    assert (out / "checkpoint.npz").exists() == (
        json.loads((out / "config.json").read_text())["api"] == "legacy"
    )


@pytest.mark.slow
def test_saved_model_loads_in_safe_mode_and_scores_as_reported(run, small_npz):
    import keras

    _, out = run
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    with np.load(small_npz, allow_pickle=False) as npz:
        x, y = npz["x_test"].astype("float32") / 255.0, npz["y_test"]
    accuracy = float((model.predict(x, verbose=0).argmax(axis=1) == y).mean())
    final = json.loads((out / "history.json").read_text())["rounds"][-1]["test"]["accuracy"]
    assert accuracy == pytest.approx(final, abs=1e-6)


@pytest.mark.slow
def test_both_flower_apis_give_the_same_run(small_npz, tmp_path_factory):
    (_, legacy), (_, message) = (
        _run(api, small_npz, tmp_path_factory, "--api", api) for api in ("legacy", "message")
    )
    history = [
        json.loads((out / "history.json").read_text())["rounds"] for out in (legacy, message)
    ]
    for a, b in zip(*history, strict=True):
        assert a["test"] == pytest.approx(b["test"], rel=1e-9)


@pytest.mark.slow
def test_same_seed_same_partition_initial_model_and_metrics(small_npz, tmp_path_factory):
    """Bit-identical on CPU; the tolerance only guards against platform rounding."""
    (_, first), (_, again) = (
        _run(key, small_npz, tmp_path_factory, "--api", "legacy") for key in ("legacy", "again")
    )
    assert (first / "partition.json").read_text() == (again / "partition.json").read_text()
    for a, b in zip(_rounds(first), _rounds(again), strict=True):
        assert a == pytest.approx(b, rel=1e-9), a["round"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_history(small_npz, tmp_path_factory, tmp_path):
    _, reference = _run("legacy", small_npz, tmp_path_factory, "--api", "legacy")
    out = tmp_path / "killed"
    victim = subprocess.Popen(
        _command(small_npz, "--output", str(out)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint.npz").exists() and victim.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 5 minutes"
            time.sleep(0.05)
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
    assert not (out / "history.json").exists(), "the run finished before it could be killed"

    resumed = subprocess.run(
        [sys.executable, "-m", "fl_sim.run", "--resume", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "round   1" not in resumed.stdout, "round 1 was recomputed"
    for a, b in zip(_rounds(out), _rounds(reference), strict=True):
        assert a == pytest.approx(b, rel=1e-9), a["round"]


@pytest.mark.slow
def test_crashing_clients_are_counted_and_the_run_goes_on(small_npz, tmp_path):
    out = tmp_path / "failing"
    result = subprocess.run(
        _command(small_npz, "--output", str(out), "--fail-rate", "0.5"),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    trained = [r for r in json.loads((out / "history.json").read_text())["rounds"] if r["round"]]
    assert all(r["updates_used"] + r["failures"] == 3 for r in trained)
    assert sum(r["failures"] for r in trained) > 0
    assert "failed" in result.stdout
