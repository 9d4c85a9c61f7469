"""Loading libhpcnn.so and declaring its C functions (hpcnn.h) for ctypes.

Every function of the header is declared here with its exact argument and result types, so ctypes never
guesses (an undeclared function would take and return C ints, silently truncating pointers and 64-bit
values). Float and int buffers are declared as C-contiguous numpy arrays of the right dtype: ctypes then
refuses anything else instead of passing a wrong pointer.

ctypes.CDLL releases the GIL for the duration of each call, so calls made from several Python threads run
in the library at the same time.
"""

import ctypes
import ctypes.util
import os
import weakref
from ctypes import POINTER, c_char_p, c_double, c_float, c_int32, c_int64, c_uint32, c_uint64, c_void_p

import numpy as np
from numpy.ctypeslib import ndpointer

from .errors import error_for_status

#: The HPCNN_ABI_VERSION this package was written against (hpcnn.h). A library reporting less lacks functions.
REQUIRED_ABI_VERSION = 10

_F32 = ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
_I32 = ndpointer(dtype=np.int32, flags="C_CONTIGUOUS")
_U8 = ndpointer(dtype=np.uint8, flags="C_CONTIGUOUS")
_handle = c_void_p
_out_handle = POINTER(c_void_p)
_status = c_int32

#: int32 (*hpcnn_epoch_callback)(void* user, int32 epoch, int32 epochs, double train_loss, double train_accuracy,
#:                               double val_loss, double val_accuracy, double seconds, double samples_per_second)
EPOCH_CALLBACK = ctypes.CFUNCTYPE(c_int32, c_void_p, c_int32, c_int32, c_double, c_double, c_double, c_double, c_double, c_double)
#: int32 (*hpcnn_batch_callback)(void* user, int32 epoch, int32 epochs, int32 batch, int32 batches,
#:                               double running_loss, double running_accuracy)
BATCH_CALLBACK = ctypes.CFUNCTYPE(c_int32, c_void_p, c_int32, c_int32, c_int32, c_int32, c_double, c_double)
#: void (*hpcnn_message_callback)(void* user, const char* message)
MESSAGE_CALLBACK = ctypes.CFUNCTYPE(None, c_void_p, c_char_p)

