"""fit's callbacks, Ctrl-C handling, exceptions in callbacks, progress display and early stopping."""

import io
import os
import signal

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L
from hpcnn.callbacks import Callback, EarlyStopping, LambdaCallback

BATCH = 16


@pytest.fixture(scope="module")
def data(fashion):
    (x, y), (xt, yt) = fashion
    return x[:960], y[:960], xt[:200], yt[:200]


def make_model():
    model = hpcnn.Sequential([L.Conv2D(2, 3), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(10)], input_shape=(1, 28, 28), seed=3)
    model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.05, momentum=0.9))
    return model


def weights_after_batches(x, y, batches):
    """The weights of a fresh model trained on the first `batches` batches in order (no shuffling), step by step."""
    with make_model() as model:
        for b in range(batches):
            model.train_on_batch(x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH])
        return [model.get_weights(i) for i in (0, 4)]


def assert_weights_equal(model, expected):
    for layer, want in zip((0, 4), expected):
        for name, w in want.items():
            np.testing.assert_array_equal(model.get_weights(layer, name), w)


class StopAtBatch(Callback):
    def __init__(self, batch, how):
        self.batch, self.how, self.seen = batch, how, []

    def on_batch_end(self, batch, logs):
        self.seen.append((logs["epoch"], batch))
        if batch == self.batch:
            if self.how == "flag":
                self.model.stop_training = True
            else:
                return True


@pytest.mark.parametrize("how", ["flag", "return"])
def test_callback_stop_keeps_the_weights_of_the_batches_trained(data, how):
    x, y, _, _ = data
    stopper = StopAtBatch(4, how)
    with make_model() as model:
        history = model.fit(x, y, epochs=3, batch_size=BATCH, shuffle=False, verbose=0, callbacks=[stopper])
        assert stopper.seen == [(0, b) for b in range(5)]
        assert history.stopped_by_callback and not history.interrupted and not history.stopped_early
        assert history.epochs == [] and model.epochs_trained == 0  # a partial epoch is not an epoch
        assert_weights_equal(model, weights_after_batches(x, y, 5))


def test_epoch_callback_stop_after_two_epochs(data):
    x, y, xv, yv = data
    seen = []

    def on_epoch_end(epoch, logs):
        seen.append((epoch, sorted(logs)))
        return epoch == 1

    with make_model() as model:
        history = model.fit(x, y, epochs=5, batch_size=64, validation_data=(xv, yv), verbose=0,
                            callbacks=[LambdaCallback(on_epoch_end=on_epoch_end)])
        assert [e for e, _ in seen] == [0, 1]
        assert seen[0][1] == ["accuracy", "loss", "samples_per_second", "seconds", "val_accuracy", "val_loss"]
        assert history.epochs_completed == 2 == model.epochs_trained and history.stopped_by_callback
        assert len(history.history["val_loss"]) == 2


def test_ctrl_c_stops_after_the_current_batch_and_keeps_weights(data):
    x, y, _, _ = data

    class CtrlC(Callback):
        seen = []

        def on_batch_end(self, batch, logs):
            self.seen.append(batch)
            if batch == 3:
                os.kill(os.getpid(), signal.SIGINT)  # what pressing Ctrl-C in the terminal does

    cb = CtrlC()
    out = io.StringIO()
    with make_model() as model:
        history = model.fit(x, y, epochs=2, batch_size=BATCH, shuffle=False, verbose=2, stream=out, callbacks=[cb])
        assert history.interrupted and history.epochs == []
        assert 4 <= len(cb.seen) <= 5  # stops on the batch where the signal is handled, or the next one
        assert_weights_equal(model, weights_after_batches(x, y, len(cb.seen)))
        assert "interrupted" in out.getvalue()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        # the model goes on working
        assert model.predict(x[:3]).shape == (3, 10)


