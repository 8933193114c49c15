"""Checks that a client update can be aggregated with the current global model.

A client that diverged (NaN or infinite weights) or that trains another model (other
layers, shapes or dtypes) would poison or break the aggregation, so the strategies
leave such updates out and say why.
"""

from collections.abc import Sequence

import numpy as np


def check_update(arrays: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> str | None:
    """Return why `arrays` cannot be aggregated with the `reference` model, or None."""
    if len(arrays) != len(reference):
        return f"{len(arrays)} arrays where the global model has {len(reference)}"
    for index, (array, expected) in enumerate(zip(arrays, reference, strict=True)):
        if array.shape != expected.shape:
            return f"array {index} has shape {array.shape}, expected {expected.shape}"
        if array.dtype != expected.dtype:
            return f"array {index} has dtype {array.dtype}, expected {expected.dtype}"
        if not np.isfinite(array).all():
            return f"array {index} has NaN or infinite values"
    return None
