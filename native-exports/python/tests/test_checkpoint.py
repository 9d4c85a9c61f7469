"""Checkpoints and resume from Python (a fit interrupted at random batches, and a child process killed with SIGKILL,
both resumed to the same bytes as an uninterrupted fit), the data check, the compute budget, load messages."""

import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L

HERE = os.path.dirname(os.path.abspath(__file__))


def build():
    """Convolution, batch norm, dropout, Adam with a step schedule: every kind of state a resume must restore."""
    model = hpcnn.Sequential([L.Conv2D(4, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                              L.Dropout(0.25), L.Dense(3)], input_shape=(1, 10, 10), seed=17)
    model.compile(loss="cross_entropy", optimizer=hpcnn.optimizers.Adam(lr=0.01),
                  schedule=hpcnn.optimizers.StepSchedule(1, 0.5))
    return model


def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((96, 1, 10, 10)).astype(np.float32)
    y = rng.integers(0, 3, 96).astype(np.int32)
    return x, y


def state(model):
    return [model.get_weights(i, name) for i, layer in enumerate(model.layers) for name in layer.params]


def fit(model, directory=None, **kwargs):
    x, y = data()
    options = dict(epochs=3, batch_size=8, seed=5, validation_data=(x[:16], y[:16]), verbose=0)
    if directory is not None:
        options.update(checkpoint_dir=directory, checkpoint_every=3, resume=True)
    options.update(kwargs)
    return model.fit(x, y, **options)


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.tobytes() == v.tobytes()


def test_an_interrupted_fit_resumes_bit_identically(tmp_path):
    reference = build()
    whole = fit(reference)
    rng = random.Random(11)
    interruptions, history = 0, None
    for _ in range(60):
        model = build()
        stop_after = rng.randint(1, 6)
        seen = []

        class Stop(hpcnn.callbacks.Callback):
            def on_batch_end(self, batch, logs=None):
                seen.append(batch)
                return len(seen) >= stop_after

        history = fit(model, tmp_path, callbacks=[Stop()])
        if not history.stopped_by_callback:
            assert_same(state(model), state(reference))
            break
        interruptions += 1
    assert interruptions >= 5
    assert history.resumed_from is not None and history.resumed_epochs <= 3
    assert [e["val_loss"] for e in history.epochs] == [e["val_loss"] for e in whole.epochs]
    assert any("resuming from" in m for m in history.messages)
    # The newest checkpoint is the final model, and loads on its own.
    assert_same(state(hpcnn.load_checkpoint(tmp_path)), state(reference))


def test_a_damaged_checkpoint_is_skipped_with_a_notice(tmp_path):
    model = build()
    fit(model, tmp_path, epochs=2)
    files = sorted(p for p in os.listdir(tmp_path) if p.endswith(".hpcnn"))
    assert len(files) == 2
    newest = os.path.join(tmp_path, files[-1])
    with open(newest, "r+b") as f:
        f.seek(100)
        f.write(b"\xff\xff\xff\xff")
    again = build()
    history = fit(again, tmp_path, epochs=2)
    assert any(files[-1] in m and "checksum" in m for m in history.messages), history.messages
    assert history.resumed_from.endswith(files[-2])
    assert_same(state(again), state(model))


def test_a_killed_child_process_resumes_bit_identically(tmp_path):
    reference = build()
    fit(reference, epochs=4)
    # The child reports each of its 48 batches on stdout; the parent kills it a random 4-7 batches into each run (and a
    # random 0-30 ms after that report, so some kills land inside a checkpoint write). Each run has passed its first
    # checkpoint (every 3 batches) and three need at most 21 of the 48 batches, so every kill lands mid-run whatever
    # the machine's speed, and the fourth run resumes 9-21 batches in and finishes the fit.
    script = f"""
import sys, time
sys.path.insert(0, {HERE!r})
import hpcnn
from test_checkpoint import build, fit
def report(batch, logs):
    print("batch", flush=True)
    time.sleep(0.01)
model = build()
fit(model, sys.argv[1], epochs=4, callbacks=[hpcnn.callbacks.LambdaCallback(on_batch_end=report)])
model.save(sys.argv[2])
"""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = os.path.join(tmp_path, "final.hpcnn")
    ck = os.path.join(tmp_path, "ck")
    seed = time.time_ns()
    rng = random.Random(seed)
    kills = 0
    while kills < 3:
        p = subprocess.Popen([sys.executable, "-c", script, ck, out], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        target, seen = rng.randint(4, 7), 0
        while seen < target and p.stdout.readline():
            seen += 1
        assert seen == target, f"seed {seed}: the child ended after {seen} batches: {p.communicate()[1].decode()}"
        time.sleep(rng.random() * 0.03)
        p.kill()  # SIGKILL
        p.communicate()
        kills += 1
    p = subprocess.run([sys.executable, "-c", script, ck, out], env=env, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    ran = p.stdout.decode().count("batch")
    assert 27 <= ran <= 39, f"seed {seed}: the resumed run trained {ran} batches"
    assert_same(state(hpcnn.load(out)), state(reference))


def test_nan_in_the_data_is_reported_by_sample():
    x, y = data()
    x[7, 0, 2, 3] = np.inf
    with pytest.raises(hpcnn.InvalidArgumentError, match=r"sample 7 holds \+infinity at channel 0, row 2, column 3"):
        build().fit(x, y, verbose=0)
    with pytest.raises(hpcnn.NumericError):
        build().fit(x, y, batch_size=96, verbose=0, check_data=False)


def test_checkpoint_option_errors(tmp_path):
    x, y = data()
    with pytest.raises(hpcnn.InvalidArgumentError, match="checkpoint_dir"):
        build().fit(x, y, resume=True, verbose=0)
    with pytest.raises(hpcnn.InvalidArgumentError, match="'5 minutes'"):
        build().fit(x, y, checkpoint_dir=tmp_path, checkpoint_every="5 minutes", verbose=0)
    history = build().fit(x, y, checkpoint_dir=tmp_path, checkpoint_every="1s", verbose=0)
    assert history.last_checkpoint is not None and os.path.exists(history.last_checkpoint)


COSTLY = {"input": [1, 2048, 2048], "layers": [{"type": "avgpool2d", "kernel": 64, "stride": 1, "padding": 32}, {"type": "flatten"}]}


def test_a_model_above_the_compute_budget_is_refused(tmp_path):
    assert hpcnn.DEFAULT_MAX_FLOPS_PER_IMAGE == 10 ** 10
    with pytest.raises(hpcnn.InvalidFileError, match=r"layers\[0\] \(avgpool2d.*17\.\d+ GFLOP per image.*budget of 10 GFLOP"):
        hpcnn.from_spec(COSTLY)
    model = hpcnn.from_spec(COSTLY, max_flops_per_image=2 * 10 ** 10)
    path = os.path.join(tmp_path, "costly.hpcnn")
    model.save(path)
    with pytest.raises(hpcnn.InvalidFileError, match="compute budget"):
        hpcnn.load(path)
    assert hpcnn.load(path, max_flops_per_image=2 * 10 ** 10).input_shape == (1, 2048, 2048)


def test_the_hostile_file_of_the_issue_is_refused_quickly(tmp_path):
    # Stride-1 average pools with 256x256 windows and 255 padding on a 4x4 image: loaded at once, 15 s per image before.
    spec = {"input": [1, 4, 4], "layers": [{"type": "avgpool2d", "kernel": 256, "stride": 1, "padding": 255}] * 3 + [{"type": "flatten"}]}
    start = time.perf_counter()
    with pytest.raises((hpcnn.InvalidFileError, hpcnn.InvalidArgumentError)):
        hpcnn.from_spec(json.dumps(spec))
    assert time.perf_counter() - start < 5


def test_load_messages(tmp_path):
    with pytest.raises(hpcnn.HpcnnIOError, match="is a directory, not a model file"):
        hpcnn.load(tmp_path)
    path = os.path.join(tmp_path, "m.hpcnn")
    build().save(path)
    raw = bytearray(open(path, "rb").read())
    raw[8:12] = (1092352152).to_bytes(4, "little")
    open(path, "wb").write(bytes(raw))
    with pytest.raises(hpcnn.InvalidFileError, match="header is corrupt") as e:
        hpcnn.load(path)
    assert "newer" not in str(e.value)


def test_a_diverging_run_keeps_the_last_good_checkpoint(tmp_path):
    # An infinite value in the sixth batch (the data check off) makes the loss non-finite there: the run stops with
    # NumericError naming the newest checkpoint, which holds finite weights from before that batch.
    x, y = data()
    x[44, 0, 1, 1] = np.inf
    with pytest.raises(hpcnn.NumericError) as e:
        build().fit(x, y, batch_size=8, shuffle=False, verbose=0, check_data=False, checkpoint_dir=tmp_path,
                    checkpoint_every=1)
    files = sorted(f for f in os.listdir(tmp_path) if f.startswith("checkpoint-"))
    assert files, "checkpoints were written before the bad batch"
    assert files[-1] in str(e.value)
    restored = hpcnn.load_checkpoint(tmp_path)
    assert all(np.isfinite(w).all() for w in state(restored))