def test_second_ctrl_c_raises_keyboard_interrupt_after_the_library_returned(data):
    x, y, _, _ = data
    batches = []

    def on_batch_end(batch, logs):
        batches.append(batch)
        if batch == 1:
            for _ in range(2):  # Ctrl-C twice: the handler runs during the loop, between the two signals
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10000):
                    pass

    with make_model() as model:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, epochs=1, batch_size=BATCH, verbose=0, callbacks=[LambdaCallback(on_batch_end=on_batch_end)])
        assert len(batches) <= 3
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert model.predict(x[:2]).shape == (2, 10)


@pytest.mark.parametrize("hook", ["on_batch_end", "on_epoch_end", "on_train_end"])
def test_exception_in_a_callback_propagates_after_fit_returns(data, hook):
    x, y, _, _ = data
    calls = []

    def boom(*args):
        calls.append(args)
        raise ZeroDivisionError("boom from the callback")

    with make_model() as model:
        with pytest.raises(ZeroDivisionError, match="boom from the callback") as e:
            model.fit(x, y, epochs=3, batch_size=BATCH, verbose=0, callbacks=[LambdaCallback(**{hook: boom})])
        assert len(calls) == 1  # training stopped at the first call
        assert e.traceback[-1].name == "boom"  # the original traceback is kept
        assert model.epochs_trained == (1 if hook == "on_epoch_end" else 0 if hook == "on_batch_end" else 3)
        # the process and the model survive; training works again
        history = model.fit(x, y, epochs=1, batch_size=64, verbose=0)
        assert history.epochs_completed == 1


def test_early_stopping_restores_the_best_weights(data):
    x, y, xv, yv = data
    snapshots = []
    keep = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights(4)))
    with make_model() as model:
        # min_delta so large that nothing after the first epoch counts as an improvement
        history = model.fit(x, y, epochs=10, batch_size=64, validation_data=(xv, yv), verbose=0,
                            callbacks=[EarlyStopping(patience=2, min_delta=1e9, restore_best_weights=True), keep])
        assert history.epochs_completed == 3 and history.stopped_early
        assert not np.array_equal(snapshots[0]["weight"], snapshots[2]["weight"])
        np.testing.assert_array_equal(model.get_weights(4, "weight"), snapshots[0]["weight"])


def test_early_stopping_needs_validation_data(data):
    x, y, _, _ = data
    with make_model() as model:
        with pytest.raises(hpcnn.InvalidArgumentError, match="validation"):
            model.fit(x, y, callbacks=[EarlyStopping()], verbose=0)
        history = model.fit(x, y, epochs=2, batch_size=64, validation_split=0.25, verbose=0,
                            callbacks=[EarlyStopping(monitor="val_accuracy", patience=5)])
        assert history.epochs_completed == 2 and not history.stopped_early
        assert "val_accuracy" in history.epochs[-1]


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_verbose_1_on_a_terminal_shows_a_live_line_and_a_summary(data):
    x, y, xv, yv = data
    out = FakeTerminal()
    with make_model() as model:
        model.fit(x, y, epochs=2, batch_size=BATCH, validation_data=(xv, yv), verbose=1, stream=out)
    text = out.getvalue()
    assert "\r" in text and "ETA" in text and "60/60" in text
    lines = [line.split("\r")[-1] for line in text.split("\n") if line.strip()]
    assert len(lines) == 2
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"Epoch {epoch}/2 - ") and "samples/s" in line
        assert all(k in line for k in ("loss", "accuracy", "val_loss", "val_accuracy"))


def test_verbose_levels_off_a_terminal(data):
    x, y, _, _ = data
    with make_model() as model:
        quiet, summary, plain = io.StringIO(), io.StringIO(), io.StringIO()
        model.fit(x, y, epochs=1, batch_size=64, verbose=0, stream=quiet)
        model.fit(x, y, epochs=2, batch_size=64, verbose=2, stream=summary)
        model.fit(x, y, epochs=1, batch_size=64, verbose=1, stream=plain)
        assert quiet.getvalue() == ""
        assert summary.getvalue().count("\n") == 2 and "\r" not in summary.getvalue()
        assert plain.getvalue().count("\n") == 1 and "\r" not in plain.getvalue()  # no live line in a log file
