"""The comparison: its grid, the centralized baseline, the report's wording, and a real
tiny grid on Ray that writes the report and resumes without recomputing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from fl_sim.centralized import pooled_training_set, run_centralized
from fl_sim.compare import build_grid, build_parser, pending
from fl_sim.config import STRATEGIES, ConfigError, RunConfig
from fl_sim.grid import CENTRALIZED, scenario_changes
from fl_sim.report import conclusion
from fl_sim.task import client_data


def _grid(tmp_path, *flags):
    return build_grid(build_parser().parse_args([*flags, "--output", str(tmp_path)]))


def test_scenario_names_set_the_scenario_fields():
    base = RunConfig()
    assert scenario_changes("dirichlet-0.1", base) == {"partition": "dirichlet", "alpha": 0.1}
    assert scenario_changes("label-flip-2", base) == {
        "partition": "iid", "attack": "label-flip", "malicious": 2,
    }  # fmt: skip
    assert scenario_changes("stragglers", base)["local_epochs"] >= 2
    with pytest.raises(ConfigError, match="unknown scenario 'flood-1'"):
        scenario_changes("flood-1", base)


def test_full_preset_holds_what_the_issue_asks(tmp_path):
    grid = _grid(tmp_path, "--preset", "full")
    assert len(grid.seeds) >= 3 and set(grid.strategies) == set(STRATEGIES)
    for name in ("iid", "dirichlet-0.5", "dirichlet-0.1", "shards", "quantity-skew", "stragglers"):
        assert name in grid.scenarios
    for attack in ("sign-flip", "gaussian", "label-flip"):
        assert {f"{attack}-1", f"{attack}-2"} <= set(grid.scenarios)
    assert grid.base.num_clients == 5


def test_runs_of_a_cell_differ_only_in_strategy(tmp_path):
    grid = _grid(tmp_path, "--scenarios", "sign-flip-2,gaussian-1", "--seeds", "0,1")
    runs = [r for r in grid.runs() if r.strategy != CENTRALIZED]
    for run in runs:
        same = [r for r in runs if (r.scenario, r.seed) == (run.scenario, run.seed)]
        assert {r.cfg.replace(strategy="fedavg", output="") for r in same} == {
            run.cfg.replace(strategy="fedavg", output="")
        }
    baselines = {r.path for r in grid.runs() if r.strategy == CENTRALIZED}
    assert len(baselines) == 2  # both scenarios use the same IID data: one baseline per seed
    assert len(pending(grid)) == 2 * 2 * 4 + 2


def test_centralized_trains_on_the_union_of_the_clients_training_splits(small_npz, tmp_path):
    cfg = RunConfig(data=small_npz, num_clients=3, rounds=2, seed=1, output=str(tmp_path))
    x, y = pooled_training_set(cfg)
    parts = [client_data(cfg, pid) for pid in range(3)]
    assert len(y) == sum(len(p.y_train) for p in parts) == 2700
    np.testing.assert_array_equal(np.sort(y), np.sort(np.concatenate([p.y_train for p in parts])))
    rows = run_centralized(cfg)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert rows[2]["test"]["accuracy"] > rows[0]["test"]["accuracy"] + 0.3
    assert json.loads((tmp_path / "history.json").read_text())["rounds"][2]["round"] == 2


def _runs(strategy, accuracies):
    return [{"strategy": strategy, "accuracy": a} for a in accuracies]


def test_conclusion_says_when_a_gap_is_within_the_seeds_spread():
    groups = {
        "fedavg": _runs("fedavg", [0.90, 0.96, 0.93]),
        "fedmedian": _runs("fedmedian", [0.94, 0.95, 0.96]),
        "fedprox": _runs("fedprox", [0.30, 0.31, 0.32]),
    }
    text = conclusion("iid", groups, ("fedavg", "fedmedian", "fedprox"))
    assert "fedmedian is best" in text
    assert "fedavg within the seeds' spread" in text
    assert "beyond the spread, of fedprox by 64.00 points" in text and "Below 50%" in text


def _compare(data, out, *extra):
    return subprocess.run(
        [sys.executable, "-m", "fl_sim.compare", "--scenarios", "iid,sign-flip-1", "--seeds",
         "0", "--rounds", "1", "--num-clients", "3", "--data", data, "--output", str(out),
         *extra],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.slow  # two Ray simulations with 4 strategies each: about 2 minutes on 2 cores
def test_tiny_grid_writes_the_report_and_resumes_without_recomputing(small_npz, tmp_path):
    first = _compare(small_npz, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    report = (tmp_path / "report.md").read_text()
    assert "This invocation took" in report
    for name in (*STRATEGIES, CENTRALIZED, "## iid", "## sign-flip-1", "## Conclusion"):
        assert name in report
    assert (tmp_path / "plots" / "sign-flip-1.png").stat().st_size > 0
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (len(STRATEGIES) + 1)
    attacked = [r for r in rows if r["scenario"] == "sign-flip-1" and r["strategy"] != CENTRALIZED]
    assert len({r["malicious_clients"] for r in attacked}) == 1 and attacked[0]["malicious_clients"]
    config = json.loads((tmp_path / "runs/sign-flip-1/seed-0/fedmedian/config.json").read_text())
    assert config["malicious_clients"] == [int(attacked[0]["malicious_clients"])]
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/**/history.json")}

    again = _compare(small_npz, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "9 already done" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/**/history.json")} == stamps
    assert "This invocation took" not in (tmp_path / "report.md").read_text()  # it computed nothing


def test_report_only_computes_nothing_and_says_what_is_missing(small_npz, tmp_path):
    from fl_sim.compare import main

    flags = ["--scenarios", "iid,gaussian-2", "--seeds", "0,1", "--data", small_npz]
    assert main([*flags, "--output", str(tmp_path), "--report-only"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "Incomplete: 0 of 18 planned runs finished" in report
    assert "gaussian-2 seed 1" in report and "--report-only" not in report
    assert not (tmp_path / "runs").exists()
