"""Shared fixtures (small slices of the real MNIST); keeps TF, Flower quiet and offline.

The environment is set before flwr or tensorflow is imported by any test module.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

from fl_sim.data import bundled_path  # noqa: E402


@pytest.fixture(scope="session")
def raw_mnist() -> dict[str, np.ndarray]:
    """The bundled file's uint8 arrays."""
    with np.load(bundled_path(), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def write_slice(raw: dict[str, np.ndarray], path, n_train: int, n_test: int) -> str:
    """A Keras-layout npz holding the first examples of each split."""
    np.savez_compressed(
        path,
        x_train=raw["x_train"][:n_train],
        y_train=raw["y_train"][:n_train],
        x_test=raw["x_test"][:n_test],
        y_test=raw["y_test"][:n_test],
    )
    return str(path)


@pytest.fixture(scope="session")
def small_npz(raw_mnist, tmp_path_factory) -> str:
    """3,000 training and 1,000 test images of real MNIST."""
    return write_slice(raw_mnist, tmp_path_factory.mktemp("data") / "small.npz", 3000, 1000)


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    """The IDX format: magic (0x0803 images, 0x0801 labels), big-endian dims, uint8 bytes."""
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(payload)
