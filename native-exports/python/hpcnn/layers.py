"""Layer descriptions for :class:`hpcnn.Sequential`.

A layer object here only describes a layer (its configuration); the library builds it, with its weights, when
the layer is added to a model. Each class turns into one JSON object of the network-spec format
(``layer.to_spec()``), which is what ``Sequential.add`` hands to the library (hpcnn_add_layer_json).

The library owns every layer type: its defaults and its rules. An argument left at None is left out of the spec, so
the library's default applies, and a value it refuses raises the library's message (the same as for a JSON spec or
the C functions). :func:`known_types` lists the types the loaded library has; :class:`Spec` describes any of them,
also one without a class here.

Shapes follow PyTorch: images are channels x height x width (NCHW for a batch); a convolution's weight is
filters x in_channels x kernel_h x kernel_w, a dense layer's weight is units x in_features.

Example::

    import hpcnn
    from hpcnn import layers
    model = hpcnn.Sequential([
        layers.Conv2D(32, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2),
        layers.Flatten(), layers.Dense(10),
    ], input_shape=(1, 28, 28), seed=42)
"""

import json
import numbers

__all__ = ["Layer", "Spec", "known_types", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Flatten",
           "Dense", "FeatureMapNorm", "BatchNorm2D", "Dropout"]


def _pair(value, what):
    """An int or a pair of ints as [a, b]."""
    if isinstance(value, numbers.Integral):
        return [int(value), int(value)]
    try:
        a, b = value
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an int or a pair (height, width), got {value!r}") from None
    return [int(a), int(b)]


def _padding(padding):
    """'valid', 'same', an int (all sides), (vertical, horizontal) or (top, left, bottom, right)."""
    if isinstance(padding, str):
        if padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or (top, left, bottom, right), got {padding!r}")
        return padding.lower()
    if isinstance(padding, numbers.Integral):
        return int(padding)
    values = [int(v) for v in padding]
    if len(values) not in (2, 4):
        raise ValueError(f"padding as a sequence takes 2 values (vertical, horizontal) or 4 (top, left, bottom, right), got {padding!r}")
    return values


def _optional(value, convert):
    """convert(value), or None for None (the library's default)."""
    return None if value is None else convert(value)


class Layer:
    """Base class: a layer description that becomes one JSON layer object of the spec format.

    Subclasses set ``type`` (the spec's layer type) and fill ``self._config``.
    Args:
        frozen: add the layer frozen (its parameters do not change in training); ``model.unfreeze(i)`` undoes it.
    """

    type = None

    def __init__(self, frozen=False):
        self._config = {}
        self.frozen = bool(frozen)

    def to_spec(self):
        """This layer as a dict of the network-spec format, e.g. ``{"type": "conv2d", "filters": 8, "kernel": [3, 3]}``."""
        spec = {"type": self.type}
        spec.update(self._config)
        if self.frozen:
            spec["frozen"] = True
        return spec

    def to_json(self):
        """:meth:`to_spec` as a JSON string."""
        return json.dumps(self.to_spec())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"


class Spec(Layer):
    """Any layer type the library knows, by its spec fields: ``Spec("batchnorm2d", momentum=0.05)`` is
    ``{"type": "batchnorm2d", "momentum": 0.05}``. For a type without a class here, or to pass a spec through as is."""

    def __init__(self, type, frozen=False, **fields):
        super().__init__(frozen)
        self.type = str(type)
        self._config.update(fields)

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self._config.items())
        return f"Spec({self.type!r}{args})"


def known_types():
    """The layer types of the loaded library: a list of dicts ``{"type": "conv2d", "aliases": ["conv"], "fields":
    ["filters", "kernel", ...]}`` (besides "type", "frozen" and "name", which every layer takes)."""
    from ctypes import byref, c_void_p
    from ._native import check, lib, take_string
    out = c_void_p()
    check(lib.hpcnn_layer_types(byref(out)))
    return json.loads(take_string(out))


