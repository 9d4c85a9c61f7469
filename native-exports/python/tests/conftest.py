"""Shared fixtures: Fashion-MNIST loaded once per test session, and the seed tutorial's binary subset."""

import os

import numpy as np
import pytest

import hpcnn

FASHION_MNIST = os.environ.get("HPCNN_FASHION_MNIST", hpcnn.datasets.FASHION_MNIST_DIRECTORY)


@pytest.fixture(scope="session")
def fashion():
    """((x_train, y_train), (x_test, y_test)) from the library's loader. The dataset is a requirement of the
    suite (build/test-native.sh installs dataset-fashion-mnist), so a missing one fails instead of skipping."""
    if not os.path.exists(os.path.join(FASHION_MNIST, "train-images-idx3-ubyte.gz")):
        pytest.fail(f"Fashion-MNIST not found in {FASHION_MNIST}: apt-get install dataset-fashion-mnist")
    return hpcnn.datasets.fashion_mnist(FASHION_MNIST)


@pytest.fixture(scope="session")
def binary(fashion):
    """The seed tutorial's data: trousers (0) vs dresses (1) of the training set in file order, the last 1,000
    held out for validation, per-pixel standardisation with the training statistics."""
    (x, y), _ = fashion
    keep = (y == 1) | (y == 3)
    x, y = x[keep], (y[keep] == 3).astype(np.int32)
    assert len(x) == 12000
    x_train, y_train, x_val, y_val = x[:-1000], y[:-1000], x[-1000:], y[-1000:]
    mean, std = x_train.mean(axis=0, dtype=np.float64), x_train.std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-6, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), y_train, ((x_val - mean) / std).astype(np.float32), y_val


def seed_model(seed=42):
    """The seed tutorial's network: one 3x3 filter (no bias, same padding), ReLU, dense 784->1 (no bias), sigmoid;
    binary cross-entropy, SGD lr 0.01."""
    L = hpcnn.layers
    model = hpcnn.Sequential([L.Conv2D(1, 3, padding="same", bias=False), L.ReLU(), L.Flatten(), L.Dense(1, bias=False),
                              L.Sigmoid()], input_shape=(1, 28, 28), seed=seed)
    model.compile(loss="binary_cross_entropy", optimizer=hpcnn.optimizers.SGD(lr=0.01))
    return model


def reference_layers():
    """The reference network of the benchmarks (ANCHORS.md): 421,642 parameters."""
    L = hpcnn.layers
    return [L.Conv2D(32, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Conv2D(64, 3, padding=1), L.ReLU(), L.MaxPool2D(2),
            L.Flatten(), L.Dense(128), L.ReLU(), L.Dense(10)]
