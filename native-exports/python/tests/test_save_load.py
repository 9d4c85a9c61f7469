"""Model files: round trips, resumed training, and the errors of missing, corrupt and truncated files."""

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L


def small_model(seed=5):
    model = hpcnn.Sequential([L.Conv2D(4, 3, padding="same"), L.ReLU(), L.MaxPool2D(2), L.Flatten(), L.Dense(10)],
                             input_shape=(1, 28, 28), seed=seed)
    model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.01, momentum=0.9))
    return model


@pytest.fixture(scope="module")
def data(fashion):
    (x, y), (xt, yt) = fashion
    return x[:2000], y[:2000], xt[:500], yt[:500]


@pytest.fixture
def saved(tmp_path, data):
    x, y, _, _ = data
    model = small_model()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "small.hpcnn"
    model.save(path)
    yield model, path
    model.close()


def test_round_trip_gives_identical_predictions(saved, data):
    model, path = saved
    _, _, xt, yt = data
    with hpcnn.load(path) as loaded:
        np.testing.assert_array_equal(loaded.predict(xt), model.predict(xt))
        np.testing.assert_array_equal(loaded.predict_classes(xt), model.predict_classes(xt))
        assert loaded.spec() == model.spec()
        assert loaded.epochs_trained == model.epochs_trained == 1
        for i in range(len(model)):
            for name, w in model.get_weights(i).items():
                np.testing.assert_array_equal(loaded.get_weights(i, name), w)
        assert loaded.evaluate(xt, yt) == model.evaluate(xt, yt)


def test_training_resumes_from_a_file(saved, data):
    # weights, optimizer state (momentum) and epochs trained are restored: one more epoch gives the same model
    model, path = saved
    x, y, xt, _ = data
    with hpcnn.Sequential.load(str(path)) as loaded:
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        loaded.fit(x, y, epochs=1, batch_size=32, verbose=0)
        assert loaded.epochs_trained == model.epochs_trained == 2
        np.testing.assert_array_equal(loaded.predict(xt), model.predict(xt))


def test_corrupted_file_raises_invalid_file_error(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    bad = tmp_path / "corrupted.hpcnn"
    bad.write_bytes(bytes(data))
    with pytest.raises(hpcnn.InvalidFileError) as e:
        hpcnn.load(bad)
    assert str(bad) in str(e.value) and e.value.status == 4
    assert not isinstance(e.value, OSError)


@pytest.mark.parametrize("keep", [0, 4, 20, 0.5, -1])
def test_truncated_file_raises_invalid_file_error(saved, tmp_path, keep):
    _, path = saved
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    bad = tmp_path / "truncated.hpcnn"
    bad.write_bytes(data[:cut])
    with pytest.raises(hpcnn.InvalidFileError) as e:
        hpcnn.load(bad)
    assert str(bad) in e.value.message


def test_not_a_model_file(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a model\n" * 20)
    with pytest.raises(hpcnn.InvalidFileError, match="not an HpCnn model file"):
        hpcnn.load(bad)


def test_missing_file_raises_an_oserror(tmp_path):
    missing = tmp_path / "missing.hpcnn"
    with pytest.raises(OSError) as e:
        hpcnn.load(missing)
    assert isinstance(e.value, hpcnn.HpcnnIOError) and e.value.status == 3
    assert str(missing) in str(e.value)


def test_saving_into_a_missing_directory_raises_an_oserror(tmp_path):
    with small_model() as model:
        with pytest.raises(hpcnn.HpcnnIOError):
            model.save(tmp_path / "no" / "such" / "dir" / "m.hpcnn")
