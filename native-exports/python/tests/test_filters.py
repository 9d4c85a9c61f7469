"""Hand-made filters (the fourth tutorial): box blur, vertical edges and a diagonal loaded into a convolution with
set_weights, applied to a Fashion-MNIST image through layer_output, and compared with a numpy convolution."""

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L

BOX_BLUR = np.full((3, 3), 1 / 9, dtype=np.float32)
VERTICAL_EDGES = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], dtype=np.float32)
DIAGONAL = np.array([[2, -1, -1], [-1, 2, -1], [-1, -1, 2]], dtype=np.float32)
FILTERS = np.stack([BOX_BLUR, VERTICAL_EDGES, DIAGONAL])  # (3, 3, 3): filters x kh x kw


def conv2d_reference(image, kernels, stride=(1, 1), pad=(0, 0, 0, 0), bias=None):
    """Cross-correlation of image (C, H, W) with kernels (F, C, kh, kw), stride (vertical, horizontal) or an int,
    zero padding (top, left, bottom, right)."""
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    top, left, bottom, right = pad
    x = np.pad(image.astype(np.float64), ((0, 0), (top, bottom), (left, right)))
    f, c, kh, kw = kernels.shape
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, i, j] = np.tensordot(kernels, patch, axes=([1, 2, 3], [0, 1, 2]))
    if bias is not None:
        out += np.asarray(bias)[:, None, None]
    return out


def pool_reference(maps, size=2, op=np.max):
    f, h, w = maps.shape
    oh, ow = h // size, w // size
    blocks = maps[:, :oh * size, :ow * size].reshape(f, oh, size, ow, size)
    return op(op(blocks, axis=4), axis=2)


@pytest.fixture(scope="module")
def image(fashion):
    _, (x_test, y_test) = fashion
    return x_test[0]  # (1, 28, 28), an ankle boot


def filter_model(conv, *rest):
    model = hpcnn.Sequential([conv, *rest], input_shape=(1, 28, 28))
    model.set_weights(0, "weight", FILTERS[:, None])  # (3, 1, 3, 3)
    np.testing.assert_array_equal(model.get_weights(0, "weight")[:, 0], FILTERS)
    return model


def test_filters_with_same_padding_relu_and_max_pooling(image):
    with filter_model(L.Conv2D(3, 3, padding="same", bias=False), L.ReLU(), L.MaxPool2D(2), L.AvgPool2D(2)) as model:
        expected = conv2d_reference(image, FILTERS[:, None], pad=(1, 1, 1, 1))
        maps = model.layer_output(0, image)            # one image in, (3, 28, 28) out
        assert maps.shape == (3, 28, 28)
        np.testing.assert_allclose(maps, expected, atol=1e-5)
        # the vertical-edge map has both signs before the ReLU, none after
        assert maps[1].min() < -0.1 and maps[1].max() > 0.1
        relu = model.layer_output(1, image)
        np.testing.assert_allclose(relu, np.maximum(expected, 0), atol=1e-5)
        pooled = model.layer_output(2, image[None])    # a batch of one gives a batch axis
        assert pooled.shape == (1, 3, 14, 14)
        np.testing.assert_allclose(pooled[0], pool_reference(np.maximum(expected, 0)), atol=1e-5)
        averaged = model.layer_output(3, image)
        np.testing.assert_allclose(averaged, pool_reference(pool_reference(np.maximum(expected, 0)), op=np.mean), atol=1e-5)


def test_box_blur_is_the_mean_of_each_3x3_window(image):
    with filter_model(L.Conv2D(3, 3, bias=False)) as model:
        blurred = model.layer_output(0, image)[0]       # valid padding: 26 x 26, the box-blur map
        assert blurred.shape == (26, 26)
        inner = image[0].astype(np.float64)
        direct = sum(inner[i:i + 26, j:j + 26] for i in range(3) for j in range(3)) / 9
        np.testing.assert_allclose(blurred, direct, atol=1e-5)


@pytest.mark.parametrize("padding, pad, size", [
    ("valid", (0, 0, 0, 0), 13),
    (1, (1, 1, 1, 1), 14),
    ((0, 1, 2, 1), (0, 1, 2, 1), 14),
    ("same", (0, 0, 1, 1), 14),  # ceil(28 / 2) = 14 needs 1 row and column of padding: at the bottom/right
])
def test_filters_with_stride_2(image, padding, pad, size):
    with filter_model(L.Conv2D(3, 3, stride=2, padding=padding, bias=False)) as model:
        assert model.layers[0].output_shape == (3, size, size)
        maps = model.layer_output(0, image)
        np.testing.assert_allclose(maps, conv2d_reference(image, FILTERS[:, None], stride=2, pad=pad), atol=1e-5)


def test_bias_and_several_input_channels():
    rng = np.random.default_rng(3)
    images = rng.standard_normal((4, 2, 9, 7)).astype(np.float32)
    weight = rng.standard_normal((5, 2, 3, 2)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    with hpcnn.Sequential([L.Conv2D(5, (3, 2), stride=(2, 1), padding=(1, 0))], input_shape=(2, 9, 7)) as model:
        assert model.layers[0].params == {"weight": (5, 2, 3, 2), "bias": (5,)}
        model.set_weights(0, {"weight": weight, "bias": bias})
        out = model.layer_output(0, images)
        assert out.shape == (4, 5, 5, 6)
        for n in range(4):
            np.testing.assert_allclose(out[n], conv2d_reference(images[n], weight, stride=(2, 1), pad=(1, 0, 1, 0), bias=bias), atol=1e-4)
        # one multi-channel image (C, H, W) gives maps without the batch axis
        np.testing.assert_array_equal(model.layer_output(0, images[1]), out[1])
