"""The zoo benchmark's PyTorch twins (benchmarks/zoo_twin.py) compute what HpCnn computes: every network of
benchmarks/zoo and every spec of the test fixtures, built from its JSON with HpCnn's weights copied in, gives HpCnn's
outputs within a tolerance scaled by the network's depth and fan-in. A twin that differs in padding, pooling or
normalisation semantics would make the zoo's timings compare different networks. Needs python3-torch
(./build/bench.sh installs it); skipped without it."""

import glob
import os
import sys

import numpy as np
import pytest

import hpcnn

torch = pytest.importorskip("torch", reason="python3-torch is not installed (./build/bench.sh installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import zoo_twin  # noqa: E402

SPECS = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "zoo", "*.json"))) + \
    sorted(glob.glob(os.path.join(ROOT, "tests", "HpCnn.Tests", "Fixtures", "networks", "*.json")))


def test_the_zoo_has_the_networks_the_issue_names():
    names = {os.path.basename(p)[:-5] for p in SPECS if os.sep + "zoo" + os.sep in p}
    assert {"reference", "seed-binary", "seed-mse", "deep", "lenet5", "vgg-bn", "allconv", "bottleneck"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: os.path.relpath(p, ROOT))
def test_twin_matches_hpcnn(path):
    spec = zoo_twin.load_spec(path)
    with hpcnn.from_spec(spec) as hp:
        twin = zoo_twin.build_twin(spec)
        zoo_twin.copy_weights(hp, twin)
        c, h, w = spec["input"]
        x = np.random.default_rng(7).standard_normal((5, c, h, w), dtype=np.float32)
        diff, tol = zoo_twin.compare_outputs(hp, twin, x)
        assert diff <= tol, f"{path}: twin differs from HpCnn by {diff:.3g} (tolerance {tol:.3g})"
        # The FLOP count the report divides by is HpCnn's for the convolution and dense layers.
        assert twin.forward_flops > 0


def test_same_padding_follows_hpcnn_rule():
    # An odd total puts the extra row/column at the bottom/right, for any stride (TensorFlow's rule).
    assert zoo_twin.resolve_padding("same", 28, 28, 3, 3, 1, 1) == (1, 1, 1, 1)
    assert zoo_twin.resolve_padding("same", 28, 28, 4, 4, 1, 1) == (1, 1, 2, 2)
    assert zoo_twin.resolve_padding("same", 32, 32, 3, 3, 2, 2) == (0, 0, 1, 1)
    assert zoo_twin.resolve_padding([1, 2], 8, 8, 3, 3, 1, 1) == (1, 2, 1, 2)
