"""PyTorch twins of HpCnn network specs: the same JSON (README "Network spec files") read into a torch.nn.Sequential
that computes what HpCnn computes, so the two engines can be timed on the same network and compared.

    spec = load_spec("benchmarks/zoo/vgg-bn.json")
    twin = build_twin(spec)             # twin.body (training graph), twin.head (what predict adds), twin.loss(out, y)
    copy_weights(hp_model, twin)        # hp_model = hpcnn.from_spec(spec): the twin takes HpCnn's initial weights
    twin.predict_module()               # body + head: the probabilities hpcnn's predict returns

Semantics kept (each is HpCnn's rule, see src/HpCnn/Layers): "same" padding puts an odd extra row/column at the
bottom/right (TensorFlow's rule, for any stride); per-side padding becomes a ZeroPad2d before the layer; average
pooling divides by the window area with padding counted as zeros (count_include_pad); max pooling pads with -inf;
output sizes round down; a capped ReLU is a clamp to [0, cap]; featuremapnorm is a per-image, per-plane
normalisation with the biased variance (InstanceNorm2d without affine parameters); batchnorm2d is BatchNorm2d (or
BatchNorm1d after a flatten/dense). A final softmax is fused into the cross-entropy loss and a final sigmoid into the
binary cross-entropy, as HpCnn does: the twin's body ends before them, its head applies them for inference.
"""
import json
import math

import torch
from torch import nn
import torch.nn.functional as F


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _pair(v, default):
    if v is None:
        return (default, default)
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def resolve_padding(padding, in_h, in_w, kh, kw, sh, sw):
    """HpCnn's per-side padding (top, left, bottom, right) for a spec's "padding" value (Layers/Padding.cs)."""
    if padding is None or padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        out_h, out_w = -(-in_h // sh), -(-in_w // sw)
        th = max((out_h - 1) * sh + kh - in_h, 0)
        tw = max((out_w - 1) * sw + kw - in_w, 0)
        return (th // 2, tw // 2, th - th // 2, tw - tw // 2)
    if isinstance(padding, int):
        return (padding, padding, padding, padding)
    if len(padding) == 2:
        return (padding[0], padding[1], padding[0], padding[1])
    return tuple(int(p) for p in padding)


class _ClampedReLU(nn.Module):
    """ReLU capped at `cap` (HpCnn's relu with "cap"; ReLU6 for 6)."""

    def __init__(self, cap):
        super().__init__()
        self.cap = float(cap)

    def forward(self, x):
        return torch.clamp(x, 0.0, self.cap)

    def extra_repr(self):
        return f"cap={self.cap}"


class ConvInfo:
    """One convolution of a network: its input shape and geometry (for the per-layer comparisons)."""

    def __init__(self, in_c, in_h, in_w, out_c, kh, kw, sh, sw, pad, bias):
        self.in_c, self.in_h, self.in_w, self.out_c = in_c, in_h, in_w, out_c
        self.kh, self.kw, self.sh, self.sw, self.pad, self.bias = kh, kw, sh, sw, pad, bias
        self.out_h = (in_h + pad[0] + pad[2] - kh) // sh + 1
        self.out_w = (in_w + pad[1] + pad[3] - kw) // sw + 1

    @property
    def forward_flops(self):
        """Multiply-adds x 2 of one image's forward pass (the backward-data and backward-weights do as many)."""
        return 2 * self.in_c * self.kh * self.kw * self.out_c * self.out_h * self.out_w

    @property
    def key(self):
        return (self.in_c, self.in_h, self.in_w, self.out_c, self.kh, self.kw, self.sh, self.sw) + tuple(self.pad)

    def name(self):
        stride = "" if (self.sh, self.sw) == (1, 1) else f" s{self.sh}" if self.sh == self.sw else f" s{self.sh},{self.sw}"
        p = self.pad
        pad = "" if not any(p) else f" p{p[0]}" if len(set(p)) == 1 else f" p{','.join(map(str, p))}"
        return f"{self.in_c}x{self.in_h}x{self.in_w}->{self.out_c} {self.kh}x{self.kw}{stride}{pad}"


class Twin:
    """The PyTorch twin of a spec. body: the training graph (ends with logits where the loss fuses the last
    activation); head: what inference adds (softmax / sigmoid / nothing); modules[i]: the torch module holding
    HpCnn layer i's parameters (None for a layer without them)."""

    def __init__(self, spec, body, head, modules, loss_kind, outputs, convs, dense_flops, momentum_opt):
        self.spec, self.body, self.head, self.modules = spec, body, head, modules
        self.loss_kind, self.outputs, self.convs = loss_kind, outputs, convs
        self.dense_flops = dense_flops
        self.optimizer_spec = momentum_opt

    def predict_module(self):
        """body + head as one module: what hpcnn's predict computes (softmax probabilities for cross-entropy)."""
        return nn.Sequential(self.body, self.head)

    def loss(self, out, labels):
        """HpCnn's loss on a batch (mean over the batch), labels as class indices (int64)."""
        if self.loss_kind == "cross_entropy":
            return F.cross_entropy(out, labels)
        if self.loss_kind == "binary_cross_entropy":
            return F.binary_cross_entropy_with_logits(out.reshape(-1), labels.to(out.dtype))
        target = labels.to(out.dtype).reshape(-1, 1) if self.outputs == 1 else F.one_hot(labels, self.outputs).to(out.dtype)
        return F.mse_loss(out, target)

    def optimizer(self, params):
        o = self.optimizer_spec
        if isinstance(o, str):
            o = {"type": o}
        kind = o.get("type", "sgd").lower()
        if kind == "adam":
            return torch.optim.Adam(params, lr=o.get("lr", 0.001), betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)),
                                    eps=o.get("epsilon", 1e-8), weight_decay=o.get("weight_decay", 0.0))
        return torch.optim.SGD(params, lr=o.get("lr", 0.01), momentum=o.get("momentum", 0.0),
                               nesterov=o.get("nesterov", False), weight_decay=o.get("weight_decay", 0.0))

    @property
    def forward_flops(self):
        """Forward FLOPs per image of the convolutions and dense layers (2 per multiply-add; HpCnn's count for them)."""
        return sum(c.forward_flops for c in self.convs) + self.dense_flops

    @property
    def training_flops(self):
        """FLOPs per trained image, dense-equivalent: forward, backward-data and backward-weights of every
        convolution and dense layer, less the first layer's backward-data (nothing needs the input's gradient)."""
        first = self.convs[0].forward_flops if self.convs else 0
        return 3 * self.forward_flops - first


