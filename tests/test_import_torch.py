"""PyTorch import (issue 13): cnncalc.importers.torch_import traces a model with torch.fx and
writes a spec whose totals equal PyTorch's own figures.

The torchvision models are built on the meta device (no weights allocated or initialised) and
measured there: trainable params = sum(p.numel()), MACs = FlopCounterMode / 2 at batch 1. The
small hand-written models are built on the CPU, so the importer's own path for real weights
(shapes probed on meta copies) runs too. Tests that need torch or torchvision skip without them.
"""
from __future__ import annotations

import importlib.util
import sys
import textwrap

import pytest

import cnncalc
from cnncalc.errors import CnnCalcError

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="PyTorch is not installed")

if HAVE_TORCH:
    import torch
    from torch import nn
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from cnncalc.importers import torch_import
    from cnncalc.importers.torch_import import spec_from_module, spec_from_torch


import torchvision_models  # noqa: E402 - tests/ is on the path (conftest.py)

needs_torchvision = pytest.mark.skipif(not (HAVE_TORCH and torchvision_models.available()),
                                       reason="PyTorch, torchvision or Pillow is not installed")


def reference(model, shape):
    """(trainable params, MACs at batch 1) as PyTorch counts them, on the model's own device."""
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, *shape, device=device))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def totals(spec):
    report = cnncalc.analyze(cnncalc.load_spec(spec))
    return report, report.totals.trainable_params, report.totals.macs


# ----------------------------------------------------------------------------- torchvision
TORCHVISION = [
    # name, builder kwargs, input, module names that must be rows
    ("resnet50", {}, (3, 224, 224), ["conv1", "layer1.0.conv1", "layer4.2.bn3", "layer2.0.downsample.0", "fc"]),
    ("vgg16", {}, (3, 224, 224), ["features.0", "features.28", "classifier.6"]),
    ("mobilenet_v2", {}, (3, 224, 224), ["features.0.0", "features.17.conv.2", "classifier.1"]),
    ("efficientnet_b0", {}, (3, 224, 224),
     ["features.1.0.block.1.fc1", "features.2.1.stochastic_depth", "classifier.1"]),
    ("densenet121", {}, (3, 224, 224),
     ["features.conv0", "features.denseblock4.denselayer16.conv2", "features.transition3.pool", "classifier"]),
    ("inception_v3", {"aux_logits": False, "init_weights": False}, (3, 299, 299),
     ["Conv2d_1a_3x3.conv", "Mixed_7c.branch_pool.bn", "fc"]),
]


@needs_torchvision
@pytest.mark.parametrize("name, kwargs, shape, names", TORCHVISION, ids=[case[0] for case in TORCHVISION])
def test_torchvision_totals_equal_pytorch(name, kwargs, shape, names):
    with torch.device("meta"):
        model = torchvision_models.build(name, **kwargs)
    params, macs = reference(model, shape)
    spec = spec_from_module(model, shape, name)
    report, trainable, spec_macs = totals(spec)
    assert (trainable, spec_macs) == (params, macs)
    rows = {row.name for row in report.layers}
    assert set(names) <= rows
    assert spec["input"] == list(shape) and spec["name"] == name and spec["rounding"] == "floor"


@needs_torchvision
def test_torchvision_shufflenet_channel_shuffle_and_split():
    """ShuffleNetV2's x.chunk(2, dim=1) is a `split`, its written-out channel_shuffle one row, and
    x.mean([2, 3]) a global average pool and a flatten."""
    with torch.device("meta"):
        model = torchvision_models.build("shufflenet_v2_x1_0")
    spec = spec_from_module(model, (3, 64, 64), "shufflenet")
    kinds = [next(iter(entry)) for entry in spec["layers"]]
    assert kinds.count("channel_shuffle") == 16 and kinds.count("split") == 13
    assert spec["layers"][-3:-1] == [{"global_avgpool": {}, "name": "mean.pool"}, {"flatten": {}, "name": "mean"}]
    _, trainable, macs = totals(spec)
    assert (trainable, macs) == reference(model, (3, 64, 64))


