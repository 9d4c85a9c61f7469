"""Every call the library allows at once, interleaved from several threads against a deadline (issue 12): the thread
count flipping between 1 and 2, predictions on one shared model and on models of their own, evaluation, and fits of
other models. Each answer is checked against one computed alone beforehand (results do not depend on the thread
count: equal bit for bit); a hang fails at the deadline instead of stalling the suite. The long soak is
./build/soak.sh (8 threads predicting on one model for minutes, identical answers, flat memory)."""

import threading
import time

import numpy as np

import hpcnn
from hpcnn import layers as L

RUN_SECONDS = 5
DEADLINE_SECONDS = 60


def net(seed):
    model = hpcnn.Sequential([L.Conv2D(6, 3, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(5)],
                             input_shape=(2, 9, 9), seed=seed)
    model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.05, momentum=0.9))
    return model


def test_interleaved_calls_never_hang_and_keep_their_answers():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((37, 2, 9, 9)).astype(np.float32)
    xd = rng.standard_normal((40, 2, 9, 9)).astype(np.float32)
    yd = rng.integers(0, 5, 40)
    before = hpcnn.get_threads()
    hpcnn.set_threads(2)
    shared = net(30)
    shared_expected = shared.predict(x)
    shared_eval = shared.evaluate(xd, yd, batch_size=16)
    own = [net(40 + i) for i in range(2)]
    own_expected = [m.predict(x[:8]) for m in own]
    reference = net(50)
    reference.fit(xd, yd, epochs=1, batch_size=8, verbose=0)
    fit_expected = [reference.get_weights(i) for i in (0, 4)]

    failures, counts = [], {"predict": 0, "evaluate": 0, "fit": 0, "set_threads": 0}
    lock = threading.Lock()
    end = time.monotonic() + RUN_SECONDS

    def count(what, ok, detail):
        with lock:
            counts[what] += 1
            if not ok:
                failures.append(detail)

    def toggler():
        i = 0
        while time.monotonic() < end:
            hpcnn.set_threads(1 + i % 2)
            count("set_threads", True, "")
            i += 1
            time.sleep(0.003)

    def shared_predictor(k):
        i = 0
        while time.monotonic() < end:
            n = 1 + (7 * i + k) % 37
            count("predict", np.array_equal(shared.predict(x[:n]), shared_expected[:n]), f"shared predictor {k}, batch {n}")
            i += 1

    def own_predictor(k):
        while time.monotonic() < end:
            count("predict", np.array_equal(own[k].predict(x[:8]), own_expected[k]), f"own-model predictor {k}")

    def evaluator():
        while time.monotonic() < end:
            count("evaluate", shared.evaluate(xd, yd, batch_size=16) == shared_eval, "evaluation")

    def fitter():
        i = 0
        while time.monotonic() < end:
            with net(50) as m:
                m.fit(xd, yd, epochs=1, batch_size=8, verbose=0, threads=1 if i % 2 == 0 else None)
                same = all(np.array_equal(m.get_weights(j)[name], w[name])
                           for j, w in zip((0, 4), fit_expected) for name in w)
            count("fit", same, f"fit {i}")
            i += 1

    workers = [toggler, evaluator, fitter] + [lambda k=k: shared_predictor(k) for k in range(3)] + \
              [lambda k=k: own_predictor(k) for k in range(2)]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    hung = [t for t in threads if t.is_alive()]
    hpcnn.set_threads(before)
    assert not hung, f"{len(hung)} threads still running {DEADLINE_SECONDS} s after the start: {counts}"
    assert failures == [], failures[:5]
    print(f"stress: {sum(counts.values())} calls {counts}")
    assert counts["predict"] > 50 and counts["fit"] > 1 and counts["evaluate"] > 1
