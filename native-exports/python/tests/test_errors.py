"""Errors reach Python as exceptions of the right class, carrying the library's message."""

import ctypes

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L
from hpcnn._native import last_error, lib


def flat_model(outputs=2):
    model = hpcnn.Sequential([L.Flatten(), L.Dense(outputs)], input_shape=(1, 28, 28))
    return model


def test_dense_on_an_image_input_names_the_layer():
    with hpcnn.Sequential([L.Conv2D(2, 3)], input_shape=(1, 28, 28)) as model:
        with pytest.raises(hpcnn.InvalidArgumentError) as e:
            model.add(L.Dense(10))
        message = str(e.value)
        assert "layer 1 (dense)" in message and "flatten" in message and "2x26x26" in message
        assert len(model) == 1  # the refused layer was not added
        with pytest.raises(ValueError):  # also a ValueError
            model.add(L.Dense(10))


def test_wrong_input_shape_to_predict():
    with flat_model() as model:
        for bad in (np.zeros((2, 3, 28, 28)), np.zeros((2, 28)), np.zeros((5, 1, 32, 32)), np.zeros((0, 1, 28, 28))):
            with pytest.raises(hpcnn.InvalidArgumentError, match=r"\(N, 1, 28, 28\)") as e:
                model.predict(bad)
            assert str(bad.shape) in str(e.value)


def test_the_library_checks_buffer_sizes_itself():
    # Below the Python checks: a raw call with a wrong output size is refused with a message and nothing written.
    with flat_model() as model:
        x = np.zeros((3, 1, 28, 28), dtype=np.float32)
        out = np.full(5, 7.0, dtype=np.float32)
        status = lib.hpcnn_predict(model._h, x, 3, out, out.size)
        assert status == 1
        assert "expected 6 values" in last_error() and "got a buffer of 5" in last_error()
        assert np.all(out == 7.0)


def test_labels_out_of_range_in_fit():
    with flat_model(2) as model:
        model.compile("cross_entropy", "sgd")
        x = np.zeros((3, 1, 28, 28), dtype=np.float32)
        with pytest.raises(hpcnn.InvalidArgumentError, match="label 5 of sample 2 is outside the 2 classes"):
            model.fit(x, [0, 1, 5], verbose=0)
        with pytest.raises(hpcnn.InvalidArgumentError, match="label -1"):
            model.fit(x, [0, -1, 1], verbose=0)
        with pytest.raises(hpcnn.InvalidArgumentError, match="3 labels"):
            model.fit(x, [0, 1], verbose=0)
        with pytest.raises(hpcnn.InvalidArgumentError, match="whole numbers"):
            model.fit(x, [0, 0.5, 1], verbose=0)
        with pytest.raises(hpcnn.InvalidArgumentError, match="label 7"):
            model.evaluate(x, [0, 7, 1])
        with pytest.raises(hpcnn.InvalidArgumentError, match="batch size"):
            model.fit(x, [0, 1, 1], batch_size=0, verbose=0)


def test_fit_before_compile_is_an_invalid_state():
    with flat_model() as model:
        with pytest.raises(hpcnn.InvalidStateError, match="compile"):
            model.fit(np.zeros((2, 1, 28, 28)), [0, 1], verbose=0)
        with pytest.raises(hpcnn.InvalidStateError, match="compile"):
            model.set_learning_rate(0.1)


def test_loss_that_does_not_fit_the_output():
    with flat_model(1) as model:
        with pytest.raises(hpcnn.InvalidArgumentError, match="binary"):
            model.compile("cross_entropy")
        with pytest.raises(hpcnn.InvalidArgumentError, match="unknown loss"):
            model.compile("hinge")
    with flat_model(3) as model:
        with pytest.raises(hpcnn.InvalidArgumentError, match="exactly 1 output"):
            model.compile("binary_cross_entropy")


