"""Data helpers: IDX files, Fashion-MNIST, class filtering and standardisation, as numpy arrays.

Images come back as float32 arrays of shape (N, C, H, W) with pixels scaled to [0, 1]; labels as int32 arrays
of shape (N,).

Example (the seed tutorial's data: trousers vs dresses, the last 1,000 held out, per-pixel standardisation)::

    (x, y), _ = hpcnn.datasets.fashion_mnist()
    x, y = hpcnn.datasets.filter_classes(x, y, [1, 3])      # trouser -> 0, dress -> 1, file order kept
    x_train, y_train, x_val, y_val = x[:-1000], y[:-1000], x[-1000:], y[-1000:]
    x_train, x_val = hpcnn.datasets.standardize(x_train, x_val, per_pixel=True)
"""

import collections
import ctypes
import os
import warnings

import numpy as np

from ._native import OwnedHandle, check, encode_path, lib, take_string

__all__ = ["load_idx", "fashion_mnist", "mnist", "cifar10", "image_folder", "ImageFolderData", "filter_classes", "standardize", "FASHION_MNIST_CLASSES",
           "FASHION_MNIST_DIRECTORY", "CIFAR10_CLASSES", "MNIST_CLASSES", "cifar10_class_names"]

#: Fashion-MNIST's class names, by label.
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
#: Where Debian's dataset-fashion-mnist package puts the files (the default of :func:`fashion_mnist`).
FASHION_MNIST_DIRECTORY = "/usr/share/datasets/fashion-mnist"
#: CIFAR-10's class names, by label (batches.meta.txt of the binary version).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: MNIST's class names, by label.
MNIST_CLASSES = tuple(str(d) for d in range(10))


class NativeDataset(OwnedHandle):
    """Owns one hpcnn_dataset handle (internal; released by :meth:`close` or at garbage collection)."""

    def __init__(self, handle):
        super().__init__(handle, lib.hpcnn_dataset_release)

    @classmethod
    def from_arrays(cls, images, labels, classes):
        """A library dataset copied from (N, C, H, W) float32 images and (N,) int32 labels."""
        n, c, h, w = images.shape
        out = ctypes.c_void_p()
        check(lib.hpcnn_dataset_create(images, labels, n, c, h, w, classes, ctypes.byref(out)))
        return cls(out)

    def arrays(self):
        """(images (N, C, H, W) float32, labels (N,) int32), copied out of the library."""
        n, c, h, w, classes = ctypes.c_int64(), ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
        check(lib.hpcnn_dataset_info(self.value, ctypes.byref(n), ctypes.byref(c), ctypes.byref(h), ctypes.byref(w),
                                     ctypes.byref(classes)))
        images = np.empty((n.value, c.value, h.value, w.value), dtype=np.float32)
        labels = np.empty(n.value, dtype=np.int32)
        check(lib.hpcnn_dataset_get_images(self.value, images, images.size))
        check(lib.hpcnn_dataset_get_labels(self.value, labels, labels.size))
        return images, labels

    def class_names(self):
        """The dataset's class names, by label (numbers as text when it has none)."""
        n, c, h, w, classes = ctypes.c_int64(), ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
        check(lib.hpcnn_dataset_info(self.value, ctypes.byref(n), ctypes.byref(c), ctypes.byref(h), ctypes.byref(w),
                                     ctypes.byref(classes)))
        names = []
        for k in range(classes.value):
            p = ctypes.c_void_p()
            check(lib.hpcnn_dataset_class_name(self.value, k, ctypes.byref(p)))
            names.append(take_string(p))
        return names

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_idx(images_path, labels_path, classes=None):
    """Loads an IDX image file and its IDX label file (raw or gzip-compressed), as MNIST ships them.

    Args:
        images_path, labels_path: paths (str or os.PathLike).
        classes: number of classes; None means the largest label + 1.
    Returns:
        (images, labels): float32 (N, 1, H, W) in [0, 1] and int32 (N,).
    Raises:
        HpcnnIOError (an OSError) for a missing or unreadable file; InvalidFileError for a bad magic number,
        a truncated file or counts that differ (the message names the file).
    """
    out = ctypes.c_void_p()
    check(lib.hpcnn_dataset_load_idx(encode_path(images_path), encode_path(labels_path), int(classes or 0), ctypes.byref(out)))
    with NativeDataset(out) as d:
        return d.arrays()


