"""`cnncalc export SPEC --to onnx`: the model written with the onnx package alone.

For every zoo spec whose kinds have an ONNX form (zero weights) and for small specs using the
other kinds: the model passes onnx.checker, ONNX's inferred shape of every row's output is
cnncalc's ([1, *shape]: the batch is fixed at 1), and the model read back by cnncalc's ONNX importer
has the same trainable parameters, MACs and per-row output shapes. A kind without an ONNX form
is one clear error naming it.
"""
from __future__ import annotations

import numpy
import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc import zoo
from cnncalc.api import analyze_spec
from cnncalc.cli import cli
from cnncalc.commands.export import analysed
from cnncalc.errors import CnnCalcError

onnx = pytest.importorskip("onnx")
from cnncalc.export.onnx import BATCH, build, check  # noqa: E402

# zoo specs with a kind that has no ONNX form: the kind the error names
NO_ONNX = {"lenet5_original": "subsample"}
# zoo specs whose export is too large to build in a few seconds (the weights alone are 200+ MB)
LARGE = {"alexnet", "alexnet_torchvision", "c3d", "vgg11", "vgg11_lrn", "vgg13", "vgg16", "vgg16_bn", "vgg16_c",
         "vgg19", "resnet152", "wide_resnet50_2", "resnet101"}
# rows written as several nodes, which the importer reads back as several rows (same totals):
# ConvNeXt's channel layer norm (Transpose, LayerNormalization, Transpose), a linear on a
# non-flat input (Flatten, Gemm), ShuffleNet's channel shuffle (Reshape, Transpose, Reshape)
# and its split pieces (named by the importer's split)
SEVERAL_NODES = {"convnext_tiny", "googlenet_paper", "shufflenet_v2_x1_0"}


def inferred(model) -> dict[str, list]:
    """ONNX's inferred shape of every tensor (strict: an op ONNX cannot type is an error)."""
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph
    return {value.name: [d.dim_value if d.HasField("dim_value") else d.dim_param
                         for d in value.type.tensor_type.shape.dim]
            for value in [*graph.value_info, *graph.output, *graph.input]}


def assert_exports(spec, tmp_path, round_trip: str | None = "exact"):
    """Checker, inferred shapes per row and (unless ``round_trip`` is None) the importer's reading:
    "exact" the same rows (names and shapes), "shapes" the same rows' shapes, "names" the same
    shapes where the names agree."""
    _, analysis = analysed(spec, None)
    model, outputs = build(analysis, "spec")
    data = model.SerializeToString()
    check(data)
    shapes = inferred(model)
    steps = analysis.plan.steps
    wrong = [(step.name, shapes.get(output), [BATCH, *step.output_shape])
             for step, output in zip(steps, outputs) if shapes.get(output) != [BATCH, *step.output_shape]]
    assert not wrong, wrong
    if round_trip is None:
        return
    path = tmp_path / "net.onnx"
    path.write_bytes(data)
    back = analyze_spec(cnncalc.load_spec(str(path)))
    totals, original = back.report.totals, analysis.report.totals
    assert (totals.trainable_params, totals.macs) == (original.trainable_params, original.macs)
    assert back.plan.steps[-1].output_shape == steps[-1].output_shape
    rows = [(step.name, step.output_shape) for step in steps]
    read = [(step.name, step.output_shape) for step in back.plan.steps]
    if round_trip == "exact":
        assert read == rows
    elif round_trip == "shapes":  # the importer names a split's pieces by the split (`split1.0`)
        assert [shape for _, shape in read] == [shape for _, shape in rows]
    else:
        names = dict(rows)
        assert [(n, s) for n, s in read if n in names] == [(n, names[n]) for n, s in read if n in names]
        assert len([n for n, _ in read if n in names]) >= len(rows) // 2


# ----------------------------------------------------------------------------- the zoo
@pytest.mark.parametrize("name", [n for n in zoo.model_names() if n not in NO_ONNX and n not in LARGE])
def test_zoo_spec_exports_and_reads_back(name, tmp_path):
    assert_exports(name, tmp_path, "names" if name in SEVERAL_NODES else "exact")


@pytest.mark.parametrize("name", sorted(NO_ONNX))
def test_kind_without_onnx_form_is_named(name):
    _, analysis = analysed(name, None)
    with pytest.raises(CnnCalcError, match=f"no ONNX export for kind `{NO_ONNX[name]}`"):
        build(analysis)