# ----------------------------------------------------------------------------- small models
if HAVE_TORCH:
    def shuffle(x, groups):  # torchvision's channel_shuffle, written out
        batch, channels, height, width = x.size()
        x = x.view(batch, groups, channels // groups, height, width)
        x = torch.transpose(x, 1, 2).contiguous()
        return x.view(batch, channels, height, width)

    class Many(nn.Module):
        """One of most things the importer maps, in 2-D."""

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
            self.same = nn.Conv2d(8, 8, (3, 5), padding="same", dilation=(1, 2), groups=4, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.act = nn.Hardswish()
            self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
            self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
            self.gn = nn.GroupNorm(2, 4)
            self.pad = nn.ZeroPad2d((1, 0, 2, 0))
            self.avg = nn.AvgPool2d(2, padding=1, count_include_pad=False)
            self.pixel = nn.PixelShuffle(2)
            self.adaptive = nn.AdaptiveAvgPool2d((None, 3))
            self.mlp = nn.Linear(1, 6)
            self.ln = nn.LayerNorm(6)
            self.prelu = nn.PReLU(6)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(6 * 3, 10), nn.Softmax(dim=1))

        def forward(self, x):
            x = self.act(self.bn(self.same(self.stem(x))))
            a, b = x.chunk(2, dim=1)
            x = torch.cat([b, F.relu(a)], 1)
            x = shuffle(x, 2) + x
            x = self.pool(x)
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.gn(self.up(x))
            x = F.max_pool2d(self.pad(x), 2)
            x = self.pixel(self.avg(x))  # 4 -> 1 channel
            x = self.adaptive(x).permute(0, 2, 3, 1)
            x = self.ln(self.mlp(x)).permute(0, 3, 1, 2)
            x = self.prelu(x).mean([2], keepdim=True)
            return self.head(x)

    class Signal(nn.Module):
        """1-D: conv, batch norm, pools, and view(x.size(0), -1)."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 4, 5, stride=2, padding=2)
            self.bn = nn.BatchNorm1d(4)
            self.pool = nn.MaxPool1d(2)
            self.gap = nn.AdaptiveAvgPool1d(4)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            x = self.gap(self.pool(F.leaky_relu(self.bn(self.conv(x)), 0.1)))
            return self.fc(x.view(x.size(0), -1))

    class Volume(nn.Module):
        """3-D: conv, trilinear interpolation to a size, adaptive max pool, flatten, linear."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(1, 4, 3, stride=(1, 2, 2), padding=1)
            self.up = nn.ConvTranspose3d(4, 2, 2, stride=2)
            self.pool = nn.AdaptiveMaxPool3d(2)
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            x = F.interpolate(torch.sigmoid(self.conv(x)), size=(6, 6, 6), mode="trilinear")
            return self.fc(torch.flatten(self.pool(self.up(x)), 1))


    class LayerNorm2d(nn.LayerNorm):  # torchvision's: over the channels of NCHW (a leaf by its name)
        def forward(self, x):
            x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
            return x.permute(0, 3, 1, 2)

    class Permute(nn.Module):  # torchvision's (a leaf by its name)
        def __init__(self, dims):
            super().__init__()
            self.dims = dims

        def forward(self, x):
            return torch.permute(x, self.dims)

    class MyConv(nn.Conv2d):  # keeps Conv2d's forward: a leaf, mapped as a conv
        pass

    class More(nn.Module):
        """The rest: norms, activations, ConvNeXt's layer scale, functional layers whose weights
        are the model's parameters, torch.split, a gate, squeeze/unsqueeze, mean without keepdim."""

        def __init__(self):
            super().__init__()
            self.a = MyConv(3, 8, 3, padding=1)
            self.inorm = nn.InstanceNorm2d(8, affine=True)
            self.lrn = nn.LocalResponseNorm(3)
            self.elu = nn.ELU(0.5)
            self.selu = nn.SELU()
            self.shuffle = nn.ChannelShuffle(2)
            self.unshuffle = nn.PixelUnshuffle(2)
            self.ln2d = LayerNorm2d(32)
            self.scale = nn.Parameter(torch.full((32, 1, 1), 1e-6))
            self.perm = Permute([0, 2, 3, 1])
            self.fc_last = nn.Linear(32, 16)
            self.w = nn.Parameter(torch.randn(16, 16, 1, 1))
            self.up = nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1)
            self.upsample = nn.Upsample(size=(20, 20))
            self.drop = nn.Dropout2d(0.1)
            self.gelu = nn.GELU(approximate="tanh")
            self.mish = nn.Mish()
            self.sm2d = nn.Softmax2d()
            self.ident = nn.Identity()
            self.bn_plain = nn.BatchNorm2d(8, affine=False)
            self.lin_w = nn.Parameter(torch.randn(5, 8))
            self.gate = nn.Conv2d(8, 8, 1)

        def forward(self, x):
            x = self.selu(self.elu(self.lrn(self.inorm(self.a(x)))))
            x = F.pad(self.shuffle(x), (1, 1, 1, 1), mode="reflect")  # 8x18x18
            x = self.unshuffle(F.avg_pool2d(x, 3, stride=1, ceil_mode=True))  # 32x8x8
            x = x + self.scale * self.ln2d(x)
            y = self.fc_last(self.perm(x)).permute(0, 3, 1, 2)  # 16x8x8
            y = self.up(F.conv2d(y, self.w), output_size=(16, 16))  # 8x16x16
            y = F.hardtanh(self.gelu(self.drop(self.upsample(y))), 0.0, 6.0)  # 8x20x20
            a, b, c = torch.split(y, [2, 2, 4], dim=1)
            y = torch.cat([c, b, a], dim=1)
            y = self.bn_plain(y) * torch.sigmoid(self.gate(y))
            y = torch.add(y, self.mish(y))
            y = self.sm2d(F.adaptive_max_pool2d(y, (5, 4)))
            z = y.unsqueeze(2).squeeze(2).transpose(2, 3).mean(dim=(-2, -1))  # 8
            return F.relu(F.linear(self.ident(z), self.lin_w))


