"""ONNX in and out: exports pass onnx.checker (full check), round trips give the same bits, PyTorch 1.13's exports
import and predict as PyTorch does (within 1e-5 relative), and what cannot be imported is refused by node."""

import json

import numpy as np
import pytest

import hpcnn
from hpcnn import layers as L

onnx = pytest.importorskip("onnx")


def every_layer_model(loss="cross_entropy"):
    model = hpcnn.Sequential([
        L.Conv2D(6, 3, padding="same"), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(5, (3, 2), stride=(2, 1), padding=(1, 0, 2, 1), bias=False), L.ReLU(cap=0.8),
        L.AvgPool2D(3, stride=1, padding=1), L.FeatureMapNorm(epsilon=1e-3), L.BatchNorm2D(), L.LeakyReLU(0.2),
        L.Flatten(), L.Dropout(0.5), L.Dense(9), L.Tanh(), L.Dense(7, bias=False), L.Sigmoid(), L.Dense(4),
    ], input_shape=(2, 13, 11), seed=3)
    model.compile(loss=loss, optimizer=hpcnn.optimizers.SGD(lr=0.01))
    return model


def relative_error(expected, actual):
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    assert expected.shape == actual.shape
    return np.abs(expected - actual).max() / max(np.abs(expected).max(), 1e-30)


def other_models():
    """Heads and shapes the every-layer model does not have: a 1x1 convolution after a flatten (a Reshape back to an
    image), a binary head (a final Sigmoid), a flat input."""
    after_flatten = hpcnn.Sequential([L.Conv2D(3, 3), L.Flatten(), L.Conv2D(4, 1), L.Flatten(), L.Dense(2)],
                                     input_shape=(1, 3, 3))
    binary = hpcnn.Sequential([L.Conv2D(2, 3, stride=2, padding="same"), L.Sigmoid(), L.AvgPool2D(2, padding="same"),
                               L.Flatten(), L.Dense(1)], input_shape=(3, 9, 9))
    binary.compile(loss="binary_cross_entropy", optimizer=hpcnn.optimizers.SGD(lr=0.01))
    flat = hpcnn.Sequential([L.Flatten(), L.Dense(5), L.BatchNorm2D(), L.ReLU(), L.Dense(3), L.Softmax()],
                            input_shape=(6, 1, 1))
    return [("after_flatten", after_flatten), ("binary", binary), ("flat", flat)]


@pytest.mark.parametrize("name,model", other_models())
def test_other_exports_pass_the_check_and_round_trip(tmp_path, name, model):
    path = tmp_path / f"{name}.onnx"
    with model:
        model.save_onnx(path)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        shape = model.input_shape
        x = np.random.default_rng(2).standard_normal((3, *shape)).astype(np.float32)
        with hpcnn.load_onnx(path) as back:
            assert np.array_equal(back.predict(x), model.predict(x))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_export_passes_the_full_onnx_check(tmp_path, loss):
    path = tmp_path / "m.onnx"
    with every_layer_model(loss) as model:
        model.save_onnx(path)
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    assert m.opset_import[0].version == 13 and m.ir_version <= 8
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    ops = [n.op_type for n in m.graph.node]
    assert {"Conv", "Relu", "MaxPool", "Clip", "AveragePool", "InstanceNormalization", "BatchNormalization", "LeakyRelu",
            "Flatten", "Gemm", "Tanh", "Sigmoid"} <= set(ops)
    assert "Dropout" not in ops
    assert (ops[-1] == "Softmax") == (loss == "cross_entropy")
    props = {p.key: p.value for p in m.metadata_props}
    assert props["hpcnn_version"] == hpcnn.__version__