# ----------------------------------------------------------------------------- small specs, other kinds
SMALL = {
    "conv options": {"name": "c", "input": [4, 11, 13], "layers": [
        {"conv": {"filters": 6, "kernel": [3, 2], "stride": [2, 1], "dilation": [1, 2], "groups": 2,
                  "padding": [[1, 2], [0, 1]]}},
        {"maxpool": {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}},
        {"avgpool": {"kernel": 2, "stride": 1, "padding": [[0, 1], [1, 0]], "count_include_pad": False}},
        {"conv": {"filters": 4, "kernel": 3, "padding": "same", "bias": False}},
        {"conv_transpose": {"filters": 3, "kernel": 4, "stride": 2, "padding": 1}},
        {"adaptive_avgpool": {"output": [2, None]}},
        {"adaptive_maxpool": 1},
        "flatten", {"linear": 5}, "relu6", {"leaky_relu": 0.2}, {"elu": 0.5}, "selu", "mish", "log_softmax",
    ]},
    "shape ops": {"name": "s", "input": [3, 8, 8], "layers": [
        {"pad": {"padding": [1, [2, 0]], "mode": "reflect"}},
        {"pad": {"padding": 1, "mode": "replicate"}},
        {"pad": {"padding": 1}},
        {"upsample": {"scale_factor": 2}},
        {"upsample": {"size": [7, 9], "mode": "bilinear"}},
        {"conv": {"filters": 8, "kernel": 1}},
        {"pixel_shuffle": 2},
        {"permute": [0, 2, 3, 1]},
        {"layernorm": {"normalized_shape": 2}},
        {"linear": {"features": 6, "flatten": False}},
        {"permute": [0, 3, 1, 2]},
        {"layernorm": {}},
        {"layer_scale": 0.5},
        {"reshape": [6, -1]},
        {"unsqueeze": 1},
        {"squeeze": 1},
        "gelu", "silu", "hardswish", "hardsigmoid", "tanh", "sigmoid", "identity", {"dropout": 0.2},
        {"drop_path": 0.1},
    ]},
    "1d and 3d": {"name": "d", "inputs": {"a": [2, 20], "b": [2, 20]}, "layers": [
        {"add": ["a", "b"]},
        {"conv": {"filters": 4, "kernel": 3, "padding": 1}},
        {"batchnorm": {"affine": False}},
        {"reshape": [4, 2, 2, 5]},
        {"conv": {"filters": 3, "kernel": [1, 2, 2]}},
        {"channel_shuffle": 3},
        {"global_avgpool": {}},
    ]},
    "crop and prelu": {"name": "u", "input": [2, 12, 12], "layers": [
        {"conv": {"filters": 3, "kernel": 3, "name": "a"}},
        {"prelu": 3},
        {"conv": {"filters": 2, "kernel": 4, "stride": 2, "from": "input", "name": "b"}},
        {"prelu": {}},
        {"concat": {"from": ["a", "prelu2"], "crop": True}},
    ]},
    # onnx.reference computes these wrong (its LRN fills channel 0 alone, its GlobalMaxPool takes
    # the wrong axes off a 5-D tensor): shapes only
    "not in the reference evaluator": {"name": "l", "input": [6, 5, 4, 3], "layers": [
        {"lrn": {"size": 3, "alpha": 0.01, "k": 2.0}}, {"global_maxpool": {}}, "flatten",
    ]},
}
REFERENCE_WRONG = {"not in the reference evaluator"}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_spec_shapes(name, tmp_path):
    assert_exports(SMALL[name], tmp_path, round_trip=None)


@pytest.mark.parametrize("name", [*sorted(set(SMALL) - REFERENCE_WRONG), "lenet5", "squeezenet1_1"])
def test_same_numbers_as_cnncalc(name):
    """With the weights of cnncalc's numpy backend, ONNX's reference evaluator computes its output."""
    from onnx.reference import ReferenceEvaluator

    from cnncalc.backends.forward import input_array, other_inputs, run_forward
    from cnncalc.backends.parameters import SeededParameters
    from cnncalc.backends.registry import load_backend

    _, analysis = analysed(SMALL.get(name, name), None)
    plan = analysis.plan
    want = run_forward(plan, load_backend("numpy", "cpu"), seed=0, keep=lambda row: True)[-1].output
    model, _ = build(analysis, parameters=SeededParameters(0))
    names = list(plan.inputs)
    feeds = {names[0]: input_array(plan, 1, 0)}
    feeds.update({names[-number - 1]: value for number, value in other_inputs(plan, 1, 0).items()})
    got = ReferenceEvaluator(model).run(None, feeds)[0]
    assert got.shape == want.shape
    assert numpy.abs(got - want).max() <= 1e-5 * max(1.0, float(numpy.abs(want).max()))