@needs_torch
@pytest.mark.parametrize("build, shape", [(lambda: Many(), (3, 20, 24)), (lambda: More(), (3, 16, 16)),
                                          (lambda: Signal(), (2, 64)), (lambda: Volume(), (1, 8, 10, 10))],
                         ids=["2d", "2d-more", "1d", "3d"])
def test_small_models_totals_and_names(build, shape):
    model = build()
    spec = spec_from_module(model, shape)
    report, trainable, macs = totals(spec)
    assert (trainable, macs) == reference(model, shape)
    rows = {row.name for row in report.layers}
    modules = {name for name, module in model.named_modules() if name and not list(module.children())}
    assert modules <= rows  # every leaf module is a row of its own name


@needs_torch
def test_many_maps_each_construct_to_its_kind():
    spec = spec_from_module(Many(), (3, 20, 24), "many")
    by_name = {entry["name"]: entry for entry in spec["layers"]}
    assert by_name["stem.pad"] == {"pad": {"padding": 1, "mode": "reflect"}, "name": "stem.pad"}
    assert by_name["same"]["conv"] == {"filters": 8, "kernel": [3, 5], "padding": "same", "dilation": [1, 2],
                                       "groups": 4, "bias": False}
    assert by_name["pool"]["maxpool"] == {"kernel": 3, "stride": 2, "ceil_mode": True}
    assert by_name["up"]["conv_transpose"] == {"filters": 4, "kernel": 3, "stride": 2, "padding": 1,
                                               "output_padding": 1}
    assert by_name["pad"]["pad"] == {"padding": [[2, 0], [1, 0]]}
    assert by_name["avg"]["avgpool"] == {"kernel": 2, "padding": 1, "count_include_pad": False}
    assert by_name["adaptive"]["adaptive_avgpool"] == {"output": [None, 3]}
    assert by_name["mlp"]["linear"] == {"features": 6, "flatten": False}
    assert by_name["ln"]["layernorm"] == {"normalized_shape": 6}
    assert by_name["interpolate"]["upsample"] == {"scale_factor": 2, "mode": "bilinear"}
    assert by_name["mean"] == {"adaptive_avgpool": {"output": [1, None]}, "name": "mean"}  # keepdim: one row
    split = next(entry for entry in spec["layers"] if "split" in entry)
    assert split["split"] == {"names": ["getitem", "getitem_1"], "sizes": [4, 4]}
    assert by_name["cat"] == {"concat": {"from": ["getitem_1", "relu"]}, "name": "cat"}
    assert [k for entry in spec["layers"] for k in entry if k == "channel_shuffle"] == ["channel_shuffle"]
    shuffle_row = next(entry for entry in spec["layers"] if "channel_shuffle" in entry)
    assert shuffle_row == {"channel_shuffle": {"groups": 2}, "name": "view_1"}  # reads `cat`, the row before
    assert by_name["add"]["add"] == {"from": [shuffle_row["name"], "cat"]}
    assert by_name["head.3"] == {"softmax": {}, "name": "head.3"}


