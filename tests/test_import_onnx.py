"""ONNX import (issue 13): `cnncalc table MODEL.onnx` and `cnncalc import MODEL.onnx -o spec.yaml`.

torchvision's networks exported by torch.onnx (the legacy exporter, `dynamo=False`) must give
trainable params = `sum(p.numel())` and MACs = FlopCounterMode / 2 exactly, at the input they
were exported at. They are exported with `training=TrainingMode.PRESERVE`: a plain eval-mode
export folds each batch norm into the conv before it (the file then holds a conv bias instead of
the norm's four vectors, and cnncalc counts what the file holds: `test_folded_batch_norm_...`).
Models without torch are built with onnx.helper. Tests skip without onnx (and torch/torchvision
where they need them).
"""
from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import torchvision_models as tvm
from cnncalc.cli import cli

ROOT = Path(__file__).resolve().parent.parent
HAVE_ONNX = importlib.util.find_spec("onnx") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason='onnx is not installed (pip install "cnncalc[onnx]")')
needs_torch = pytest.mark.skipif(not (HAVE_ONNX and HAVE_TORCH), reason="needs onnx and torch")
needs_torchvision = pytest.mark.skipif(not (HAVE_ONNX and HAVE_TORCH and tvm.available()),
                                       reason="needs onnx, torch and torchvision")


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def table_json(path, *options) -> dict:
    result = invoke("table", path, "--format", "json", *options)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def one_error_line(result, path) -> str:
    """The single stderr line of a failed command, which names ``path``; exit 2."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{path}:"), lines[0]
    return lines[0]


# ============================================================================ torch exports
def torch_counts(name: str, size: int, kwargs: dict) -> tuple[int, int]:
    """(trainable params, MACs = FlopCounterMode / 2) of torchvision's model on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = tvm.build(name, **kwargs).eval()
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, 3, size, size))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def export(model, size, path, channels: int = 3, fold_batch_norm: bool = False, **options) -> Path:
    import warnings

    import torch

    mode = torch.onnx.TrainingMode
    options["training"] = mode.EVAL if fold_batch_norm else mode.PRESERVE  # EVAL: the exporter's default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation warning
        torch.onnx.export(model.eval(), (torch.randn(1, channels, size, size),), str(path), dynamo=False, **options)
    return Path(path)


# VGG-16 at 224: its AdaptiveAvgPool2d(7) exports only where the map is 7x7 (the file is 553 MB).
# Inception-v3 needs at least 75x75. The others run at 64x64 to keep the exports fast.
TORCHVISION = [
    ("resnet50", 64, {}),
    ("vgg16", 224, {}),
    ("mobilenet_v2", 64, {}),
    ("efficientnet_b0", 64, {}),
    ("densenet121", 64, {}),
    ("inception_v3", 75, {"aux_logits": False, "init_weights": False}),
]


@needs_torchvision
@pytest.mark.parametrize("name, size, kwargs", TORCHVISION, ids=[case[0] for case in TORCHVISION])
def test_torchvision_onnx_totals_equal_torch(tmp_path, name, size, kwargs):
    model = tvm.build(name, **kwargs)
    path = export(model, size, tmp_path / f"{name}.onnx")
    started = time.perf_counter()
    report = table_json(path)
    seconds = time.perf_counter() - started
    params, macs = torch_counts(name, size, kwargs)
    assert report["totals"]["trainable_params"] == params == sum(p.numel() for p in model.parameters())
    assert report["totals"]["macs"] == macs
    assert report["input_shape"] == [3, size, size]
    assert seconds < 10, f"reading {name}.onnx took {seconds:.1f} s"
    if name == "vgg16":  # 553 MB on disk; cnncalc reads its graph and the weights' shapes, not the weights
        from cnncalc.importers.onnx_import import _light_bytes

        assert path.stat().st_size > 500 * 10**6
        assert len(_light_bytes(path)) < 10**6
    path.unlink()  # the next export should not wait for the disk


