"""The comparison's progress display: a bar over the whole grid and the time left.

Runs differ in cost (a centralized baseline is cheaper than a federated run, a
stragglers cell trains more epochs), so the estimate counts work in epochs of the
federation's data rather than in runs, and calibrates seconds per epoch on what has
finished so far.
"""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fl_sim.grid import CENTRALIZED, Run

CENTRALIZED_SHARE = 0.6  # a pooled epoch costs less than a federated one (no Flower, no Ray)
STARTUP_EPOCHS = 2.0  # a cell's Ray and TensorFlow start-up, in epochs


def work(run: Run) -> float:
    """A run's expected cost in epochs of the federation's data."""
    epochs = run.cfg.rounds * run.cfg.local_epochs
    return CENTRALIZED_SHARE * epochs if run.strategy == CENTRALIZED else epochs


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


class GridProgress:
    """One line per finished run (with the estimate) above a live bar."""

    def __init__(self, todo: list[Run], console: Console) -> None:
        self.console = console
        cells = {(r.seed, r.scenario) for r in todo if r.strategy != CENTRALIZED}
        self.left = sum(map(work, todo)) + STARTUP_EPOCHS * len(cells)
        self.done_work, self.count, self.total = 0.0, 0, len(todo)
        self.start = time.perf_counter()
        self.bar = Progress(
            TextColumn("[bold]grid"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}"),
            console=console,
            transient=True,
        )
        self.task = self.bar.add_task("grid", total=len(todo), eta="")

    def __enter__(self) -> GridProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def eta(self) -> str:
        if not self.done_work:
            return "time left: estimating"
        rate = (time.perf_counter() - self.start) / self.done_work
        return f"about {duration(rate * self.left)} left"

    def _advance(self, amount: float) -> None:
        self.done_work += amount
        self.left -= amount
        self.bar.update(self.task, eta=self.eta())

    def starting(self, run: Run, seconds: float) -> None:
        """A cell's simulation is up (Ray started, clients warmed up)."""
        self._advance(STARTUP_EPOCHS)
        self.console.print(f"{run.scenario}, seed {run.seed}: clients up in {seconds:.0f} s")

    def finished(self, run: Run, seconds: float) -> None:
        self.count += 1
        self.bar.advance(self.task)
        self._advance(work(run))
        accuracy = _final_accuracy(run)
        self.console.print(
            f"[{self.count}/{self.total}] {run.scenario}, seed {run.seed}, {run.strategy}: "
            f"test accuracy {accuracy:.4f} in {seconds:.0f} s; {self.eta()}"
        )

    def failed(self, run: Run) -> None:
        self.count += 1
        self.bar.advance(self.task)
        self._advance(work(run))
        self.console.print(
            f"[red][{self.count}/{self.total}] {run.scenario}, seed {run.seed}, {run.strategy} "
            f"failed[/red]: see {run.path / 'error.txt'}"
        )


def _final_accuracy(run: Run) -> float:
    rounds = json.loads((run.path / "history.json").read_text())["rounds"]
    return rounds[-1]["test"]["accuracy"]
