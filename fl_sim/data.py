"""MNIST loading: the bundled copy, any Keras-layout ``.npz``, or a folder of IDX files.

Every process (the server and each Ray actor) loads the file once and keeps the
scaled arrays; clients slice their shard out of them instead of reloading.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

BUNDLED_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_MAGIC = {3: 2051, 1: 2049}


class DataError(ValueError):
    """A data file that is missing, truncated or not MNIST-shaped; names the file."""


@dataclass(frozen=True)
class Mnist:
    """Pixels as float32 in [0, 1] with shape (n, 28, 28); labels as int64."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def bundled_path() -> Path:
    """The MNIST copy shipped inside the package."""
    return Path(str(resources.files("fl_sim") / "data" / "mnist.npz"))


def load_mnist(path: str | Path | None = None) -> Mnist:
    """Load MNIST once per process; ``None`` or ``""`` means the bundled copy."""
    resolved = Path(path).expanduser().resolve() if path else bundled_path()
    return _load_cached(resolved)


@functools.lru_cache(maxsize=2)
def _load_cached(path: Path) -> Mnist:
    if not path.exists():
        raise DataError(f"data path '{path}' does not exist")
    if path.is_dir():
        raw = _read_idx_folder(path)
    else:
        if path == bundled_path():
            _verify_sha256(path, BUNDLED_SHA256)
        raw = _read_npz(path)
    _check_layout(raw, path)
    return Mnist(
        x_train=_scale(raw["x_train"]),
        y_train=raw["y_train"].astype(np.int64),
        x_test=_scale(raw["x_test"]),
        y_test=raw["y_test"].astype(np.int64),
    )


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / np.float32(255.0)).reshape(-1, 28, 28)


def _verify_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise DataError(f"'{path}' is corrupted: sha256 {digest[:12]}… != {expected[:12]}…")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a Keras-layout npz without ever unpickling objects."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in IDX_FILES if k not in npz.files]
            if missing:
                raise DataError(f"'{path}' lacks the array(s) {', '.join(missing)}")
            return {k: npz[k] for k in IDX_FILES}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"'{path}' is not a readable .npz file ({_short(err)})") from None


def _read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """Read the four standard IDX files, gzipped or not."""
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz"]
        found = next((p for p in candidates if p.exists()), None)
        if found is None:
            raise DataError(f"'{folder}' has no {stem} (or {stem}.gz)")
        arrays[key] = _read_idx(found, ndim=3 if key.startswith("x") else 1)
    return arrays


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DataError(f"'{path}' cannot be read ({_short(err)})") from None
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"'{path}' is truncated (no complete IDX header)")
    magic = int.from_bytes(data[:4], "big")
    if magic != _IDX_MAGIC[ndim]:
        raise DataError(f"'{path}' is not an IDX file of {ndim} dimension(s) (magic {magic})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(
            f"'{path}' is truncated or padded: {len(data) - header} bytes for shape {shape}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _check_layout(raw: dict[str, np.ndarray], path: Path) -> None:
    """Refuse arrays that are not MNIST-shaped, so errors name the file, not a layer."""
    for split in ("train", "test"):
        x, y = raw[f"x_{split}"], raw[f"y_{split}"]
        if x.ndim < 2 or x.shape[1:] not in ((28, 28), (784,)):
            raise DataError(f"'{path}': x_{split} has shape {x.shape}, expected (n, 28, 28)")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"'{path}': y_{split} has shape {y.shape}, expected ({len(x)},)")
        if len(y) == 0:
            raise DataError(f"'{path}': the {split} split is empty")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
            raise DataError(f"'{path}': y_{split} must hold integer labels 0..9")
        if x.dtype != np.uint8:
            raise DataError(f"'{path}': x_{split} has dtype {x.dtype}, expected uint8 pixels")


def _short(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__