@needs_torchvision
def test_names_are_pytorch_module_names(tmp_path):
    path = export(tvm.build("efficientnet_b0"), 64, tmp_path / "efficientnet_b0.onnx")
    rows = {row["name"]: row for row in table_json(path)["layers"]}
    assert rows["features.0.0"]["kind"] == "conv"
    assert rows["features.0.2"]["kind"] == "silu"  # Sigmoid + Mul, one layer
    assert rows["features.1.0.block.1.avgpool"]["kind"] == "global_avgpool"
    assert rows["features.1.0.block.1"]["kind"] == "mul"  # the squeeze-and-excitation gate: its module's name
    assert rows["classifier.1"]["kind"] == "linear"


@needs_torchvision
def test_import_writes_a_spec_that_analyses_the_same(tmp_path):
    model = tvm.build("mobilenet_v2")
    path = export(model, 64, tmp_path / "mobilenet_v2.onnx")
    spec = tmp_path / "mobilenet_v2.yaml"
    result = invoke("import", path, "-o", spec)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    text = spec.read_text()
    assert text.startswith("# Source: mobilenet_v2.onnx (ONNX IR ")
    assert "  - conv: {name: features.0.0, filters: 32, kernel: 3, stride: 2, padding: 1, bias: false}\n" in text
    assert "  - relu6: {name: features.0.2}\n" in text  # Clip(0, 6) with Constant bounds
    from_onnx, from_yaml = table_json(path), table_json(spec)
    assert from_yaml["totals"] == from_onnx["totals"]
    assert from_yaml["layers"] == from_onnx["layers"]  # every row: names, shapes, counts, receptive fields
    assert from_onnx["totals"]["trainable_params"] == sum(p.numel() for p in model.parameters())
    assert "3,504,872 trainable params" in result.stderr  # the summary line


@needs_torchvision
def test_folded_batch_norm_is_counted_as_the_file_holds_it(tmp_path):
    """A plain eval-mode export folds every batch norm into the conv before it, and shares equal
    initializers through Identity nodes: cnncalc counts each layer's initializers as they are."""
    import onnx

    model = tvm.build("resnet18")
    path = export(model, 64, tmp_path / "resnet18.onnx", fold_batch_norm=True)
    graph = onnx.load(str(path), load_external_data=False).graph
    assert not any(node.op_type == "BatchNormalization" for node in graph.node)
    sizes = {t.name: math.prod(t.dims) for t in graph.initializer}
    aliases = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "Identity"}
    held = sum(sizes[aliases.get(name, name)] for node in graph.node if node.op_type in ("Conv", "Gemm")
               for name in node.input[1:])
    report = table_json(path)
    assert report["totals"]["trainable_params"] == held
    assert held != sum(p.numel() for p in model.parameters())  # the norms' scale and shift are gone
    assert report["totals"]["macs"] == torch_counts("resnet18", 64, {})[1]
    assert {row["kind"] for row in report["layers"]} >= {"conv", "relu", "add", "linear"}