def fashion_mnist(directory=None):
    """Fashion-MNIST (60,000 training and 10,000 test images of 1 x 28 x 28, 10 classes).

    Args:
        directory: the folder holding train-images-idx3-ubyte(.gz) etc.; None means
            /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist).
    Returns:
        ((x_train, y_train), (x_test, y_test)): float32 images (N, 1, 28, 28) in [0, 1], int32 labels (N,).
        Class names are in :data:`FASHION_MNIST_CLASSES`.
    """
    d = None if directory is None else encode_path(directory)
    result = []
    for train in (1, 0):
        out = ctypes.c_void_p()
        check(lib.hpcnn_dataset_load_fashion_mnist(d, train, ctypes.byref(out)))
        with NativeDataset(out) as ds:
            result.append(ds.arrays())
    return tuple(result[0]), tuple(result[1])


def _train_and_test(loader, directory):
    result = []
    for train in (1, 0):
        out = ctypes.c_void_p()
        check(loader(encode_path(directory), train, ctypes.byref(out)))
        with NativeDataset(out) as ds:
            result.append(ds.arrays())
    return tuple(result[0]), tuple(result[1])


def mnist(directory):
    """MNIST digits (60,000 training and 10,000 test images of 1 x 28 x 28, classes "0".."9").

    Args:
        directory: the folder holding MNIST's IDX files, named as Fashion-MNIST's (train-images-idx3-ubyte(.gz),
            train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz), t10k-labels-idx1-ubyte(.gz)).
    Returns:
        ((x_train, y_train), (x_test, y_test)): float32 images (N, 1, 28, 28) in [0, 1], int32 labels (N,).
    Raises:
        HpcnnIOError when the folder or a file is missing (the message says where MNIST is published);
        InvalidFileError for a damaged file (the message names it).
    """
    return _train_and_test(lib.hpcnn_dataset_load_mnist, directory)


def cifar10(directory):
    """CIFAR-10 (50,000 training and 10,000 test colour images of 3 x 32 x 32, 10 classes), binary version.

    Get cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it (``tar xzf``).

    Args:
        directory: the cifar-10-batches-bin folder (data_batch_1.bin ... data_batch_5.bin, test_batch.bin,
            batches.meta.txt), or the folder holding it.
    Returns:
        ((x_train, y_train), (x_test, y_test)): float32 images (N, 3, 32, 32), RGB planes, in [0, 1]; int32 labels.
        Class names are in :data:`CIFAR10_CLASSES` (:func:`cifar10_class_names` reads a folder's meta file).
    Raises:
        HpcnnIOError when a file is missing; InvalidFileError for a file that is not a whole number of 3,073-byte
        records, a label of 10 or more, or a bad batches.meta.txt (the message names the file).
    """
    return _train_and_test(lib.hpcnn_dataset_load_cifar10, directory)


def cifar10_class_names(directory):
    """The class names of a CIFAR-10 folder: its batches.meta.txt, or :data:`CIFAR10_CLASSES` without one."""
    out = ctypes.c_void_p()
    check(lib.hpcnn_dataset_load_cifar10(encode_path(directory), 0, ctypes.byref(out)))
    with NativeDataset(out) as ds:
        return ds.class_names()


#: What :func:`image_folder` returns: images (N, C, H, W) float32 in [0, 1], labels (N,) int32, the class names by label
#: (the subfolder names, sorted) and the files left out with ``skip_unreadable`` ("path: reason; skipped").
ImageFolderData = collections.namedtuple("ImageFolderData", ["images", "labels", "class_names", "skipped"])

_SKIP_UNREADABLE, _SHUFFLE = 1, 2


