"""``python -m fl_sim.compare``: every strategy over a grid of scenarios and seeds.

Each cell (one scenario, one seed) is one Flower simulation in which the server
runs the strategies one after another against the same clients, so all of them
see the same partition, initial weights and malicious clients, and Ray and
TensorFlow start once per cell rather than once per strategy. Finished runs are
skipped, so an interrupted comparison resumes where it stopped; ``report.md`` and
``results.csv`` are rewritten from everything finished at the end.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from fl_sim.config import STRATEGIES, ConfigError, RunConfig
from fl_sim.console import RunConsole, default_console, quiet
from fl_sim.data import DataError
from fl_sim.grid import CENTRALIZED, PRESETS, Grid, Run
from fl_sim.outputs import write_json
from fl_sim.progress import GridProgress

GRID_FLAGS = (
    "num_clients", "rounds", "local_epochs", "batch_size", "learning_rate", "proximal_mu",
    "attack_scale", "model", "data", "client_cpus",
)  # fmt: skip


def _csv(kind):
    return lambda text: tuple(kind(item) for item in text.split(",") if item)


def build_parser() -> argparse.ArgumentParser:
    """Preset, grid axes, and the RunConfig fields shared by the whole grid."""
    parser = argparse.ArgumentParser(prog="python -m fl_sim.compare", description=__doc__)
    parser.add_argument("--preset", choices=tuple(PRESETS), default="quick")
    parser.add_argument("--scenarios", type=_csv(str), help="comma-separated scenario names")
    parser.add_argument("--seeds", type=_csv(int), help="comma-separated seeds")
    parser.add_argument("--strategies", type=_csv(str), default=STRATEGIES)
    parser.add_argument("--output", help="output folder (default runs/compare-<preset>/)")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite report.md and results.csv from the finished runs; compute nothing",
    )
    defaults = RunConfig()
    for name in GRID_FLAGS:
        kind = type(getattr(defaults, name))
        parser.add_argument("--" + name.replace("_", "-"), type=kind)
    return parser


def build_grid(args: argparse.Namespace) -> Grid:
    """Preset values, overridden by any flag given; ConfigError for a bad value."""
    preset = PRESETS[args.preset]
    fields = {name: getattr(args, name) for name in GRID_FLAGS if getattr(args, name) is not None}
    fields.setdefault("rounds", preset["rounds"])
    unknown = set(args.strategies) - set(STRATEGIES)
    if unknown:
        raise ConfigError(f"unknown strategy {', '.join(sorted(unknown))}")
    grid = Grid(
        scenarios=args.scenarios or preset["scenarios"],
        seeds=args.seeds if args.seeds is not None else preset["seeds"],
        strategies=tuple(args.strategies),
        base=RunConfig(**fields),
        out=Path(args.output or f"runs/compare-{args.preset}"),
    )
    return grid


def check(grid: Grid) -> None:
    """Build every config and partition now, so a bad cell fails before hours of work."""
    from fl_sim.partition import partition_of

    for run in grid.runs():
        partition_of(run.cfg)


def pending(grid: Grid) -> list[Run]:
    """Runs still to compute, once each (the centralized baseline is shared)."""
    seen, todo = set(), []
    for run in grid.runs():
        if run.path not in seen and not run.is_done():
            todo.append(run)
        seen.add(run.path)
    return todo


def record(run: Run, seconds: float) -> None:
    """The done marker, written last: the config it was computed for and its wall time."""
    (run.path / "error.txt").unlink(missing_ok=True)  # from an earlier, failed attempt
    write_json(run.path / "result.json", {"config": run.cfg.to_dict(), "seconds": seconds})


def attempt(run: Run, progress: GridProgress, work) -> None:
    """Run ``work`` for one run; a failure is logged in error.txt and the grid goes on."""
    run.path.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        work()
    except Exception:  # one broken run must not cost the rest of the grid
        (run.path / "error.txt").write_text(traceback.format_exc())
        progress.failed(run)
        return
    seconds = time.perf_counter() - start
    record(run, seconds)
    progress.finished(run, seconds)


def run_centralized_baseline(run: Run, progress: GridProgress) -> None:
    from fl_sim.centralized import run_centralized

    attempt(run, progress, lambda: run_centralized(run.cfg))


def simulate_cell(runs: list[Run], progress: GridProgress) -> None:
    """One Flower simulation serving every strategy of one cell, one after another."""
    from flwr.serverapp import Grid as FlowerGrid
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    from fl_sim.client_app import make_client_app
    from fl_sim.run import backend_config
    from fl_sim.server_app import run_message_api
    from fl_sim.task import global_model

    app = ServerApp()

    @app.main()
    def main(grid: FlowerGrid, context) -> None:
        progress.starting(runs[0], warm_up(grid, runs[0].cfg))
        for run in runs:
            global_model.cache_clear()  # the cached server model holds the last run's weights

            def work(run=run):
                # Beside the run's folder, which the run itself clears before starting.
                with open(run.path.with_name(f"{run.path.name}.log"), "w") as log:
                    run_message_api(grid, run.cfg, RunConsole(Console(file=log, width=100)))

            attempt(run, progress, work)

    cfg = runs[0].cfg
    run_simulation(
        server_app=app,
        client_app=make_client_app(cfg),
        num_supernodes=cfg.num_clients,
        backend_config=backend_config(cfg),
    )


def warm_up(grid, cfg: RunConfig) -> float:
    """Have every client load TensorFlow, its data and its model before the clock runs.

    Otherwise the strategy that happens to go first in a cell would be charged
    the cell's start-up in its wall time. Returns the seconds it took.
    """
    from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict

    from fl_sim.task import global_model

    start = time.perf_counter()
    content = RecordDict(
        {
            "arrays": ArrayRecord(global_model(cfg.model, cfg.seed).get_weights()),
            "config": ConfigRecord({"server-round": 0}),
        }
    )
    messages = [
        Message(content, dst_node_id=n, message_type="evaluate") for n in grid.get_node_ids()
    ]
    list(grid.send_and_receive(messages))
    return time.perf_counter() - start


def compute(grid: Grid, todo: list[Run], console: Console) -> None:
    """Every pending run, cell by cell, under one progress display."""
    with GridProgress(todo, console) as progress:
        for _, cell in itertools.groupby(todo, key=lambda r: (r.seed, r.scenario)):
            cell = list(cell)
            for run in cell:
                if run.strategy == CENTRALIZED:
                    run_centralized_baseline(run, progress)
            federated = [run for run in cell if run.strategy != CENTRALIZED]
            if federated:
                simulate_cell(federated, progress)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        args = build_parser().parse_args(argv)
        grid = build_grid(args)
        quiet()
        check(grid)
    except (ConfigError, DataError) as err:
        print(f"fl-sim compare: error: {err}", file=sys.stderr)
        return 2
    from fl_sim.report import write_report

    console = default_console()
    todo = pending(grid)
    total = len({run.path for run in grid.runs()})
    console.print(
        f"{len(grid.scenarios)} scenarios x {len(grid.seeds)} seeds x "
        f"{len(grid.strategies)} strategies + centralized: {total} runs, "
        f"{total - len(todo)} already done"
    )
    if args.report_only:
        argv.remove("--report-only")
    else:
        compute(grid, todo, console)
    command = " ".join(["python -m fl_sim.compare", shlex.join(argv)]).strip()
    elapsed = time.perf_counter() - start if todo and not args.report_only else None
    report = write_report(grid, command, elapsed)
    console.print(f"[bold]done[/bold]: {report} and {report.parent / 'results.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
