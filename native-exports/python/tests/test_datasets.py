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


def write_cifar(path, labels, images):
    """A CIFAR-10 binary batch: per record one label byte, then the 3,072 bytes of a 3 x 32 x 32 uint8 image."""
    records = [bytes([int(label)]) + np.asarray(img, dtype=np.uint8).tobytes() for label, img in zip(labels, images)]
    path.write_bytes(b"".join(records))


def test_cifar10_reads_the_binary_batches_and_meta_names(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    train_images = rng.integers(0, 256, (10, 3, 32, 32), dtype=np.uint8)
    train_labels = rng.integers(0, 10, 10)
    for b in range(5):
        write_cifar(folder / f"data_batch_{b + 1}.bin", train_labels[2 * b:2 * b + 2], train_images[2 * b:2 * b + 2])
    test_images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    write_cifar(folder / "test_batch.bin", [9, 0, 5], test_images)
    (folder / "batches.meta.txt").write_text("\n".join(f"name{k}" for k in range(10)) + "\n\n")
    (x, y), (xt, yt) = hpcnn.datasets.cifar10(tmp_path)  # the folder the archive unpacks into also works
    assert x.shape == (10, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x, train_images / 255.0, atol=1e-6)
    np.testing.assert_array_equal(y, train_labels)
    np.testing.assert_allclose(xt, test_images / 255.0, atol=1e-6)
    np.testing.assert_array_equal(yt, [9, 0, 5])
    assert hpcnn.datasets.cifar10_class_names(folder)[3] == "name3"


def test_cifar10_errors_name_the_file(tmp_path):
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    write_cifar(tmp_path / "test_batch.bin", [1, 2], images)
    data = (tmp_path / "test_batch.bin").read_bytes()
    (tmp_path / "test_batch.bin").write_bytes(data[:-7])
    for b in range(5):
        write_cifar(tmp_path / f"data_batch_{b + 1}.bin", [1], images[:1])
    with pytest.raises(hpcnn.InvalidFileError, match="test_batch.bin.*3073-byte records"):
        hpcnn.datasets.cifar10(tmp_path)
    write_cifar(tmp_path / "data_batch_2.bin", [12], images[:1])
    with pytest.raises(hpcnn.InvalidFileError, match="data_batch_2.bin.*label 12"):
        hpcnn.datasets.cifar10(tmp_path)
    with pytest.raises(hpcnn.HpcnnIOError, match="cs.toronto.edu"):
        hpcnn.datasets.cifar10(tmp_path / "missing")


def test_mnist_reads_idx_files_with_the_standard_names(tmp_path):
    rng = np.random.default_rng(4)
    px = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", px, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", [3, 1, 4, 1, 5], compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", px[:2])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", [9, 2])
    (x, y), (xt, yt) = hpcnn.datasets.mnist(tmp_path)
    np.testing.assert_allclose(x[:, 0], px / 255.0, atol=1e-6)
    np.testing.assert_array_equal(y, [3, 1, 4, 1, 5])
    np.testing.assert_array_equal(yt, [9, 2])
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(hpcnn.HpcnnIOError, match="t10k-labels-idx1-ubyte"):
        hpcnn.datasets.mnist(tmp_path)