def _put(config, **fields):
    """Puts the fields that are not None into config (None: the library's default)."""
    config.update({k: v for k, v in fields.items() if v is not None})


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in PyTorch and Keras) over all input channels.

    Args:
        filters: number of output channels.
        kernel: window size, an int or (height, width).
        stride: step, an int or (vertical, horizontal). Default (None): 1.
        padding: ``"valid"`` (none, the default), ``"same"`` (output = ceil(input / stride); an odd extra row/column
            goes at the bottom/right), an int (that many zeros on every side), (vertical, horizontal) or
            (top, left, bottom, right).
        bias: add a bias per filter (default, None: yes).
        init: weight initialisation: None (PyTorch's default), ``"he"``, ``"xavier"`` or ``"normal"``
            (with ``init_std``, default 0.01). Weights are drawn from the model's seed.
        init_std: standard deviation for ``init="normal"``.

    Parameters: ``weight`` (filters x in_channels x kh x kw) and ``bias`` (filters).
    """

    type = "conv2d"

    def __init__(self, filters, kernel, stride=None, padding=None, bias=None, init=None, init_std=None, frozen=False):
        super().__init__(frozen)
        self._config.update(filters=int(filters), kernel=_pair(kernel, "kernel"))
        _put(self._config, stride=_optional(stride, lambda v: _pair(v, "stride")), padding=_optional(padding, _padding),
             bias=_optional(bias, bool), init=_optional(init, str), init_std=_optional(init_std, float))


class _Pool(Layer):
    def __init__(self, pool_size=None, stride=None, padding=None):
        super().__init__()
        _put(self._config, kernel=_optional(pool_size, lambda v: _pair(v, "pool_size")),
             stride=_optional(stride, lambda v: _pair(v, "stride")), padding=_optional(padding, _padding))


class MaxPool2D(_Pool):
    """Max pooling over pool_size windows.

    Args:
        pool_size: window, an int or (height, width). Default (None): 2.
        stride: step; None (default) means equal to the window (non-overlapping).
        padding: as for :class:`Conv2D` (default ``"valid"``); at most half the window on each side. Padding
            positions never win the maximum.
    """

    type = "maxpool2d"


class AvgPool2D(_Pool):
    """Average pooling over pool_size windows (same arguments as :class:`MaxPool2D`). Every window is divided by
    its full size, padding zeros included (PyTorch's ``count_include_pad=True``)."""

    type = "avgpool2d"


class ReLU(Layer):
    """Rectified linear unit, max(0, x); with ``cap`` the output is limited to [0, cap] (ReLU6 is ``cap=6``)."""

    type = "relu"

    def __init__(self, cap=None):
        super().__init__()
        _put(self._config, cap=_optional(cap, float))


class LeakyReLU(Layer):
    """x for x > 0, alpha * x otherwise (alpha in [0, 1); None: the library's default, PyTorch's 0.01)."""

    type = "leakyrelu"

    def __init__(self, alpha=None):
        super().__init__()
        _put(self._config, alpha=_optional(alpha, float))


class Sigmoid(Layer):
    """Logistic function 1 / (1 + exp(-x)); end a one-output binary classifier with it."""

    type = "sigmoid"


class Tanh(Layer):
    """Hyperbolic tangent."""

    type = "tanh"


class Softmax(Layer):
    """Softmax over the features of each sample. Optional before a cross-entropy loss: predict() applies softmax
    to the logits of a cross-entropy model anyway."""

    type = "softmax"


class Flatten(Layer):
    """Turns C x H x W feature maps into a flat vector of C*H*W features (needed before :class:`Dense`)."""

    type = "flatten"


class Dense(Layer):
    """Fully connected layer: ``y = W x + b`` with W of units x in_features. Needs a flat input (add
    :class:`Flatten` first).

    Args:
        units: number of outputs.
        bias: add a bias per output (default, None: yes).
        init, init_std: as for :class:`Conv2D`.

    Parameters: ``weight`` (units x in_features) and ``bias`` (units).
    """

    type = "dense"

    def __init__(self, units, bias=None, init=None, init_std=None, frozen=False):
        super().__init__(frozen)
        self._config["units"] = int(units)
        _put(self._config, bias=_optional(bias, bool), init=_optional(init, str), init_std=_optional(init_std, float))


class FeatureMapNorm(Layer):
    """Normalises each feature map of each sample to zero mean and unit standard deviation (no parameters):
    (x - mean) / sqrt(biased variance + epsilon). epsilon: positive; None: the library's default (1e-5)."""

    type = "featuremapnorm"

    def __init__(self, epsilon=None):
        super().__init__()
        _put(self._config, epsilon=_optional(epsilon, float))


class BatchNorm2D(Layer):
    """Batch normalisation per channel (batch statistics in training, running statistics in inference).

    Args:
        epsilon: added to the variance (None: the library's default, 1e-5).
        momentum: weight of the new batch in the running statistics, in [0, 1] (None: the library's default, 0.1,
            PyTorch's convention).

    Parameters: ``gamma``, ``beta`` (trained), ``running_mean``, ``running_var`` (tracked).
    """

    type = "batchnorm2d"

    def __init__(self, epsilon=None, momentum=None, frozen=False):
        super().__init__(frozen)
        _put(self._config, epsilon=_optional(epsilon, float), momentum=_optional(momentum, float))


class Dropout(Layer):
    """Inverted dropout: in training, zeroes each value with probability ``rate`` and scales the rest by
    1 / (1 - rate); does nothing in inference. ``seed`` fixes the masks (default: derived from the model seed)."""

    type = "dropout"

    def __init__(self, rate, seed=None):
        super().__init__()
        self._config["rate"] = float(rate)
        _put(self._config, seed=_optional(seed, int))
