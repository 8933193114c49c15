"""Aggregation kernels: how client updates become one update, in plain NumPy.

An update is a list of arrays, one per layer. Every kernel returns a new list with the
shapes and dtypes of the inputs and never writes to the inputs. Integer layers (e.g.
step counters) are averaged in float64 and cast back, so that the global model keeps
its dtypes from round to round.
"""

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

NDArrays = list[np.ndarray]

# Elements per block in `median` and `RunningMean`: the blocks being combined stay in
# the CPU cache while they are worked on.
_BLOCK = 1 << 15


def mean(updates: Sequence[NDArrays]) -> NDArrays:
    """Unweighted coordinate-wise mean: every client counts the same.

    This is the original study's FedAvg; `np.mean` over the client axis gives the
    same numbers, without first stacking all clients into one array.
    """
    return weighted_mean(updates, [1.0] * len(updates))


def weighted_mean(updates: Sequence[NDArrays], weights: Sequence[float]) -> NDArrays:
    """Coordinate-wise mean weighted by e.g. the clients' numbers of examples."""
    running = RunningMean()
    for update, weight in zip(updates, weights, strict=True):
        running.add(update, weight)
    return running.result()


class RunningMean:
    """Coordinate-wise weighted mean of updates added one at a time.

    A server can read, add and drop one update after another and so hold the running
    sums instead of every client's update. Weights count relative to the first one,
    so that equal weights (the unweighted mean) cost no multiplication, a lone update
    comes back as it is, and the terms keep the size of the updates.
    """

    def __init__(self) -> None:
        self._sums: NDArrays = []
        self._dtypes: list[np.dtype] = []
        self._unit = 1.0  # the first weight, unless that was 0
        self._weight = 0.0  # the sum of the weights added
        self._scratch: dict[np.dtype, np.ndarray] = {}  # one block of terms per dtype

    def add(self, update: NDArrays, weight: float = 1.0) -> None:
        """Add `weight` times `update` to the sums; `update` is only read."""
        first = not self._sums
        if first:
            self._unit = float(weight) or 1.0
            self._dtypes = [array.dtype for array in update]
            # In C order, so that a flat view of a sum lines up with a raveled update.
            self._sums = [np.empty(array.shape, _accumulator(array.dtype)) for array in update]
        factor = float(weight) / self._unit
        for total, array in zip(self._sums, update, strict=True):
            if first:
                np.multiply(array, factor, out=total)
            elif factor == 1.0:
                np.add(total, array, out=total)
            else:
                self._add_scaled(total.reshape(-1), np.ravel(array), factor)
        self._weight += weight

    def result(self) -> NDArrays:
        """The mean of the updates added, in their dtypes; the mean starts over.

        The sums are divided in place and handed over: no second copy of the model.
        """
        if not self._weight > 0:
            raise ValueError(f"weights must sum to a positive number, got {self._weight}")
        divisor = self._weight / self._unit
        arrays = [
            np.divide(total, divisor, out=total).astype(dtype, copy=False)
            for total, dtype in zip(self._sums, self._dtypes, strict=True)
        ]
        self._sums, self._weight = [], 0.0
        return arrays

    def _add_scaled(self, total: np.ndarray, array: np.ndarray, factor: float) -> None:
        """total += factor * array, a cache-sized block at a time: no temporary the size
        of the layer, and the block of terms is still in the cache when it is added."""
        scratch = self._scratch.get(total.dtype)
        if scratch is None:
            scratch = self._scratch[total.dtype] = np.empty(_BLOCK, total.dtype)
        for start in range(0, total.size, _BLOCK):
            block = array[start : start + _BLOCK]
            total[start : start + _BLOCK] += np.multiply(block, factor, out=scratch[: block.size])


def median(updates: Sequence[NDArrays]) -> NDArrays:
    """Coordinate-wise median, equal to `np.median` over the client axis.

    A sorting network pruned to the middle outputs runs over cache-sized blocks of
    the clients' arrays: a handful of vectorised min/max calls per block instead of
    one small sort per coordinate, and no stacked copy of all updates.
    """
    network = _median_network(len(updates))
    return [_median_layer(layer, network) for layer in zip(*updates, strict=True)]


def _accumulator(dtype: np.dtype) -> np.dtype:
    """Dtype to do arithmetic in: the layer's own one unless it cannot hold fractions."""
    return dtype if np.issubdtype(dtype, np.inexact) else np.dtype(np.float64)


Comparator = tuple[int, int, bool, bool]


@lru_cache
def _median_network(n: int) -> tuple[Comparator, ...]:
    """Comparators (low wire, high wire, keep min, keep max) that bring the median(s) of
    n wires to wires (n - 1) // 2 and n // 2.

    Batcher's odd-even merge sort, walked backwards to drop every comparator, and every
    half of one, that cannot reach a middle wire.
    """
    needed = {(n - 1) // 2, n // 2}
    network = []
    for low, high in reversed(_odd_even_merge_sort(n)):
        keep_min, keep_max = low in needed, high in needed
        if keep_min or keep_max:
            network.append((low, high, keep_min, keep_max))
            needed |= {low, high}
    return tuple(reversed(network))


def _odd_even_merge_sort(n: int) -> list[tuple[int, int]]:
    """Batcher's sorting network for any n, as (low wire, high wire) comparators."""
    comparators = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        comparators.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return comparators


def _median_layer(layer: Sequence[np.ndarray], network: tuple[Comparator, ...]) -> np.ndarray:
    n = len(layer)
    inputs = [np.ravel(array) for array in layer]
    out = np.empty(layer[0].shape, dtype=layer[0].dtype)
    flat_out = out.reshape(-1)
    # n + 1 block buffers suffice: a comparator needs at most one free buffer at a time.
    scratch = np.empty((n + 1, min(_BLOCK, flat_out.size)), dtype=out.dtype)
    for start in range(0, flat_out.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        wires = _run_network(network, [array[block] for array in inputs], scratch)
        low, high = wires[(n - 1) // 2], wires[n // 2]
        if n % 2:
            flat_out[block] = low
        else:  # the mean of the two middle values, computed as np.median does
            np.divide(
                np.add(low, high, dtype=_accumulator(out.dtype)),
                2,
                out=flat_out[block],
                casting="unsafe",
            )
    return out


def _run_network(
    network: tuple[Comparator, ...], wires: list[np.ndarray], scratch: np.ndarray
) -> list[np.ndarray]:
    """Apply the comparators to equal-length blocks without writing to the inputs.

    Outputs go to scratch rows; a row comes back to the free list as soon as the wire
    that held it is overwritten.
    """
    size = len(wires[0])
    free = [row[:size] for row in scratch]
    owned = {id(row) for row in free}
    for low, high, keep_min, keep_max in network:
        a, b = wires[low], wires[high]
        if keep_min:
            wires[low] = np.minimum(a, b, out=free.pop())
            if id(a) in owned:
                free.append(a)
        if keep_max:
            wires[high] = np.maximum(a, b, out=free.pop())
            if id(b) in owned:
                free.append(b)
    return wires
