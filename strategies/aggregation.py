"""The aggregation step shared by the legacy and the Message-API strategies.

Both APIs hand over the same thing, lists of arrays with a weight each, so the checks
and the kernels are applied here once, whatever API the strategy speaks.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

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
    """Aggregate with `kernel` the updates that pass `check_update` against `reference`."""
    used, rejected = [], []
    for index, update in enumerate(updates):
        reason = check_update(update, reference)
        if reason is None:
            used.append(index)
        else:
            rejected.append((index, reason))
    if not used:
        return Outcome(None, used, rejected)
    arrays = kernel([updates[i] for i in used], [weights[i] for i in used])
    return Outcome(arrays, used, rejected)
