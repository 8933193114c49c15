"""Time the strategies' aggregation against Flower's built-ins on the MNIST CNN.

Random float32 updates of the 1,663,370-parameter CNN, for 5, 20 and 50 clients. Each
pair is timed over several repetitions (median reported), its peak extra memory taken
with tracemalloc on one more call, and its outputs compared. Run from the repository
root:

    python -m benchmarks.bench_aggregation [--json PATH] [--repeats N] [--clients 5 20 50]

The kernels are timed against `aggregate_median`, `aggregate` and a plain `np.mean`;
whole `aggregate_fit` calls (deserialising, checking, serialising) against Flower's
FedMedian and its in-place FedAvg, which our FedWeightedAvg replaces.
"""

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from flwr.common import (
    Code,
    FitRes,
    Parameters,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import SimpleClientManager
from flwr.server.strategy import FedAvg as FlowerFedAvg
from flwr.server.strategy import FedMedian as FlowerFedMedian
from flwr.server.strategy.aggregate import aggregate, aggregate_median

from strategies import FedMedian, FedWeightedAvg, kernels

CNN_SHAPES = [(5, 5, 1, 32), (32,), (5, 5, 32, 64), (64,), (3136, 512), (512,), (512, 10), (10,)]
# Means of float32 sums taken in another order differ by a few float32 ulps.
MEAN_TOLERANCE = 1e-6

NDArrays = list[np.ndarray]


def measure(call: Callable[[], NDArrays | Parameters], repeats: int) -> tuple[float, int, NDArrays]:
    """Median seconds over `repeats` calls, peak bytes allocated during one more call,
    and the output."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    tracemalloc.start()
    output = call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if isinstance(output, Parameters):
        output = parameters_to_ndarrays(output)
    return statistics.median(seconds), peak, output


def difference(ours: NDArrays, flowers: NDArrays) -> float:
    """Largest difference relative to the largest value of its layer; 0.0 is identical."""
    assert [(a.shape, a.dtype) for a in ours] == [(a.shape, a.dtype) for a in flowers]
    return max(
        float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(ours, flowers, strict=True)
    )


def end_to_end(strategy, updates: list[NDArrays], weights: list[int]) -> Callable[[], Parameters]:
    """A strategy's aggregate_fit, from serialized results to the serialized model."""
    results = [
        (None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(update), weight, {}))
        for update, weight in zip(updates, weights, strict=True)
    ]
    strategy.initial_parameters = ndarrays_to_parameters(updates[0])
    strategy.initialize_parameters(SimpleClientManager())
    # Round 2: Flower warns once, in round 1, that it has no metrics aggregation.
    return lambda: strategy.aggregate_fit(2, results, [])[0]


def pairs(updates: list[NDArrays], weights: list[int]):
    """(aggregation, Flower's call, our call, exact?) for one set of updates."""
    weighted = list(zip(updates, weights, strict=True))
    return [
        ("median", lambda: aggregate_median(weighted), lambda: kernels.median(updates), True),
        (
            "weighted mean",
            lambda: aggregate(weighted),
            lambda: kernels.weighted_mean(updates, weights),
            False,
        ),
        (
            "mean (vs np.mean)",
            lambda: [np.mean(np.stack(layer), axis=0) for layer in zip(*updates, strict=True)],
            lambda: kernels.mean(updates),
            False,
        ),
        (
            "FedMedian.aggregate_fit",
            end_to_end(FlowerFedMedian(), updates, weights),
            end_to_end(FedMedian(), updates, weights),
            True,
        ),
        (
            "weighted FedAvg.aggregate_fit",
            end_to_end(FlowerFedAvg(), updates, weights),
            end_to_end(FedWeightedAvg(), updates, weights),
            False,
        ),
    ]


def run(clients: list[int], repeats: int) -> list[dict]:
    rows = []
    rng = np.random.default_rng(0)
    for num_clients in clients:
        updates = [
            [rng.standard_normal(shape, dtype=np.float32) for shape in CNN_SHAPES]
            for _ in range(num_clients)
        ]
        weights = [int(w) for w in rng.integers(100, 1000, num_clients)]
        for name, flowers_call, our_call, exact in pairs(updates, weights):
            flower_s, flower_peak, flowers = measure(flowers_call, repeats)
            our_s, our_peak, ours = measure(our_call, repeats)
            diff = difference(ours, flowers)
            rows.append(
                {
                    "clients": num_clients,
                    "aggregation": name,
                    "flower_ms": flower_s * 1e3,
                    "ours_ms": our_s * 1e3,
                    "speedup": flower_s / our_s,
                    "flower_peak_mib": flower_peak / 2**20,
                    "ours_peak_mib": our_peak / 2**20,
                    "max_rel_diff": diff,
                    "same_output": diff == 0 if exact else diff <= MEAN_TOLERANCE,
                }
            )
            print(f"{num_clients} clients, {name}: done", file=sys.stderr)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        (
            "| clients | aggregation | Flower ms | ours ms | Flower/ours | Flower peak MiB "
            "| ours peak MiB | max rel. diff |"
        ),
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['clients']} | {r['aggregation']} | {r['flower_ms']:.1f} | {r['ours_ms']:.1f} "
        f"| {r['speedup']:.1f}x | {r['flower_peak_mib']:.1f} | {r['ours_peak_mib']:.1f} "
        f"| {r['max_rel_diff']:.1e} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH")
    args = parser.parse_args()

    rows = run(args.clients, args.repeats)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"repeats": args.repeats, "rows": rows}, file, indent=2)
    if not all(row["same_output"] for row in rows):
        sys.exit("outputs differ: see the max rel. diff column")


if __name__ == "__main__":
    main()
