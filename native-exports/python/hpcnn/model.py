"""The model: :class:`Sequential`, a stack of layers trained and run by libhpcnn."""

import json
import math
import os
import signal
import sys
import threading
import time
from ctypes import byref, c_char_p, c_double, c_int32, c_int64, c_void_p

import numpy as np

from . import callbacks as _callbacks
from . import distributed as _distributed
from . import optimizers as _optimizers
from ._native import BATCH_CALLBACK, EPOCH_CALLBACK, MESSAGE_CALLBACK, OwnedHandle, check, encode_path, lib, take_string
from .datasets import NativeDataset
from .errors import InvalidArgumentError, InvalidStateError
from .layers import Layer

__all__ = ["Sequential", "LayerInfo", "History", "load", "from_spec", "load_checkpoint", "DEFAULT_MAX_FLOPS_PER_IMAGE"]

#: The compute budget model files and specs are loaded with unless told otherwise: forward FLOPs per image
#: (10 GFLOP; real small CNNs cost well under 1). A network above it is refused with InvalidFileError naming the layer.
DEFAULT_MAX_FLOPS_PER_IMAGE = int(lib.hpcnn_default_max_flops_per_image())


def _budget(max_flops_per_image):
    """The budget argument of the C calls: 0 for the default."""
    if max_flops_per_image is None:
        return 0
    value = int(max_flops_per_image)
    if value <= 0:
        raise InvalidArgumentError(f"max_flops_per_image must be positive, got {max_flops_per_image}")
    return value


def _checkpoint_every(every):
    """checkpoint_every as (batches, seconds): an int is batches; "30s", "5m", "1h" or a timedelta is a time."""
    if every is None:
        return 0, 0.0
    if isinstance(every, bool):
        raise InvalidArgumentError(f"checkpoint_every takes a number of batches or a time such as '5m', got {every!r}")
    if isinstance(every, int):
        if every < 1:
            raise InvalidArgumentError(f"checkpoint_every must be at least 1 batch, got {every}")
        return every, 0.0
    if hasattr(every, "total_seconds"):
        seconds = every.total_seconds()
    else:
        text = str(every).strip()
        units = {"s": 1, "m": 60, "h": 3600}
        try:
            seconds = float(text[:-1]) * units[text[-1]]
        except (KeyError, ValueError, IndexError):
            raise InvalidArgumentError(f"checkpoint_every takes a number of batches (200) or a time ('30s', '5m', '1h'), got {every!r}") from None
    if not seconds > 0:
        raise InvalidArgumentError(f"checkpoint_every must be a positive time, got {every!r}")
    return 0, float(seconds)

_LOSSES = {
    "cross_entropy": 0, "crossentropy": 0, "categorical_crossentropy": 0, "sparse_categorical_crossentropy": 0,
    "binary_cross_entropy": 1, "binary_crossentropy": 1, "bce": 1,
    "mse": 2, "mean_squared_error": 2,
}


class LayerInfo:
    """What the library knows about one layer of a model (``model.layers[i]``).

    Attributes:
        index: position in the model (0 = first layer).
        kind: the layer type, e.g. "conv2d", "relu", "dense".
        output_shape: (channels, height, width) of one sample's output; a flat vector of F is (F, 1, 1).
        params: {name: shape} of the layer's parameter tensors, e.g. {"weight": (32, 1, 3, 3), "bias": (32,)}.
        param_count: number of values in all of them.
        frozen: True if training leaves the layer's parameters unchanged.
    """

    def __init__(self, index, kind, output_shape, params, frozen):
        self.index, self.kind, self.output_shape, self.params, self.frozen = index, kind, output_shape, params, frozen
        self.param_count = sum(int(np.prod(s)) for s in params.values())

    def __repr__(self):
        frozen = ", frozen" if self.frozen else ""
        return f"LayerInfo({self.index}: {self.kind}, output {self.output_shape}, params {self.params}{frozen})"


class History:
    """What :meth:`Sequential.fit` returns.

    Attributes:
        epochs: one dict per completed epoch, with "loss" and "accuracy" (training means over the epoch),
            "val_loss" and "val_accuracy" (only with validation data), "seconds" (training time of the epoch) and
            "samples_per_second".
        history: the same as a dict of lists, Keras style: ``history.history["val_accuracy"][-1]``.
        epochs_completed: len(epochs).
        interrupted: training was stopped by Ctrl-C (KeyboardInterrupt); the model keeps the weights it had after
            the last batch it trained.
        stopped_by_callback: a callback asked to stop (returned True or set ``model.stop_training``).
        stopped_early: an :class:`hpcnn.callbacks.EarlyStopping` callback ended training.
        resumed_epochs: with ``resume=True``, how many of ``epochs`` came from the checkpoint (ran before).
        resumed_from: the checkpoint file training continued from, or None.
        last_checkpoint: the newest checkpoint this fit wrote, or None.
        messages: notices about checkpoints (a damaged one skipped, where the resume started).
        ranks: the processes the fit split its batches over (1 unless distributed: :mod:`hpcnn.distributed`).
        communication_seconds: the time this process spent exchanging gradients with the others (0 for one process).
    """

    def __init__(self):
        self.epochs = []
        self.interrupted = False
        self.stopped_by_callback = False
        self.stopped_early = False
        self.resumed_epochs = 0
        self.resumed_from = None
        self.last_checkpoint = None
        self.messages = []
        self.ranks = 1
        self.communication_seconds = 0.0

    @property
    def history(self):
        keys = []
        for e in self.epochs:
            keys.extend(k for k in e if k not in keys)
        return {k: [e.get(k, math.nan) for e in self.epochs] for k in keys}

    @property
    def epochs_completed(self):
        return len(self.epochs)

    def __repr__(self):
        last = self.epochs[-1] if self.epochs else {}
        return f"History({len(self.epochs)} epoch(s), last: {last})"


def _wants_every_batch(callback):
    """True when a callback overrides on_batch_end (by subclassing or, as LambdaCallback does, per instance)."""
    hook = getattr(callback, "on_batch_end", None)
    return getattr(hook, "__func__", hook) is not _callbacks.Callback.on_batch_end


