"""Layer descriptions for :class:`hpcnn.Sequential`.

A layer object here only describes a layer (its configuration); the library builds it, with its weights, when
the layer is added to a model. Each class turns into one JSON object of the network-spec format
(``layer.to_spec()``), which is what ``Sequential.add`` hands to the library (hpcnn_add_layer_json).

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

__all__ = ["Layer", "Conv2D", "MaxPool2D", "AvgPool2D", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Flatten",
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


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in PyTorch and Keras) over all input channels.

    Args:
        filters: number of output channels.
        kernel: window size, an int or (height, width).
        stride: step, an int or (vertical, horizontal). Default 1.
        padding: ``"valid"`` (none, default), ``"same"`` (output = ceil(input / stride); an odd extra row/column
            goes at the bottom/right), an int (that many zeros on every side), (vertical, horizontal) or
            (top, left, bottom, right).
        bias: add a bias per filter (default True).
        init: weight initialisation: None (PyTorch's default), ``"he"``, ``"xavier"`` or ``"normal"``
            (with ``init_std``, default 0.01). Weights are drawn from the model's seed.
        init_std: standard deviation for ``init="normal"``.

    Parameters: ``weight`` (filters x in_channels x kh x kw) and ``bias`` (filters).
    """

    type = "conv2d"

    def __init__(self, filters, kernel, stride=1, padding="valid", bias=True, init=None, init_std=None, frozen=False):
        super().__init__(frozen)
        self._config.update(filters=int(filters), kernel=_pair(kernel, "kernel"), stride=_pair(stride, "stride"),
                            padding=_padding(padding), bias=bool(bias))
        if init is not None:
            self._config["init"] = str(init)
        if init_std is not None:
            self._config["init_std"] = float(init_std)


class _Pool(Layer):
    def __init__(self, pool_size=2, stride=None, padding="valid"):
        super().__init__()
        self._config["kernel"] = _pair(pool_size, "pool_size")
        if stride is not None:
            self._config["stride"] = _pair(stride, "stride")
        self._config["padding"] = _padding(padding)


class MaxPool2D(_Pool):
    """Max pooling over pool_size windows.

    Args:
        pool_size: window, an int or (height, width). Default 2.
        stride: step; None (default) means equal to the window (non-overlapping).
        padding: as for :class:`Conv2D` (default ``"valid"``).
    """

    type = "maxpool2d"


class AvgPool2D(_Pool):
    """Average pooling over pool_size windows (same arguments as :class:`MaxPool2D`)."""

    type = "avgpool2d"


class ReLU(Layer):
    """Rectified linear unit, max(0, x); with ``cap`` the output is limited to [0, cap] (ReLU6 is ``cap=6``)."""

    type = "relu"

    def __init__(self, cap=None):
        super().__init__()
        if cap is not None:
            self._config["cap"] = float(cap)


class LeakyReLU(Layer):
    """x for x > 0, alpha * x otherwise (alpha in [0, 1), default 0.01)."""

    type = "leakyrelu"

    def __init__(self, alpha=0.01):
        super().__init__()
        self._config["alpha"] = float(alpha)


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
        bias: add a bias per output (default True).
        init, init_std: as for :class:`Conv2D`.

    Parameters: ``weight`` (units x in_features) and ``bias`` (units).
    """

    type = "dense"

    def __init__(self, units, bias=True, init=None, init_std=None, frozen=False):
        super().__init__(frozen)
        self._config.update(units=int(units), bias=bool(bias))
        if init is not None:
            self._config["init"] = str(init)
        if init_std is not None:
            self._config["init_std"] = float(init_std)


class FeatureMapNorm(Layer):
    """Normalises each feature map of each sample to zero mean and unit standard deviation (no parameters)."""

    type = "featuremapnorm"

    def __init__(self, epsilon=1e-5):
        super().__init__()
        self._config["epsilon"] = float(epsilon)


class BatchNorm2D(Layer):
    """Batch normalisation per channel (batch statistics in training, running statistics in inference).

    Args:
        epsilon: added to the variance (default 1e-5).
        momentum: weight of the new batch in the running statistics (default 0.1, PyTorch's convention).

    Parameters: ``gamma``, ``beta`` (trained), ``running_mean``, ``running_var`` (tracked).
    """

    type = "batchnorm2d"

    def __init__(self, epsilon=1e-5, momentum=0.1, frozen=False):
        super().__init__(frozen)
        self._config.update(epsilon=float(epsilon), momentum=float(momentum))


class Dropout(Layer):
    """Inverted dropout: in training, zeroes each value with probability ``rate`` and scales the rest by
    1 / (1 - rate); does nothing in inference. ``seed`` fixes the masks (default: derived from the model seed)."""

    type = "dropout"

    def __init__(self, rate, seed=None):
        super().__init__()
        self._config["rate"] = float(rate)
        if seed is not None:
            self._config["seed"] = int(seed)
