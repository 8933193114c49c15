"""The shared aggregation step: reading serialized updates, content order, streaming means."""

import io
import itertools
import tracemalloc

import numpy as np
import pytest
from flwr.common import ndarray_to_bytes

from strategies import aggregation, kernels
from strategies.aggregation import Update, aggregate_valid, read_arrays

SHAPES = [((3, 4), np.float32), ((kernels._BLOCK + 5,), np.float32), ((), np.float64)]
REFERENCE = [np.zeros(shape, dtype) for shape, dtype in SHAPES]
KERNELS = {
    "mean": (aggregation.Mean, lambda updates, weights: kernels.mean(updates)),
    "weighted mean": (aggregation.WeightedMean, kernels.weighted_mean),
    "median": (aggregation.Median, lambda updates, weights: kernels.median(updates)),
}


def serialized(arrays, weight):
    return Update([ndarray_to_bytes(array) for array in arrays], weight)


def random_arrays(rng):
    return [rng.standard_normal(shape).astype(dtype) for shape, dtype in SHAPES]


def random_updates(num_clients, seed):
    rng = np.random.default_rng(seed)
    return [serialized(random_arrays(rng), int(rng.integers(1, 1000))) for _ in range(num_clients)]


def bad_updates():
    """One update of each kind `check_update` rejects, with its reason."""
    nan = [np.full(shape, np.nan, dtype) for shape, dtype in SHAPES]
    reshaped = [np.zeros((4, 3), np.float32), *REFERENCE[1:]]
    return [
        (serialized(nan, 5), "array 0 has NaN or infinite values"),
        (serialized(reshaped, 500), "array 0 has shape (4, 3), expected (3, 4)"),
        (serialized(REFERENCE[:2], 50), "2 arrays where the global model has 3"),
    ]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.array(2.5),
        np.zeros((0, 3), np.float32),
        np.array([-3, 7], np.int64),
        np.array([True, False]),
        np.array(["ab", "c"]),
    ],
    ids=["float32", "fortran", "0-d", "empty", "int64", "bool", "str"],
)
def test_read_arrays_gives_what_np_load_gives_without_copying(array):
    tensor = ndarray_to_bytes(array)
    (got,) = read_arrays([tensor])
    want = np.load(io.BytesIO(tensor), allow_pickle=False)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert not got.flags.writeable  # a view of the bytes, which nothing may change


def test_read_arrays_refuses_pickles_like_np_load():
    stream = io.BytesIO()
    np.save(stream, np.array([1, None]), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        read_arrays([stream.getvalue()])


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("num_clients", [1, 2, 7])
def test_streaming_equals_the_batch_kernel_in_the_same_order(name, num_clients):
    updates = random_updates(num_clients, seed=num_clients)
    accumulator, batch = KERNELS[name]
    outcome = aggregate_valid(accumulator, updates, REFERENCE)
    assert sorted(outcome.used) == list(range(num_clients))
    want = batch(
        [read_arrays(updates[i].tensors) for i in outcome.used],
        [updates[i].weight for i in outcome.used],
    )
    for got, expected in zip(outcome.arrays, want, strict=True):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ["mean", "weighted mean"])
def test_streaming_means_equal_numpy(name):
    updates = random_updates(6, seed=3)
    arrays = [read_arrays(update.tensors) for update in updates]
    weights = [update.weight for update in updates] if name == "weighted mean" else None
    outcome = aggregate_valid(KERNELS[name][0], updates, REFERENCE)
    for got, layer in zip(outcome.arrays, zip(*arrays, strict=True), strict=True):
        want = np.average(np.stack(layer), axis=0, weights=weights)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("name", KERNELS)
def test_the_aggregate_does_not_depend_on_the_reply_order(name):
    """Float sums depend on order; the content order makes every permutation agree."""
    updates = random_updates(4, seed=11) + [update for update, _ in bad_updates()]
    first = None
    for order in itertools.islice(itertools.permutations(range(len(updates))), 0, None, 97):
        outcome = aggregate_valid(KERNELS[name][0], [updates[i] for i in order], REFERENCE)
        rejected = sorted(order[index] for index, _ in outcome.rejected)
        result = ([array.tobytes() for array in outcome.arrays], rejected)
        first = first or result
        assert result == first


@pytest.mark.parametrize("name", KERNELS)
def test_bad_updates_in_a_stream_are_left_out_with_their_reasons(name):
    """Bad updates anywhere in the stream: named, and the aggregate is that of the good."""
    good = random_updates(4, seed=5)
    bad = bad_updates()
    stream = [good[0], bad[0][0], good[1], good[2], bad[1][0], bad[2][0], good[3]]
    outcome = aggregate_valid(KERNELS[name][0], stream, REFERENCE)
    assert outcome.rejected == [(1, bad[0][1]), (4, bad[1][1]), (5, bad[2][1])]
    assert sorted(outcome.used) == [0, 2, 3, 6]
    clean = aggregate_valid(KERNELS[name][0], good, REFERENCE)
    for got, want in zip(outcome.arrays, clean.arrays, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("damage", ["truncated", "not npy"])
def test_an_unreadable_update_is_left_out_not_fatal(damage):
    """Bytes that are no `.npy` array are a rejected update, as a wrong shape is."""
    good = random_updates(2, seed=6)
    tensors = list(good[0].tensors)
    tensors[1] = tensors[1][:-8] if damage == "truncated" else b"not an array"
    outcome = aggregate_valid(aggregation.Mean, [Update(tensors, 1.0), good[1]], REFERENCE)
    assert outcome.used == [1]
    assert [index for index, _ in outcome.rejected] == [0]
    assert outcome.rejected[0][1].startswith("unreadable array")
    clean = aggregate_valid(aggregation.Mean, [good[1]], REFERENCE)
    for got, want in zip(outcome.arrays, clean.arrays, strict=True):
        np.testing.assert_array_equal(got, want)


def test_without_a_usable_update_there_is_no_aggregate():
    outcome = aggregate_valid(aggregation.WeightedMean, [u for u, _ in bad_updates()], REFERENCE)
    assert outcome.arrays is None and outcome.used == [] and len(outcome.rejected) == 3


@pytest.mark.parametrize("name", ["mean", "weighted mean"])
def test_the_means_hold_one_update_at_a_time(name):
    """Peak memory stays near the size of one update, whatever the number of clients
    (the batch way held all 40 deserialised updates)."""
    size = 1 << 16
    rng = np.random.default_rng(0)
    updates = [
        serialized([rng.standard_normal(size).astype(np.float32)], int(rng.integers(1, 100)))
        for _ in range(40)
    ]
    tracemalloc.start()
    outcome = aggregate_valid(KERNELS[name][0], updates, [np.zeros(size, np.float32)])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(outcome.used) == 40
    assert peak < 3 * size * 4