def _format_metrics(logs):
    parts = []
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if key in logs:
            parts.append(f"{key} {logs[key]:.4f}")
    return " - ".join(parts)


class _Progress:
    """The verbose=1/2 display of fit: a live line per epoch (only on a terminal, verbose=1) and a summary line."""

    def __init__(self, verbose, stream):
        self.verbose, self.stream = verbose, stream
        self.live = verbose == 1 and getattr(stream, "isatty", lambda: False)()
        self.epoch_start = time.perf_counter()
        self.last_draw = 0.0
        self.width = 0

    def _write_live(self, text):
        pad = max(0, self.width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self.width = len(text)

    def batch(self, epoch, epochs, batch, batches, loss, accuracy):
        now = time.perf_counter()
        if batch == 1:
            self.epoch_start = now
        if not self.live or (now - self.last_draw < 0.1 and batch != batches):
            return
        self.last_draw = now
        elapsed = now - self.epoch_start
        eta = elapsed / batch * (batches - batch)
        done = int(20 * batch / batches)
        bar = "=" * done + (">" if done < 20 else "") + "." * max(0, 19 - done)
        tail = "validating..." if batch == batches else f"ETA {eta:.0f}s"
        self._write_live(f"Epoch {epoch}/{epochs} {batch}/{batches} [{bar}] loss {loss:.4f} - accuracy {accuracy:.4f} - {tail}")

    def epoch(self, epoch, epochs, logs):
        if self.verbose <= 0:
            return
        line = (f"Epoch {epoch}/{epochs} - {logs['seconds']:.1f}s - {logs['samples_per_second']:,.0f} samples/s - "
                + _format_metrics(logs))
        if self.live:
            self.stream.write("\r" + line + " " * max(0, self.width - len(line)) + "\n")
            self.width = 0
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text):
        if self.verbose > 0:
            self.stream.write(("\n" if self.live and self.width else "") + text + "\n")
            self.width = 0
            self.stream.flush()


class _FitRun:
    """The Python side of one hpcnn_fit call: the ctypes callbacks, Ctrl-C handling and the user's callbacks.

    Nothing may propagate out of a ctypes callback (ctypes would print and ignore it, and training would go on),
    so every exception, KeyboardInterrupt included, is caught, remembered, and turned into "stop"; fit re-raises
    it after hpcnn_fit has returned.
    """

    def __init__(self, model, user_callbacks, progress):
        self.model, self.callbacks, self.progress = model, user_callbacks, progress
        self.history = History()
        self.error = None
        self.interrupts = 0
        # Keep the ctypes function objects alive while the library may call them.
        self.c_epoch = EPOCH_CALLBACK(self._on_epoch)
        self.c_batch = BATCH_CALLBACK(self._on_batch)
        self.c_message = MESSAGE_CALLBACK(self._on_message)

    def _on_message(self, user, message):
        try:
            text = message.decode("utf-8", "replace")
            self.history.messages.append(text)
            self.progress.message(text)
        except BaseException as e:  # noqa: B036
            self._fail(e)

    def _stop_requested(self):
        return self.error is not None or self.interrupts > 0 or self.model.stop_training

    def _on_batch(self, user, epoch, epochs, batch, batches, loss, accuracy):
        try:
            self.progress.batch(epoch, epochs, batch, batches, loss, accuracy)
            if self.callbacks:
                logs = {"epoch": epoch - 1, "batches": batches, "loss": loss, "accuracy": accuracy}
                for cb in self.callbacks:
                    if cb.on_batch_end(batch - 1, logs):
                        self.model.stop_training = True
        except BaseException as e:  # noqa: B036 - must not escape into native code
            self._fail(e)
        return 1 if self._stop_requested() else 0

    def _on_epoch(self, user, epoch, epochs, loss, accuracy, val_loss, val_accuracy, seconds, samples_per_second):
        try:
            logs = {"loss": loss, "accuracy": accuracy}
            if not math.isnan(val_loss):
                logs["val_loss"] = val_loss
                logs["val_accuracy"] = val_accuracy
            logs["seconds"] = seconds
            logs["samples_per_second"] = samples_per_second
            self.history.epochs.append(logs)
            self.progress.epoch(epoch, epochs, logs)
            for cb in self.callbacks:
                if cb.on_epoch_end(epoch - 1, dict(logs)):
                    self.model.stop_training = True
        except BaseException as e:  # noqa: B036
            self._fail(e)
        return 1 if self._stop_requested() else 0

    def _fail(self, e):
        if self.error is None:
            self.error = e

    def on_sigint(self, signum, frame):
        """First Ctrl-C: stop after the current batch, keep the weights. A second one: KeyboardInterrupt."""
        self.interrupts += 1
        if self.interrupts > 1:
            raise KeyboardInterrupt
        self.progress.message("interrupted: stopping after this batch (Ctrl-C again to raise KeyboardInterrupt)")


