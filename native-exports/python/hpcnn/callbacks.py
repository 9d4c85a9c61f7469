"""Callbacks for :meth:`hpcnn.Sequential.fit` (Keras style).

Subclass :class:`Callback` and override the hooks you need; pass instances in ``fit(..., callbacks=[...])``.
A callback stops training by setting ``self.model.stop_training = True`` or by returning True from
``on_batch_end`` / ``on_epoch_end``; training then ends after the current batch (or epoch) and the model keeps
its weights. An exception raised in a callback also stops training; ``fit`` re-raises it once the library
has returned, so the process never sees an exception inside native code.

Hooks run on the thread that called ``fit``, between batches, while the library waits.

Example::

    class StopAtAccuracy(hpcnn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            return logs["val_accuracy"] >= 0.9   # True stops training

    model.fit(x, y, epochs=20, validation_split=0.1, callbacks=[StopAtAccuracy()])
"""

__all__ = ["Callback", "EarlyStopping", "LambdaCallback"]


class Callback:
    """Base class of fit callbacks. ``self.model`` is the model being trained (set by fit).

    Hooks:
        on_train_begin(logs): before the first batch; logs is {}.
        on_batch_end(batch, logs): after every batch; batch counts from 0 within the epoch; logs has
            "epoch" (from 0), "batches" (per epoch), "loss" and "accuracy" (running means over the epoch so far).
        on_epoch_end(epoch, logs): after every epoch (and its validation); epoch counts from 0; logs is the
            epoch's dict of :class:`hpcnn.History` ("loss", "accuracy", "val_loss", "val_accuracy", "seconds",
            "samples_per_second").
        on_train_end(logs): after training stopped (also after an interruption); logs is {}.
    """

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs):
        pass

    def on_batch_end(self, batch, logs):
        pass

    def on_epoch_end(self, epoch, logs):
        pass

    def on_train_end(self, logs):
        pass


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(logs))``."""

    def __init__(self, on_train_begin=None, on_batch_end=None, on_epoch_end=None, on_train_end=None):
        for name, fn in (("on_train_begin", on_train_begin), ("on_batch_end", on_batch_end),
                         ("on_epoch_end", on_epoch_end), ("on_train_end", on_train_end)):
            if fn is not None:
                setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stops training when the monitored validation metric has not improved for ``patience`` epochs.

    Runs inside the library (hpcnn_fit_options_set_early_stopping) and needs validation data
    (``validation_data`` or ``validation_split``).

    Args:
        monitor: "val_loss" (default; lower is better) or "val_accuracy" (higher is better).
        patience: epochs without improvement before stopping (default 3).
        min_delta: smallest change that counts as an improvement (default 0).
        restore_best_weights: put back the weights of the best epoch when stopping (default False).
    """

    def __init__(self, monitor="val_loss", patience=3, min_delta=0.0, restore_best_weights=False):
        if monitor not in ("val_loss", "val_accuracy"):
            raise ValueError(f"EarlyStopping: monitor must be 'val_loss' or 'val_accuracy', got {monitor!r}")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)
