"""The AVX2 build (libhpcnn.so) and the AVX-512 build (libhpcnn-avx512.so) give the same bits: a short training run and
its predictions, in child processes that load one library each."""

import hashlib
import os
import subprocess
import sys

import pytest

import hpcnn
from hpcnn import _native

CHILD = r"""
import hashlib, sys
import numpy as np
import hpcnn
L = hpcnn.layers
rng = np.random.default_rng(5)
digest = hashlib.sha256()
nets = [
    ([L.Flatten(), L.Dense(5)], (1, 7, 9), "cross_entropy"),
    ([L.FeatureMapNorm(), L.Flatten(), L.Dense(4)], (3, 6, 7), "mse"),
    ([L.Conv2D(16, 3, padding=1), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2), L.Conv2D(32, 3, stride=2, padding=1), L.Tanh(),
      L.Flatten(), L.Dense(10)], (3, 12, 12), "cross_entropy"),
]
for layers, shape, loss in nets:
    with hpcnn.Sequential(layers, input_shape=shape, seed=3) as m:
        m.compile(loss, hpcnn.optimizers.SGD(lr=0.05, momentum=0.9))
        x = rng.standard_normal((9,) + shape).astype(np.float32)
        y = rng.integers(0, m.output_size if m.output_size > 1 else 2, 9).astype(np.int32)
        m.fit(x, y, epochs=2, batch_size=4, verbose=0)
        digest.update(m.predict(x).tobytes())
        digest.update(m.predict(x[:1]).tobytes())
        for i in range(len(m)):
            for name, w in m.get_weights(i).items():
                digest.update(w.tobytes())
print(digest.hexdigest())
"""


def run_with(library):
    env = dict(os.environ, HPCNN_LIBRARY=library)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_the_avx2_and_avx512_builds_give_the_same_bits():
    here = os.path.dirname(hpcnn.library_path)
    narrow = os.path.join(here, "libhpcnn.so")
    wide = os.path.join(here, "libhpcnn-avx512.so")
    if not (os.path.exists(narrow) and os.path.exists(wide)):
        pytest.skip(f"both library builds are needed next to {hpcnn.library_path}")
    if not _native.cpu_has_avx512():
        pytest.skip("this CPU cannot run libhpcnn-avx512.so")
    assert run_with(narrow) == run_with(wide)