class _SigintGuard:
    """Routes Ctrl-C to the fit run while hpcnn_fit runs, when fit runs on the main thread with Python's default
    SIGINT handler (a user's own handler is left alone; if it raises, the callbacks catch it)."""

    def __init__(self, run):
        self.run, self.previous = run, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self.previous = signal.signal(signal.SIGINT, self.run.on_sigint)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class Sequential:
    """A stack of layers for images of shape (channels, height, width), built, trained and run by libhpcnn.

    Example::

        import hpcnn
        from hpcnn import layers
        model = hpcnn.Sequential([
            layers.Conv2D(32, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2),
            layers.Flatten(), layers.Dense(10),
        ], input_shape=(1, 28, 28), seed=42)
        model.compile(loss="cross_entropy", optimizer=hpcnn.optimizers.SGD(lr=0.01, momentum=0.9))
        history = model.fit(x_train, y_train, epochs=3, batch_size=64, validation_data=(x_test, y_test))
        loss, accuracy = model.evaluate(x_test, y_test)
        probabilities = model.predict(x_test[:5])            # (5, 10)
        model.save("fashion.hpcnn")

    Args:
        layers: layer descriptions from :mod:`hpcnn.layers` (or spec dicts), added in order with :meth:`add`.
        input_shape: (channels, height, width) of one input image; (height, width) means one channel.
        seed: seed of the initial weights (and of shuffling and dropout unless fit is given another).

    Images passed to the methods are float32-convertible arrays shaped (N, C, H, W), or (N, H, W) for a
    one-channel model; a single image (C, H, W) — or (H, W) for one channel — gives a result without the batch
    axis (so ``x[0]`` of an (N, 1, 28, 28) array is one image; an (N, H, W) array with N = 1 is read as that one
    image too: pass (1, 1, H, W) to keep the batch axis). Pixel values are used as given (scale uint8 images to
    [0, 1] yourself). A C-contiguous float32 array is passed to the library without a copy. Labels are integer
    arrays (N,).

    Threads: predict, predict_classes, evaluate and layer_output may be called on one model from several Python
    threads at once (the library only reads the weights, and ctypes releases the GIL during the call, so they run
    in parallel). Anything that changes the model (fit, train_on_batch, set_weights, add, compile, freeze, close)
    must not overlap with any other call on it.

    The model owns a library handle: release it with :meth:`close` or a ``with`` block; otherwise it is released
    when the object is garbage-collected.
    """

    def __init__(self, layers=None, input_shape=None, seed=42):
        if input_shape is None:
            raise InvalidArgumentError("Sequential: give input_shape=(channels, height, width) of one input image")
        shape = tuple(int(v) for v in input_shape)
        if len(shape) == 2:
            shape = (1,) + shape
        if len(shape) != 3:
            raise InvalidArgumentError(f"Sequential: input_shape must be (channels, height, width), got {input_shape!r}")
        out = c_void_p()
        check(lib.hpcnn_model_create(shape[0], shape[1], shape[2], int(seed), byref(out)))
        self._init_handle(out)
        for layer in layers or ():
            self.add(layer)

    def _init_handle(self, handle):
        self._owned = OwnedHandle(handle, lib.hpcnn_model_release)
        self.stop_training = False
        self._structure = None

    @classmethod
    def _from_handle(cls, handle):
        model = cls.__new__(cls)
        model._init_handle(handle)
        return model

    # ---------------------------------------------------------------- lifetime

    @property
    def _h(self):
        if self._owned.closed:
            raise InvalidStateError("this model was closed (close() or the end of its with block released it)")
        return self._owned.value

    def close(self):
        """Releases the library's model now (later calls raise InvalidStateError). Calling it twice is fine."""
        self._owned.close()

    @property
    def closed(self):
        return self._owned.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- construction

    @classmethod
    def load(cls, path, max_flops_per_image=None):
        """Loads a model file written by :meth:`save` (or the hpcnn command): architecture, weights, loss,
        optimizer state and epochs trained, so training can resume.

        A model file is untrusted input: one whose forward pass would cost more than max_flops_per_image FLOPs per
        image (None: :data:`DEFAULT_MAX_FLOPS_PER_IMAGE`, 10 GFLOP) is refused before any weight is read; raise it for
        a large network you trust.

        Raises:
            HpcnnIOError (an OSError): the file is missing or unreadable, or the path is a directory.
            InvalidFileError: the content is corrupt, truncated, of another version, fails its checksum, or costs more
                than the budget (the message names the layer and the cost).
        """
        out = c_void_p()
        check(lib.hpcnn_model_load_with_budget(encode_path(path), _budget(max_flops_per_image), byref(out)))
        return cls._from_handle(out)

    @classmethod
    def from_spec(cls, spec, max_flops_per_image=None):
        """A model from a network spec: a dict, a JSON string, or the path of a JSON spec file.

        The spec has "input" [C, H, W], optional "seed", "layers" (objects as :meth:`Layer.to_spec` gives), and
        optionally "loss" and "optimizer" (the model is then compiled), e.g.::

            {"input": [1, 28, 28], "seed": 42,
             "layers": [{"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same"}, {"type": "relu"},
                        {"type": "flatten"}, {"type": "dense", "units": 10}],
             "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9}}

        Raises InvalidArgumentError naming the field for a bad spec, InvalidFileError for a network whose forward
        pass costs more than max_flops_per_image per image (None: the default budget, see :meth:`load`).
        """
        if isinstance(spec, dict):
            text = json.dumps(spec)
        elif isinstance(spec, (str, os.PathLike)) and not str(spec).lstrip().startswith("{"):
            with open(spec, encoding="utf-8") as f:
                text = f.read()
        else:
            text = str(spec)
        out = c_void_p()
        check(lib.hpcnn_model_from_spec_with_budget(text.encode("utf-8"), _budget(max_flops_per_image), byref(out)))
        return cls._from_handle(out)

    def add(self, layer):
        """Appends a layer (a :mod:`hpcnn.layers` object, a spec dict or a JSON string) and returns self.

        The library checks it against the current output shape; a layer that does not fit raises
        InvalidArgumentError naming it, e.g. "layer 0 (dense): expected a flat input ... (add a flatten layer)".
        """
        if isinstance(layer, Layer):
            text = layer.to_json()
        elif isinstance(layer, dict):
            text = json.dumps(layer)
        elif isinstance(layer, str):
            text = layer
        else:
            raise TypeError(f"add: expected an hpcnn.layers object, a spec dict or a JSON string, got {layer!r}")
        self._structure = None
        check(lib.hpcnn_add_layer_json(self._h, text.encode("utf-8")))
        return self

    def compile(self, loss="cross_entropy", optimizer="sgd", schedule=None):
        """Chooses the loss and the optimizer (needed before fit and evaluate).

        Args:
            loss: "cross_entropy" (softmax cross-entropy over >= 2 outputs, labels 0..C-1; Keras names such as
                "sparse_categorical_crossentropy" work too), "binary_cross_entropy" (one sigmoid output, labels 0/1)
                or "mse" (squared error against the one-hot label).
            optimizer: "sgd", "adam", or an :class:`hpcnn.optimizers.SGD` / :class:`hpcnn.optimizers.Adam`.
            schedule: None, :class:`hpcnn.optimizers.StepSchedule` or :class:`hpcnn.optimizers.CosineSchedule`.
        Raises InvalidArgumentError when the loss does not fit the output (e.g. cross-entropy on one output).
        """
        key = loss.lower() if isinstance(loss, str) else loss
        if key not in _LOSSES:
            raise InvalidArgumentError(f"compile: unknown loss {loss!r} (use 'cross_entropy', 'binary_cross_entropy' or 'mse')")
        opt = _optimizers.get(optimizer)
        check(opt._compile(lib, self._h, _LOSSES[key]))
        if schedule is not None:
            check(schedule._apply(lib, self._h))
        return self

    def set_learning_rate(self, lr):
        """Changes the optimizer's base learning rate (the model must be compiled)."""
        check(lib.hpcnn_model_set_learning_rate(self._h, float(lr)))

    # ---------------------------------------------------------------- description

    def _layout(self):
        """(input shape, output size, [(kind, output shape) per layer]), read from the library once and again after
        add(): the only call that changes them. Every library call re-acquires the GIL on return, which costs
        milliseconds when several threads predict at once, so predict must not ask again each time."""
        if self._structure is None:
            h = self._h
            c, hh, w, n, size = c_int32(), c_int32(), c_int32(), c_int32(), c_int32()
            check(lib.hpcnn_model_input_shape(h, byref(c), byref(hh), byref(w)))
            check(lib.hpcnn_model_output_size(h, byref(size)))
            check(lib.hpcnn_model_layer_count(h, byref(n)))
            layers = []
            for i in range(n.value):
                kind, lc, lh, lw = c_char_p(), c_int32(), c_int32(), c_int32()
                check(lib.hpcnn_layer_kind(h, i, byref(kind)))
                check(lib.hpcnn_layer_output_shape(h, i, byref(lc), byref(lh), byref(lw)))
                layers.append((kind.value.decode("utf-8"), (lc.value, lh.value, lw.value)))
            self._structure = ((c.value, hh.value, w.value), size.value, layers)
        return self._structure

    @property
    def input_shape(self):
        """(channels, height, width) of one input image."""
        return self._layout()[0]

    @property
    def output_size(self):
        """Number of outputs per image (classes, or 1 for a binary sigmoid model)."""
        return self._layout()[1]

    @property
    def epochs_trained(self):
        """Epochs trained so far, over all fit calls (kept in the model file)."""
        n = c_int32()
        check(lib.hpcnn_model_epochs_trained(self._h, byref(n)))
        return n.value

    @property
    def inference_cache_bytes(self):
        """Memory budget (bytes) of the workspaces kept between predict/evaluate calls. Calls of any batch size share a
        few capacity classes; beyond the budget the least recently used are freed. Until set: 256 MiB, or the last
        workspace's size when larger (repeated calls on large inputs keep theirs); once set, a hard bound. 0 keeps none."""
        n = c_int64()
        check(lib.hpcnn_model_get_inference_cache(self._h, byref(n)))
        return n.value

    @inference_cache_bytes.setter
    def inference_cache_bytes(self, value):
        check(lib.hpcnn_model_set_inference_cache(self._h, int(value)), "inference_cache_bytes")

    def count_params(self):
        """Number of trainable parameter values."""
        n = c_int64()
        check(lib.hpcnn_model_parameter_count(self._h, byref(n)))
        return n.value

    def __len__(self):
        return len(self._layout()[2])

    def _layer_index(self, i):
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"layer index must be an int, got {i!r}")
        return int(i) + n if -n <= i < 0 else int(i)  # out-of-range indices are left for the library to report

    def _param_infos(self, i):
        count = c_int32()
        check(lib.hpcnn_layer_param_count(self._h, i, byref(count)))
        infos = []
        for p in range(count.value):
            name, rank, dims, n = c_char_p(), c_int32(), (c_int32 * 8)(), c_int64()
            check(lib.hpcnn_layer_param_info(self._h, i, p, byref(name), byref(rank), dims, byref(n)))
            infos.append((name.value.decode("utf-8"), tuple(dims[:rank.value])))
        return infos

    def layer(self, i):
        """:class:`LayerInfo` of layer i (negative indices count from the end)."""
        i = self._layer_index(i)
        frozen = c_int32()
        check(lib.hpcnn_is_frozen(self._h, i, byref(frozen)))  # first: it reports an index out of range
        kind, shape = self._layout()[2][i]
        return LayerInfo(i, kind, shape, dict(self._param_infos(i)), bool(frozen.value))

    @property
    def layers(self):
        """A list of :class:`LayerInfo`, one per layer (a fresh snapshot at each access)."""
        return [self.layer(i) for i in range(len(self))]

    def summary(self, print_fn=print):
        """Prints a table of the layers (output shapes, parameters, MFLOP); with print_fn=None returns the text.
        A frozen layer's kind is marked with *."""
        out = c_void_p()
        check(lib.hpcnn_model_summary(self._h, byref(out)))
        text = take_string(out)
        if print_fn is None:
            return text
        print_fn(text.rstrip("\n"))

    def spec(self):
        """The model's network spec as a dict (architecture, seed, loss, optimizer, schedule): what
        :meth:`from_spec` takes. ``json.dumps(model.spec(), indent=2)`` writes a spec file."""
        out = c_void_p()
        check(lib.hpcnn_model_spec(self._h, byref(out)))
        return json.loads(take_string(out))

    def __repr__(self):
        if self.closed:
            return "<hpcnn.Sequential (closed)>"
        return f"<hpcnn.Sequential: {len(self)} layers, input {self.input_shape}, {self.count_params():,} parameters>"

    # ---------------------------------------------------------------- parameters

    def get_weights(self, i, name=None):
        """Layer i's parameters as new float32 arrays: a dict {name: array} in the layer's order, or one array
        if ``name`` is given. Shapes: conv weight (filters, in_channels, kh, kw), conv/dense bias (units,),
        dense weight (units, in_features), batchnorm2d gamma/beta/running_mean/running_var (channels,).
        A layer without parameters gives {}."""
        i = self._layer_index(i)
        result = {}
        for pname, shape in self._param_infos(i):
            if name is not None and pname != name:
                continue
            values = np.empty(shape, dtype=np.float32)
            check(lib.hpcnn_get_param(self._h, i, pname.encode("utf-8"), values, values.size))
            result[pname] = values
        if name is None:
            return result
        if name not in result:
            # Let the library say which parameters exist.
            check(lib.hpcnn_get_param(self._h, i, str(name).encode("utf-8"), np.empty(0, dtype=np.float32), 0))
        return result[name]

    def set_weights(self, i, weights, values=None):
        """Sets parameters of layer i: ``set_weights(i, {"weight": w, "bias": b})`` or ``set_weights(i, "weight", w)``.

        Each array must have the parameter's shape (see :meth:`get_weights`); axes of length 1 may be left out
        or added, so a single 3x3 filter may be given as a (3, 3) array for a (1, 1, 3, 3) weight. Setting
        weights lets hand-made filters be loaded. Raises InvalidArgumentError for an unknown name or a wrong shape.
        """
        i = self._layer_index(i)
        if isinstance(weights, str):
            if values is None:
                raise TypeError("set_weights(i, name, values): values missing")
            weights = {weights: values}
        elif values is not None:
            raise TypeError("set_weights takes a dict, or a name and an array")
        shapes = dict(self._param_infos(i))
        for pname, array in weights.items():
            a = np.ascontiguousarray(array, dtype=np.float32)
            shape = shapes.get(pname)
            if shape is not None and a.shape != shape:
                squeezed = tuple(d for d in shape if d != 1)
                if tuple(d for d in a.shape if d != 1) != squeezed:
                    raise InvalidArgumentError(f"set_weights: layer {i} {pname} has shape {shape}, got an array of shape {a.shape}")
                a = a.reshape(shape)
            # An unknown name reaches the library, whose message lists the parameters the layer has.
            check(lib.hpcnn_set_param(self._h, i, str(pname).encode("utf-8"), a.reshape(-1), a.size))

    def freeze(self, i):
        """Freezes layer i: training leaves its parameters unchanged (transfer learning, experiments)."""
        check(lib.hpcnn_set_frozen(self._h, self._layer_index(i), 1))

    def unfreeze(self, i):
        """Makes layer i trainable again."""
        check(lib.hpcnn_set_frozen(self._h, self._layer_index(i), 0))

    # ---------------------------------------------------------------- data conversion

    def _images(self, x, what="x"):
        """(N, C, H, W) C-contiguous float32 images (no copy when x already is one) and whether x was one image."""
        a, single = self._shaped(x, what)
        return np.ascontiguousarray(a, dtype=np.float32), single

    def _shaped(self, x, what):
        """x as an (N, C, H, W) array of its own dtype, and whether x was one image."""
        c, h, w = self.input_shape
        a = np.asarray(x)
        single = False
        if a.ndim == 3 and a.shape == (c, h, w):
            a, single = a.reshape(1, c, h, w), True
        elif a.ndim == 3 and c == 1 and a.shape[1:] == (h, w):
            a = a.reshape(a.shape[0], 1, h, w)
        elif a.ndim == 2 and c == 1 and a.shape == (h, w):
            a, single = a.reshape(1, 1, h, w), True
        if a.ndim != 4 or a.shape[1:] != (c, h, w) or a.shape[0] == 0:
            one = f" or (N, {h}, {w})" if c == 1 else ""
            raise InvalidArgumentError(f"{what}: the model takes images of shape (N, {c}, {h}, {w}){one}, or one image "
                                       f"({c}, {h}, {w}); got an array of shape {np.shape(x)}")
        return a, single

    @staticmethod
    def _labels(y, n, what="y"):
        a = np.asarray(y)
        if a.ndim != 1 or a.shape[0] != n:
            raise InvalidArgumentError(f"{what}: expected {n} labels (one per image, shape ({n},)), got an array of shape {a.shape}")
        if not np.issubdtype(a.dtype, np.integer):
            if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or not np.all(np.equal(np.mod(a, 1), 0)):
                raise InvalidArgumentError(f"{what}: labels must be whole numbers (class indices), got dtype {a.dtype}")
        return np.ascontiguousarray(a, dtype=np.int32)

    def _dataset(self, x, y, what):
        images, _ = self._images(x, f"{what} images")
        labels = self._labels(y, images.shape[0], f"{what} labels")
        # The dataset accepts every label >= 0 so that the model's own check reports labels its output cannot score.
        k = self.output_size
        classes = max(2 if k == 1 else k, int(labels.max()) + 1)
        return NativeDataset.from_arrays(images, labels, classes)

    # ---------------------------------------------------------------- training

    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, validation_split=0.0, shuffle=True, seed=None,
            threads=None, verbose=1, callbacks=None, stream=None, checkpoint_dir=None, checkpoint_every=None, resume=False,
            check_data=True, distributed=None):
        """Trains the model (compile it first).

        Args:
            x, y: training images and integer labels.
            epochs: epochs to train (default 1).
            batch_size: images per step (default 32; 1 is per-sample SGD).
            validation_data: (x_val, y_val) evaluated after every epoch, or None.
            validation_split: without validation_data, hold out this last fraction of (x, y) (0 < f < 1).
            shuffle: reshuffle the training data every epoch (default True).
            seed: seed of the shuffling and dropout; None uses the model's seed.
            threads: threads for this fit alone (the library-wide count, :func:`hpcnn.set_threads`, is unchanged
                afterwards); None uses the library-wide count.
            verbose: 0 silent; 1 a live progress line per epoch (batches done, running loss and accuracy, ETA;
                only when the stream is a terminal) and a summary line per epoch; 2 the summary lines only.
            callbacks: :mod:`hpcnn.callbacks` objects (e.g. EarlyStopping(patience=2)).
            stream: where progress goes (default sys.stderr).
            checkpoint_dir: write crash-safe checkpoints into this folder (created if needed): at every epoch end, when
                training is stopped mid-epoch (Ctrl-C, a callback) and per checkpoint_every. Each holds the model,
                optimizer state and where the fit is (data order and position, shuffling generator, early-stopping state,
                metrics); written atomically; the two newest are kept. :func:`hpcnn.load` reads one as a model.
            checkpoint_every: besides epoch ends, a number of batches (200) or a time ("30s", "5m", "1h", a timedelta).
            resume: continue from the newest good checkpoint in checkpoint_dir (a damaged one is skipped with a notice
                and the one before it used; with none there, train from the start). Build the model the same way (or
                take :func:`hpcnn.load_checkpoint`'s) and give the same data and options: the result is bit for bit
                that of a run never interrupted. The history then holds the earlier epochs too.
            check_data: refuse NaN or infinite values in x (and the validation data) before training, naming the
                first bad sample (default True: one pass over the data, and without it a bad value only shows up as a
                NumericError that blames the learning rate).
            distributed: None (default): split every batch over the processes of an mpirun launch when there is more
                than one (``mpirun -np 4 python3 train.py``); False: train alone in each process; True: require MPI.
                Every process must give the same data, model and options; the weights then equal bit for bit those of
                one process. Progress is printed by rank 0 only; callbacks run in every process (save or print where
                :func:`hpcnn.distributed.rank` is 0). An error inside a distributed fit ends every process (exit code
                1, the message on standard error) instead of raising. See :mod:`hpcnn.distributed`.
        Returns:
            a :class:`History`: per-epoch loss, accuracy, val_loss, val_accuracy, seconds, samples_per_second.

        Ctrl-C stops training after the current batch and returns normally with ``history.interrupted`` set; the
        model keeps the weights it has (an interrupted epoch is not counted in the history). A second Ctrl-C
        raises KeyboardInterrupt once the library has stopped. An exception raised by a callback stops training
        the same way and is re-raised when fit returns.

        Raises:
            InvalidStateError: the model is not compiled.
            InvalidArgumentError: shapes that do not fit, labels outside the model's classes, bad options.
            NumericError: the loss or the weights became NaN or infinite (lower the learning rate); the last good
                checkpoint is kept and named.
        """
        every_batches, every_seconds = _checkpoint_every(checkpoint_every)
        if resume and checkpoint_dir is None:
            raise InvalidArgumentError("fit: resume=True needs checkpoint_dir (the folder the checkpoints are in)")
        if checkpoint_every is not None and checkpoint_dir is None:
            raise InvalidArgumentError("fit: checkpoint_every needs checkpoint_dir")
        callbacks = list(callbacks or [])
        early = [cb for cb in callbacks if isinstance(cb, _callbacks.EarlyStopping)]
        if len(early) > 1:
            raise InvalidArgumentError("fit: give at most one EarlyStopping callback")
        if early and validation_data is None and not validation_split:
            raise InvalidArgumentError("fit: EarlyStopping monitors validation metrics; give validation_data or validation_split")
        mode = _distributed._mode(distributed)
        # Every rank gets the same figures: one progress display (rank 0's) is enough.
        shown = int(verbose) if _distributed.rank() == 0 else 0
        progress = _Progress(shown, stream if stream is not None else sys.stderr)
        self.stop_training = False
        run = _FitRun(self, [cb for cb in callbacks if not isinstance(cb, _callbacks.EarlyStopping)], progress)

        train = self._dataset(x, y, "training data")
        validation = options = None
        try:
            if validation_data is not None:
                if len(validation_data) != 2:
                    raise InvalidArgumentError("fit: validation_data must be (x_val, y_val)")
                validation = self._dataset(validation_data[0], validation_data[1], "validation data")
            out = c_void_p()
            check(lib.hpcnn_fit_options_create(byref(out)))
            options = OwnedHandle(out, lib.hpcnn_fit_options_release)
            o = options.value
            check(lib.hpcnn_fit_options_set_epochs(o, int(epochs)), "fit: epochs")
            check(lib.hpcnn_fit_options_set_batch_size(o, int(batch_size)), "fit: batch_size")
            check(lib.hpcnn_fit_options_set_shuffle(o, int(bool(shuffle))))
            if seed is not None:
                check(lib.hpcnn_fit_options_set_seed(o, int(seed)))
            if threads is not None:
                check(lib.hpcnn_fit_options_set_threads(o, int(threads)), "fit: threads")
            if validation is not None:
                check(lib.hpcnn_fit_options_set_validation(o, validation.value))
            elif validation_split:
                check(lib.hpcnn_fit_options_set_validation_split(o, float(validation_split)), "fit: validation_split")
            if early:
                es = early[0]
                check(lib.hpcnn_fit_options_set_early_stopping(o, es.patience, es.min_delta, int(es.monitor == "val_accuracy"),
                                                               int(es.restore_best_weights)), "fit: EarlyStopping")
            check(lib.hpcnn_fit_options_set_callbacks(o, run.c_epoch, run.c_batch, None))
            # A call back into Python costs more than a small network's step: progress and Ctrl-C are served ten
            # times a second unless a callback of the user's wants every batch.
            every_batch = any(_wants_every_batch(cb) for cb in run.callbacks)
            check(lib.hpcnn_fit_options_set_batch_callback_interval(o, 0.0 if every_batch else 0.1), "fit: callbacks")
            check(lib.hpcnn_fit_options_set_message_callback(o, run.c_message, None))
            check(lib.hpcnn_fit_options_set_check_data(o, int(bool(check_data))))
            check(lib.hpcnn_fit_options_set_distributed(o, mode), "fit: distributed")
            if mode == 1 or (mode == -1 and _distributed.size() > 1):
                _distributed._finalize_at_exit()  # this fit starts MPI; Open MPI wants it ended before the process exits
            if checkpoint_dir is not None:
                check(lib.hpcnn_fit_options_set_checkpoint(o, encode_path(checkpoint_dir), every_batches, every_seconds),
                      "fit: checkpoint_dir")
                check(lib.hpcnn_fit_options_set_resume(o, int(bool(resume))))

            for cb in callbacks:
                cb.set_model(self)
            for cb in run.callbacks:
                cb.on_train_begin({})
            completed = c_int32()
            with _SigintGuard(run):
                status = lib.hpcnn_fit(self._h, train.value, o, byref(completed))
            if status == 0:
                text = c_void_p()
                check(lib.hpcnn_fit_options_history_json(o, byref(text)))
                _restore_history(run.history, json.loads(take_string(text)))
        finally:
            for owned in (options, validation, train):
                if owned is not None:
                    owned.close()

        history = run.history
        history.interrupted = run.interrupts > 0
        history.stopped_by_callback = self.stop_training
        if status == 0 and run.error is None:
            stopped = history.interrupted or history.stopped_by_callback
            history.stopped_early = bool(early) and not stopped and completed.value < int(epochs)
            if history.interrupted:
                progress.message(f"training interrupted after {completed.value} complete epoch(s); the model keeps its current weights")
        try:
            for cb in run.callbacks:
                cb.on_train_end({})
        except BaseException as e:  # noqa: B036
            run._fail(e)
        if run.error is not None:
            raise run.error
        check(status)
        return history

    def train_on_batch(self, x, y):
        """One training step (forward, loss, backward, update) on a batch; returns the batch's loss."""
        images, _ = self._images(x)
        labels = self._labels(y, images.shape[0])
        loss = c_double()
        check(lib.hpcnn_train_batch(self._h, images, labels, images.shape[0], byref(loss)))
        return loss.value

    # ---------------------------------------------------------------- inference

    def evaluate(self, x, y, batch_size=256):
        """(mean loss, accuracy) on images x with labels y, in inference mode (the model must be compiled).
        Thread-safe."""
        with self._dataset(x, y, "evaluation data") as data:
            loss, accuracy = c_double(), c_double()
            check(lib.hpcnn_evaluate(self._h, data.value, int(batch_size), byref(loss), byref(accuracy)))
        return loss.value, accuracy.value

    def predict(self, x, raw=False):
        """Class probabilities, float32 (N, outputs); (outputs,) for a single image.

        Softmax (sigmoid for one output) is applied when the model outputs logits for a cross-entropy loss; a
        model compiled with MSE, or not compiled, gives its raw outputs. Thread-safe.

        raw=True: x holds raw pixels and the model's preprocessing (:attr:`pixel_scale`, :attr:`standardization`,
        saved with it) is applied first, so a reloaded model predicts on new images with no preprocessing code. A
        uint8 array is taken as bytes 0-255; any other dtype as floats in the model's pixel scale ([0, 1] unless
        trained on 0-255; a value outside it is refused). The result is bitwise that of predict on the images
        preprocessed the library's way (x / 255 as float32, then (x - mean) / std per pixel or (x - mean) * (1 / std)
        globally, in float32).
        """
        if raw:
            return self._predict_raw(x)
        images, single = self._images(x)
        n = images.shape[0]
        out = np.empty((n, self.output_size), dtype=np.float32)
        check(lib.hpcnn_predict(self._h, images, n, out, out.size))
        return out[0] if single else out

    def _predict_raw(self, x):
        a, single = self._shaped(x, "x")
        n = a.shape[0]
        out = np.empty((n, self.output_size), dtype=np.float32)
        if a.dtype == np.uint8:
            check(lib.hpcnn_predict_raw_u8(self._h, np.ascontiguousarray(a), n, out, out.size))
        else:
            check(lib.hpcnn_predict_raw(self._h, np.ascontiguousarray(a, dtype=np.float32), n, out, out.size))
        return out[0] if single else out

    def predict_classes(self, x, raw=False):
        """The predicted class of each image, int32 (N,) (an int for a single image). For one sigmoid output the
        class is 1 when the probability is >= 0.5. raw=True: x holds raw pixels, as for :meth:`predict`. Thread-safe."""
        if raw:
            p = np.atleast_2d(self._predict_raw(x))
            out = (p[:, 0] >= 0.5).astype(np.int32) if p.shape[1] == 1 else np.argmax(p, axis=1).astype(np.int32)
            return int(out[0]) if self._shaped(x, "x")[1] else out
        images, single = self._images(x)
        n = images.shape[0]
        out = np.empty(n, dtype=np.int32)
        check(lib.hpcnn_predict_classes(self._h, images, n, out))
        return int(out[0]) if single else out

    # ---------------------------------------------------------------- preprocessing

    @property
    def standardization(self):
        """The standardisation the model applies to raw pixels (saved with it): None, or a dict ``{"mode": "global" |
        "per_pixel", "mean": float32 array, "std": float32 array}`` (shape (1,) globally, (C, H, W) per pixel).

        Set it to None, to such a dict, or to ``(mean, std)``: two numbers (global) or two arrays of the input's size
        (per pixel). :func:`hpcnn.datasets.standardize` with ``model=`` sets it from the training data."""
        mode, count = c_int32(), c_int64()
        check(lib.hpcnn_model_standardization_info(self._h, byref(mode), byref(count)))
        if mode.value < 0:
            return None
        mean = np.empty(count.value, dtype=np.float32)
        std = np.empty(count.value, dtype=np.float32)
        check(lib.hpcnn_model_get_standardization(self._h, mean, std, count.value))
        if mode.value == 1:
            mean, std = mean.reshape(self.input_shape), std.reshape(self.input_shape)
        return {"mode": "global" if mode.value == 0 else "per_pixel", "mean": mean, "std": std}

    @standardization.setter
    def standardization(self, value):
        if value is None:
            empty = np.empty(0, dtype=np.float32)
            check(lib.hpcnn_model_set_standardization(self._h, -1, empty, empty, 0))
            return
        if isinstance(value, dict):
            mean, std = value["mean"], value["std"]
            per_pixel = value.get("mode", "per_pixel" if np.size(mean) > 1 else "global") == "per_pixel"
        else:
            mean, std = value
            per_pixel = np.size(mean) > 1
        mean = np.ascontiguousarray(np.asarray(mean, dtype=np.float32).reshape(-1))
        std = np.ascontiguousarray(np.asarray(std, dtype=np.float32).reshape(-1))
        if mean.size != std.size:
            raise InvalidArgumentError(f"standardization: {mean.size} means and {std.size} deviations")
        check(lib.hpcnn_model_set_standardization(self._h, 1 if per_pixel else 0, mean, std, mean.size), "standardization")

    @property
    def class_names(self):
        """The class names saved with the model (a list, by label), or None. Set a list (at most one per class the
        model scores) or None."""
        n = c_int32()
        check(lib.hpcnn_model_class_name_count(self._h, byref(n)))
        if n.value == 0:
            return None
        names = []
        for i in range(n.value):
            text = c_void_p()
            check(lib.hpcnn_model_class_name(self._h, i, byref(text)))
            names.append(take_string(text))
        return names

    @class_names.setter
    def class_names(self, names):
        names = [] if names is None else [str(v) for v in names]
        arr = (c_char_p * max(1, len(names)))(*[v.encode("utf-8") for v in names])
        check(lib.hpcnn_model_set_class_names(self._h, arr, len(names)), "class_names")

    @property
    def pixel_scale(self):
        """The range of the pixel values the model was trained on, before standardisation: "0-1" (the default, what
        the loaders give) or "0-255". predict(raw=True) takes float pixels in this range (uint8 pixels always 0-255)."""
        v = c_int32()
        check(lib.hpcnn_model_get_pixel_scale(self._h, byref(v)))
        return "0-1" if v.value == 0 else "0-255"

    @pixel_scale.setter
    def pixel_scale(self, value):
        if value not in ("0-1", "0-255"):
            raise InvalidArgumentError(f'pixel_scale must be "0-1" or "0-255", got {value!r}')
        check(lib.hpcnn_model_set_pixel_scale(self._h, 0 if value == "0-1" else 1))

    def layer_output(self, i, x):
        """The output of layer i (feature maps) for images x, in inference mode, float32 (N, C, H, W) — (N, F)
        after a flatten — without the batch axis for a single image. A convolution's output is taken before the
        activation that follows it (add the ReLU layer's index to see activated maps). Thread-safe."""
        i = self._layer_index(i)
        images, single = self._images(x)
        n = images.shape[0]
        layers = self._layout()[2]
        shape = layers[i][1] if 0 <= i < len(layers) else (0, 0, 0)  # the library reports a bad index
        flat = any(kind in ("flatten", "dense") for kind, _ in layers[:i + 1])
        out = np.empty((n, shape[0]) if flat else (n,) + shape, dtype=np.float32)
        check(lib.hpcnn_forward_layer(self._h, i, images, n, out, out.size))
        return out[0] if single else out

    # ---------------------------------------------------------------- files

    def save(self, path):
        """Saves the model (architecture, weights, loss, optimizer state, epochs trained) to path, atomically
        (a temporary file renamed over it). Load it with :func:`hpcnn.load`."""
        check(lib.hpcnn_model_save(self._h, encode_path(path)))

    def save_onnx(self, path, embed_standardization=False):
        """Writes the model as an ONNX file (opset 13) that ONNX Runtime and other ONNX engines run: input "input"
        float32 [batch, C, H, W], output "output" [batch, outputs] with what :meth:`predict` gives (a Softmax or Sigmoid
        ends the graph for a model compiled with cross-entropy or binary cross-entropy). Dropout is left out.

        embed_standardization=True puts the model's :attr:`standardization` in
        front of the graph, so the ONNX model takes raw pixel values; :func:`hpcnn.load_onnx` reads the file back.
        """
        check(lib.hpcnn_model_save_onnx(self._h, encode_path(path), 1 if embed_standardization else 0))