def test_round_trip_gives_the_same_bits(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 13, 11)).astype(np.float32)
    with every_layer_model() as model:
        model.save_onnx(tmp_path / "m.onnx")
        expected = model.predict(x)
    with hpcnn.load_onnx(tmp_path / "m.onnx") as back:
        assert np.array_equal(back.predict(x), expected)
        back.save(tmp_path / "m.hpcnn")
    with hpcnn.load(tmp_path / "m.hpcnn") as again:
        assert np.array_equal(again.predict(x), expected)


def test_import_errors_are_library_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07\x12\x03abc" + bytes(range(200)))
    with pytest.raises(hpcnn.InvalidFileError):
        hpcnn.load_onnx(bad)
    with pytest.raises(hpcnn.HpcnnIOError):
        hpcnn.load_onnx(tmp_path / "missing.onnx")


# ---------------------------------------------------------------- PyTorch -> ONNX -> HpCnn

torch = pytest.importorskip("torch")
nn = torch.nn


def torch_models():
    torch.manual_seed(0)
    a = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU6(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, stride=2, padding=1, bias=False), nn.LeakyReLU(0.1), nn.AvgPool2d(3, stride=1, padding=1),
        nn.InstanceNorm2d(8), nn.Tanh(), nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * 4 * 4, 16), nn.Hardtanh(0, 2.5),
        nn.Linear(16, 10), nn.Softmax(dim=1))
    b = nn.Sequential(
        nn.Conv2d(1, 4, 5), nn.Sigmoid(), nn.AvgPool2d(2), nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3), nn.BatchNorm1d(3), nn.Sigmoid())
    for m in (a, b):
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.BatchNorm1d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.5, 0.5)
        m.eval()
    return [("a", a), ("b", b)]


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("folding", [True, False])
@pytest.mark.parametrize("name,net", torch_models())
def test_pytorch_exports_import_and_predict_as_pytorch(tmp_path, opset, folding, name, net):
    path = tmp_path / f"{name}.onnx"
    x = torch.randn(4, 1, 16, 16)
    torch.onnx.export(net, x, str(path), opset_version=opset, do_constant_folding=folding, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    with torch.no_grad():
        expected = net(x).numpy()
    with hpcnn.load_onnx(path) as model:
        got = model.predict(x.numpy())
        assert relative_error(expected, got) <= 1e-5
        # The imported model trains like any HpCnn model.
        model.compile(loss="mse" if expected.shape[1] < 10 else "cross_entropy", optimizer=hpcnn.optimizers.SGD(lr=0.01))
        model.fit(x.numpy(), np.arange(4) % expected.shape[1], epochs=1, batch_size=2, verbose=False)


def test_a_residual_block_is_refused_by_node(tmp_path):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return x + self.conv(x)

    path = tmp_path / "res.onnx"
    torch.onnx.export(Residual().eval(), torch.randn(1, 2, 8, 8), str(path), opset_version=13)
    with pytest.raises(hpcnn.InvalidFileError, match=r"node \d+ .*\((Add|Conv)\).*(residual|branches)"):
        hpcnn.load_onnx(path)


class ViewFlatten(nn.Module):
    """The classic tutorial network: x.view(x.size(0), -1) instead of nn.Flatten."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 6 * 6, 4)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


@pytest.mark.parametrize("dynamic", [True, False])
@pytest.mark.parametrize("folding", [True, False])
def test_view_with_a_dynamic_batch_imports(tmp_path, dynamic, folding):
    torch.manual_seed(1)
    net = ViewFlatten().eval()
    x = torch.randn(3, 1, 8, 8)
    path = tmp_path / "view.onnx"
    torch.onnx.export(net, x, str(path), opset_version=13, do_constant_folding=folding, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}} if dynamic else None)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert "Reshape" in ops and ("Shape" in ops) == dynamic
    with torch.no_grad():
        expected = net(x).numpy()
    with hpcnn.load_onnx(path) as model:
        assert [l.kind for l in model.layers] == ["conv2d", "relu", "flatten", "dense"]
        assert relative_error(expected, model.predict(x.numpy())) <= 1e-5
