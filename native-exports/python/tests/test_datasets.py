"""hpcnn.datasets: IDX files written here (raw and gzip), Fashion-MNIST through load_idx, file errors."""

import gzip
import struct

import numpy as np
import pytest

import hpcnn
from conftest import FASHION_MNIST


def write_idx(path, array, compress=False):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_load_idx_scales_pixels_and_keeps_labels(tmp_path, compress):
    rng = np.random.default_rng(8)
    pixels = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)
    labels = np.array([0, 3, 1, 3, 2, 0, 1], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"images{suffix}", pixels, compress)
    write_idx(tmp_path / f"labels{suffix}", labels, compress)
    x, y = hpcnn.datasets.load_idx(tmp_path / f"images{suffix}", str(tmp_path / f"labels{suffix}"))
    assert x.shape == (7, 1, 5, 3) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x[:, 0], pixels / 255.0, atol=1e-7)
    np.testing.assert_array_equal(y, labels)


def test_load_idx_errors(tmp_path):
    write_idx(tmp_path / "images", np.zeros((4, 2, 2)))
    write_idx(tmp_path / "labels", np.zeros(3))
    with pytest.raises(hpcnn.InvalidFileError, match="labels"):
        hpcnn.datasets.load_idx(tmp_path / "images", tmp_path / "labels")  # 4 images, 3 labels
    (tmp_path / "junk").write_bytes(b"\x00\x00\x09\x03junk")
    with pytest.raises(hpcnn.InvalidFileError, match="junk"):
        hpcnn.datasets.load_idx(tmp_path / "junk", tmp_path / "labels")
    with pytest.raises(OSError, match="nope"):
        hpcnn.datasets.load_idx(tmp_path / "nope", tmp_path / "labels")
    with pytest.raises(hpcnn.HpcnnIOError):
        hpcnn.datasets.fashion_mnist(tmp_path / "empty")


def test_fashion_mnist_through_load_idx(fashion):
    _, (x_test, y_test) = fashion
    x, y = hpcnn.datasets.load_idx(f"{FASHION_MNIST}/t10k-images-idx3-ubyte.gz", f"{FASHION_MNIST}/t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(y, y_test)
    assert len(hpcnn.datasets.FASHION_MNIST_CLASSES) == 10 and hpcnn.datasets.FASHION_MNIST_CLASSES[1] == "Trouser"


def test_standardize_global_and_zero_spread():
    train = np.array([[[1.0, 5.0]], [[3.0, 5.0]]], dtype=np.float32)  # the second pixel never varies
    other = np.array([[[2.0, 6.0]]], dtype=np.float32)
    a, b = hpcnn.datasets.standardize(train, other, per_pixel=True)
    np.testing.assert_allclose(a, [[[-1.0, 0.0]], [[1.0, 0.0]]])
    np.testing.assert_allclose(b, [[[0.0, 1.0]]])  # std 1 where the training data has no spread
    g = hpcnn.datasets.standardize(train, per_pixel=False)
    assert abs(float(g.mean())) < 1e-6 and abs(float(g.std()) - 1) < 1e-5