def many_ops_model():
    """A small network over most ops torch.onnx writes for CNNs."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Many(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1)
            self.bn = nn.BatchNorm2d(16, eps=1e-3)
            self.act = nn.Hardswish()
            self.hs = nn.Hardsigmoid()
            self.dw = nn.Conv2d(16, 16, 3, stride=2, padding=(1, 2), dilation=(1, 2), groups=16, bias=False)
            self.r6 = nn.ReLU6()
            self.silu = nn.SiLU()
            self.gelu = nn.GELU()
            self.prelu = nn.PReLU(16)
            self.leaky = nn.LeakyReLU(0.2)
            self.elu = nn.ELU(0.5)
            self.mish = nn.Mish()
            self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)
            self.mp = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
            self.up = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
            self.inorm = nn.InstanceNorm2d(8, affine=True)
            self.scale = nn.Parameter(torch.full((8, 1, 1), 1e-6))
            self.ln = nn.LayerNorm(8)
            self.fc3 = nn.Linear(8, 12)
            self.pad = nn.ReflectionPad2d((1, 2, 0, 1))
            self.head = nn.Linear(12 * 6 * 8, 10)
            self.drop = nn.Dropout(0.3)
            self.sm = nn.Softmax(dim=1)

        def forward(self, x):
            x = self.act(self.bn(self.conv(x)))                                   # 16x32x32
            x = x * self.hs(x)                                                    # hardswish, written out
            x = self.r6(self.dw(x))                                               # 16x16x16
            x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
            a, b = torch.chunk(x, 2, dim=1)                                       # two Slices: a split
            x = torch.cat([self.silu(a), self.gelu(b)], 1)
            n, c, h, w = x.shape
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)   # channel shuffle
            x = self.prelu(x) + self.leaky(x)
            x = self.elu(x) * self.mish(x)
            x = self.mp(self.pool(x))                                             # 16x5x5
            x = self.up(x)                                                        # 8x10x10
            x = self.inorm(x) * self.scale                                        # a layer scale
            x = self.fc3(self.ln(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)      # channels last: 12x10x10
            x = F.interpolate(x, scale_factor=0.5, mode="nearest")                # 12x5x5
            x = self.pad(x)                                                       # 12x6x8
            s = x.mean((2, 3))                                                    # ReduceMean, keepdims 0
            x = x * torch.sigmoid(s)[:, :, None, None]
            x = x.reshape(x.size(0), -1)                                          # Shape/Gather/Concat/Reshape
            return self.sm(self.head(self.drop(x)))

    return Many()


@needs_torch
@pytest.mark.parametrize("opset", [11, 13, 17, 20])
def test_many_ops_at_several_opsets(tmp_path, opset):
    """Opsets before 20 write GELU as Div/Erf/Add/Mul/Mul, before 17 LayerNorm as nine nodes,
    before 13 Split and Squeeze with attributes: all map to the same layers."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = many_ops_model().eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 32, 32))
    path = export(model, 32, tmp_path / "many.onnx", opset_version=opset)
    report = table_json(path)
    assert report["totals"]["trainable_params"] == sum(p.numel() for p in model.parameters())
    assert report["totals"]["macs"] == counter.get_total_flops() // 2
    kinds = [row["kind"] for row in report["layers"]]
    for kind in ("hardswish", "relu6", "split", "silu", "gelu", "prelu", "leaky_relu", "elu", "mish", "avgpool",
                 "maxpool", "conv_transpose", "instancenorm", "layer_scale", "permute", "layernorm", "upsample",
                 "pad", "global_avgpool", "unsqueeze", "reshape", "softmax"):
        assert kind in kinds, kind
    spec = tmp_path / "many.yaml"
    assert invoke("import", path, "-o", spec).exit_code == 0
    again = table_json(spec)
    assert again["layers"] == report["layers"] and again["totals"] == report["totals"]


@needs_torch
def test_dynamic_input_needs_input_and_input_fixes_it(tmp_path):
    model = many_ops_model().eval()
    path = export(model, 32, tmp_path / "dynamic.onnx", input_names=["image"],
                  dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    line = one_error_line(invoke("table", path), path)
    assert "inputs[0] (image): error: the input's size is dynamic ([batch, 3, height, width])" in line
    assert f"`cnncalc table {path} --input 3xHxW`" in line
    assert f"cnncalc import {path} --input 3xHxW -o spec.yaml" in line
    direct = table_json(path, "--input", "3x32x32")  # every command reads the file with --input
    assert direct["input_shape"] == [3, 32, 32]
    assert direct["totals"]["trainable_params"] == sum(p.numel() for p in model.parameters())
    wider = table_json(path, "--input", "3x48x40")
    assert wider["input_shape"] == [3, 48, 40] and wider["totals"]["macs"] > direct["totals"]["macs"]
    verified = invoke("verify", path, "--input", "3x16x16")
    assert verified.exit_code == 0, verified.stderr
    spec = tmp_path / "fixed.yaml"
    result = invoke("import", path, "--input", "3x32x32", "-o", spec)
    assert result.exit_code == 0, result.stderr
    assert "# Source: dynamic.onnx" in spec.read_text() and "input fixed by --input 3x32x32" in spec.read_text()
    assert table_json(spec)["totals"]["trainable_params"] == sum(p.numel() for p in model.parameters())
    batch_only = export(model, 32, tmp_path / "batch.onnx", input_names=["image"],
                        dynamic_axes={"image": {0: "batch"}})  # a dynamic batch alone needs nothing
    assert table_json(batch_only)["input_shape"] == [3, 32, 32]


# ============================================================================ models made with onnx.helper
def helper_model(path, nodes, initializers, input_shape, opset: int = 17, value_info=(), output="y"):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], initializers,
                              value_info=list(value_info))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return Path(path)