def image_folder(directory, image_size, channels=3, validation_split=None, shuffle=True, seed=42, skip_unreadable=False,
                 max_bytes=None):
    """A folder of images with one subfolder per class, as Keras' image_dataset_from_directory and torchvision's
    ImageFolder read it (``photos/cat/1.jpg``, ``photos/dog/2.png``, ...).

    Classes are the subfolder names sorted by code point (torchvision's order), labelled 0..k-1. Every .png, .jpg,
    .jpeg, .bmp and .gif file below a class folder is decoded by the library, converted to gray (luma) or RGB, resized
    (bilinear, antialiased; the aspect ratio is not kept) and scaled to [0, 1].

    Args:
        directory: the folder (str or os.PathLike).
        image_size: (height, width), as Keras' image_size.
        channels: 1 (gray) or 3 (RGB).
        validation_split: None, or a fraction in (0, 1): the images are shuffled with ``seed`` and the last fraction
            is returned as a validation set (Keras' validation_split with subset="both").
        shuffle: shuffle the images with ``seed`` (Keras' default); False keeps the sorted order (class, then path).
        seed: the shuffling seed.
        skip_unreadable: False (the default, as Keras and torchvision): a file that cannot be decoded fails the call
            with InvalidFileError naming every such file. True: such files are left out, named in ``skipped``, and
            a warning (UserWarning) is issued.
        max_bytes: the most memory the decoded images (count x channels x height x width x 4 bytes) may take,
            checked before any file is decoded; None means half the memory available now.
    Returns:
        :class:`ImageFolderData` (images, labels, class_names, skipped), or with ``validation_split`` a pair
        (train, validation) of them.
    Raises:
        HpcnnIOError when the folder does not exist; InvalidFileError (no class folders, an empty class folder,
        unreadable files); MemoryError (more than max_bytes); ValueError (channels, sizes, validation_split).
    """
    height, width = (int(v) for v in image_size)
    if channels not in (1, 3):
        raise ValueError(f"image_folder: channels must be 1 (gray) or 3 (RGB), got {channels}")
    if validation_split is not None and not 0 < validation_split < 1:
        raise ValueError(f"image_folder: validation_split must be in (0, 1), got {validation_split}")
    flags = (_SKIP_UNREADABLE if skip_unreadable else 0) | (_SHUFFLE if shuffle or validation_split is not None else 0)
    out, skipped = ctypes.c_void_p(), ctypes.c_void_p()
    check(lib.hpcnn_dataset_load_image_folder(encode_path(directory), int(channels), height, width, flags,
                                              int(seed) & 0xFFFFFFFFFFFFFFFF, int(max_bytes or 0), ctypes.byref(skipped),
                                              ctypes.byref(out)))
    with NativeDataset(out) as ds:
        images, labels = ds.arrays()
        names = tuple(ds.class_names())
    skipped_files = tuple(line for line in (take_string(skipped) if skipped.value else "").split("\n") if line)
    if skipped_files:
        warnings.warn(f"image_folder: {len(skipped_files)} unreadable file(s) left out: " + "; ".join(skipped_files[:5]),
                      UserWarning, stacklevel=2)
    if validation_split is None:
        return ImageFolderData(images, labels, names, skipped_files)
    n = len(labels)
    if n < 2:
        raise ValueError(f"image_folder: {n} image in {os.fspath(directory)}, too few to split")
    v = min(max(int(round(n * validation_split)), 1), n - 1)
    return (ImageFolderData(images[:n - v], labels[:n - v], names, skipped_files),
            ImageFolderData(images[n - v:], labels[n - v:], names, skipped_files))


def filter_classes(images, labels, classes):
    """Keeps the images of the listed classes, relabelled 0..k-1 in the order given, in their original order.

    ``filter_classes(x, y, [1, 3])`` keeps trousers (label 1 -> 0) and dresses (3 -> 1).
    Returns (images, labels) as new arrays (labels int32).
    """
    labels = np.asarray(labels)
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"filter_classes: a class is named twice in {classes}")
    mapping = np.full(max(int(labels.max()), max(classes)) + 1, -1, dtype=np.int32)
    mapping[classes] = np.arange(len(classes), dtype=np.int32)
    keep = mapping[labels] >= 0
    return np.ascontiguousarray(np.asarray(images)[keep]), mapping[labels[keep]]


def standardize(train, *others, per_pixel=True, model=None):
    """Standardises images with the statistics of ``train``: (x - mean) / std.

    Args:
        train: training images (N, ...); the mean and standard deviation are computed on them.
        others: more arrays (validation, test) standardised with the same training statistics.
        per_pixel: one mean and std per pixel position (default, the seed tutorial's choice) or, if False, one
            over all pixels. A pixel position with no spread gets std 1 (as the library's hpcnn_dataset_standardize).
        model: a :class:`hpcnn.Sequential` to record the statistics in (its ``standardization``, saved with it), so
            that ``model.predict(x, raw=True)`` applies them to new raw images. The arrays are then standardised in
            float32 the library's way ((x - mean) / std per pixel, (x - mean) * (1 / std) globally), so a raw predict
            gives bitwise what predict gives on them.
    Returns:
        The standardised float32 arrays, in the order given (a single array if no others were given).
    """
    train = np.asarray(train, dtype=np.float32)
    data = train.astype(np.float64)
    if per_pixel:
        mean, std = data.mean(axis=0), data.std(axis=0)
    else:
        mean, std = data.mean(), data.std()
    std = np.where(std * std > 1e-12, std, 1.0)
    if model is None:
        results = [((np.asarray(a, dtype=np.float64) - mean) / std).astype(np.float32) for a in (train,) + others]
    else:
        mean32, std32 = np.float32(mean) if not per_pixel else mean.astype(np.float32), np.asarray(std, dtype=np.float32)
        model.standardization = (mean32, std32) if per_pixel else {"mode": "global", "mean": [mean32], "std": [std32]}
        if per_pixel:
            results = [(np.asarray(a, dtype=np.float32) - mean32) / std32 for a in (train,) + others]
        else:
            inv = np.float32(1) / np.float32(std32)
            results = [(np.asarray(a, dtype=np.float32) - np.float32(mean32)) * inv for a in (train,) + others]
    return results[0] if not others else tuple(results)
