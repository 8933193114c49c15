"""What a person sees: the partition table, a progress bar and one line per round.

TensorFlow, Ray and Flower all talk a lot; ``quiet()`` turns them down before
they are imported so the run's own lines stay readable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

import numpy as np
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_LOG_LEVEL": "WARNING",
    "RAY_DEDUP_LOGS": "0",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "PYTHONWARNINGS": "ignore",
}

EXPECTED_NOISE = (
    "DEPRECATED FEATURE",  # fl-sim runs in-process on purpose
    "SimulatedFailure",  # the traceback of an injected crash
    "An exception was raised when processing a message by",  # its preamble
)


def quiet_environment() -> None:
    """The variables that quiet TensorFlow, Ray and Flower; Ray workers inherit them."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def quiet() -> None:
    """Silence TensorFlow, Ray and Flower in this process and the Ray workers it starts.

    TensorFlow's C++ runtime prints a few lines on import before any log level
    applies, so the import happens here with stderr pointed at /dev/null.
    """
    quiet_environment()
    with _stderr_to_devnull():
        import tensorflow  # noqa: F401
    import flwr.simulation.ray_transport.utils  # noqa: F401  (resets warning filters on import)
    import flwr.supercore.logger as flwr_logger

    flwr_logger.FLOWER_LOGGER.addFilter(_drop_expected_noise)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("ray", "absl", "tensorflow", "h5py", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _drop_expected_noise(record: logging.LogRecord) -> bool:
    """Drop what fl-sim expects: the in-process notice and ``--fail-rate`` crashes.

    The round line counts injected failures; any other client error still shows.
    """
    message = record.getMessage()
    return not any(noise in message for noise in EXPECTED_NOISE)


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def default_console() -> Console:
    """A console; logs and pipes get 100 columns so the 12-column partition table fits."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=100)
    return console


class RunConsole:
    """Round-by-round output for one run."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or default_console()
        self.progress: Progress | None = None
        self.task = None

    def partition_table(self, counts: np.ndarray, title: str) -> None:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("client", justify="right")
        for label in range(counts.shape[1]):
            table.add_column(str(label), justify="right")
        table.add_column("total", justify="right", style="bold")
        for client, row in enumerate(counts):
            table.add_row(str(client), *map(str, row), str(row.sum()))
        self.console.print(table)

    def start(self, rounds: int, done: int = 0) -> None:
        self.progress = Progress(
            TextColumn("[bold]rounds"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("rounds", total=rounds, completed=done)
        self.progress.start()

    def round_line(
        self, server_round: int, metrics: dict[str, float], seconds: float, counts: dict
    ) -> None:
        updates = ""
        if counts:
            updates = (
                f"  updates {counts['updates_used']} used, {counts['updates_rejected']} "
                f"rejected, {counts['failures']} failed"
            )
        self.console.print(
            f"round {server_round:>3}  test loss {metrics['loss']:.4f}  "
            f"test accuracy {metrics['accuracy']:.4f}{updates}  {seconds:6.1f} s"
        )
        if self.progress is not None and server_round > 0:
            self.progress.advance(self.task)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