def test_bad_specs_name_the_field():
    with pytest.raises(hpcnn.InvalidArgumentError, match=r"layers\[0\]\.stride"):
        hpcnn.from_spec({"input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "stride": 0}]})
    with pytest.raises(hpcnn.InvalidArgumentError, match="did you mean 'filters'"):
        hpcnn.from_spec('{"input": [1, 28, 28], "layers": [{"type": "conv2d", "filtres": 4, "kernel": 3}]}')
    with pytest.raises(hpcnn.InvalidArgumentError, match="not valid JSON"):
        hpcnn.from_spec("{ this is not json")
    with flat_model() as model:
        with pytest.raises(hpcnn.InvalidArgumentError, match="unknown layer type 'convolution'"):
            model.add({"type": "convolution"})


def test_parameters_errors():
    with flat_model() as model:
        with pytest.raises(hpcnn.InvalidArgumentError, match="has no parameter 'kernel'.*weight, bias"):
            model.set_weights(1, "kernel", np.zeros(3))
        with pytest.raises(hpcnn.InvalidArgumentError, match="has no parameter 'kernel'"):
            model.get_weights(1, "kernel")
        with pytest.raises(hpcnn.InvalidArgumentError, match=r"shape \(2, 784\)"):
            model.set_weights(1, "weight", np.zeros((784, 2)))
        with pytest.raises(hpcnn.InvalidArgumentError, match="layer 7 does not exist"):
            model.get_weights(7)
        with pytest.raises(hpcnn.InvalidArgumentError, match="does not exist"):
            model.freeze(2)
        assert model.get_weights(0) == {}  # flatten has no parameters


def test_diverging_training_raises_numeric_error():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32) * 10
    y = rng.integers(0, 2, 64)
    with flat_model(2) as model:
        model.compile("mse", hpcnn.optimizers.SGD(lr=1e30))
        with pytest.raises(hpcnn.NumericError, match="lower the learning rate"):
            model.fit(x, y, epochs=3, batch_size=8, verbose=0)


def test_closed_model():
    model = flat_model()
    model.close()
    model.close()  # twice is fine
    assert model.closed and "closed" in repr(model)
    with pytest.raises(hpcnn.InvalidStateError, match="closed"):
        model.predict(np.zeros((1, 28, 28)))
    # the library itself refuses a released handle with a message instead of crashing
    stale = ctypes.c_void_p(model._owned.value.value)
    assert lib.hpcnn_model_layer_count(stale, ctypes.byref(ctypes.c_int32())) == 1
    assert "not a live handle" in last_error()


def test_errors_are_per_thread():
    import threading
    with flat_model() as model:
        with pytest.raises(hpcnn.InvalidArgumentError):
            model.get_weights(9)
        seen = []
        t = threading.Thread(target=lambda: seen.append(last_error()))
        t.start()
        t.join()
        assert seen == [""]  # another thread has no last error
        assert "layer 9" in last_error()


@pytest.mark.parametrize("layer, message", [
    ({"type": "avgpool2d", "kernel": 4, "stride": 1, "padding": 3}, "at most half the 4x4 window"),
    ({"type": "maxpool2d", "kernel": 3, "stride": 1, "padding": [2, 0, 0, 0]}, "at most half the 3x3 window"),
    ({"type": "conv2d", "filters": 2, "kernel": 3, "padding": 3}, "smaller than the 3x3 kernel"),
    ({"type": "avgpool2d", "kernel": 12, "padding": 1}, "does not fit the 8x8 input"),
])
def test_geometry_no_real_network_has_is_refused(layer, message):
    import json
    with pytest.raises(hpcnn.InvalidArgumentError, match=message):
        hpcnn.from_spec(json.dumps({"input": [1, 8, 8], "layers": [layer]}))
    kind = layer["type"]
    with pytest.raises(hpcnn.InvalidArgumentError, match=message):
        pad = layer["padding"]
        if kind == "conv2d":
            hpcnn.Sequential([L.Conv2D(2, 3, padding=pad)], input_shape=(1, 8, 8))
        elif kind == "maxpool2d":
            hpcnn.Sequential([L.MaxPool2D(3, stride=1, padding=tuple(pad))], input_shape=(1, 8, 8))
        else:
            hpcnn.Sequential([L.AvgPool2D(layer["kernel"], stride=layer.get("stride"), padding=pad)], input_shape=(1, 8, 8))