# name: (restype, argtypes), in the order of hpcnn.h.
_SIGNATURES = {
    # library
    "hpcnn_abi_version": (c_uint32, []),
    "hpcnn_version": (c_char_p, []),
    "hpcnn_kernel_path": (c_char_p, []),
    "hpcnn_gemm_kernel": (c_char_p, []),
    "hpcnn_last_error": (c_char_p, []),
    "hpcnn_free": (None, [c_void_p]),
    "hpcnn_set_threads": (_status, [c_int32]),
    "hpcnn_get_threads": (c_int32, []),
    # models
    "hpcnn_model_create": (_status, [c_int32, c_int32, c_int32, c_uint64, _out_handle]),
    "hpcnn_model_from_spec": (_status, [c_char_p, _out_handle]),
    "hpcnn_model_load": (_status, [c_char_p, _out_handle]),
    "hpcnn_model_save": (_status, [_handle, c_char_p]),
    "hpcnn_model_release": (None, [_handle]),
    "hpcnn_model_spec": (_status, [_handle, POINTER(c_void_p)]),
    "hpcnn_model_summary": (_status, [_handle, POINTER(c_void_p)]),
    "hpcnn_model_layer_count": (_status, [_handle, POINTER(c_int32)]),
    "hpcnn_model_input_shape": (_status, [_handle, POINTER(c_int32), POINTER(c_int32), POINTER(c_int32)]),
    "hpcnn_model_output_size": (_status, [_handle, POINTER(c_int32)]),
    "hpcnn_model_parameter_count": (_status, [_handle, POINTER(c_int64)]),
    "hpcnn_model_epochs_trained": (_status, [_handle, POINTER(c_int32)]),
    "hpcnn_model_set_inference_cache": (_status, [_handle, c_int64]),
    "hpcnn_model_get_inference_cache": (_status, [_handle, POINTER(c_int64)]),
    # building a network
    "hpcnn_add_conv2d": (_status, [_handle] + [c_int32] * 11),
    "hpcnn_add_maxpool2d": (_status, [_handle] + [c_int32] * 9),
    "hpcnn_add_avgpool2d": (_status, [_handle] + [c_int32] * 9),
    "hpcnn_add_relu": (_status, [_handle, c_float]),
    "hpcnn_add_leaky_relu": (_status, [_handle, c_float]),
    "hpcnn_add_sigmoid": (_status, [_handle]),
    "hpcnn_add_tanh": (_status, [_handle]),
    "hpcnn_add_softmax": (_status, [_handle]),
    "hpcnn_add_flatten": (_status, [_handle]),
    "hpcnn_add_dense": (_status, [_handle, c_int32, c_int32]),
    "hpcnn_add_feature_map_norm": (_status, [_handle, c_float]),
    "hpcnn_add_batchnorm2d": (_status, [_handle, c_float, c_float]),
    "hpcnn_add_dropout": (_status, [_handle, c_float, c_uint64]),
    "hpcnn_add_layer_json": (_status, [_handle, c_char_p]),
    "hpcnn_model_compile_sgd": (_status, [_handle, c_int32, c_float, c_float, c_int32, c_float]),
    "hpcnn_model_compile_adam": (_status, [_handle, c_int32, c_float, c_float, c_float, c_float, c_float]),
    "hpcnn_model_set_learning_rate": (_status, [_handle, c_float]),
    "hpcnn_model_set_step_schedule": (_status, [_handle, c_int32, c_float]),
    "hpcnn_model_set_cosine_schedule": (_status, [_handle, c_int32, c_float]),
    # layers and parameters
    "hpcnn_layer_kind": (_status, [_handle, c_int32, POINTER(c_char_p)]),
    "hpcnn_layer_output_shape": (_status, [_handle, c_int32, POINTER(c_int32), POINTER(c_int32), POINTER(c_int32)]),
    "hpcnn_layer_param_count": (_status, [_handle, c_int32, POINTER(c_int32)]),
    "hpcnn_layer_param_info": (_status, [_handle, c_int32, c_int32, POINTER(c_char_p), POINTER(c_int32), POINTER(c_int32),
                                         POINTER(c_int64)]),
    "hpcnn_get_param": (_status, [_handle, c_int32, c_char_p, _F32, c_int64]),
    "hpcnn_set_param": (_status, [_handle, c_int32, c_char_p, _F32, c_int64]),
    "hpcnn_set_frozen": (_status, [_handle, c_int32, c_int32]),
    "hpcnn_is_frozen": (_status, [_handle, c_int32, POINTER(c_int32)]),
    # running
    "hpcnn_predict": (_status, [_handle, _F32, c_int64, _F32, c_int64]),
    "hpcnn_predict_classes": (_status, [_handle, _F32, c_int64, _I32]),
    "hpcnn_forward_layer": (_status, [_handle, c_int32, _F32, c_int64, _F32, c_int64]),
    # datasets
    "hpcnn_dataset_create": (_status, [_F32, _I32, c_int64, c_int32, c_int32, c_int32, c_int32, _out_handle]),
    "hpcnn_dataset_load_idx": (_status, [c_char_p, c_char_p, c_int32, _out_handle]),
    "hpcnn_dataset_load_fashion_mnist": (_status, [c_char_p, c_int32, _out_handle]),
    "hpcnn_dataset_release": (None, [_handle]),
    "hpcnn_dataset_info": (_status, [_handle, POINTER(c_int64), POINTER(c_int32), POINTER(c_int32), POINTER(c_int32),
                                     POINTER(c_int32)]),
    "hpcnn_dataset_get_images": (_status, [_handle, _F32, c_int64]),
    "hpcnn_dataset_get_labels": (_status, [_handle, _I32, c_int64]),
    "hpcnn_dataset_filter_classes": (_status, [_handle, _I32, c_int32, _out_handle]),
    "hpcnn_dataset_split_last": (_status, [_handle, c_int64, _out_handle, _out_handle]),
    "hpcnn_dataset_standardize": (_status, [_handle, _handle, c_int32]),
    # training
    "hpcnn_fit_options_create": (_status, [_out_handle]),
    "hpcnn_fit_options_release": (None, [_handle]),
    "hpcnn_fit_options_set_epochs": (_status, [_handle, c_int32]),
    "hpcnn_fit_options_set_batch_size": (_status, [_handle, c_int32]),
    "hpcnn_fit_options_set_shuffle": (_status, [_handle, c_int32]),
    "hpcnn_fit_options_set_seed": (_status, [_handle, c_uint64]),
    "hpcnn_fit_options_set_threads": (_status, [_handle, c_int32]),
    "hpcnn_fit_options_set_validation": (_status, [_handle, _handle]),
    "hpcnn_fit_options_set_validation_split": (_status, [_handle, c_double]),
    "hpcnn_fit_options_set_early_stopping": (_status, [_handle, c_int32, c_double, c_int32, c_int32]),
    "hpcnn_fit_options_set_callbacks": (_status, [_handle, EPOCH_CALLBACK, BATCH_CALLBACK, c_void_p]),
    "hpcnn_fit_options_set_batch_callback_interval": (_status, [_handle, c_double]),
    "hpcnn_fit": (_status, [_handle, _handle, _handle, POINTER(c_int32)]),
    "hpcnn_evaluate": (_status, [_handle, _handle, c_int32, POINTER(c_double), POINTER(c_double)]),
    "hpcnn_train_batch": (_status, [_handle, _F32, _I32, c_int64, POINTER(c_double)]),
    # checkpoints, data checks, compute budget (ABI 3)
    "hpcnn_fit_options_set_checkpoint": (_status, [_handle, c_char_p, c_int32, c_double]),
    "hpcnn_fit_options_set_resume": (_status, [_handle, c_int32]),
    "hpcnn_fit_options_set_check_data": (_status, [_handle, c_int32]),
    "hpcnn_fit_options_set_message_callback": (_status, [_handle, MESSAGE_CALLBACK, c_void_p]),
    "hpcnn_fit_options_history_json": (_status, [_handle, POINTER(c_void_p)]),
    "hpcnn_checkpoint_load": (_status, [c_char_p, _out_handle]),
    "hpcnn_default_max_flops_per_image": (c_int64, []),
    "hpcnn_model_load_with_budget": (_status, [c_char_p, c_int64, _out_handle]),
    "hpcnn_model_from_spec_with_budget": (_status, [c_char_p, c_int64, _out_handle]),
    # ONNX (ABI 4)
    "hpcnn_model_save_onnx": (_status, [_handle, c_char_p, c_int32]),
    "hpcnn_model_load_onnx": (_status, [c_char_p, c_int64, _out_handle]),
    # more datasets (ABI 6)
    "hpcnn_dataset_load_mnist": (_status, [c_char_p, c_int32, _out_handle]),
    "hpcnn_dataset_load_cifar10": (_status, [c_char_p, c_int32, _out_handle]),
    "hpcnn_dataset_class_name": (_status, [_handle, c_int32, POINTER(c_void_p)]),
    # layer types (ABI 7)
    "hpcnn_layer_types": (_status, [POINTER(c_void_p)]),
    # preprocessing (ABI 8)
    "hpcnn_model_set_standardization": (_status, [_handle, c_int32, _F32, _F32, c_int64]),
    "hpcnn_model_standardization_info": (_status, [_handle, POINTER(c_int32), POINTER(c_int64)]),
    "hpcnn_model_get_standardization": (_status, [_handle, _F32, _F32, c_int64]),
    "hpcnn_model_set_pixel_scale": (_status, [_handle, c_int32]),
    "hpcnn_model_get_pixel_scale": (_status, [_handle, POINTER(c_int32)]),
    "hpcnn_model_set_class_names": (_status, [_handle, POINTER(c_char_p), c_int32]),
    "hpcnn_model_class_name_count": (_status, [_handle, POINTER(c_int32)]),
    "hpcnn_model_class_name": (_status, [_handle, c_int32, POINTER(c_void_p)]),
    "hpcnn_model_set_preprocessing_from_dataset": (_status, [_handle, _handle]),
    "hpcnn_predict_raw_u8": (_status, [_handle, _U8, c_int64, _F32, c_int64]),
    "hpcnn_predict_raw": (_status, [_handle, _F32, c_int64, _F32, c_int64]),
    "hpcnn_dataset_load_image_folder": (_status, [c_char_p, c_int32, c_int32, c_int32, c_int32, c_uint64, c_int64,
                                                  POINTER(c_void_p), _out_handle]),
    # distributed training (ABI 10)
    "hpcnn_fit_options_set_distributed": (_status, [_handle, c_int32]),
    "hpcnn_distributed_rank": (c_int32, []),
    "hpcnn_distributed_size": (c_int32, []),
    "hpcnn_distributed_finalize": (_status, []),
}

