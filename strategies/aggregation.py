"""The aggregation step shared by the legacy and the Message-API strategies.

Both APIs hand over the same thing, lists of arrays with a weight each, so the checks
and the kernels are applied here once, whatever API the strategy speaks.
"""

import hashlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from . import kernels
from .checks import check_update
from .kernels import NDArrays

Kernel = Callable[[list[NDArrays], list[float]], NDArrays]

# Names of the counts every strategy adds to its training metrics.
UPDATES_USED = "updates_used"
UPDATES_REJECTED = "updates_rejected"
FAILURES = "failures"


def mean(updates: list[NDArrays], weights: list[float]) -> NDArrays:
    """Unweighted mean; the weights are ignored on purpose (the study's FedAvg)."""
    return kernels.mean(updates)


def weighted_mean(updates: list[NDArrays], weights: list[float]) -> NDArrays:
    """Mean weighted by the clients' weights (numbers of examples)."""
    return kernels.weighted_mean(updates, weights)


def median(updates: list[NDArrays], weights: list[float]) -> NDArrays:
    """Coordinate-wise median; a client's weight does not buy it more influence."""
    return kernels.median(updates)


class Outcome(NamedTuple):
    """What became of a round's updates."""

    arrays: NDArrays | None  # the aggregate, None when no update was usable
    used: list[int]  # indices of the aggregated updates
    rejected: list[tuple[int, str]]  # (index, reason) of the updates left out


def aggregate_valid(
    kernel: Kernel,
    updates: Sequence[NDArrays],
    weights: Sequence[float],
    reference: NDArrays,
) -> Outcome:
    """Aggregate with `kernel` the updates that pass `check_update` against `reference`.

    Replies arrive in whatever order the clients finish, and float sums depend on
    order; visiting the updates in an order given by their content makes the
    aggregate, and so a seeded run, the same whichever client finished first.
    """
    used, rejected = [], []
    for index in sorted(range(len(updates)), key=lambda i: _order_key(updates[i], weights[i])):
        update = updates[index]
        reason = check_update(update, reference)
        if reason is None:
            used.append(index)
        else:
            rejected.append((index, reason))
    rejected.sort()
    if not used:
        return Outcome(None, used, rejected)
    arrays = kernel([updates[i] for i in used], [weights[i] for i in used])
    return Outcome(arrays, used, rejected)


def _order_key(update: NDArrays, weight: float) -> tuple[float, bytes]:
    """A cheap content fingerprint: the weight and the bytes of the smallest array."""
    if not update:
        return (float(weight), b"")
    smallest = min(update, key=lambda a: getattr(a, "size", 0))
    return (float(weight), hashlib.blake2b(np.asarray(smallest).tobytes(), digest_size=16).digest())
