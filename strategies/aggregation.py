"""The aggregation step shared by the legacy and the Message-API strategies.

Both APIs hand over the same thing, arrays serialized as `.npy` bytes with a weight per
update, so reading, the checks and the kernels are applied here once, whatever API the
strategy speaks.
"""

import functools
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from io import BytesIO
from typing import NamedTuple, Protocol

import numpy as np

from . import kernels
from .checks import check_update
from .kernels import NDArrays

# Names of the counts every strategy adds to its training metrics.
UPDATES_USED = "updates_used"
UPDATES_REJECTED = "updates_rejected"
FAILURES = "failures"


def timed(method):
    """Keep the wall time of the latest call in ``self.last_seconds``, for apps to report."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.last_seconds = time.perf_counter() - start

    return wrapper


class Accumulator(Protocol):
    """Takes a round's usable updates one by one, then gives their aggregate."""

    def add(self, update: NDArrays, weight: float) -> None: ...

    def result(self) -> NDArrays: ...


# A strategy's aggregation: makes a fresh accumulator for every round.
Kernel = Callable[[], Accumulator]


class Mean(kernels.RunningMean):
    """Unweighted mean; the weights are ignored on purpose (the study's FedAvg)."""

    def add(self, update: NDArrays, weight: float = 1.0) -> None:
        super().add(update)


# Mean weighted by the clients' weights (numbers of examples).
WeightedMean = kernels.RunningMean


class Median:
    """Coordinate-wise median; a client's weight does not buy it more influence.

    The median needs every update at once, so this one keeps them (as views of their
    serialized bytes, see `read_arrays`) until the end.
    """

    def __init__(self) -> None:
        self._updates: list[NDArrays] = []

    def add(self, update: NDArrays, weight: float) -> None:
        self._updates.append(update)

    def result(self) -> NDArrays:
        return kernels.median(self._updates)


class Update(NamedTuple):
    """A client's update as it arrived: its arrays still serialized, and its weight."""

    tensors: Sequence[bytes]  # one `.npy` serialization per array
    weight: float


class Outcome(NamedTuple):
    """What became of a round's updates."""

    arrays: NDArrays | None  # the aggregate, None when no update was usable
    used: list[int]  # indices of the aggregated updates
    rejected: list[tuple[int, str]]  # (index, reason) of the updates left out


def aggregate_valid(kernel: Kernel, updates: Sequence[Update], reference: NDArrays) -> Outcome:
    """Aggregate with `kernel` the updates that pass `check_update` against `reference`.

    Replies arrive in whatever order the clients finish, and float sums depend on
    order; visiting the updates in an order given by their content makes the
    aggregate, and so a seeded run, the same whichever client finished first. The
    order is taken from the serialized bytes, so that the updates can then be read,
    checked and added one at a time: the means never hold more than one update.
    """
    accumulator = kernel()
    used, rejected = [], []
    for index in sorted(range(len(updates)), key=lambda i: _order_key(updates[i])):
        try:
            arrays = read_arrays(updates[index].tensors)
        except ValueError as err:  # bytes that are no `.npy` array: a client's bug, not ours
            rejected.append((index, f"unreadable array: {err}"))
            continue
        reason = check_update(arrays, reference)
        if reason is None:
            accumulator.add(arrays, updates[index].weight)
            used.append(index)
        else:
            rejected.append((index, reason))
    rejected.sort()
    return Outcome(accumulator.result() if used else None, used, rejected)


def _order_key(update: Update) -> tuple[float, bytes]:
    """A cheap content fingerprint: the weight and a hash of the smallest tensor's bytes."""
    smallest = min(update.tensors, key=len, default=b"")
    return (float(update.weight), hashlib.blake2b(smallest, digest_size=16).digest())


def read_arrays(tensors: Sequence[bytes]) -> NDArrays:
    """Deserialize arrays as `np.load` does, but as read-only views of the bytes.

    `np.load` copies an array's data twice on its way out of a bytes object; the
    aggregation only reads an update, so viewing the bytes it already holds is enough.
    """
    return [_read_array(tensor) for tensor in tensors]


_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _read_array(tensor: bytes) -> np.ndarray:
    """One `.npy` serialization as a read-only view, its header read by NumPy."""
    stream = BytesIO(tensor)
    read_header = _HEADER_READERS.get(np.lib.format.read_magic(stream))
    if read_header is None:  # a newer format: leave it to NumPy (never with pickles)
        return np.load(BytesIO(tensor), allow_pickle=False)
    shape, fortran_order, dtype = read_header(stream)
    if dtype.hasobject:  # NumPy refuses it without pickles, with its reason
        return np.load(BytesIO(tensor), allow_pickle=False)
    array = np.frombuffer(tensor, dtype, count=math.prod(shape), offset=stream.tell())
    return array.reshape(shape, order="F" if fortran_order else "C")