_BUILD_HINT = ("install the hpcnn wheel (it carries the library; ./build/python-wheel.sh builds it), or build the library "
               "with ./build/publish-native.sh (or ./build/test.sh / ./build/demo.sh) in the HpCnn repository, "
               "or point the HPCNN_LIBRARY environment variable at libhpcnn.so")


#: The AVX-512 subsets libhpcnn-avx512.so was compiled for (x86-64-v3 plus "avx512": those of x86-64-v4).
_V4_FLAGS = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def cpu_has_avx512():
    """Whether this CPU runs libhpcnn-avx512.so (AVX-512 F, BW, CD, DQ and VL), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return _V4_FLAGS <= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return False


def _candidates():
    """Where the library is looked for, in order: HPCNN_LIBRARY; the copies the wheel installed next to this module
    (hpcnn/lib/); the repository's build output, for a source checkout; the system. In the two folders the AVX-512
    build comes first where the CPU runs it."""
    env = os.environ.get("HPCNN_LIBRARY")
    if env:
        return [env], True
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.normpath(os.path.join(here, "..", "..", ".."))  # hpcnn/ -> python/ -> native-exports/ -> repo
    found = []
    for folder in (os.path.join(here, "lib"), os.path.join(repo, "artifacts", "native")):
        if cpu_has_avx512():
            found.append(os.path.join(folder, "libhpcnn-avx512.so"))
        found.append(os.path.join(folder, "libhpcnn.so"))
    system = ctypes.util.find_library("hpcnn")
    if system:
        found.append(system)
    return found, False


def _load():
    paths, from_env = _candidates()
    errors = []
    for path in paths:
        if from_env and not os.path.exists(path):
            raise ImportError(f"hpcnn: HPCNN_LIBRARY is set to {path!r}, which does not exist; {_BUILD_HINT}")
        if os.path.sep in path and not os.path.exists(path):
            errors.append(f"{path} (not found)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path} ({e})")
    raise ImportError(f"hpcnn: cannot load libhpcnn.so; tried {', '.join(errors)}; {_BUILD_HINT}")


def _declare(cdll):
    missing = []
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    abi = cdll.hpcnn_abi_version() if "hpcnn_abi_version" not in missing else 0
    if abi < REQUIRED_ABI_VERSION or missing:
        raise ImportError(f"hpcnn: the loaded libhpcnn.so has ABI version {abi}, this package needs >= {REQUIRED_ABI_VERSION}"
                          + (f" (missing: {', '.join(missing)})" if missing else "") + f"; rebuild it: {_BUILD_HINT}")


lib, library_path = _load()
_declare(lib)


def last_error():
    """The library's message for the last failed call on this thread."""
    return (lib.hpcnn_last_error() or b"").decode("utf-8", "replace")


def check(status, context=None):
    """Raises the exception class of a non-zero hpcnn_status, with the library's message."""
    if status != 0:
        message = last_error() or f"status {status}"
        if context:
            message = f"{context}: {message}"
        raise error_for_status(status, message)


def take_string(pointer):
    """Copies a char* the library allocated and frees it with hpcnn_free."""
    try:
        return ctypes.string_at(pointer.value).decode("utf-8")
    finally:
        lib.hpcnn_free(pointer)


def encode_path(path):
    """A str, bytes or os.PathLike path as the bytes the library reads."""
    return os.fsencode(path)


class OwnedHandle:
    """A library handle (hpcnn_model*, hpcnn_dataset*, hpcnn_fit_options*) released exactly once: by
    :meth:`close`, or when the owner is garbage-collected, or at interpreter exit (weakref.finalize)."""

    def __init__(self, handle, release):
        self.value = handle
        self._finalizer = weakref.finalize(self, release, handle)

    @property
    def closed(self):
        return not self._finalizer.alive

    def close(self):
        self._finalizer()