def load(path, max_flops_per_image=None):
    """Loads a model file written by :meth:`Sequential.save`; see :meth:`Sequential.load`."""
    return Sequential.load(path, max_flops_per_image)


def load_onnx(path, max_flops_per_image=None):
    """A model from an ONNX file that is a chain of Conv, Gemm (or MatMul + Add), Relu, Clip(0, cap), LeakyRelu,
    Sigmoid, Tanh, Softmax, MaxPool, AveragePool, BatchNormalization, InstanceNormalization (scale 1, bias 0), Flatten
    or Reshape to (N, -1), zero Pad before a Conv or AveragePool, Constant, Identity and Dropout nodes, as
    ``torch.onnx.export`` writes them (``nn.Flatten``, ``torch.flatten(x, 1)`` and ``x.view(x.size(0), -1)`` all import).
    A leading Sub + Mul/Div of constants becomes the model's standardisation (its metadata). The model is not
    compiled: compile it to fine-tune.

    Raises InvalidFileError naming the node and its operator for anything unsupported (and for a corrupt file, a
    missing initializer, external data, a network above max_flops_per_image), HpcnnIOError for a missing file.
    """
    out = c_void_p()
    check(lib.hpcnn_model_load_onnx(encode_path(path), _budget(max_flops_per_image), byref(out)))
    return Sequential._from_handle(out)


