"""The project's origin: the seed tutorial's per-sample NumPy loop (trouser vs dress, one 3x3 filter, ReLU,
dense 784 -> 1, sigmoid, log-loss, SGD lr 0.01). Prints the seconds of one epoch and the validation accuracy
as JSON: the loop as the tutorial writes it (scipy.signal.convolve with the flipped filter, method 'direct'; the
baseline of the seed-binary speed-up target) and, for reference, a leaner loop with correlate2d."""
import json
import sys
import time

import numpy as np

import fashion_mnist

try:
    from scipy.signal import convolve, correlate2d
except ImportError:  # numpy-only fallback with scipy's semantics for the two modes used here
    convolve = None

    def correlate2d(a, k, mode="valid"):
        if mode == "same":
            a = np.pad(a, ((k.shape[0] // 2,), (k.shape[1] // 2,)))
        oh, ow = a.shape[0] - k.shape[0] + 1, a.shape[1] - k.shape[1] + 1
        out = np.zeros((oh, ow))
        if k.size <= out.size:  # few taps: one shifted multiply-add per tap
            for dy in range(k.shape[0]):
                for dx in range(k.shape[1]):
                    out += k[dy, dx] * a[dy:dy + oh, dx:dx + ow]
        else:  # few outputs (the filter gradient): one dot product per output
            for y in range(oh):
                for x in range(ow):
                    out[y, x] = np.sum(a[y:y + k.shape[0], x:x + k.shape[1]] * k)
        return out


def tutorial_correlate(a, k, mode):
    """The tutorial's own call: a convolution with the filter flipped, computed directly (a correlation)."""
    return convolve(a, k[::-1, ::-1], mode=mode, method="direct")


def epoch_loop(correlate, epochs):
    (x, y), _ = fashion_mnist.load()
    keep = (y == 1) | (y == 3)
    x = x[keep][:, 0].astype(np.float64)
    y = (y[keep] == 3).astype(np.float64)
    xtr, ytr, xva, yva = x[:-1000], y[:-1000], x[-1000:], y[-1000:]
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-8
    xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
    rng = np.random.default_rng(0)
    k = rng.normal(0, 0.1, (3, 3))
    w = rng.normal(0, 0.01, 784)
    lr = 0.01
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for i in rng.permutation(len(xtr)):
            img = xtr[i]
            z = correlate(img, k, "same")
            a = np.maximum(z, 0)
            s = a.ravel() @ w
            p = 1 / (1 + np.exp(-s))
            ds = p - ytr[i]
            dw = ds * a.ravel()
            da = (ds * w).reshape(28, 28) * (z > 0)
            dk = correlate(np.pad(img, 1), da, "valid")
            w -= lr * dw
            k -= lr * dk
        times.append(time.perf_counter() - start)
    z = np.stack([np.maximum(correlate(im, k, "same"), 0).ravel() for im in xva])
    acc = float(((1 / (1 + np.exp(-(z @ w))) >= 0.5) == (yva == 1)).mean())
    return min(times), acc


def main():
    epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 1
    lean_s, lean_acc = epoch_loop(lambda a, k, mode: correlate2d(a, k, mode=mode), epochs)
    result = {"numpy_lean_epoch_s": lean_s, "numpy_lean_val_accuracy": lean_acc}
    if convolve is not None:
        seed_s, seed_acc = epoch_loop(tutorial_correlate, epochs)
        result.update({"numpy_seed_epoch_s": seed_s, "numpy_seed_val_accuracy": seed_acc})
    else:  # without SciPy only the lean loop runs; it stands in for the tutorial's (and is faster: a harder yardstick)
        result.update({"numpy_seed_epoch_s": lean_s, "numpy_seed_val_accuracy": lean_acc, "numpy_seed_is_lean_loop": True})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