@needs_torch
def test_more_maps_each_construct_to_its_kind():
    spec = spec_from_module(More(), (3, 16, 16), "more")
    by_name = {entry["name"]: entry for entry in spec["layers"]}
    assert by_name["a"]["conv"] == {"filters": 8, "kernel": 3, "padding": 1}  # MyConv: a Conv2d
    assert by_name["pad"]["pad"] == {"padding": 1, "mode": "reflect"}
    assert by_name["avg_pool2d"]["avgpool"] == {"kernel": 3, "stride": 1, "ceil_mode": True}
    assert by_name["ln2d"]["layernorm"] == {}  # over the channels
    assert by_name["scale"] == {"layer_scale": {"init": 1e-06}, "name": "scale"}  # the parameter's name
    assert by_name["add"]["add"] == {"from": ["unshuffle", "scale"]}
    assert by_name["perm"]["permute"] == {"dims": [0, 2, 3, 1]}
    assert by_name["w"]["conv"] == {"filters": 16, "kernel": 1, "bias": False}  # F.conv2d with self.w
    assert by_name["up"]["conv_transpose"]["output_padding"] == 1  # from output_size=(16, 16)
    assert by_name["upsample"]["upsample"] == {"size": 20}
    assert by_name["hardtanh"]["relu6"] == {}
    assert by_name["split"]["split"] == {"names": ["getitem", "getitem_1", "getitem_2"], "sizes": [2, 2, 4]}
    assert by_name["mul_1"]["mul"] == {"from": ["bn_plain", "sigmoid"]}
    assert by_name["transpose"]["permute"] == {"dims": [0, 1, 3, 2]}
    assert by_name["mean.pool"] == {"global_avgpool": {}, "name": "mean.pool"}
    assert by_name["mean"] == {"flatten": {}, "name": "mean"}
    assert by_name["lin_w"]["linear"] == {"features": 5, "bias": False}


@needs_torch
def test_training_flags_are_restored():
    model = Signal()
    model.train()
    model.bn.eval()
    spec_from_module(model, (2, 64))
    assert model.training and model.conv.training and not model.bn.training


@needs_torch
def test_shared_relu_gets_numbered_names_and_channels_last_linear():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.relu(self.conv(x)) + x)

    spec = spec_from_module(Block(), (4, 8, 8))
    assert [entry["name"] for entry in spec["layers"]] == ["conv", "relu", "add", "relu_1"]
    assert spec["layers"][2] == {"add": {"from": ["relu", "input"]}, "name": "add"}


# ----------------------------------------------------------------------------- targets
MODEL_FILE = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
                                      nn.MaxPool2d(2))
        self.classifier = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


def build():
    return Tiny()
