"""Fashion-MNIST IDX loading for the benchmark scripts (numpy only)."""
import gzip
import os

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(directory=DEFAULT_DIR):
    """((x_train, y_train), (x_test, y_test)); images float32 in [0, 1] shaped (N, 1, 28, 28)."""
    def pick(stem):
        for name in (stem + ".gz", stem):
            p = os.path.join(directory, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(f"{stem}(.gz) not in {directory}: apt-get install dataset-fashion-mnist")
    xs = [_read_idx(pick(f"{p}-images-idx3-ubyte")).astype(np.float32)[:, None] / 255.0 for p in ("train", "t10k")]
    ys = [_read_idx(pick(f"{p}-labels-idx1-ubyte")).astype(np.int64) for p in ("train", "t10k")]
    return (xs[0], ys[0]), (xs[1], ys[1])
