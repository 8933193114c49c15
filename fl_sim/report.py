"""``report.md`` and ``results.csv`` from a comparison grid, finished or not.

Numbers come from each run's ``history.json`` (the global model on the MNIST test
set after every round); a run counts once its ``result.json`` exists. The table per
scenario gives mean ± standard deviation over seeds, and the conclusion is written
from the same numbers, saying where a gap is within the seeds' spread.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
from datetime import date
from pathlib import Path
from typing import Any

from fl_sim.grid import CENTRALIZED, Grid, Run, describe
from fl_sim.outputs import plt, write_text
from fl_sim.progress import duration

METRICS = ("accuracy", "precision", "recall", "f1")
THRESHOLDS = (0.95, 0.98)
CSV_FIELDS = (
    "scenario", "seed", "strategy", *METRICS, "loss", "rounds_to_95", "rounds_to_98",
    "seconds", "partition", "alpha", "quantity_skew", "malicious", "attack",
    "malicious_clients", "stragglers", "local_epochs", "rounds", "path",
)  # fmt: skip


def rounds_to(history: list[dict], threshold: float) -> int | None:
    """The first round whose global model reaches ``threshold`` test accuracy."""
    return next(
        (r["round"] for r in history if r["round"] > 0 and r["test"]["accuracy"] >= threshold),
        None,
    )


def result_row(run: Run) -> dict[str, Any]:
    """One finished run as a results.csv row, with its accuracy curve for the plots."""
    history = json.loads((run.path / "history.json").read_text())["rounds"]
    config = json.loads((run.path / "config.json").read_text())
    final = history[-1]["test"]
    cfg = run.cfg
    return {
        "scenario": run.scenario,
        "seed": run.seed,
        "strategy": run.strategy,
        **{m: final[m] for m in (*METRICS, "loss")},
        "rounds_to_95": rounds_to(history, 0.95),
        "rounds_to_98": rounds_to(history, 0.98),
        "seconds": json.loads((run.path / "result.json").read_text())["seconds"],
        "partition": cfg.partition,
        "alpha": cfg.dirichlet_alpha if cfg.partition == "dirichlet" else "",
        "quantity_skew": cfg.quantity_skew,
        "malicious": cfg.malicious,
        "attack": cfg.attack if cfg.malicious else "",
        "malicious_clients": " ".join(map(str, config.get("malicious_clients", []))),
        "stragglers": cfg.stragglers,
        "local_epochs": cfg.local_epochs,
        "rounds": cfg.rounds,
        "path": str(run.path),
        "curve": [r["test"]["accuracy"] for r in history],
    }


def collect(grid: Grid) -> tuple[list[dict], list[Run]]:
    """Rows of the finished runs and the runs still missing."""
    rows, missing = [], []
    for run in grid.runs():
        if run.is_done():
            rows.append(result_row(run))
        else:
            missing.append(run)
    return rows, missing


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def spread(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None with a single seed)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def percent(values: list[float]) -> str:
    mean, std = spread(values)
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def rounds_cell(values: list[int | None]) -> str:
    reached = [v for v in values if v is not None]
    if not reached:
        return "not reached"
    mean, std = spread(reached)
    text = f"{mean:g}" if std is None else f"{mean:.1f} ± {std:.1f}"
    return text if len(reached) == len(values) else f"{text} ({len(reached)}/{len(values)} seeds)"


def by_strategy(rows: list[dict], scenario: str) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["scenario"] == scenario:
            groups.setdefault(row["strategy"], []).append(row)
    return groups


def scenario_table(groups: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| strategy | seeds | test accuracy % | macro precision % | macro recall % | macro F1 % "
        "| rounds to 95% | rounds to 98% | wall time s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for strategy, runs in groups.items():
        cells = [percent([r[m] for r in runs]) for m in METRICS]
        rounds = [rounds_cell([r[f"rounds_to_{t}"] for r in runs]) for t in ("95", "98")]
        seconds = spread([r["seconds"] for r in runs])[0]
        lines.append(
            f"| {strategy} | {len(runs)} | {' | '.join(cells)} | {' | '.join(rounds)} "
            f"| {seconds:.0f} |"
        )
    return lines


def summary_table(grid: Grid, rows: list[dict]) -> list[str]:
    """Scenarios by strategies, final test accuracy; the best federated one in bold."""
    names = [*grid.strategies, CENTRALIZED]
    lines = [
        "| scenario | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for scenario in grid.scenarios:
        groups = by_strategy(rows, scenario)
        best = _best(groups, grid.strategies)
        cells = []
        for name in names:
            text = percent([r["accuracy"] for r in groups[name]]) if name in groups else "–"
            cells.append(f"**{text}**" if name == best else text)
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return lines


def _best(groups: dict[str, list[dict]], strategies: tuple[str, ...]) -> str | None:
    means = {s: spread([r["accuracy"] for r in groups[s]])[0] for s in strategies if s in groups}
    return max(means, key=means.get) if means else None


def conclusion(scenario: str, groups: dict[str, list[dict]], strategies: tuple[str, ...]) -> str:
    """Best strategy of a scenario, and which others the seeds cannot tell apart from it."""
    stats = {s: spread([r["accuracy"] for r in groups[s]]) for s in strategies if s in groups}
    if not stats:
        return f"- **{scenario}**: no finished runs yet."
    best = max(stats, key=lambda s: stats[s][0])
    mean, std = stats[best]
    text = f"- **{scenario}**: {best} is best ({percent([r['accuracy'] for r in groups[best]])}%)"
    others = sorted((s for s in stats if s != best), key=lambda s: -stats[s][0])
    if std is None:
        gaps = ", ".join(f"{s} {100 * (mean - stats[s][0]):.2f}" for s in others)
        text += f"; one seed only, so no spread to judge the gaps by ({gaps} points behind)"
    else:
        close = [s for s in others if mean - stats[s][0] <= max(std, stats[s][1] or 0.0)]
        apart = [s for s in others if s not in close]
        if close:
            text += f"; {', '.join(close)} within the seeds' spread of it"
        if apart:
            gaps = ", ".join(f"{s} by {100 * (mean - stats[s][0]):.2f}" for s in apart)
            text += f"; ahead, beyond the spread, of {gaps} points"
    collapsed = [s for s in stats if stats[s][0] < 0.5]
    if collapsed:
        text += f". Below 50% (broken by the scenario): {', '.join(collapsed)}"
    if CENTRALIZED in groups:
        text += f". Centralized: {percent([r['accuracy'] for r in groups[CENTRALIZED]])}%"
    return text + "."


def overall(grid: Grid, rows: list[dict]) -> str:
    wins: dict[str, list[str]] = {}
    for scenario in grid.scenarios:
        best = _best(by_strategy(rows, scenario), grid.strategies)
        if best:
            wins.setdefault(best, []).append(scenario)
    parts = [f"{s} in {len(v)} ({', '.join(v)})" for s, v in sorted(wins.items())]
    return "Highest mean final accuracy: " + "; ".join(parts) + "." if parts else ""


def plot_scenario(scenario: str, groups: dict[str, list[dict]], path: Path) -> None:
    """Test accuracy per round, mean over seeds with a ±1 std band, per strategy."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for strategy, runs in groups.items():
        curves = [r["curve"] for r in runs]
        length = min(map(len, curves))
        mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
        style = "--" if strategy == CENTRALIZED else "-"
        ax.plot(range(length), mean, style, marker="o", markersize=3, label=strategy)
        if len(curves) > 1:
            std = [statistics.stdev(c[i] for c in curves) for i in range(length)]
            low = [m - s for m, s in zip(mean, std, strict=True)]
            high = [m + s for m, s in zip(mean, std, strict=True)]
            ax.fill_between(range(length), low, high, alpha=0.15)
    ax.set(xlabel="round (centralized: epochs of one round)", ylabel="test accuracy")
    ax.set_title(f"{scenario}: global test accuracy (mean over seeds)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def settings(grid: Grid) -> list[str]:
    base = grid.base
    return [
        f"- Model `{base.model}`, {base.num_clients} clients, {base.rounds} rounds, "
        f"batch size {base.batch_size}, Adam learning rate {base.learning_rate:g}, "
        f"FedProx mu {base.proximal_mu:g}, every client trains every round; "
        f"seeds {', '.join(map(str, grid.seeds))}.",
        "- Every strategy in a cell (one scenario, one seed) sees the same partition, "
        "initial weights and malicious clients; accuracy is the global model's on the test set "
        "(10,000 MNIST images unless `--data` says otherwise). Wall time is one run's, "
        "excluding the cell's Ray start-up; the first strategy of a cell still pays the "
        "clients' one-off compilation of the training step (a few seconds).",
        "- Centralized: the same model and initial weights trained on the union of the "
        "clients' training splits for rounds × local epochs epochs (clean labels).",
        "- Scenarios:",
        *[f"  - `{s}`: {describe(grid.cell(s, grid.seeds[0]))}" for s in grid.scenarios],
    ]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"


def completeness(grid: Grid, rows: list[dict], missing: list[Run]) -> list[str]:
    done = len({r["path"] for r in rows})
    planned = done + len({str(r.path) for r in missing})
    if not missing:
        return [
            f"All {planned} planned runs finished (centralized baselines shared by scenarios "
            "with the same data count once)."
        ]
    cells = sorted({(r.seed, r.scenario) for r in missing})
    listed = ", ".join(f"{scenario} seed {seed}" for seed, scenario in cells)
    return [
        f"**Incomplete: {done} of {planned} planned runs finished.** Cells with runs "
        f"missing: {listed}. Rerunning the command computes only those.",
    ]


def write_report(grid: Grid, command: str, elapsed: float | None) -> Path:
    """Write report.md, results.csv and plots/ into the grid's folder; returns report.md."""
    rows, missing = collect(grid)
    write_csv(rows, grid.out / "results.csv")
    compute = sum(r["seconds"] for r in rows)
    lines = [
        "# Which strategy wins? fl-sim's comparison",
        "",
        f"Made by `{command}` on {date.today().isoformat()} ({machine()}). "
        + ("" if elapsed is None else f"This invocation took {duration(elapsed)}. ")
        + f"The finished runs' wall times add up to {duration(compute)} (plus Ray and "
        "TensorFlow start-up once per cell).",
        "",
        *completeness(grid, rows, missing),
        "",
        "## Settings",
        "",
        *settings(grid),
        "",
        "## Final test accuracy (%, mean ± std over seeds)",
        "",
        *summary_table(grid, rows),
        "",
        "## Conclusion",
        "",
        overall(grid, rows),
        "",
        *[conclusion(s, by_strategy(rows, s), grid.strategies) for s in grid.scenarios],
    ]
    for scenario in grid.scenarios:
        groups = by_strategy(rows, scenario)
        lines += ["", f"## {scenario}", "", describe(grid.cell(scenario, grid.seeds[0])), ""]
        if groups:
            plot_scenario(scenario, groups, grid.out / "plots" / f"{scenario}.png")
            lines += [*scenario_table(groups), "", f"![{scenario}](plots/{scenario}.png)"]
    path = grid.out / "report.md"
    write_text(path, "\n".join(lines))
    return path
