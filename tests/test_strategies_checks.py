"""Each kind of unusable update is caught, and named."""

import numpy as np
import pytest

from strategies.checks import check_update

REFERENCE = [np.zeros((2, 3), np.float32), np.zeros(4, np.float32)]


def update(first=None, second=None):
    return [
        np.ones((2, 3), np.float32) if first is None else first,
        np.ones(4, np.float32) if second is None else second,
    ]


def test_a_matching_update_is_usable():
    assert check_update(update(), REFERENCE) is None


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        (update()[:1], "1 arrays where the global model has 2"),
        (update() + [np.ones(1, np.float32)], "3 arrays where the global model has 2"),
        (update(first=np.ones((3, 2), np.float32)), "array 0 has shape (3, 2), expected (2, 3)"),
        (update(second=np.ones(5, np.float32)), "array 1 has shape (5,)"),
        (update(second=np.ones(4, np.float64)), "array 1 has dtype float64, expected float32"),
        (update(first=np.full((2, 3), np.nan, np.float32)), "array 0 has NaN or infinite"),
        (update(second=np.array([0, 1, np.inf, 0], np.float32)), "array 1 has NaN or infinite"),
        (update(second=np.array([0, -np.inf, 2, 0], np.float32)), "array 1 has NaN or infinite"),
    ],
    ids=["too few", "too many", "shape", "length", "dtype", "nan", "inf", "-inf"],
)
def test_an_unusable_update_is_named(arrays, words):
    assert words in check_update(arrays, REFERENCE)


def test_integer_arrays_are_always_finite():
    assert check_update([np.arange(3)], [np.zeros(3, np.int64)]) is None
