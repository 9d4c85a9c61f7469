"""The preprocessing a model keeps: standardisation, pixel scale and class names saved with it, read back by a fresh
model object, and predict(raw=True) on raw pixels bitwise equal to predict on the images standardised by hand."""

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L

SHAPE = (2, 5, 4)


def small_model():
    model = hpcnn.Sequential([L.Conv2D(3, 3, padding="same"), L.ReLU(), L.Flatten(), L.Dense(3)], input_shape=SHAPE, seed=3)
    model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.05, momentum=0.9))
    return model


def raw_images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n,) + SHAPE, dtype=np.uint8)


def by_hand(raw_bytes, standardization):
    """The library's preprocessing written out in numpy float32: x * (1/255), then (x - mean) / std per pixel or
    (x - mean) * (1 / std) globally."""
    x = raw_bytes.astype(np.float32) * np.float32(1.0 / 255.0)
    mean, std = standardization["mean"], standardization["std"]
    if standardization["mode"] == "per_pixel":
        return (x - mean) / std
    return (x - mean[0]) * (np.float32(1) / std[0])


@pytest.mark.parametrize("per_pixel", [True, False])
def test_standardize_records_in_the_model_and_a_reloaded_model_predicts_raw_pixels_bitwise(tmp_path, per_pixel):
    raw = raw_images(30, 1)
    x = raw.astype(np.float32) * np.float32(1.0 / 255.0)
    y = np.arange(30) % 3
    with small_model() as model:
        assert model.standardization is None and model.class_names is None and model.pixel_scale == "0-1"
        x_train, x_test = hpcnn.datasets.standardize(x[:24], x[24:], per_pixel=per_pixel, model=model)
        st = model.standardization
        assert st["mode"] == ("per_pixel" if per_pixel else "global")
        assert st["mean"].shape == (SHAPE if per_pixel else (1,))
        np.testing.assert_allclose(st["mean"].reshape(-1), x[:24].mean(axis=0).reshape(-1) if per_pixel else [x[:24].mean()],
                                   rtol=1e-5)
        model.class_names = ["cat", "dog", "owl"]
        model.fit(x_train, y[:24], epochs=1, batch_size=8, verbose=0)
        path = tmp_path / "prep.hpcnn"
        model.save(path)
        expected = model.predict(x_test)

    with hpcnn.load(path) as back:
        st = back.standardization
        assert back.class_names == ["cat", "dog", "owl"]
        assert back.pixel_scale == "0-1"
        np.testing.assert_array_equal(by_hand(raw[24:], st), x_test)  # the arrays fit trained on: the library's way
        np.testing.assert_array_equal(back.predict(raw[24:], raw=True), expected)          # uint8: bytes 0-255
        np.testing.assert_array_equal(back.predict(x[24:], raw=True), expected)            # floats in [0, 1]
        np.testing.assert_array_equal(back.predict(raw[24], raw=True), expected[0])        # one image
        np.testing.assert_array_equal(back.predict_classes(raw[24:], raw=True), expected.argmax(axis=1))
        assert back.predict_classes(raw[25], raw=True) == int(expected[1].argmax())
        assert not np.array_equal(back.predict(x[24:]), expected)  # without preprocessing: other numbers


def test_properties_set_clear_and_refuse_what_does_not_fit():
    with small_model() as model:
        model.standardization = (0.5, 0.25)
        st = model.standardization
        assert st["mode"] == "global" and st["mean"][0] == np.float32(0.5) and st["std"][0] == np.float32(0.25)
        model.standardization = None
        assert model.standardization is None
        with pytest.raises(hpcnn.InvalidArgumentError, match="expected 40 values"):
            model.standardization = (np.zeros(7), np.ones(7))
        with pytest.raises(hpcnn.InvalidArgumentError, match="positive"):
            model.standardization = (np.zeros(40), np.zeros(40))
        with pytest.raises(hpcnn.InvalidArgumentError, match="4 class names for a model that scores 3"):
            model.class_names = ["a", "b", "c", "d"]
        model.class_names = ["a", "b"]
        assert model.class_names == ["a", "b"]
        model.class_names = None
        assert model.class_names is None
        with pytest.raises(hpcnn.InvalidArgumentError, match="pixel_scale"):
            model.pixel_scale = "0-65535"
        floats = np.full((1,) + SHAPE, 0.5, dtype=np.float32)
        floats[0, 1, 2, 3] = 200.0
        with pytest.raises(hpcnn.InvalidArgumentError, match=r"value 200 of image 0 \(pixel 31\) is outside \[0, 1\]"):
            model.predict(floats, raw=True)
        model.pixel_scale = "0-255"
        assert model.pixel_scale == "0-255"
        np.testing.assert_array_equal(model.predict(floats, raw=True), model.predict(floats))


def test_a_byte_scale_model_takes_bytes_as_they_are(tmp_path):
    raw = raw_images(4, 2)
    with small_model() as model:
        model.pixel_scale = "0-255"
        model.standardization = (120.0, 60.0)
        path = tmp_path / "bytes.hpcnn"
        model.save(path)
    with hpcnn.load(path) as back:
        x = (raw.astype(np.float32) - np.float32(120)) * (np.float32(1) / np.float32(60))
        np.testing.assert_array_equal(back.predict(raw, raw=True), back.predict(x))


def test_the_record_travels_through_onnx(tmp_path):
    raw = raw_images(3, 4)
    with small_model() as model:
        model.standardization = (np.full(SHAPE, 0.4, dtype=np.float32), np.full(SHAPE, 0.2, dtype=np.float32))
        model.class_names = ["cat", "dog", "owl"]
        expected = model.predict(raw, raw=True)
        for embed in (False, True):
            path = tmp_path / f"m{int(embed)}.onnx"
            model.save_onnx(path, embed_standardization=embed)
            with hpcnn.load_onnx(path) as back:
                assert back.class_names == ["cat", "dog", "owl"]
                assert back.standardization["mode"] == "per_pixel"
                np.testing.assert_array_equal(back.standardization["mean"], model.standardization["mean"])
                np.testing.assert_allclose(back.predict(raw, raw=True), expected, rtol=1e-6)
