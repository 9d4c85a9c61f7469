"""The Sequential API: layers, shapes, weights, specs, input forms, lifetime, all layer types."""

import gc
import json

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L
from conftest import reference_layers



def test_layer_info_of_the_reference_network():
    with hpcnn.Sequential(reference_layers(), input_shape=(1, 28, 28)) as model:
        assert len(model) == 10 and model.input_shape == (1, 28, 28) and model.output_size == 10
        assert model.count_params() == 421642
        info = model.layers
        assert [l.kind for l in info] == ["conv2d", "relu", "maxpool2d", "conv2d", "relu", "maxpool2d", "flatten", "dense",
                                          "relu", "dense"]
        assert [l.output_shape for l in info] == [(32, 28, 28), (32, 28, 28), (32, 14, 14), (64, 14, 14), (64, 14, 14),
                                                  (64, 7, 7), (3136, 1, 1), (128, 1, 1), (128, 1, 1), (10, 1, 1)]
        assert info[0].params == {"weight": (32, 1, 3, 3), "bias": (32,)}
        assert info[3].params == {"weight": (64, 32, 3, 3), "bias": (64,)}
        assert info[7].params == {"weight": (128, 3136), "bias": (128,)}
        assert sum(l.param_count for l in info) == 421642
        assert model.layer(-1).index == 9 and model.layer(-1).params == {"weight": (10, 128), "bias": (10,)}
        w = model.get_weights(0)
        assert list(w) == ["weight", "bias"] and w["weight"].shape == (32, 1, 3, 3) and w["weight"].dtype == np.float32
        # PyTorch's default initialisation: uniform in +-1/sqrt(fan_in)
        assert 0 < np.abs(w["weight"]).max() <= 1 / 3 and np.abs(model.get_weights(7, "weight")).max() <= 1 / np.sqrt(3136)
        text = model.summary(print_fn=None)
        assert "421,642" in text and "maxpool2d" in text
        assert "10 layers" in repr(model)


def test_summary_prints(capsys):
    with hpcnn.Sequential([L.Flatten(), L.Dense(3)], input_shape=(2, 4, 4)) as model:
        model.summary()
    assert "dense" in capsys.readouterr().out


def test_set_weights_round_trip_and_forms():
    rng = np.random.default_rng(0)
    with hpcnn.Sequential([L.Conv2D(1, 3, bias=False), L.Flatten(), L.Dense(4)], input_shape=(1, 6, 6)) as model:
        k = rng.standard_normal((3, 3)).astype(np.float32)
        model.set_weights(0, "weight", k)  # a (3, 3) filter for a (1, 1, 3, 3) weight
        np.testing.assert_array_equal(model.get_weights(0, "weight"), k.reshape(1, 1, 3, 3))
        dense = {"weight": rng.standard_normal((4, 16)), "bias": np.arange(4)}  # float64 / int arrays are converted
        model.set_weights(2, dense)
        got = model.get_weights(2)
        np.testing.assert_array_equal(got["weight"], dense["weight"].astype(np.float32))
        np.testing.assert_array_equal(got["bias"], [0, 1, 2, 3])
        # get_weights returns copies: changing them does not change the model
        got["bias"][:] = 9
        np.testing.assert_array_equal(model.get_weights(2, "bias"), [0, 1, 2, 3])
        # and the weights are what the model computes with
        x = rng.standard_normal((5, 1, 6, 6)).astype(np.float32)
        maps = model.layer_output(0, x)
        assert maps.shape == (5, 1, 4, 4)
        flat = model.layer_output(1, x)
        assert flat.shape == (5, 16)
        np.testing.assert_allclose(model.predict(x), flat @ dense["weight"].T.astype(np.float32) + np.arange(4), rtol=1e-5, atol=1e-5)