def from_spec(spec, max_flops_per_image=None):
    """A model from a network spec (dict, JSON string or file path); see :meth:`Sequential.from_spec`."""
    return Sequential.from_spec(spec, max_flops_per_image)


def load_checkpoint(directory):
    """The model of the newest good checkpoint in directory (written by ``fit(checkpoint_dir=...)``), with its
    optimizer state; continue its run with ``model.fit(..., checkpoint_dir=directory, resume=True)``."""
    out = c_void_p()
    check(lib.hpcnn_checkpoint_load(encode_path(directory), byref(out)))
    return Sequential._from_handle(out)


def _restore_history(history, recorded):
    """Puts the library's record of the fit into history: the epochs restored from a checkpoint go first (their
    callbacks ran in the earlier process), then the ones this call reported."""
    restored = recorded["epochs"][:recorded["resumed_epochs"]]
    earlier = []
    for e in restored:
        logs = {"loss": e["train_loss"], "accuracy": e["train_accuracy"]}
        if e["val_loss"] is not None:
            logs["val_loss"] = e["val_loss"]
            logs["val_accuracy"] = e["val_accuracy"]
        logs["seconds"] = e["seconds"]
        logs["samples_per_second"] = e["samples_per_second"]
        earlier.append(logs)
    history.epochs[:0] = earlier
    history.resumed_epochs = recorded["resumed_epochs"]
    history.resumed_from = recorded["resumed_from"]
    history.last_checkpoint = recorded["last_checkpoint"]
    history.ranks = recorded["ranks"]
    history.communication_seconds = recorded["communication_seconds"]