def tensor(name, shape=None, values=None, dtype="float32"):
    import numpy
    from onnx import numpy_helper

    array = numpy.asarray(values, dtype=dtype) if values is not None else \
        numpy.random.default_rng(0).random(shape).astype(dtype)
    return numpy_helper.from_array(array, name)


def conv_relu(path, input_shape=(1, 3, 8, 8), extra=(), output="r", **options):
    """conv (64 filters: its 6,912-byte weight is one of those cnncalc does not read) -> relu -> extra."""
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"), *extra]
    return helper_model(path, nodes, [tensor("conv.weight", (64, 3, 3, 3))], input_shape, output=output, **options)


@needs_onnx
def test_unsupported_ops_are_all_listed_in_one_located_line(tmp_path):
    from onnx import helper

    extra = [helper.make_node("Einsum", ["r", "r"], ["e"], name="einsum", equation="nchw,nchw->nchw"),
             helper.make_node("Relu", ["e"], ["e2"], name="relu2"),
             helper.make_node("NonMaxSuppression", ["e2"], ["y"], name="nms")]
    path = conv_relu(tmp_path / "bad.onnx", extra=extra, output="y")
    line = one_error_line(invoke("table", path, "--format", "json"), path)
    assert line.startswith(f"{path}: nodes[2] (einsum): error: 2 ONNX ops cnncalc cannot map")
    assert "nodes[2] Einsum (einsum)" in line and "nodes[4] NonMaxSuppression (nms)" in line
    assert "--partial" in line
    # --partial: the layers before the first, and what was left out on stderr
    result = invoke("import", path, "--partial")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == [
        "  - conv: {name: conv, filters: 64, kernel: 3, padding: 1, bias: false}", "  - relu: {name: relu}"]
    assert "partial (--partial): the layers before nodes[2] Einsum (einsum)" in result.stdout
    assert "warning: --partial: 2 layers" in result.stderr and "nodes[4] NonMaxSuppression (nms)" in result.stderr
    spec = tmp_path / "partial.yaml"
    spec.write_text(result.stdout)
    assert table_json(spec)["totals"]["trainable_params"] == 64 * 27
    # table --partial analyses the same layers directly, and a note says what was left out
    direct = table_json(path, "--partial")
    assert [row["name"] for row in direct["layers"]] == ["conv", "relu"]
    assert "not analysed: nodes[2] Einsum (einsum)" in direct["notes"][0]["message"]
    refused = invoke("table", "lenet5", "--partial")
    assert refused.exit_code == 2 and refused.stderr.startswith("--partial: error: --partial applies to ONNX files")


