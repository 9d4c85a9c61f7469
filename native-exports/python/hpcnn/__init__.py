"""hpcnn: Python bindings of libhpcnn, HpCnn's CPU engine for small convolutional networks.

A Keras-like interface over the library's C API (native-exports/include/hpcnn.h), through ctypes, with numpy
arrays in and out::

    import hpcnn
    from hpcnn import layers

    (x_train, y_train), (x_test, y_test) = hpcnn.datasets.fashion_mnist()
    x_train, x_test = hpcnn.datasets.standardize(x_train, x_test, per_pixel=False)

    model = hpcnn.Sequential([
        layers.Conv2D(32, 3, padding="same"), layers.ReLU(), layers.MaxPool2D(2),
        layers.Flatten(), layers.Dense(10),
    ], input_shape=(1, 28, 28), seed=42)
    model.compile(loss="cross_entropy", optimizer=hpcnn.optimizers.SGD(lr=0.01, momentum=0.9))
    model.summary()
    history = model.fit(x_train, y_train, epochs=2, batch_size=64, validation_data=(x_test, y_test))
    print(model.evaluate(x_test, y_test))       # (loss, accuracy)
    model.save("fashion.hpcnn")
    same = hpcnn.load("fashion.hpcnn")

Modules: :mod:`hpcnn.layers` (layer descriptions), :mod:`hpcnn.optimizers` (SGD, Adam, schedules),
:mod:`hpcnn.callbacks` (Callback, EarlyStopping), :mod:`hpcnn.datasets` (IDX files, Fashion-MNIST, standardisation),
:mod:`hpcnn.errors` (the exceptions; the common ones are also here), :mod:`hpcnn.distributed` (training over the
processes of an mpirun launch: ``mpirun -np 4 python3 train.py``; rank, size, finalize).

The library is found through the HPCNN_LIBRARY environment variable (a path to libhpcnn.so), else in the package's
lib/ folder (the wheel carries both builds there: libhpcnn-avx512.so, loaded first on a CPU with AVX-512
F/BW/CD/DQ/VL, and libhpcnn.so), else in the repository's artifacts/native/ for a source checkout
(./build/publish-native.sh writes both there), else on the system's library path. library_path names the file loaded
and gemm_kernel() tells which register tiles it runs.

Threads: predict, predict_classes, evaluate and layer_output may run on one model from several Python threads
at once; ctypes releases the GIL during library calls, so they run in parallel. Training or changing a model
must not overlap with other calls on that model. The library's own thread count (used inside each call) is
set with :func:`set_threads`.
"""

from . import callbacks, datasets, distributed, layers, optimizers
from ._native import REQUIRED_ABI_VERSION, lib as _lib, library_path
from ._native import check as _check
from .errors import (HpcnnError, HpcnnIOError, HpcnnMemoryError, InternalError, InvalidArgumentError, InvalidFileError,
                     InvalidStateError, NumericError)
from .model import DEFAULT_MAX_FLOPS_PER_IMAGE, History, LayerInfo, Sequential, from_spec, load, load_checkpoint, load_onnx

__all__ = ["Sequential", "History", "LayerInfo", "load", "load_onnx", "from_spec", "layers", "optimizers", "callbacks", "datasets",
           "distributed",
           "version", "abi_version", "kernel_path", "gemm_kernel", "set_threads", "get_threads", "library_path",
           "HpcnnError", "InvalidArgumentError", "InvalidStateError", "HpcnnIOError", "InvalidFileError",
           "HpcnnMemoryError", "NumericError", "InternalError", "load_checkpoint", "DEFAULT_MAX_FLOPS_PER_IMAGE"]


def version():
    """The library's version string, e.g. "0.1.0"."""
    return _lib.hpcnn_version().decode("utf-8")


def abi_version():
    """The loaded library's ABI version (HPCNN_ABI_VERSION); this package needs at least REQUIRED_ABI_VERSION."""
    return int(_lib.hpcnn_abi_version())


def kernel_path():
    """The kernel path the library runs: "avx2-fma" (AVX2 + FMA3 vector kernels) or "scalar" (portable fallback)."""
    return _lib.hpcnn_kernel_path().decode("utf-8")


def gemm_kernel():
    """The GEMM micro-kernel the library runs: "avx512 12x16", "avx2 6x16" or "scalar 6x16"."""
    return _lib.hpcnn_gemm_kernel().decode("utf-8")


def set_threads(n):
    """Sets the threads the library uses for training and inference (1..256; default: one per core)."""
    _check(_lib.hpcnn_set_threads(int(n)))


def get_threads():
    """The threads the library uses for training and inference."""
    return int(_lib.hpcnn_get_threads())


__version__ = version()