def build_twin(spec):
    c, h, w = spec["input"]
    flat = None  # features after a flatten/dense, else None (an image of c x h x w)
    layers = spec["layers"]
    loss_kind = spec.get("loss", "cross_entropy")
    loss_kind = {"mse": "mse", "mean_squared_error": "mse"}.get(loss_kind, loss_kind)
    body, modules, convs = [], [], []
    head = nn.Identity()
    dense_flops = 0
    for i, L in enumerate(layers):
        t = L["type"].lower()
        last = i == len(layers) - 1
        mod = None
        if t in ("conv2d", "conv"):
            kh, kw = _pair(L["kernel"], 1)
            sh, sw = _pair(L.get("stride"), 1)
            pad = resolve_padding(L.get("padding"), h, w, kh, kw, sh, sw)
            bias = L.get("bias", True)
            info = ConvInfo(c, h, w, L["filters"], kh, kw, sh, sw, pad, bias)
            convs.append(info)
            if pad[0] == pad[2] and pad[1] == pad[3]:
                mod = nn.Conv2d(c, L["filters"], (kh, kw), (sh, sw), (pad[0], pad[1]), bias=bias)
                body.append(mod)
            else:
                body.append(nn.ZeroPad2d((pad[1], pad[3], pad[0], pad[2])))
                mod = nn.Conv2d(c, L["filters"], (kh, kw), (sh, sw), 0, bias=bias)
                body.append(mod)
            c, h, w = L["filters"], info.out_h, info.out_w
        elif t in ("dense", "linear"):
            n_in = flat if flat is not None else c * h * w
            if flat is None:
                body.append(nn.Flatten())
            mod = nn.Linear(n_in, L["units"], bias=L.get("bias", True))
            body.append(mod)
            dense_flops += 2 * n_in * L["units"]
            flat = L["units"]
        elif t in ("maxpool2d", "maxpool", "avgpool2d", "avgpool"):
            kh, kw = _pair(L.get("kernel"), 2)
            sh, sw = _pair(L.get("stride"), None) if L.get("stride") is not None else (kh, kw)
            pad = resolve_padding(L.get("padding"), h, w, kh, kw, sh, sw)
            is_max = t.startswith("max")
            if any(pad):
                # Explicit padding: zeros for the average (counted in the divisor), -inf for the maximum.
                body.append(nn.ConstantPad2d((pad[1], pad[3], pad[0], pad[2]), -math.inf if is_max else 0.0))
            body.append(nn.MaxPool2d((kh, kw), (sh, sw)) if is_max else nn.AvgPool2d((kh, kw), (sh, sw)))
            h = (h + pad[0] + pad[2] - kh) // sh + 1
            w = (w + pad[1] + pad[3] - kw) // sw + 1
        elif t == "relu":
            body.append(_ClampedReLU(L["cap"]) if L.get("cap") is not None else nn.ReLU())
        elif t in ("leakyrelu", "leaky_relu"):
            body.append(nn.LeakyReLU(L.get("alpha", 0.01)))
        elif t == "sigmoid":
            if last and loss_kind == "binary_cross_entropy":
                head = nn.Sigmoid()
            else:
                body.append(nn.Sigmoid())
        elif t == "tanh":
            body.append(nn.Tanh())
        elif t == "softmax":
            if last and loss_kind == "cross_entropy":
                head = nn.Softmax(dim=1)
            else:
                body.append(nn.Softmax(dim=1))
        elif t == "flatten":
            body.append(nn.Flatten())
            flat = c * h * w if flat is None else flat
        elif t in ("featuremapnorm", "mapnorm"):
            if flat is not None:
                raise ValueError(f"layers[{i}]: featuremapnorm on a flat input has no twin here")
            body.append(nn.InstanceNorm2d(c, eps=L.get("epsilon", 1e-5), affine=False, track_running_stats=False))
        elif t in ("batchnorm2d", "batchnorm"):
            eps, mom = L.get("epsilon", 1e-5), L.get("momentum", 0.1)
            mod = nn.BatchNorm1d(flat, eps=eps, momentum=mom) if flat is not None else nn.BatchNorm2d(c, eps=eps, momentum=mom)
            body.append(mod)
        elif t == "dropout":
            body.append(nn.Dropout(L["rate"]))
        else:
            raise ValueError(f"layers[{i}]: no twin for layer type '{t}'")
        modules.append(mod)
    outputs = flat if flat is not None else c * h * w
    if flat is None:
        body.append(nn.Flatten())  # HpCnn's outputs are one vector per image
    # HpCnn's predict turns cross-entropy logits into probabilities (and one binary output into a probability)
    # even without a final softmax/sigmoid layer.
    if isinstance(head, nn.Identity):
        if loss_kind == "cross_entropy":
            head = nn.Softmax(dim=1)
        elif loss_kind == "binary_cross_entropy":
            head = nn.Sigmoid()
    return Twin(spec, nn.Sequential(*body), head, modules, loss_kind, outputs, convs, dense_flops,
                spec.get("optimizer", "sgd"))


