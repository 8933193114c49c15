"""What a federated round costs next to centralized training, and how it scales.

For each model, in one run on one machine:

- centralized: epochs of the same model over the 60,000 MNIST training images,
  batch 32, with fl-sim's compiled epoch (the one its clients run) and once with
  Keras' own ``model.fit`` for reference;
- federated: ``python -m fl_sim.run`` (FedAvg, IID, 1 local epoch, batch 32) with 5,
  50 and 500 clients over the same 60,000 images: the first round including Ray and
  TensorFlow start-up (from the command's launch to its first checkpoint), the
  steady-state round (median of rounds 2..R), and the peak RSS of the whole process
  tree (driver, Ray and its workers);
- server side: each strategy's aggregation time per round (median over the rounds).

Every federated setting is run ``--runs`` times; the tables show the median of the runs
(``results.json`` keeps each run).

Run from the repository root:

    python -m benchmarks.bench_rounds [--models mlp cnn] [--clients 5 50 500] [--rounds 4]
                                      [--runs 3] [--strategy-clients 50] [--out runs/bench-rounds]

It writes ``results.json`` and ``results.md`` into ``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

STRATEGIES = ("fedavg", "fedweightedavg", "fedmedian", "fedprox")


class TreeMemory:
    """Samples the summed RSS of a process and all its descendants; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.root, self.interval, self.peak = psutil.Process(pid), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def federated(model: str, clients: int, rounds: int, strategy: str, scratch: Path) -> dict:
    """One ``python -m fl_sim.run``; its timings from history.json and the clock."""
    out = Path(tempfile.mkdtemp(prefix=f"{model}-{clients}-{strategy}-", dir=scratch))
    command = [
        sys.executable, "-m", "fl_sim.run", "--model", model, "--num-clients", str(clients),
        "--rounds", str(rounds), "--strategy", strategy, "--seed", "0",
        "--output", str(out), "--overwrite",
    ]  # fmt: skip
    launch = time.time()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    memory = TreeMemory(proc.pid)
    first_checkpoint = None
    while proc.poll() is None:
        checkpoint = out / "checkpoint.npz"
        if first_checkpoint is None and checkpoint.exists():
            first_checkpoint = checkpoint.stat().st_mtime
        time.sleep(0.1)
    peak = memory.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr.read()[-2000:]}")
    rows = json.loads((out / "history.json").read_text())["rounds"][1:]
    return {
        "model": model,
        "clients": clients,
        "strategy": strategy,
        "first_round_s": (first_checkpoint or launch) - launch,
        "round_seconds": [row["seconds"] for row in rows],
        "steady_round_s": statistics.median(row["seconds"] for row in rows[1:]),
        "aggregation_s": statistics.median(row["aggregation_seconds"] for row in rows),
        "final_accuracy": rows[-1]["test"]["accuracy"],
        "peak_rss_mb": peak / 2**20,
    }


MEDIAN_KEYS = ("first_round_s", "steady_round_s", "aggregation_s", "peak_rss_mb")


def repeated(runs: int, *args) -> dict:
    """``federated(*args)`` ``runs`` times: the median of each timing and of the peak memory.

    The runs are seeded alike, so they differ only in time and memory.
    """
    each = [federated(*args) for _ in range(runs)]
    return {
        **each[0],
        **{k: statistics.median(r[k] for r in each) for k in MEDIAN_KEYS},
        "runs": each,
    }


