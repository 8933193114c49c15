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

# Elements per block in `median`: the blocks of all clients stay in the CPU cache
# while the selection network runs over them.
_BLOCK = 1 << 15


def mean(updates: Sequence[NDArrays]) -> NDArrays:
    """Unweighted coordinate-wise mean: every client counts the same.

    This is the original study's FedAvg; `np.mean` over the client axis gives the
    same numbers, without first stacking all clients into one array.
    """
    return [_mean_layer(layer) for layer in zip(*updates, strict=True)]


def weighted_mean(updates: Sequence[NDArrays], weights: Sequence[float]) -> NDArrays:
    """Coordinate-wise mean weighted by e.g. the clients' numbers of examples."""
    total = float(sum(weights))
    if not total > 0:
        raise ValueError(f"weights must sum to a positive number, got {total}")
    factors = [weight / total for weight in weights]
    return [_weighted_mean_layer(layer, factors) for layer in zip(*updates, strict=True)]


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


def _mean_layer(layer: Sequence[np.ndarray]) -> np.ndarray:
    total = np.array(layer[0], dtype=_accumulator(layer[0].dtype))
    for array in layer[1:]:
        np.add(total, array, out=total)
    total /= len(layer)
    return total.astype(layer[0].dtype, copy=False)


def _weighted_mean_layer(layer: Sequence[np.ndarray], factors: list[float]) -> np.ndarray:
    total = np.multiply(layer[0], factors[0], dtype=_accumulator(layer[0].dtype))
    term = np.empty_like(total)
    for array, factor in zip(layer[1:], factors[1:], strict=True):
        np.multiply(array, factor, out=term)
        total += term
    return total.astype(layer[0].dtype, copy=False)


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