def test_lrn_of_even_size_is_a_clear_error():
    """ONNX's LRN window for an even size is PyTorch's shifted by one channel."""
    _, analysis = analysed({"name": "t", "input": [6, 4, 4], "layers": [{"lrn": 4}]}, None)
    with pytest.raises(CnnCalcError, match="no ONNX export for kind `lrn`.*even"):
        build(analysis)


def test_uneven_adaptive_pool_is_a_clear_error():
    _, analysis = analysed({"name": "t", "input": [2, 7, 7], "layers": [{"adaptive_avgpool": 3}]}, None)
    with pytest.raises(CnnCalcError, match="no ONNX export for kind `adaptive_avgpool`.*not a whole multiple"):
        build(analysis)


def test_round_trip_of_small_specs(tmp_path):
    """The rows the importer maps one to one come back as they were."""
    assert_exports({"name": "r", "input": [3, 16, 16], "layers": [
        {"conv": {"filters": 8, "kernel": 3, "padding": [[0, 1], [1, 0]], "groups": 1}},
        {"maxpool": {"kernel": 2, "ceil_mode": True}},
        "batchnorm", "relu6", {"layer_scale": 0.1},
        {"split": {"names": ["p", "q"], "sizes": [3, 5]}},
        {"concat": ["q", "p"]},
        {"upsample": 2}, "hardswish", {"pad": 1},
        "flatten", {"linear": 10}, "softmax",
    ]}, tmp_path, "shapes")


def test_random_weights_are_seeded_and_said():
    _, analysis = analysed("lenet5", None)
    first = build(analysis, weights="random", seed=3)[0]
    again = build(analysis, weights="random", seed=3)[0]
    assert first.graph.initializer[0].raw_data == again.graph.initializer[0].raw_data
    assert any(onnx.numpy_helper.to_array(t).any() for t in first.graph.initializer)
    assert "seeded random" in first.doc_string
    zero = build(analysis)[0]
    assert "Weights: zeros" in zero.doc_string
    assert not any(onnx.numpy_helper.to_array(t).any() for t in zero.graph.initializer if t.name.endswith(".weight"))


def test_command_writes_seeded_random_weights(tmp_path):
    runner = CliRunner()
    paths = [tmp_path / f"{n}.onnx" for n in range(3)]
    for path, seed in zip(paths, (3, 3, 4)):
        result = runner.invoke(cli, ["export", "lenet5", "--to", "onnx", "--weights", "random", "--seed", str(seed),
                                     "-o", str(path)])
        assert result.exit_code == 0, result.output
    first, again, other = (onnx.load(str(p)) for p in paths)
    assert first.graph.initializer[0].raw_data == again.graph.initializer[0].raw_data
    assert first.graph.initializer[0].raw_data != other.graph.initializer[0].raw_data
    assert "numpy default_rng(3)" in first.doc_string
    refused = runner.invoke(cli, ["export", "lenet5", "--weights", "random"])
    assert refused.exit_code == 2 and refused.stderr.startswith("--weights: error: --weights and --seed apply to")


def test_command_writes_a_model(tmp_path):
    target = tmp_path / "lenet.onnx"
    result = CliRunner().invoke(cli, ["export", "lenet5", "--to", "onnx", "-o", str(target)])
    assert result.exit_code == 0, result.output
    model = onnx.load(str(target))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [BATCH, 1, 32, 32]
    result = CliRunner().invoke(cli, ["table", str(target), "--format", "json"])
    assert result.exit_code == 0, result.output


def test_command_writes_the_model_to_a_redirected_stdout():
    result = CliRunner().invoke(cli, ["export", "lenet5", "--to", "onnx"])
    assert result.exit_code == 0, result.output
    model = onnx.load_from_string(result.stdout_bytes)
    onnx.checker.check_model(model)
    assert "Weights: zeros" in model.doc_string


def test_command_names_the_kind_without_onnx_form(tmp_path):
    result = CliRunner().invoke(cli, ["export", "lenet5_original", "--to", "onnx", "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code != 0
    assert "no ONNX export for kind `subsample`" in result.output
    assert not (tmp_path / "x.onnx").exists()
