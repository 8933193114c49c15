"""``python -m fl_sim.run``: one federated run in-process, on Ray, through Flower.

Every flag maps onto one :class:`RunConfig` field (the same ones ``flwr run``
reads from ``pyproject.toml``); bad input is refused in one line with exit code 2
before Ray or TensorFlow start.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from fl_sim.config import APIS, ATTACKS, MODELS, PARTITIONS, STRATEGIES, ConfigError, RunConfig
from fl_sim.console import RunConsole, quiet, quiet_environment
from fl_sim.data import DataError

HELP = {
    "strategy": "aggregation strategy",
    "num_clients": "number of simulated clients",
    "rounds": "federated rounds",
    "local_epochs": "local epochs per client per round",
    "batch_size": "local batch size",
    "learning_rate": "clients' Adam learning rate",
    "proximal_mu": "FedProx's mu (used by --strategy fedprox only)",
    "fraction_fit": "fraction of clients sampled for training each round, in (0, 1]",
    "partition": "how the training set is split across clients",
    "alpha": "Dirichlet concentration (only with --partition dirichlet; default 0.5)",
    "model": "mlp: the original TheModel; cnn: McMahan et al.'s MNIST CNN",
    "seed": "seed for the partition, the initial model and local training",
    "output": "output folder (default runs/<time>-<strategy>/)",
    "client_cpus": "CPUs Ray reserves per client; fewer means more clients in parallel",
    "data": "MNIST as a Keras-layout .npz or a folder of IDX files (default: bundled copy)",
    "api": "Flower API: legacy (NumPyClient, flwr.server.strategy) or message (flwr.serverapp)",
    "fail_rate": "probability that a sampled client crashes during fit (seeded), in [0, 1)",
    "resume": "continue the interrupted run in this folder from its last complete round",
    "overwrite": "replace the contents of a non-empty --output folder",
    "malicious": "number of Byzantine clients, chosen from the seed",
    "attack": "what the malicious clients do",
    "attack_scale": "sign-flip: multiple of the true update subtracted; gaussian: noise std",
    "stragglers": "fraction of clients that run fewer local epochs each round",
    "quantity_skew": "largest part / smallest part, sizes in geometric progression (iid only)",
}
CHOICES = {
    "strategy": STRATEGIES,
    "partition": PARTITIONS,
    "model": MODELS,
    "api": APIS,
    "attack": ATTACKS,
}


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) with exit code 2."""

    def error(self, message: str) -> None:
        self.exit(2, error_line(message) + "\n")


def build_parser() -> argparse.ArgumentParser:
    """One flag per RunConfig field; absent flags stay absent.

    Values are left as strings: :meth:`RunConfig.from_run_config` converts and
    checks them, as it does ``flwr run``'s keys, so a bad value gets one message.
    """
    parser = _Parser(prog="python -m fl_sim.run", description=__doc__.split("\n")[0])
    for field in dataclasses.fields(RunConfig):
        flag = "--" + field.name.replace("_", "-")
        shown = f" (default: {field.default})" if field.default else ""
        if isinstance(field.default, bool):
            parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS,
                                help=HELP[field.name])  # fmt: skip
            continue
        choices = CHOICES.get(field.name)
        parser.add_argument(
            flag,
            default=argparse.SUPPRESS,
            metavar="{" + ",".join(choices) + "}" if choices else None,
            help=HELP[field.name] + shown,
        )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> RunConfig:
    """The validated config for a command line; raises ConfigError.

    With ``--resume DIR`` the saved run's config is the base and the flags given
    must agree with it; otherwise RunConfig's defaults are.
    """
    given = vars(build_parser().parse_args(argv))
    if "resume" in given:
        from fl_sim.outputs import saved_config

        known = {f.name for f in dataclasses.fields(RunConfig)}
        saved = saved_config(given["resume"]).items()
        given = {**{k: v for k, v in saved if k in known and v is not None}, "output": "", **given}
    return RunConfig.from_run_config({name.replace("_", "-"): v for name, v in given.items()})


def error_line(err: Exception) -> str:
    """How a refused input is reported, by the CLI and by ``flwr run`` alike."""
    return f"fl-sim: error: {err}"


def check_inputs(cfg: RunConfig) -> RunConfig:
    """Refuse what only the data or the output folder can reveal; fix the folder's name."""
    from fl_sim.outputs import claim_output
    from fl_sim.partition import partition_of

    partition_of(cfg)
    return cfg.replace(output=str(claim_output(cfg)))


def backend_config(cfg: RunConfig) -> dict:
    """Ray's settings for a simulation of ``cfg`` (quiet, no dashboard)."""
    return {
        "client_resources": {"num_cpus": cfg.client_cpus, "num_gpus": 0.0},
        "init_args": {"include_dashboard": False, "log_to_driver": False, "logging_level": 40},
    }


def start_ray(cfg: RunConfig) -> threading.Event:
    """Start Ray in the background, as Flower's Ray backend would; set the event when up.

    Flower starts Ray when it is not running yet, with the backend's ``init_args`` and
    this process's ``sys.path`` as the workers' ``PYTHONPATH`` (so they import fl-sim
    from a checkout too); but importing its simulation package imports TensorFlow
    first, seconds in which Ray could be starting. ``RAY_ADDRESS`` still attaches to
    a running cluster instead. Ray ties the lives of the processes it launches to the
    launching thread, so that thread stays until the program ends. If this start
    fails, Flower's own attempt reports why.
    """
    import ray

    started = threading.Event()

    def init() -> None:
        pythonpath = os.pathsep.join(sys.path)
        if os.environ.get("PYTHONPATH"):
            pythonpath += os.pathsep + os.environ["PYTHONPATH"]
        os.environ["PYTHONPATH"] = pythonpath
        init_args = {"include_dashboard": False, **backend_config(cfg)["init_args"]}
        try:
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, **init_args)
        except Exception:  # noqa: BLE001  (Flower starts Ray itself and says why it failed)
            pass
        finally:
            started.set()
        threading.Event().wait()

    threading.Thread(target=init, name="ray-start", daemon=True).start()
    return started


def simulate(cfg: RunConfig, console: RunConsole) -> None:
    """Run the rounds on Ray through Flower's simulation engine."""
    from flwr.simulation import run_simulation

    from fl_sim.client_app import make_client_app
    from fl_sim.server_app import make_server_app

    run_simulation(
        server_app=make_server_app(cfg, console),
        client_app=make_client_app(cfg),
        num_supernodes=cfg.num_clients,
        backend_config=backend_config(cfg),
    )


def main(argv: Sequence[str] | None = None) -> int:
    start = time.perf_counter()
    try:
        cfg = check_inputs(parse_config(argv))
    except (ConfigError, DataError) as err:
        print(error_line(err), file=sys.stderr)
        return 2
    quiet_environment()
    ray_started = start_ray(cfg)
    quiet()  # TensorFlow imports (seconds) while Ray starts
    ray_started.wait()
    console = RunConsole()
    simulate(cfg, console)
    final = json.loads((Path(cfg.output) / "history.json").read_text())["rounds"][-1]
    console.console.print(
        f"[bold]done[/bold] in {time.perf_counter() - start:.1f} s: final test accuracy "
        f"{final['test']['accuracy']:.4f}; outputs in {cfg.output}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
