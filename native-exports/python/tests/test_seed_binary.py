"""The seed tutorial, trained from Python: trousers vs dresses with one 3x3 filter, and the freezing experiment."""

import numpy as np

import hpcnn
from conftest import seed_model


def test_dataset_helpers_match_the_reference_preparation(fashion, binary):
    (x, y), _ = fashion
    xs, ys = hpcnn.datasets.filter_classes(x, y, [1, 3])
    assert xs.shape == (12000, 1, 28, 28) and set(np.unique(ys)) == {0, 1}
    ref_train, ref_ytrain, ref_val, ref_yval = binary
    np.testing.assert_array_equal(ys[:-1000], ref_ytrain)
    np.testing.assert_array_equal(ys[-1000:], ref_yval)
    train, val = hpcnn.datasets.standardize(xs[:-1000], xs[-1000:], per_pixel=True)
    np.testing.assert_allclose(train, ref_train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(val, ref_val, rtol=1e-5, atol=1e-5)
    assert abs(float(train.mean())) < 1e-3


def test_fashion_mnist_arrays(fashion):
    (x, y), (xt, yt) = fashion
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float32
    assert xt.shape == (10000, 1, 28, 28) and yt.dtype == np.int32
    assert 0.0 == x.min() and x.max() == 1.0
    assert np.bincount(y).tolist() == [6000] * 10
    # The global statistics the reference network standardises with (ANCHORS.md): mean 0.2860, std 0.3530.
    assert abs(float(x.mean()) - 0.2860) < 5e-4 and abs(float(x.std()) - 0.3530) < 5e-4


def test_seed_binary_model_reaches_096_validation_accuracy(binary):
    x_train, y_train, x_val, y_val = binary
    with seed_model() as model:
        assert model.count_params() == 9 + 784
        history = model.fit(x_train, y_train, epochs=5, batch_size=1, validation_data=(x_val, y_val), verbose=0)
        assert history.epochs_completed == 5 and model.epochs_trained == 5
        last = history.epochs[-1]
        assert last["val_accuracy"] >= 0.96, history.history
        assert last["accuracy"] >= 0.95
        assert set(last) == {"loss", "accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_second"}
        assert last["samples_per_second"] > 0 and last["seconds"] > 0
        # evaluate and predict agree with the history and with each other
        loss, accuracy = model.evaluate(x_val, y_val)
        assert abs(accuracy - last["val_accuracy"]) < 1e-9 and abs(loss - last["val_loss"]) < 1e-6
        p = model.predict(x_val)
        assert p.shape == (1000, 1) and p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
        classes = model.predict_classes(x_val)
        np.testing.assert_array_equal(classes, (p[:, 0] >= 0.5).astype(np.int32))
        assert abs(float(np.mean(classes == y_val)) - accuracy) < 1e-9
        # the loss from the logits (the dense layer's output, before the sigmoid layer)
        z = model.layer_output(3, x_val).astype(np.float64)
        assert z.shape == (1000, 1)
        np.testing.assert_allclose(1 / (1 + np.exp(-z)), p, rtol=1e-4, atol=1e-6)
        bce = np.mean(np.logaddexp(0, z[:, 0]) - y_val * z[:, 0])
        assert abs(bce - loss) < 1e-4 * max(1.0, loss)


def test_training_is_reproducible_with_a_seed(binary):
    x_train, y_train, _, _ = binary
    weights = []
    for _ in range(2):
        with seed_model(seed=7) as model:
            model.fit(x_train[:2000], y_train[:2000], epochs=1, batch_size=8, seed=123, verbose=0)
            weights.append(model.get_weights(3, "weight"))
    np.testing.assert_array_equal(weights[0], weights[1])


def test_layer_freezing_experiment(binary):
    x_train, y_train, _, _ = binary
    x, y = x_train[:3000], y_train[:3000]
    with seed_model() as model:
        conv0, dense0 = model.get_weights(0, "weight"), model.get_weights(3, "weight")

        model.freeze(0)
        assert model.layers[0].frozen and not model.layers[3].frozen
        assert "conv2d*" in model.summary(print_fn=None)
        model.fit(x, y, epochs=1, batch_size=1, verbose=0)
        conv1, dense1 = model.get_weights(0, "weight"), model.get_weights(3, "weight")
        np.testing.assert_array_equal(conv1, conv0)
        assert np.max(np.abs(dense1 - dense0)) > 1e-4

        model.unfreeze(0)
        model.freeze(-2)  # the dense layer, counted from the end
        assert not model.layers[0].frozen and model.layers[3].frozen
        model.fit(x, y, epochs=1, batch_size=1, verbose=0)
        conv2, dense2 = model.get_weights(0, "weight"), model.get_weights(3, "weight")
        np.testing.assert_array_equal(dense2, dense1)
        assert np.max(np.abs(conv2 - conv1)) > 1e-4