@needs_onnx
def test_a_broken_file_is_one_located_error(tmp_path):
    whole = conv_relu(tmp_path / "whole.onnx").read_bytes()
    cases = {
        "truncated.onnx": (whole[: len(whole) // 2], "is truncated or damaged: the graph runs to byte"),
        "garbage.onnx": (b"name: not a model\n", "is not a valid ONNX file"),
        "empty.onnx": (b"", "is empty"),
    }
    for name, (content, fragment) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        line = one_error_line(invoke("table", path), path)
        assert fragment in line, line
    line = one_error_line(invoke("table", tmp_path / "missing.onnx"), tmp_path / "missing.onnx")
    assert line.endswith("error: no such file")


@needs_onnx
def test_a_shape_onnx_disagrees_with_is_an_error_naming_the_node(tmp_path):
    from onnx import TensorProto, helper

    wrong = helper.make_tensor_value_info("c", TensorProto.FLOAT, (1, 64, 7, 7))  # the conv keeps 8x8
    path = conv_relu(tmp_path / "wrong.onnx", value_info=[wrong])
    line = one_error_line(invoke("table", path), path)
    assert line == (f"{path}: nodes[0] (conv): error: cnncalc computes [1, 64, 8, 8] for the output `c`, but "
                    "ONNX's shape inference gives [1, 64, 7, 7]")


@needs_onnx
def test_external_data_is_never_opened(tmp_path):
    """An initializer whose values live in another file: its dims are enough, the file may be gone."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="conv.weight", data_type=TensorProto.FLOAT, dims=(64, 3, 3, 3),
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", str(64 * 27 * 4))):
        weight.external_data.add(key=key, value=value)
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["y"], name="conv")]
    path = helper_model(tmp_path / "external.onnx", nodes, [weight], (1, 3, 8, 8))
    assert not (tmp_path / "weights.bin").exists()
    report = table_json(path)
    assert report["totals"]["params"] == 64 * 27 and report["layers"][0]["output_shape"] == [64, 6, 6]


@needs_onnx
def test_ops_built_with_onnx_helper(tmp_path):
    """Older and newer forms: attributes vs inputs, SAME padding, Upsample, LRN, Split, Clip, Pad,
    ConvTranspose's output_shape, DepthToSpace, GroupNormalization, 1-D and 3-D convolutions."""
    from onnx import helper

    node = helper.make_node
    old = [node("Conv", ["x", "w1"], ["a"], name="c1", auto_pad="SAME_UPPER", strides=[2, 2], kernel_shape=[3, 3]),
           node("LRN", ["a"], ["b"], name="lrn", size=5, alpha=2e-4),
           node("Clip", ["b"], ["c"], name="clip", min=0.0, max=6.0),
           node("Upsample", ["c", "scales"], ["d"], name="up", mode="nearest"),
           node("Pad", ["d"], ["e"], name="pad", mode="reflect", pads=[0, 0, 1, 2, 0, 0, 1, 2]),
           node("Split", ["e"], ["s0", "s1"], name="split", axis=1, split=[3, 5]),
           node("Dropout", ["s1"], ["f"], name="drop", ratio=0.3),
           node("Conv", ["s0", "w2", "b2"], ["g"], name="c2", auto_pad="SAME_LOWER", kernel_shape=[2, 2]),
           node("Concat", ["g", "f"], ["h"], name="cat", axis=1),
           node("GlobalMaxPool", ["h"], ["i"], name="gmp"),
           node("Flatten", ["i"], ["j"], name="flat"),
           node("Gemm", ["j", "w3"], ["k"], name="fc"),
           node("Softmax", ["k"], ["y"], name="sm", axis=1)]
    mid = [node("ConvTranspose", ["x", "wt"], ["a"], name="ct", strides=[2, 2], output_shape=[10, 10],
                kernel_shape=[3, 3]),
           node("DepthToSpace", ["a"], ["b"], name="d2s", blocksize=2, mode="CRD"),
           node("PRelu", ["b", "slope"], ["c"], name="prelu"),
           node("Selu", ["c"], ["c2"], name="selu"),
           node("Elu", ["c"], ["c3"], name="elu"),
           node("Sum", ["c2", "c3", "c"], ["d"], name="sum"),
           node("HardSigmoid", ["d"], ["e"], name="hsig", alpha=1 / 6),
           node("Resize", ["e", "", "", "sizes"], ["f"], name="resize", mode="linear"),
           node("Split", ["f", "splits"], ["f0", "f1"], name="split", axis=1),
           node("Identity", ["f1"], ["g"], name="ident"),
           node("Tanh", ["f0"], ["g0"], name="tanh"),
           node("Mul", ["g", "g0"], ["h"], name="mul"),
           node("ReduceMax", ["h"], ["i"], name="rmax", axes=[2, 3], keepdims=0),
           node("Unsqueeze", ["i", "axis2"], ["j"], name="unsq"),
           node("Squeeze", ["j", "axis2"], ["k"], name="sq"),
           node("MatMul", ["k", "wm"], ["y"], name="mm")]
    new = [node("Conv", ["x", "w1", "b1"], ["a"], name="conv1d", pads=[1, 1], dilations=[2], group=2),
           node("GroupNormalization", ["a", "gs", "gb"], ["b"], name="gn", num_groups=2, epsilon=1e-6),
           node("InstanceNormalization", ["b", "is", "ib"], ["c"], name="in"),
           node("AveragePool", ["c"], ["d"], name="ap", kernel_shape=[3], strides=[1], pads=[1, 1],
                count_include_pad=1),
           node("LayerNormalization", ["d", "ls"], ["e"], name="ln", axis=1),
           node("Unsqueeze", ["e", "axes"], ["f"], name="unsq"),
           node("Conv", ["f", "w3"], ["y"], name="conv3d", pads=[0, 1, 1, 0, 1, 1])]
    cases = [
        ("old", old, [tensor("w1", (8, 3, 3, 3)), tensor("scales", values=[1, 1, 2, 2]), tensor("w2", (4, 3, 2, 2)),
                      tensor("b2", (4,)), tensor("w3", (9, 7))], (1, 3, 9, 9), 10,
         8 * 27 + 4 * 12 + 4 + 63,
         {"c1": [8, 5, 5], "lrn": [8, 5, 5], "clip": [8, 5, 5], "up": [8, 10, 10], "pad": [8, 12, 14],
          "split.0": [3, 12, 14], "split.1": [5, 12, 14], "c2": [4, 12, 14], "gmp": [9, 1, 1], "sm": [7]}),
        ("mid", mid, [tensor("wt", (3, 8, 3, 3)), tensor("slope", (1,)), tensor("sizes", values=[1, 2, 30, 30],
                      dtype="int64"), tensor("splits", values=[1, 1], dtype="int64"),
                      tensor("axis2", values=[2], dtype="int64"), tensor("wm", (1, 5))], (1, 3, 5, 5), 13,
         216 + 1 + 5,
         {"ct": [8, 10, 10], "d2s": [2, 20, 20], "sum": [2, 20, 20], "resize": [2, 30, 30], "rmax": [1, 1, 1],
          "rmax.flatten": [1], "unsq": [1, 1], "sq": [1], "mm": [5]}),
        ("new", new, [tensor("w1", (4, 1, 3)), tensor("b1", (4,)), tensor("gs", (4,)), tensor("gb", (4,)),
                      tensor("is", (4,)), tensor("ib", (4,)), tensor("ls", (4, 14)),
                      tensor("axes", values=[1, 2], dtype="int64"), tensor("w3", (2, 1, 1, 3, 3))], (1, 2, 16), 21,
         16 + 8 + 8 + 56 + 18,
         {"conv1d": [4, 14], "gn": [4, 14], "ln": [4, 14], "unsq.1": [1, 1, 4, 14], "conv3d": [2, 1, 4, 14]}),
    ]
    for name, nodes, initializers, shape, opset, params, shapes in cases:
        path = helper_model(tmp_path / f"{name}.onnx", nodes, initializers, shape, opset=opset)
        report = table_json(path)
        assert report["totals"]["params"] == params, name
        rows = {row["name"]: row["output_shape"] for row in report["layers"]}
        assert {key: rows.get(key) for key in shapes} == shapes, name
    kinds = [row["kind"] for row in table_json(tmp_path / "old.onnx")["layers"]]
    assert kinds == ["conv", "lrn", "relu6", "upsample", "pad", "split", "split", "dropout", "conv", "concat",
                     "global_maxpool", "flatten", "linear", "softmax"]


@needs_onnx
def test_two_inputs_and_names_from_other_producers(tmp_path):
    """Several graph inputs become `inputs`; node names are kept, automatic ones (`Conv_3`) give way
    to the weights' module names."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node
    nodes = [node("Conv", ["image", "stem.weight"], ["c"], name="Conv_3", pads=[1, 1, 1, 1]),
             node("Conv", ["input", "stem.weight"], ["c2"], name="side", pads=[1, 1, 1, 1]),
             node("Add", ["c", "c2"], ["y"], name="")]
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, (1, 3, 8, 8)) for name in ("image", "input")]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [tensor("stem.weight", (4, 3, 3, 3))])
    path = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    result = invoke("import", path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[2:] == [
        "inputs: {image: [3, 8, 8], input_1: [3, 8, 8]}", "rounding: floor", "layers:",
        "  - conv: {name: stem, filters: 4, kernel: 3, padding: 1, bias: false}",
        "  - conv: {name: side, from: input_1, filters: 4, kernel: 3, padding: 1, bias: false}",
        "  - add: {name: add_2, from: [stem, side]}"]
    assert table_json(path)["totals"]["params"] == 2 * 4 * 27  # the shared weight counts at each use


@needs_onnx
def test_onnx_not_installed_is_one_clear_error(tmp_path, monkeypatch):
    path = conv_relu(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    line = one_error_line(invoke("table", path), path)
    assert line == f'{path}: error: reading ONNX files needs the onnx package: pip install "cnncalc[onnx]"'


@needs_onnx
def test_import_never_overwrites_its_input(tmp_path):
    path = conv_relu(tmp_path / "m.onnx")
    before = path.read_bytes()
    line = one_error_line(invoke("import", path, "-o", path), path)
    assert "refusing to overwrite the input file" in line
    assert path.read_bytes() == before
    out = tmp_path / "m.yaml"
    assert invoke("import", path, "-o", out, "--name", "tiny").exit_code == 0
    assert "\nname: tiny\n" in out.read_text()


@needs_onnx
def test_import_usage_errors(tmp_path):
    result = invoke("import")
    assert result.exit_code == 2 and "give an ONNX file (MODEL.onnx) or --torch TARGET" in result.stderr
    yaml_spec = tmp_path / "a.yaml"
    yaml_spec.write_text("input: [3, 8, 8]\nlayers: [relu]\n")
    line = one_error_line(invoke("import", yaml_spec), yaml_spec)
    assert "cnncalc import reads ONNX files" in line
    result = invoke("import", "--torch", "x.py:Net")
    assert result.exit_code == 2 and "--torch needs --input" in result.stderr


@needs_torch
def test_import_torch_writes_the_same_yaml_form(tmp_path):
    pytest.importorskip("cnncalc.importers.torch_import", reason="the PyTorch importer is another module's work")
    source = tmp_path / "net.py"
    source.write_text("import torch.nn as nn\n\n\nclass Net(nn.Sequential):\n    def __init__(self):\n"
                      "        super().__init__(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(),\n"
                      "                         nn.Linear(8 * 6 * 6, 10))\n")
    out = tmp_path / "net.yaml"
    result = invoke("import", "--torch", f"{source}:Net", "--input", "3x8x8", "-o", out)
    assert result.exit_code == 0, result.stderr
    text = out.read_text()
    assert text.startswith(f"# Source: {source}:Net (PyTorch), input 3x8x8")
    assert table_json(out)["totals"]["trainable_params"] == 8 * 28 + 8 * 36 * 10 + 10
    line = one_error_line(invoke("import", "--torch", f"{source}:Net", "--input", "3x8x8", "-o", source), source)
    assert "refusing to overwrite" in line


def test_the_table_path_imports_no_onnx():
    code = ("import sys\nfrom cnncalc.cli import cli\ntry:\n    cli.main(['table', 'lenet5', '--format', 'json'], "
            "standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "import cnncalc.commands.importer, cnncalc.importers\n"
            "print(sorted(m for m in ('onnx', 'numpy', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr


# ============================================================================ the YAML writer
def test_spec_yaml_reads_back_as_the_data():
    import yaml

    from cnncalc.importers import spec_yaml

    data = {"name": "t", "input": [3, 8, 8], "rounding": "floor", "layers": [
        {"conv": {"name": "layer1.0.conv1", "filters": 4, "kernel": [3, 1], "padding": [[0, 1], [1, 0]]}},
        {"relu": {}}, {"relu": None, "name": "true"}, {"batchnorm": {"name": "12", "eps": 1e-05}},
        "flatten", {"linear": 10}, {"add": {"name": "a: b", "from": ["x/y", "#z"]}},
        {"residual": {"name": "r", "layers": [{"conv": {"filters": 4, "kernel": 1}}], "after": ["relu"]}},
        {"branches": {"paths": [[], [{"conv": {"filters": 2, "kernel": 1}}, "relu"]]}, "name": "b"},
    ]}
    text = spec_yaml(data, "model.onnx (ONNX)\nsecond line")
    assert text.startswith("# Source: model.onnx (ONNX)\n#         second line\nname: t\n")
    assert "  - conv: {name: layer1.0.conv1, filters: 4, kernel: [3, 1], padding: [[0, 1], [1, 0]]}\n" in text
    assert '  - batchnorm: {name: "12", eps: 1.0e-05}\n' in text  # a number-like name stays text
    assert "  - residual:\n      name: r\n      layers:\n        - conv: {filters: 4, kernel: 1}\n" in text
    assert yaml.safe_load(text) == data


def crop_model(path, starts, ends, consumer="Concat"):
    """conv 3x3 valid (8x8 -> 6x6) beside the input centre-cropped by a Slice to 6x6 (U-Net's skip)."""
    from onnx import helper

    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="conv"),
             helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["s"], name="crop")]
    if consumer == "Concat":
        nodes.append(helper.make_node("Concat", ["s", "c"], ["y"], name="cat", axis=1))
    else:
        nodes.append(helper.make_node(consumer, ["s"], ["y"], name="after"))
    initializers = [tensor("conv.weight", (4, 3, 3, 3)), tensor("starts", values=starts, dtype="int64"),
                    tensor("ends", values=ends, dtype="int64"), tensor("axes", values=[2, 3], dtype="int64")]
    return helper_model(path, nodes, initializers, (1, 3, 8, 8))


