"""Kernels against answers computed by hand, and against NumPy on random data."""

import numpy as np
import pytest

from strategies import kernels

FLOATS = [np.float32, np.float64]


def updates_of(*rows, dtype=np.float64):
    """One update per row: a 1-D layer holding the row and a 2x1 layer holding its
    first two values, so that every kernel has to keep layers and shapes apart."""
    return [[np.array(row, dtype), np.array(row[:2], dtype).reshape(2, 1)] for row in rows]


def assert_layers(result, expected, dtype):
    assert len(result) == len(expected)
    for got, want in zip(result, expected, strict=True):
        assert got.dtype == dtype
        assert got.shape == np.shape(want)
        np.testing.assert_allclose(got, np.array(want, dtype), rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
def test_mean_by_hand(dtype):
    updates = updates_of([1, 2, 3], [3, 6, 9], [5, 1, 0], dtype=dtype)
    assert_layers(kernels.mean(updates), [[3, 3, 4], [[3], [3]]], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_weighted_mean_by_hand(dtype):
    # weights 1 and 3: (1 * 4 + 3 * 8) / 4 = 7, (1 * 0 + 3 * 2) / 4 = 1.5
    updates = updates_of([4, 0, -4], [8, 2, 0], dtype=dtype)
    assert_layers(kernels.weighted_mean(updates, [1, 3]), [[7, 1.5, -1], [[7], [1.5]]], dtype)


def test_weighted_mean_with_equal_weights_is_the_mean():
    updates = updates_of([1, 2, 3], [2, 2, 2], [9, 5, 1])
    assert_layers(kernels.weighted_mean(updates, [7, 7, 7]), [[4, 3, 2], [[4], [3]]], np.float64)


def test_weighted_mean_rejects_weights_without_mass():
    with pytest.raises(ValueError, match="positive"):
        kernels.weighted_mean(updates_of([1, 2], [3, 4]), [0, 0])


@pytest.mark.parametrize("dtype", FLOATS)
def test_median_odd_by_hand(dtype):
    updates = updates_of([1, 9, -2], [5, 3, -1], [2, 4, 7], [8, 0, 0], [3, 100, -5], dtype=dtype)
    # columns sorted: [1 2 3 5 8], [0 3 4 9 100], [-5 -2 -1 0 7]
    assert_layers(kernels.median(updates), [[3, 4, -1], [[3], [4]]], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_median_even_averages_the_middle_pair(dtype):
    updates = updates_of([1, 10, 0], [4, 20, 0], [2, -7, 1], [9, 30, 1], dtype=dtype)
    # columns sorted: [1 2 4 9], [-7 10 20 30], [0 0 1 1]
    assert_layers(kernels.median(updates), [[3, 15, 0.5], [[3], [15]]], dtype)


@pytest.mark.parametrize("kernel", [kernels.mean, kernels.median])
def test_single_client_gets_its_own_update(kernel):
    update = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([-1.5], np.float32)]
    result = kernel([update])
    for got, want in zip(result, update, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
        assert got is not want


def test_single_client_weighted_mean_gets_its_own_update():
    update = [np.array([[1.25, -3.0]], np.float32)]
    np.testing.assert_array_equal(kernels.weighted_mean([update], [17])[0], update[0])


def test_kernels_do_not_write_to_their_inputs():
    rng = np.random.default_rng(0)
    updates = [[rng.standard_normal((4, 3))] for _ in range(6)]
    copies = [[layer.copy() for layer in update] for update in updates]
    kernels.mean(updates)
    kernels.weighted_mean(updates, [1, 2, 3, 4, 5, 6])
    kernels.median(updates)
    for update, copy in zip(updates, copies, strict=True):
        np.testing.assert_array_equal(update[0], copy[0])


def test_integer_layers_keep_their_dtype():
    updates = [[np.array([2, 10], np.int64)], [np.array([4, 11], np.int64)]]
    for result in (kernels.mean(updates), kernels.median(updates)):
        assert result[0].dtype == np.int64
        np.testing.assert_array_equal(result[0], [3, 10])  # 10.5 truncated


@pytest.mark.parametrize("num_clients", [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17, 20, 31, 50])
@pytest.mark.parametrize("dtype", FLOATS)
def test_median_and_mean_equal_numpy(num_clients, dtype):
    """Many ties (small integers) and layers longer than one block of the kernel.

    The median picks values, so it must be exact; np.mean sums 0-d layers pairwise."""
    rng = np.random.default_rng(num_clients)
    shapes = [(3, 2, 5), (kernels._BLOCK + 7,), ()]
    updates = [
        [rng.integers(-3, 4, size=shape).astype(dtype) for shape in shapes[:2]]
        + [rng.standard_normal(shapes[2]).astype(dtype)]
        for _ in range(num_clients)
    ]
    for kernel, reference, rtol in ((kernels.median, np.median, 0), (kernels.mean, np.mean, 1e-6)):
        for got, layer in zip(kernel(updates), zip(*updates, strict=True), strict=True):
            want = reference(np.stack(layer), axis=0)
            assert got.dtype == dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=rtol, atol=0)


def test_median_propagates_nan_like_numpy():
    updates = [[np.array([1.0, 2.0])], [np.array([np.nan, 3.0])], [np.array([0.0, 4.0])]]
    np.testing.assert_array_equal(kernels.median(updates)[0], [np.nan, 3.0])


def test_running_mean_adds_one_update_at_a_time_and_then_starts_over():
    running = kernels.RunningMean()
    for update, weight in zip(updates_of([4, 0, -4], [8, 2, 0]), [1, 3], strict=True):
        running.add(update, weight)
    assert_layers(running.result(), [[7, 1.5, -1], [[7], [1.5]]], np.float64)
    running.add(updates_of([1, 2, 3])[0], 5)
    assert_layers(running.result(), [[1, 2, 3], [[1], [2]]], np.float64)


def test_weighted_mean_with_a_first_weight_of_zero():
    updates = updates_of([100, 100, 100], [2, 4, 6], [4, 8, 0])
    assert_layers(kernels.weighted_mean(updates, [0, 1, 1]), [[3, 6, 3], [[3], [6]]], np.float64)


def test_weighted_mean_lines_up_layers_of_any_memory_order():
    rng = np.random.default_rng(1)
    updates = [[np.asfortranarray(rng.standard_normal((5, 3)))] for _ in range(3)]
    want = np.average(np.stack([u[0] for u in updates]), axis=0, weights=[1, 2, 3])
    np.testing.assert_allclose(kernels.weighted_mean(updates, [1, 2, 3])[0], want, rtol=1e-12)