def copy_weights(hp_model, twin):
    """Copies every parameter of an hpcnn.Sequential into its twin (so both start from the same weights)."""
    with torch.no_grad():
        for i, mod in enumerate(twin.modules):
            if mod is None:
                continue
            p = hp_model.get_weights(i)
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.copy_(torch.from_numpy(p["weight"]).reshape(mod.weight.shape))
                if mod.bias is not None:
                    mod.bias.copy_(torch.from_numpy(p["bias"]))
            else:
                mod.weight.copy_(torch.from_numpy(p["gamma"]))
                mod.bias.copy_(torch.from_numpy(p["beta"]))
                mod.running_mean.copy_(torch.from_numpy(p["running_mean"]))
                mod.running_var.copy_(torch.from_numpy(p["running_var"]))


def compare_outputs(hp_model, twin, x):
    """Largest difference between HpCnn and the twin on images x (numpy float32), and the tolerance it is held to.
    Compared: the outputs before the head (logits; hpcnn's layer_output of the body's last layer) relative to their
    largest magnitude, and the probabilities hpcnn's predict returns. Float32 rounding grows with the depth of the sums
    (the largest fan-in of a layer) and with the number of layers, so the bound is scaled by both."""
    import numpy as np
    layers = twin.spec["layers"]
    fused_head = not isinstance(twin.head, nn.Identity) and layers[-1]["type"].lower() in ("softmax", "sigmoid")
    last = len(layers) - (2 if fused_head else 1)
    m = twin.predict_module().eval()
    with torch.no_grad():
        want_logits = twin.body.eval()(torch.from_numpy(x)).numpy()
        want = m(torch.from_numpy(x)).numpy()
    got_logits = hp_model.layer_output(last, x).reshape(want_logits.shape)
    got = hp_model.predict(x).reshape(want.shape)
    fan_in = max([ci.in_c * ci.kh * ci.kw for ci in twin.convs] + [1])
    for mod in twin.modules:
        if isinstance(mod, nn.Linear):
            fan_in = max(fan_in, mod.in_features)
    tol = 2e-7 * math.sqrt(fan_in) * len(layers)
    scale = max(1e-3, float(np.abs(want_logits).max()))
    diff = max(float(np.abs(got_logits - want_logits).max()) / scale, float(np.abs(got - want).max()))
    return diff, tol
