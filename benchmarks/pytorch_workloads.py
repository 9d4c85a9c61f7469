"""The PyTorch half of side_by_side.py: the same workloads as HpCnn's runner, printed as one JSON object.

Run through side_by_side.py, which sets the tuned environment of ANCHORS.md:
OMP_NUM_THREADS=n OPENBLAS_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296.
"""
import json
import sys
import time

import numpy as np
import torch
from torch import nn

import fashion_mnist


def median(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    return float(np.median(t))


def reference():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    threads = int(sys.argv[sys.argv.index("--threads") + 1])
    quick = "--quick" in sys.argv
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    (xtr, ytr), (xte, yte) = fashion_mnist.load()
    mean, std = 0.2860, 0.3530
    xtr = torch.from_numpy((xtr - mean) / std)
    xte = torch.from_numpy((xte - mean) / std)
    ytr = torch.from_numpy(ytr)
    yte = torch.from_numpy(yte)
    res = {"threads": threads}

    model = reference()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    n = 6400 if quick else 60000
    # warm-up step (oneDNN primitive creation), then a fresh model for the timed epoch
    xb, yb = xtr[:64], ytr[:64]
    opt.zero_grad(); loss_fn(model(xb), yb).backward(); opt.step()
    model = reference()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    perm = torch.randperm(60000)[:n]
    start = time.perf_counter()
    for i in range(0, n, 64):
        idx = perm[i:i + 64]
        opt.zero_grad()
        loss_fn(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
    res["reference_epoch_s"] = (time.perf_counter() - start) * (60000 / n)
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum()) for i in range(0, 10000, 1000))
        res["reference_test_accuracy"] = correct / 10000
        one = xte[:1].clone()
        res["inference_batch1_s"] = median(lambda: model(one), 2000, 200)
        many = xte[:256].clone()
        res["inference_batch256_s"] = median(lambda: model(many), 60, 10)

    for name, c, hw, f in (("A", 1, 28, 32), ("B", 32, 14, 64), ("C", 3, 32, 32)):
        conv = nn.Conv2d(c, f, 3, padding=1)
        x = torch.randn(64, c, hw, hw)
        with torch.no_grad():
            res[f"conv{name}_forward_s"] = median(lambda: conv(x), 40, 5)
        xg = x.clone().requires_grad_(True)
        g = torch.randn(64, f, hw, hw)

        def backward():
            y = conv(xg)
            y.backward(g)
        fwd = res[f"conv{name}_forward_s"]
        res[f"conv{name}_backward_s"] = max(median(backward, 40, 5) - fwd, 0.0)  # backward alone
    print(json.dumps(res))


if __name__ == "__main__":
    main()
