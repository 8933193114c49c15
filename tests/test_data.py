"""Loading MNIST: the bundled copy, npz files, IDX folders, and every way they break."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_idx, write_slice

from fl_sim.data import IDX_FILES, DataError, bundled_path, load_mnist


def test_bundled_copy_is_full_mnist_scaled_once():
    data = load_mnist()
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert (
        data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() < data.x_train.max() <= 1.0
    )
    assert round(float(data.x_train.mean()), 4) == 0.1307
    assert np.bincount(data.y_train).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert load_mnist("") is data, "a process must load the file only once"


def test_npz_slice_loads(raw_mnist, tmp_path):
    path = write_slice(raw_mnist, tmp_path / "s.npz", 100, 50)
    data = load_mnist(path)
    assert data.x_train.shape == (100, 28, 28) and len(data.y_test) == 50
    np.testing.assert_array_equal(data.y_train, raw_mnist["y_train"][:100])


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder_loads_the_same_arrays(raw_mnist, tmp_path, compress):
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / stem, raw_mnist[key][:200], compress)
    data = load_mnist(tmp_path)
    np.testing.assert_array_equal(data.x_train * 255, raw_mnist["x_train"][:200].astype(np.float32))
    np.testing.assert_array_equal(data.y_test, raw_mnist["y_test"][:200])


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.npz"):
        load_mnist(tmp_path / "nope.npz")


def test_truncated_npz_is_named(tmp_path):
    path = tmp_path / "cut.npz"
    path.write_bytes(bundled_path().read_bytes()[:100_000])
    with pytest.raises(DataError, match="cut.npz"):
        load_mnist(path)


def test_npz_without_mnist_keys_is_named(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, images=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match="other.npz.*x_train"):
        load_mnist(path)


def test_npz_of_objects_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    objects = np.array([{"evil": 1}], dtype=object)
    np.savez(path, x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    with pytest.raises(DataError, match="pickled.npz"):
        load_mnist(path)


def test_wrong_image_shape_is_named(raw_mnist, tmp_path):
    path = tmp_path / "shape.npz"
    np.savez(
        path,
        x_train=np.zeros((5, 32, 32), np.uint8),
        y_train=np.zeros(5, np.uint8),
        x_test=raw_mnist["x_test"][:5],
        y_test=raw_mnist["y_test"][:5],
    )
    with pytest.raises(DataError, match="shape.npz.*x_train"):
        load_mnist(path)


def test_truncated_idx_file_is_named(raw_mnist, tmp_path):
    for key, stem in IDX_FILES.items():
        write_idx(tmp_path / stem, raw_mnist[key][:20], compress=False)
    images = tmp_path / IDX_FILES["x_train"]
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        load_mnist(tmp_path)


def test_idx_folder_missing_a_file_is_named(raw_mnist, tmp_path):
    write_idx(tmp_path / IDX_FILES["x_train"], raw_mnist["x_train"][:20], compress=False)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