@needs_onnx
def test_a_centre_crop_before_a_concat_is_concat_with_crop(tmp_path):
    """U-Net's skip connection as exporters write it: Slice of the spatial axes, then Concat."""
    path = crop_model(tmp_path / "crop.onnx", [1, 1], [7, 7])
    report = table_json(path)
    [cat] = [row for row in report["layers"] if row["name"] == "cat"]
    assert cat["kind"] == "concat" and cat["output_shape"] == [7, 6, 6]
    assert "crop: true" in invoke("import", path).stdout
    # not a centre crop (the rows 0..5 of 8): cnncalc's crop would take 1..6, so it is refused
    line = one_error_line(invoke("table", crop_model(tmp_path / "corner.onnx", [0, 0], [6, 6])), tmp_path / "corner.onnx")
    assert "nodes[1] Slice (crop)" in line and "a slice of axis 2" in line
    # a crop read by anything but a Concat
    line = one_error_line(invoke("table", crop_model(tmp_path / "relu.onnx", [1, 1], [7, 7], "Relu")),
                          tmp_path / "relu.onnx")
    assert "nodes[2] Relu (after)" in line and "a Slice of the spatial axes (a crop)" in line


@needs_torch
def test_unet_exported_by_torch_reads_as_the_spec(tmp_path):
    """U-Net's centre crops as torch.onnx.export writes them (one Slice per axis, chained) become
    `concat` with `crop` again: the same totals as the spec at that input."""
    import torch

    from cnncalc.commands.export import analysed
    from cnncalc.export.pytorch import pytorch_source

    loaded, analysis = analysed("unet", None, "1x188x188")
    namespace: dict = {"__name__": "exported"}
    exec(compile(pytorch_source(analysis, "unet", loaded.description), "<unet>", "exec"), namespace)
    model_class = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]
    path = export(model_class(), 188, tmp_path / "unet.onnx", channels=1)
    report = table_json(path)
    assert sum(row["kind"] == "concat" for row in report["layers"]) == 4
    spec = table_json("unet", "--input", "1x188x188")
    for key in ("params", "trainable_params", "macs", "activations"):  # the file orders the layers its own way
        assert report["totals"][key] == spec["totals"][key], key
