"""One rule per layer type: the library owns the defaults and the validation; the Python classes, a spec dict and the
C functions all reach the same layer type."""

import pytest

import hpcnn
from hpcnn import layers as L
from hpcnn._native import lib


def _rule(message):
    """The message after the name of the door ("layer.cap: ..." / "hpcnn_add_relu.cap: ..." -> "cap: ...")."""
    return message.split(".", 1)[1]


def test_the_classes_leave_defaults_to_the_library():
    assert L.BatchNorm2D().to_spec() == {"type": "batchnorm2d"}
    assert L.FeatureMapNorm().to_spec() == {"type": "featuremapnorm"}
    assert L.LeakyReLU().to_spec() == {"type": "leakyrelu"}
    assert L.ReLU().to_spec() == {"type": "relu"}
    assert L.MaxPool2D().to_spec() == {"type": "maxpool2d"}
    assert L.Conv2D(4, 3).to_spec() == {"type": "conv2d", "filters": 4, "kernel": [3, 3]}
    assert L.Dense(5).to_spec() == {"type": "dense", "units": 5}
    # what was given is passed on as given, defaults included
    assert L.BatchNorm2D(epsilon=1e-3, momentum=0.1).to_spec() == {"type": "batchnorm2d", "epsilon": 1e-3, "momentum": 0.1}
    with hpcnn.Sequential([L.LeakyReLU(), L.MaxPool2D(), L.Conv2D(2, 1)], input_shape=(1, 4, 4)) as model:
        spec = model.spec()["layers"]
        assert spec[0]["alpha"] == pytest.approx(0.01)  # the library's default, written back by the library
        assert spec[1]["kernel"] == 2 and model.layers[1].output_shape == (1, 2, 2)
        assert spec[2]["stride"] == 1 and spec[2]["padding"] == "valid"


@pytest.mark.parametrize("layer, spec, c_call, fragment", [
    (L.ReLU(cap=-1), {"type": "relu", "cap": -1}, lambda m: lib.hpcnn_add_relu(m, -1.0), "cap must be positive"),
    (L.BatchNorm2D(epsilon=-1e-3), {"type": "batchnorm2d", "epsilon": -1e-3}, lambda m: lib.hpcnn_add_batchnorm2d(m, -1e-3, -1.0),
     "epsilon must be positive"),
    (L.BatchNorm2D(momentum=1.5), {"type": "batchnorm2d", "momentum": 1.5}, lambda m: lib.hpcnn_add_batchnorm2d(m, 0.0, 1.5),
     "momentum must be in [0, 1]"),
    (L.FeatureMapNorm(epsilon=-1), {"type": "featuremapnorm", "epsilon": -1}, lambda m: lib.hpcnn_add_feature_map_norm(m, -1.0),
     "epsilon must be positive"),
    (L.LeakyReLU(alpha=1), {"type": "leakyrelu", "alpha": 1}, lambda m: lib.hpcnn_add_leaky_relu(m, 1.0), "alpha must be in [0, 1)"),
    (L.Dropout(1.0), {"type": "dropout", "rate": 1.0}, lambda m: lib.hpcnn_add_dropout(m, 1.0, 3), "rate must be in [0, 1)"),
])
def test_every_door_refuses_with_the_same_rule(layer, spec, c_call, fragment):
    with hpcnn.Sequential(input_shape=(2, 6, 6)) as model:
        with pytest.raises(hpcnn.InvalidArgumentError) as by_class:
            model.add(layer)
        with pytest.raises(hpcnn.InvalidArgumentError) as by_spec:
            model.add(spec)
        assert c_call(model._h) == 1  # HPCNN_INVALID_ARGUMENT
        by_c = lib.hpcnn_last_error().decode("utf-8")
        assert fragment in by_class.value.message
        assert by_class.value.message.startswith("layer.") and by_c.startswith("hpcnn_add_")
        assert _rule(by_class.value.message) == _rule(by_spec.value.message) == _rule(by_c)
        assert len(model) == 0


def test_known_types_cover_the_classes_and_spec_reaches_any_type():
    known = {t["type"]: t for t in L.known_types()}
    classes = [getattr(L, name) for name in L.__all__ if isinstance(getattr(L, name), type)]
    for cls in classes:
        if cls.type is not None:
            assert cls.type in known, f"{cls.__name__}.type {cls.type!r} is not a layer type of the library"
    assert known["batchnorm2d"]["fields"] == ["epsilon", "momentum"] and "conv" in known["conv2d"]["aliases"]
    with hpcnn.Sequential([L.Spec("conv", filters=3, kernel=3), L.Spec("batchnorm2d", momentum=0.05), L.Spec("flatten")],
                          input_shape=(1, 5, 5)) as model:
        assert [l.kind for l in model.layers] == ["conv2d", "batchnorm2d", "flatten"]
        assert model.spec()["layers"][1]["momentum"] == pytest.approx(0.05)
    assert repr(L.Spec("relu", cap=6)) == "Spec('relu', cap=6)"
