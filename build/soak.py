"""The long soak of issue 12: THREADS threads predict on one shared model (the reference network) for MINUTES minutes,
each answer compared bit for bit with one computed alone, the resident memory sampled every few seconds. Fails on a
different answer, a thread not back by the deadline, or memory growing after the warm-up. Run by ./build/soak.sh."""

import argparse
import threading
import time

import numpy as np

import hpcnn
from hpcnn import layers as L


def rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--growth-mib", type=float, default=64, help="allowed growth of the resident memory after warm-up")
    a = ap.parse_args()
    model = hpcnn.Sequential([L.Conv2D(32, 3, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Conv2D(64, 3, padding="same"),
                              L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(128), L.ReLU(), L.Dense(10)],
                             input_shape=(1, 28, 28), seed=11)
    model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.01, momentum=0.9))
    x = np.random.default_rng(3).standard_normal((64, 1, 28, 28)).astype(np.float32)
    sizes = [1, 3, 8, 17, 32, 64]
    expected = {n: model.predict(x[:n]) for n in sizes}
    calls, mismatches = [0] * a.threads, [0] * a.threads
    end = time.monotonic() + a.minutes * 60

    def worker(k):
        i = k
        while time.monotonic() < end:
            n = sizes[i % len(sizes)]
            mismatches[k] += not np.array_equal(model.predict(x[:n]), expected[n])
            calls[k] += 1
            i += 1

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(a.threads)]
    start = time.monotonic()
    for t in threads:
        t.start()
    warm = start + min(30.0, a.minutes * 60 / 4)
    samples = []
    while any(t.is_alive() for t in threads) and time.monotonic() < end + 60:
        time.sleep(2)
        now = time.monotonic()
        samples.append((now - start, rss_mib(), sum(calls)))
        if int(now - start) % 30 < 2:
            print(f"  {now - start:6.0f} s  {sum(calls):9d} predictions  resident {samples[-1][1]:7.1f} MiB", flush=True)
    hung = sum(t.is_alive() for t in threads)
    after = [r for (s, r, _) in samples if s + start >= warm] or [samples[-1][1]]
    seconds = time.monotonic() - start
    print(f"soak: {a.threads} threads, {seconds:.0f} s, {sum(calls)} predictions ({sum(calls) / seconds:.0f}/s), "
          f"{sum(mismatches)} different answers, {hung} threads hung; resident after warm-up {min(after):.1f}..{max(after):.1f} MiB "
          f"(peak {max(r for _, r, _ in samples):.1f} MiB)")
    ok = hung == 0 and sum(mismatches) == 0 and max(after) - min(after) <= a.growth_mib
    if not ok:
        raise SystemExit("soak FAILED")


main()
