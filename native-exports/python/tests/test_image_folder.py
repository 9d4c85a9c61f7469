"""hpcnn.datasets.image_folder on folders of PNG and JPEG files written here with Pillow (python3-pil)."""

import numpy as np
import pytest
from PIL import Image

import hpcnn
from hpcnn import layers as L


def write_folder(root, per_class=8):
    """Classes "red" and "blue" (blue sorts first: class 0), PNG and JPEG alternating, sizes varying, some noise."""
    rng = np.random.default_rng(4)
    for name, colour in (("red", (220, 30, 20)), ("blue", (20, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = 10 + 3 * (i % 3)
            px = np.clip(np.array(colour) + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px, "RGB").save(root / name / f"{i:02d}.{'png' if i % 2 == 0 else 'jpg'}")
    return root


def test_reads_classes_sorted_resized_and_trains(tmp_path):
    root = write_folder(tmp_path / "photos")
    data = hpcnn.datasets.image_folder(root, image_size=(6, 6), channels=3, shuffle=False)
    assert data.images.shape == (16, 3, 6, 6) and data.images.dtype == np.float32
    assert data.class_names == ("blue", "red") and data.skipped == ()
    np.testing.assert_array_equal(data.labels, [0] * 8 + [1] * 8)
    red = data.images[8]
    assert red[0].mean() > 0.75 and red[2].mean() < 0.2, "a red image: red plane high, blue plane low"
    gray = hpcnn.datasets.image_folder(root, (4, 5), channels=1, shuffle=False)
    assert gray.images.shape == (16, 1, 4, 5)
    assert abs(float(gray.images[8].mean()) - (0.299 * 220 + 0.587 * 30 + 0.114 * 20) / 255) < 0.05, "luma of red"

    train, val = hpcnn.datasets.image_folder(root, (6, 6), validation_split=0.25, seed=3)
    assert len(train.labels) == 12 and len(val.labels) == 4 and val.class_names == ("blue", "red")
    again, _ = hpcnn.datasets.image_folder(root, (6, 6), validation_split=0.25, seed=3)
    np.testing.assert_array_equal(again.images, train.images)
    with hpcnn.Sequential([L.Conv2D(4, 3, padding="same"), L.ReLU(), L.Flatten(), L.Dense(2)], input_shape=(3, 6, 6), seed=1) as model:
        model.compile("cross_entropy", hpcnn.optimizers.SGD(lr=0.05, momentum=0.9))
        model.fit(train.images, train.labels, epochs=10, batch_size=4, verbose=0)
        _, accuracy = model.evaluate(val.images, val.labels)
    assert accuracy == 1.0, "red and blue are told apart"


def test_a_corrupt_file_is_named_or_skipped_with_a_warning(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=3)
    broken = root / "red" / "zz-broken.jpg"
    broken.write_bytes((root / "red" / "01.jpg").read_bytes()[:50])
    with pytest.raises(hpcnn.InvalidFileError, match="zz-broken.jpg"):
        hpcnn.datasets.image_folder(root, (6, 6))
    with pytest.warns(UserWarning, match="zz-broken.jpg"):
        data = hpcnn.datasets.image_folder(root, (6, 6), skip_unreadable=True)
    assert len(data.labels) == 6 and len(data.skipped) == 1 and data.skipped[0].startswith(str(broken))


def test_folder_errors(tmp_path):
    root = write_folder(tmp_path / "photos", per_class=2)
    with pytest.raises(MemoryError, match="4 images x 3 x 64 x 64 x 4 bytes"):
        hpcnn.datasets.image_folder(root, (64, 64), max_bytes=1000)
    with pytest.raises(ValueError, match="channels"):
        hpcnn.datasets.image_folder(root, (6, 6), channels=2)
    with pytest.raises(OSError, match="nope"):
        hpcnn.datasets.image_folder(tmp_path / "nope", (6, 6))
    (root / "empty").mkdir()
    with pytest.raises(hpcnn.InvalidFileError, match="empty"):
        hpcnn.datasets.image_folder(root, (6, 6))