def test_spec_round_trip_rebuilds_the_same_model(tmp_path):
    with hpcnn.Sequential(reference_layers()[:3] + [L.Flatten(), L.Dropout(0.25), L.Dense(10)], input_shape=(1, 28, 28),
                          seed=1234) as model:
        model.compile("cross_entropy", hpcnn.optimizers.Adam(lr=0.002), schedule=hpcnn.optimizers.StepSchedule(2, 0.5))
        model.freeze(0)
        spec = model.spec()
        assert spec["seed"] == 1234 and spec["loss"] == "cross_entropy" and spec["optimizer"]["type"] == "adam"
        assert spec["schedule"] == {"type": "step", "step_size": 2, "gamma": 0.5}
        assert spec["layers"][0]["frozen"] is True and spec["layers"][4] == {"type": "dropout", "rate": 0.25}
        x = np.random.default_rng(2).random((4, 1, 28, 28), dtype=np.float32)
        expected = model.predict(x)
        path = tmp_path / "net.json"
        path.write_text(json.dumps(spec, indent=2))
        for source in (spec, json.dumps(spec), str(path), path):
            with hpcnn.from_spec(source) as again:
                assert again.spec() == spec and again.layers[0].frozen
                np.testing.assert_array_equal(again.predict(x), expected)  # same seed, same initial weights


def test_every_layer_type_builds_trains_and_predicts():
    all_layers = [L.Conv2D(4, (3, 5), stride=(1, 2), padding="same", init="he"), L.BatchNorm2D(), L.LeakyReLU(0.1),
                  L.AvgPool2D(2, stride=1), L.FeatureMapNorm(), L.Tanh(), L.Conv2D(3, 3, init="normal", init_std=0.1),
                  L.ReLU(cap=6), L.MaxPool2D((2, 1), padding="valid"), L.Sigmoid(), L.Flatten(), L.Dropout(0.1, seed=5),
                  L.Dense(3, init="xavier"), L.Softmax()]
    with hpcnn.Sequential(all_layers, input_shape=(2, 12, 12), seed=9) as model:
        kinds = [l.kind for l in model.layers]
        assert kinds == ["conv2d", "batchnorm2d", "leakyrelu", "avgpool2d", "featuremapnorm", "tanh", "conv2d", "relu",
                         "maxpool2d", "sigmoid", "flatten", "dropout", "dense", "softmax"]
        assert model.layers[0].output_shape == (4, 12, 6)
        assert model.layers[1].params == {"gamma": (4,), "beta": (4,), "running_mean": (4,), "running_var": (4,)}
        assert [l["type"] for l in model.spec()["layers"]] == kinds
        model.compile("cross_entropy", "adam", schedule=hpcnn.optimizers.CosineSchedule(3))
        rng = np.random.default_rng(4)
        x = rng.standard_normal((48, 2, 12, 12)).astype(np.float32)
        y = rng.integers(0, 3, 48)
        before = model.get_weights(1, "running_mean").copy()
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        assert history.epochs_completed == 3 and all(np.isfinite(e["loss"]) for e in history.epochs)
        assert not np.array_equal(model.get_weights(1, "running_mean"), before)  # batch norm tracked statistics
        p = model.predict(x)
        assert p.shape == (48, 3)
        np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


def test_train_on_batch_lowers_the_loss_on_that_batch():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 1, 8, 8)).astype(np.float32)
    y = np.arange(8) % 2
    with hpcnn.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 8, 8)) as model:
        model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.1))
        losses = [model.train_on_batch(x, y) for _ in range(20)]
        assert losses[-1] < losses[0] / 2
        # plain SGD: one step moves the weights by lr x gradient
        start = model.get_weights(1)
        model.set_learning_rate(0.01)
        model.train_on_batch(x, y)
        small = model.get_weights(1, "weight") - start["weight"]
        model.set_weights(1, start)
        model.set_learning_rate(0.04)
        model.train_on_batch(x, y)
        large = model.get_weights(1, "weight") - start["weight"]
        assert np.abs(small).max() > 0
        np.testing.assert_allclose(large, 4 * small, rtol=1e-3, atol=1e-7)
        with pytest.raises(hpcnn.InvalidArgumentError, match="learning rate"):
            model.set_learning_rate(0)


