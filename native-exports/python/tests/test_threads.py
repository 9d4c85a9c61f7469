"""predict / evaluate / layer_output on one model from several Python threads at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import hpcnn
from conftest import reference_layers


def reference_net():
    """The reference network, untrained: inference does not care."""
    model = hpcnn.Sequential(reference_layers(), input_shape=(1, 28, 28), seed=11)
    model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.01, momentum=0.9))
    return model


def test_concurrent_predict_matches_single_threaded(fashion):
    _, (x_test, y_test) = fashion
    x, y = x_test[:200], y_test[:200]
    chunks = [(start, size) for start, size in zip(range(0, 200, 23), [1, 5, 17, 37, 2, 33, 9, 3, 12])]
    with reference_net() as model:
        assert model.count_params() == 421642
        expected = {c: model.predict(x[c[0]:c[0] + c[1]]) for c in chunks}
        expected_classes = model.predict_classes(x[:64])
        expected_eval = model.evaluate(x[:64], y[:64])
        expected_maps = model.layer_output(3, x[:8])
        barrier = threading.Barrier(8)

        def worker(k):
            barrier.wait()
            mismatches = 0
            for r in range(3):
                for i, c in enumerate(chunks):
                    if (i + k + r) % 3 == 0:
                        got = model.predict(x[c[0]:c[0] + c[1]])
                        mismatches += not np.array_equal(got, expected[c])
                    elif (i + k + r) % 3 == 1:
                        mismatches += not np.array_equal(model.layer_output(3, x[:8]), expected_maps)
                    elif i % 4 == 0:
                        mismatches += model.evaluate(x[:64], y[:64]) != expected_eval
                        mismatches += not np.array_equal(model.predict_classes(x[:64]), expected_classes)
            return mismatches

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(worker, range(8)))
        assert results == [0] * 8


def test_threads_run_in_parallel_with_the_gil_released():
    # While one thread is inside a long predict call, another thread keeps running Python code.
    with reference_net() as model:
        x = np.random.default_rng(1).standard_normal((600, 1, 28, 28)).astype(np.float32)
        ticks = []
        done = threading.Event()

        def ticker():
            while not done.is_set():
                ticks.append(1)
                done.wait(0.001)

        t = threading.Thread(target=ticker)
        t.start()
        try:
            before = len(ticks)
            model.predict(x)  # a few hundred milliseconds in the library
            during = len(ticks) - before
        finally:
            done.set()
            t.join()
        assert during >= 5
