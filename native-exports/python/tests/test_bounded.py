"""Memory stays bounded whatever batch sizes a caller uses, and changing the thread count never hangs a predict."""

import threading
import time

import numpy as np

import hpcnn
from conftest import reference_layers


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def reference_net(seed=11):
    model = hpcnn.Sequential(reference_layers(), input_shape=(1, 28, 28), seed=seed)
    model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.01, momentum=0.9))
    return model


def test_predicting_at_every_batch_size_keeps_memory_within_the_budget():
    budget_mib = 96
    x = np.random.default_rng(2).standard_normal((512, 1, 28, 28)).astype(np.float32)
    sizes = np.random.default_rng(3).permutation(np.arange(1, 513))
    with reference_net() as model:
        model.inference_cache_bytes = budget_mib << 20
        assert model.inference_cache_bytes == budget_mib << 20
        model.predict(x[:1])
        base = rss_mib()
        peak = base
        first = {}
        for n in sizes:
            p = model.predict(x[:n])
            assert p.shape == (n, 10)
            first.setdefault(int(n), p[0].copy())
            peak = max(peak, rss_mib())
        # The budget, plus the one workspace in use (capacity 256 of this network: about 50 MiB), plus the
        # collector's slack. Before the bound, one plan per exact batch size grew this to ~2,000 MiB by 255.
        bound = budget_mib + 64 + 96
        print(f"\nresident memory over batch sizes 1..512: {base:.0f} MiB after the first call, peak {peak:.0f} MiB "
              f"(+{peak - base:.0f}; bound +{bound})")
        assert peak - base <= bound
        # Every call still gives the same first image.
        ref = first[1]
        for n, row in first.items():
            np.testing.assert_allclose(row, ref, rtol=1e-5, atol=1e-7, err_msg=f"batch of {n}")


def test_changing_the_thread_count_while_predicting_never_hangs():
    x = np.random.default_rng(4).standard_normal((40, 1, 28, 28)).astype(np.float32)
    before = hpcnn.get_threads()
    with reference_net(seed=12) as model:
        expected = model.predict(x)
        stop = threading.Event()
        results = {"calls": 0, "mismatches": 0}

        def predictor():
            while not stop.is_set():
                results["mismatches"] += not np.array_equal(model.predict(x), expected)
                results["calls"] += 1

        t = threading.Thread(target=predictor, daemon=True)
        t.start()
        try:
            deadline = time.monotonic() + 3
            i = 0
            while time.monotonic() < deadline:
                hpcnn.set_threads(1 + i % 2)
                i += 1
                time.sleep(0.005)
        finally:
            stop.set()
            t.join(timeout=30)
            hpcnn.set_threads(before)
        assert not t.is_alive(), "predict hung while the thread count changed"
        assert results["calls"] > 5
        assert results["mismatches"] == 0


def test_fit_threads_leave_the_library_setting_alone(binary):
    from conftest import seed_model
    x_train, y_train, _, _ = binary
    before = hpcnn.get_threads()
    with seed_model() as model:
        model.fit(x_train[:512], y_train[:512], epochs=1, batch_size=32, threads=1, verbose=0)
    assert hpcnn.get_threads() == before