def test_mse_model_predicts_raw_outputs():
    with hpcnn.Sequential([L.Flatten(), L.Dense(2, bias=False)], input_shape=(1, 1, 2)) as model:
        model.set_weights(1, "weight", np.array([[3.0, 0.0], [0.0, -2.0]]))
        model.compile("mse", "sgd")
        np.testing.assert_allclose(model.predict(np.array([[[[1.0, 1.0]]]])), [[3.0, -2.0]])
    with hpcnn.Sequential([L.Flatten(), L.Dense(2, bias=False)], input_shape=(1, 1, 2)) as model:
        model.set_weights(1, "weight", np.array([[3.0, 0.0], [0.0, -2.0]]))
        model.compile("cross_entropy", "sgd")  # logits: predict applies softmax
        e = np.exp([3.0, -2.0])
        np.testing.assert_allclose(model.predict(np.array([[[[1.0, 1.0]]]])), [e / e.sum()], rtol=1e-5)


def test_input_forms_and_no_copy():
    rng = np.random.default_rng(6)
    with hpcnn.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(3)], input_shape=(28, 28), seed=3) as model:
        assert model.input_shape == (1, 28, 28)
        x = rng.random((5, 1, 28, 28), dtype=np.float32)
        expected = model.predict(x)
        converted, single = model._images(x)
        assert converted is x and not single  # C-contiguous float32: handed over as it is
        np.testing.assert_array_equal(model.predict(x[:, 0]), expected)               # (N, H, W)
        np.testing.assert_array_equal(model.predict(x[2]), expected[2])               # (1, H, W): one image
        np.testing.assert_array_equal(model.predict(x[2, 0]), expected[2])            # (H, W): one image
        np.testing.assert_array_equal(model.predict(x.astype(np.float64)), expected)  # converted
        flipped = np.ascontiguousarray(x[:, :, ::-1])
        np.testing.assert_array_equal(model.predict(x[:, :, ::-1]), model.predict(flipped))  # non-contiguous view
        assert model.predict_classes(x[1]) == int(np.argmax(expected[1]))
        np.testing.assert_array_equal(model.predict_classes(x), np.argmax(expected, axis=1))
    with hpcnn.Sequential([L.Flatten(), L.Dense(2)], input_shape=(3, 4, 5)) as model:
        x = rng.random((2, 3, 4, 5), dtype=np.float32)
        assert model.predict(x[0]).shape == (2,)
        with pytest.raises(hpcnn.InvalidArgumentError):
            model.predict(x[:, 0])  # (N, H, W) only for one-channel models


def test_model_handles_are_released():
    model = hpcnn.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 4, 4))
    finalizer = model._owned._finalizer
    assert finalizer.alive
    del model
    gc.collect()
    assert not finalizer.alive
    with hpcnn.Sequential([L.Flatten()], input_shape=(1, 4, 4)) as model:
        assert not model.closed
    assert model.closed


def test_constructor_arguments():
    with pytest.raises(hpcnn.InvalidArgumentError, match="input_shape"):
        hpcnn.Sequential([L.Flatten()])
    with pytest.raises(hpcnn.InvalidArgumentError, match="input_shape"):
        hpcnn.Sequential(input_shape=(1, 2, 3, 4))
    with pytest.raises(hpcnn.InvalidArgumentError):
        hpcnn.Sequential(input_shape=(0, 28, 28))
    with pytest.raises(ValueError, match="padding"):
        L.Conv2D(3, 3, padding="full")
    with pytest.raises(TypeError):
        hpcnn.Sequential([object()], input_shape=(1, 4, 4))
    with pytest.raises(ValueError, match="unknown optimizer"):
        hpcnn.Sequential([L.Flatten(), L.Dense(2)], input_shape=(1, 4, 4)).compile("cross_entropy", "rmsprop")