"""


@needs_torch
def test_spec_from_torch_file_and_module_targets(tmp_path, monkeypatch):
    path = tmp_path / "tiny_net.py"
    path.write_text(MODEL_FILE)
    spec = spec_from_torch(f"{path}:Tiny", (3, 8, 8))
    assert spec["name"] == "Tiny"
    assert [entry["name"] for entry in spec["layers"]] == ["features.0", "features.1", "features.2", "features.3",
                                                          "flatten", "classifier"]
    report, trainable, macs = totals(spec)
    assert trainable == 8 * 27 + 8 + 16 + 128 * 10 + 10
    assert report.layers[-1].output_shape == (10,)

    monkeypatch.syspath_prepend(str(tmp_path))
    again = spec_from_torch("tiny_net:build", "3x8x8")
    assert again["name"] == "build" and again["layers"] == spec["layers"]


@needs_torch
@pytest.mark.parametrize("target, words", [
    ("no_colon_here", "package.module:factory"),
    ("missing/file.py:Net", "no such file"),
    ("cnncalc.api:nothing_like_this", "has no `nothing_like_this`"),
    ("no_such_package_xyz:build", "cannot import `no_such_package_xyz`"),
    ("cnncalc.api:load_spec", "calling load_spec() failed"),
])
def test_bad_targets_are_one_clear_error(target, words):
    with pytest.raises(CnnCalcError) as caught:
        spec_from_torch(target, (3, 8, 8))
    assert words in caught.value.message
    assert caught.value.loc.file == target


@needs_torch
def test_errors_of_a_target_are_located_at_it(tmp_path):
    path = tmp_path / "net.py"
    path.write_text("import torch\n\nclass Net(torch.nn.Module):\n    def forward(self, x):\n"
                    "        return torch.cumsum(x, 1)\n")
    with pytest.raises(CnnCalcError) as caught:
        spec_from_torch(f"{path}:Net", (3, 8, 8))
    assert str(caught.value) == (f"{path}:Net: 1 module or function cannot be mapped to cnncalc kinds: "
                                 "`cumsum` (torch.cumsum): no cnncalc kind for this function")


# ----------------------------------------------------------------------------- refusals
@needs_torch
def test_unmappable_modules_and_functions_are_all_listed_by_name():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(3, 8, 3)
            self.rnn = nn.LSTM(6, 4, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            x = torch.cumsum(self.conv(x), dim=2)  # a function with no kind
            x = x * 2  # a constant factor
            out, _ = self.rnn(x)  # a module with no kind
            steps = out.transpose(0, 1)  # moves the batch axis, but only of what the LSTM gave: named, not explained
            return self.fc(steps[-1])  # indexing has no kind; fc itself maps

    with pytest.raises(CnnCalcError) as caught:
        spec_from_module(Mixed(), (3, 8), "mixed")
    assert caught.value.message == (
        "4 modules or functions cannot be mapped to cnncalc kinds: "
        "`cumsum` (torch.cumsum): no cnncalc kind for this function; "
        "`mul` (operator.mul): it multiplies by a constant (2); cnncalc's merges take two tensors; "
        "`rnn` (LSTM): recurrent layers are not supported; "
        "`getitem_2` (operator.getitem): indexing or slicing a tensor ([-1]) has no cnncalc kind; "
        "and, working on what those give, `transpose` (.transpose())")


@needs_torch
def test_custom_module_function_is_named_with_its_module():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=1).values

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.odd = Odd()

        def forward(self, x):
            return self.odd(self.conv(x))

    with pytest.raises(CnnCalcError) as caught:
        spec_from_module(Net(), (3, 4, 4))
    assert "`sort` (torch.sort in odd (Odd)): no cnncalc kind for this function" in caught.value.message


@needs_torch
def test_shared_weights_and_unused_modules_are_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(self.conv(x))

    with pytest.raises(CnnCalcError, match=r"`conv` \(Conv2d\) is called 2 times with the same 148 weights"):
        spec_from_module(Twice(), (4, 8, 8))

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)
            self.spare = nn.Linear(3, 3)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(CnnCalcError, match=r"20 trainable params but the model has 32; modules never called by "
                                           r"forward in eval mode \(their parameters have no row\): `spare` "
                                           r"\(Linear, 12 params\)"):
        spec_from_module(Unused(), (4, 8, 8))


@needs_torch
def test_a_wrong_row_is_caught_by_the_shape_check(monkeypatch):
    """The importer analyses its spec and compares every row with PyTorch: a mapping bug (here:
    the pool's stride dropped) is an error naming the row, never a silently wrong spec."""
    real = torch_import._pool_args
    monkeypatch.setattr(torch_import, "_pool_args",
                        lambda *args, **kwargs: {k: v for k, v in real(*args, **kwargs).items() if k != "stride"})
    with pytest.raises(CnnCalcError, match=r"^Many: row `pool` \(maxpool\) gives \[8, 7, 8\] but "
                                           r"PyTorch gives \[8, 10, 12\] \(per sample\)"):
        spec_from_module(Many(), (3, 20, 24))


@needs_torch
def test_model_that_fails_on_the_input_names_the_node():
    net = nn.Sequential(nn.Conv2d(3, 4, 5), nn.Linear(7, 2))
    with pytest.raises(CnnCalcError, match=r"fails on an input of shape \[2, 3, 6, 6\] .* at `1`"):
        spec_from_module(net, (3, 6, 6))


def test_without_torch_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    from cnncalc.importers import torch_import as module

    with pytest.raises(CnnCalcError, match=r'pip install "cnncalc\[torch\]"'):
        module.spec_from_torch("pkg.module:factory", (3, 8, 8))