def centralized(model: str, repeats: int) -> dict:
    """Epochs over the 60,000 training images in this process, after a warm-up."""
    import numpy as np

    from fl_sim.console import quiet

    quiet()
    from fl_sim.data import load_mnist
    from fl_sim.models import build_model
    from fl_sim.training import epoch_runner

    mnist = load_mnist()
    x, y = mnist.x_train, mnist.y_train
    net = build_model(model, 0)
    runner = epoch_runner(net)
    runner.fit(x[:2048], y[:2048], epochs=1, batch_size=32, rng=None)  # trace
    seconds = []
    for repeat in range(repeats):
        start = time.perf_counter()
        runner.fit(x, y, epochs=1, batch_size=32, rng=np.random.default_rng(repeat))
        seconds.append(time.perf_counter() - start)
    net.fit(x[:2048], y[:2048], batch_size=32, epochs=1, verbose=0)  # trace
    start = time.perf_counter()
    net.fit(x, y, batch_size=32, epochs=1, shuffle=True, verbose=0)
    keras_fit = time.perf_counter() - start
    return {
        "epoch_seconds": seconds,
        "epoch_s": statistics.median(seconds),
        "keras_fit_s": keras_fit,
    }


def markdown(results: dict) -> str:
    """The tables the README shows."""
    lines = [
        f"Machine: {results['machine']}. Each federated run: FedAvg, IID, 1 local epoch, "
        f"batch 32, {results['rounds']} rounds; steady round = median of rounds 2..R; "
        f"every federated figure is the median of {results['runs']} runs; "
        "centralized epoch = median of "
        f"{results['repeats']} epochs over the 60,000 images, batch 32.",
        "",
        "| model | clients | first round incl. start-up (s) | steady round (s) | "
        "centralized epoch (s) | round / epoch | round / 5-client round | peak RSS (MB) | "
        "RSS / 5-client RSS | final test accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, info in results["models"].items():
        epoch = info["centralized"]["epoch_s"]
        base = info["federated"][0]
        for run in info["federated"]:
            steady, rss = run["steady_round_s"], run["peak_rss_mb"]
            lines.append(
                f"| {model} | {run['clients']} | {run['first_round_s']:.1f} | {steady:.2f} | "
                f"{epoch:.2f} | {steady / epoch:.2f} | {steady / base['steady_round_s']:.2f} | "
                f"{rss:.0f} | {rss / base['peak_rss_mb']:.2f} | {run['final_accuracy']:.4f} |"
            )
    lines += [
        "",
        "| model | Keras `model.fit` epoch (s) | fl-sim compiled epoch (s) |",
        "|---|---:|---:|",
    ]
    for model, info in results["models"].items():
        c = info["centralized"]
        lines.append(f"| {model} | {c['keras_fit_s']:.2f} | {c['epoch_s']:.2f} |")
    if not results["strategies"]:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"Server-side aggregation per round ({results['strategy_model']}, "
        f"{results['strategy_clients']} clients, median over the rounds):",
        "",
        "| strategy | aggregation (ms) | steady round (s) | share of the round |",
        "|---|---:|---:|---:|",
    ]
    for run in results["strategies"]:
        lines.append(
            f"| {run['strategy']} | {1000 * run['aggregation_s']:.1f} | "
            f"{run['steady_round_s']:.2f} | {run['aggregation_s'] / run['steady_round_s']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--clients", nargs="+", type=int, default=[5, 50, 500])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="centralized epochs timed")
    parser.add_argument("--runs", type=int, default=3, help="runs of each federated setting")
    parser.add_argument("--strategy-clients", type=int, default=50, help="0: skip strategies")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-rounds"))
    args = parser.parse_args()
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "rounds": args.rounds,
        "repeats": args.repeats,
        "runs": args.runs,
        "models": {},
        "strategy_model": "mlp",
        "strategy_clients": args.strategy_clients,
        "strategies": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for model in args.models:
            print(f"{model}: centralized epochs", flush=True)
            info = {"centralized": centralized(model, args.repeats), "federated": []}
            for clients in args.clients:
                print(f"{model}: {clients} clients", flush=True)
                run = repeated(args.runs, model, clients, args.rounds, "fedavg", scratch)
                info["federated"].append(run)
            results["models"][model] = info
        for strategy in STRATEGIES if args.strategy_clients else ():
            print(f"mlp: {strategy}, {args.strategy_clients} clients", flush=True)
            run = repeated(args.runs, "mlp", args.strategy_clients, args.rounds, strategy, scratch)
            results["strategies"].append(run)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
