"""What the ServerApp adds when ``flwr run`` starts it instead of ``python -m fl_sim.run``.

The run config arrives as ``context.run_config`` and goes through the CLI's own
checks. Two things differ: the ServerApp runs in the SuperLink's working
directory, not the user's, so the output folder is made absolute and printed
(it lands in the run's log); and Flower reports a failed ServerApp with a
traceback, so refusals are also printed as the CLI's one line.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from flwr.app import Context

from fl_sim.config import ConfigError, RunConfig
from fl_sim.data import DataError
from fl_sim.run import check_inputs, error_line


@contextlib.contextmanager
def errors_in_one_line() -> Iterator[None]:
    """Print a refusal as the CLI does, then let Flower fail the run with it."""
    try:
        yield
    except (ConfigError, DataError) as err:
        print(error_line(err), file=sys.stderr, flush=True)
        raise


def config_from_context(context: Context) -> RunConfig:
    """The validated config of a ``flwr run``, with an absolute output folder."""
    with errors_in_one_line():
        cfg = check_inputs(RunConfig.from_run_config(context.run_config))
    cfg = cfg.replace(output=str(Path(cfg.output).resolve()))
    print(f"outputs in {cfg.output}/", flush=True)
    return cfg
