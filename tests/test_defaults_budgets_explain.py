"""Behaviour a user sees through the commands: depthwise_separable's default padding, the stricter
of two budgets, adaptive pooling that keeps an axis (None), a tab in YAML, the worked lines of
linear, unpool, upsample and the adaptive and global pools, and fit messages for several axes."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.cli import cli
from cnncalc.errors import CnnCalcError
from cnncalc.api import analyze_spec
from cnncalc.render.explain import explanation_lines
from cnncalc.units import parse_quantity
from helpers import run


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def explained(input_shape, layer, **options) -> list[str]:
    spec = {"name": "t", "input": input_shape, "layers": [layer]}
    if isinstance(input_shape, str):
        spec["layout"] = "hwc"
    analysis = analyze_spec(spec, **options)
    return explanation_lines(analysis.report.layers[-1], analysis.report, analysis.plan.steps[-1].formulas())


def evaluate(line: str) -> tuple[float, float] | None:
    """`W2 = W1*factor = 4*2 = 8` -> (8, 8); None for a line with nothing to compute."""
    parts = [p.strip() for p in line.split(" = ")]
    arithmetic, claimed = parts[-2], parts[-1].split(" (")[0]
    if re.search(r"[A-Za-z_]", arithmetic):
        return None
    assert re.fullmatch(r"[0-9+\-*/(). ]+", arithmetic), line
    return eval(arithmetic), float(claimed)  # noqa: S307 - digits and operators only, checked above


def assert_arithmetic_holds(lines: list[str]) -> None:
    for line in lines:
        if line.startswith(("receptive", "memory")):
            continue
        pair = evaluate(line)
        if pair is not None:
            assert pair[0] == pytest.approx(pair[1]), line


# ----------------------------------------------------------------------------- depthwise separable
LECTURE_DWSEP = {"depthwise_separable": {"filters": 4, "kernel": 3, "bias": False}}


def test_depthwise_separable_does_not_pad_by_default_like_conv():
    report = run([2, 6, 6], LECTURE_DWSEP)
    depthwise, pointwise = report.layers
    assert depthwise.output_shape == (2, 4, 4) and pointwise.output_shape == (4, 4, 4)
    assert (depthwise.weights, pointwise.weights) == (3 * 3 * 2, 1 * 1 * 2 * 4)
    assert report.totals.trainable_params == 26
    assert report.totals.macs == 18 * 16 + 8 * 16 == 416
    conv = run([2, 6, 6], {"conv": {"filters": 4, "kernel": 3}}).layers[-1]
    assert conv.output_shape == pointwise.output_shape  # the same default as `conv`


@pytest.mark.parametrize("padding", [1, "same", [1, 1]])
def test_depthwise_separable_keeps_the_size_when_asked(padding):
    layer = {"depthwise_separable": {**LECTURE_DWSEP["depthwise_separable"], "padding": padding}}
    report = run([2, 6, 6], layer)
    assert report.layers[-1].output_shape == (4, 6, 6)
    assert report.totals.macs == 26 * 36


def test_depthwise_separable_from_the_command_line():
    result = invoke("layer", "depthwise_separable", "--input", "2x6x6", "--layout", "chw", "--filters", "4",
                    "--kernel", "3", "--no-bias", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[-1]["output_shape"] == [4, 4, 4]
    assert sum(row["weights"] for row in rows) == 26
    assert sum(row["macs"] for row in rows) == 416


def test_depthwise_separable_matches_pytorch():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2, bias=False), nn.Conv2d(2, 4, 1, bias=False))
    y = net(torch.zeros(1, 2, 6, 6))
    report = run([2, 6, 6], LECTURE_DWSEP)
    assert report.layers[-1].output_shape == tuple(y.shape[1:])
    assert report.totals.trainable_params == sum(p.numel() for p in net.parameters())


# ----------------------------------------------------------------------------- budgets
def budget_spec(tmp_path, budget) -> str:
    path = tmp_path / "net.yaml"  # 156 params, 117,600 MACs
    path.write_text(f"input: [1, 32, 32]\nbudgets:\n  max_params: {budget}\nlayers:\n"
                    "  - conv: {filters: 6, kernel: 5}\n")
    return str(path)


def test_a_looser_option_does_not_lift_the_spec_budget(tmp_path):
    path = budget_spec(tmp_path, 100)
    result = invoke("validate", path, "--max-params", "25M")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:3: budgets.max_params: 156 params exceed the budget of 100 (stricter than --max-params of 25M)"]


def test_a_stricter_option_wins_over_the_spec_budget(tmp_path):
    path = budget_spec(tmp_path, "25M")
    result = invoke("validate", path, "--max-params", "100")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}: 156 params exceed --max-params of 100 (stricter than the spec's budget of 25M)"]


@pytest.mark.parametrize("spec_budget, option", [(100, "25M"), ("25M", "100"), (100, "150"), (150, "100")])
def test_the_stricter_limit_decides_in_either_order(tmp_path, spec_budget, option):
    path = budget_spec(tmp_path, spec_budget)
    result = invoke("validate", path, "--max-params", option, "--format", "json")
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem["kind"] == "budget"
    strict_spec = parse_quantity(str(spec_budget)) < parse_quantity(option)
    assert (problem["line"] == 3) == strict_spec  # the spec's budget is located at its line
    assert ("exceed the budget of" in problem["message"]) == strict_spec
    assert ("exceed --max-params of" in problem["message"]) != strict_spec


def test_both_limits_met_is_clean_and_equal_limits_name_the_spec(tmp_path):
    path = budget_spec(tmp_path, 1000)
    assert invoke("validate", path, "--max-params", "25M").exit_code == 0
    path = budget_spec(tmp_path, 150)
    result = invoke("validate", path, "--max-params", "150")
    assert result.stdout.splitlines() == [
        f"{path}:3: budgets.max_params: 156 params exceed the budget of 150 (the same as --max-params of 150)"]


# ----------------------------------------------------------------------------- adaptive pooling with None
NONE_CASES = [
    ([3, 13, 9], [None, 7], 2),
    ([3, 13, 9], [5, None], 2),
    ([3, 13, 9], [None, None], 2),
    ([2, 5, 6, 7], [None, 3, None], 3),
    ([2, 5, 6, 7], [2, None, 4], 3),
]


@pytest.mark.parametrize("kind", ["adaptive_avgpool", "adaptive_maxpool"])
@pytest.mark.parametrize("shape, output, rank", NONE_CASES)
def test_null_keeps_that_axis(kind, shape, output, rank):
    row = run(shape, {kind: {"output": output}}).layers[-1]
    assert row.output_shape == (shape[0], *(s if o is None else o for s, o in zip(shape[1:], output)))
    assert run(shape, {kind: output}).layers[-1].output_shape == row.output_shape  # the scalar shorthand


@pytest.mark.parametrize("kind", ["adaptive_avgpool", "adaptive_maxpool"])
@pytest.mark.parametrize("shape, output, rank", NONE_CASES)
def test_null_axes_match_pytorch(kind, shape, output, rank):
    torch = pytest.importorskip("torch")
    module = {"adaptive_avgpool": {1: torch.nn.AdaptiveAvgPool1d, 2: torch.nn.AdaptiveAvgPool2d,
                                   3: torch.nn.AdaptiveAvgPool3d},
              "adaptive_maxpool": {1: torch.nn.AdaptiveMaxPool1d, 2: torch.nn.AdaptiveMaxPool2d,
                                   3: torch.nn.AdaptiveMaxPool3d}}[kind][rank](tuple(output))
    expected = module(torch.zeros(1, *shape)).shape[1:]
    assert run(shape, {kind: output}).layers[-1].output_shape == tuple(expected)


def test_adaptive_avgpool_none_7_as_torchvision_writes_it():
    torch = pytest.importorskip("torch")
    y = torch.nn.AdaptiveAvgPool2d((None, 7))(torch.zeros(1, 512, 13, 9))
    assert run([512, 13, 9], {"adaptive_avgpool": [None, 7]}).layers[-1].output_shape == tuple(y.shape[1:])


@pytest.mark.parametrize("kind", ["adaptive_avgpool", "adaptive_maxpool"])
def test_1d_null_is_refused_as_pytorch_refuses_it(kind):
    with pytest.raises(CnnCalcError, match="PyTorch's 1-D adaptive pooling takes no None"):
        run([3, 10], {kind: [None]})
    torch = pytest.importorskip("torch")
    module = {"adaptive_avgpool": torch.nn.AdaptiveAvgPool1d, "adaptive_maxpool": torch.nn.AdaptiveMaxPool1d}[kind]
    with pytest.raises(TypeError):
        module((None,))(torch.zeros(1, 3, 10))


def test_null_needs_the_right_number_of_axes():
    with pytest.raises(CnnCalcError, match="2 values but the input has 1 spatial axes"):
        run([3, 10], {"adaptive_avgpool": [None, 7]})
    with pytest.raises(CnnCalcError):
        run([3, 10, 10], {"adaptive_avgpool": [0, None]})  # sizes still must be positive


NULL_SPEC = """input: [2, 9, 8, 10]
layers:
  - conv: {filters: 3, kernel: 3}
  - adaptive_avgpool: {output: [null, 4, null], name: keep}
  - adaptive_maxpool: [2, null, 3]
  - flatten
  - linear: 5
"""


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_verify_runs_null_axes_on_real_arrays(tmp_path, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    path = tmp_path / "nulls.yaml"
    path.write_text(NULL_SPEC)
    result = invoke("verify", str(path), "--backend", backend, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["mismatches"] == 0 and data["not_run"] == 0
    assert [layer["actual_shape"] for layer in data["layers"]][1:3] == [[3, 7, 4, 8], [3, 2, 4, 3]]


def test_the_schema_allows_null_axes():
    jsonschema = pytest.importorskip("jsonschema")
    from cnncalc.schema import spec_schema

    validator = jsonschema.Draft202012Validator(spec_schema())
    assert validator.is_valid({"input": [3, 8, 8], "layers": [{"adaptive_avgpool": {"output": [None, 7]}}]})
    assert not validator.is_valid({"input": [3, 8, 8], "layers": [{"adaptive_avgpool": {"output": ["x", 7]}}]})


# ----------------------------------------------------------------------------- tabs in YAML
def test_a_tab_indent_is_named_with_its_line_and_column(tmp_path):
    path = tmp_path / "tabs.yaml"
    path.write_text("input: [1, 8, 8]\nlayers:\n\t- relu\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{path}:3: is not valid YAML: a tab at line 3, column 1: YAML forbids tabs for indentation; "
        "indent with spaces"]
    table = invoke("table", str(path))
    assert table.exit_code == 2 and "YAML forbids tabs for indentation" in table.stderr


def test_a_tab_deeper_in_the_line_gets_its_column(tmp_path):
    path = tmp_path / "tabs.yaml"
    path.write_text("input: [1, 8, 8]\nlayers:\n  - conv:\n      filters: 2\n  \t  kernel: 3\n")
    with pytest.raises(CnnCalcError) as info:
        cnncalc.load_spec(path)
    assert info.value.loc.line == 5
    assert "tab at line 5, column 3" in info.value.message and "forbids tabs" in info.value.message


# ----------------------------------------------------------------------------- explanations
def test_linear_explains_muls_with_bias_and_its_activations():
    result = invoke("layer", "linear", "--input", "120", "--features", "84", "--explain", "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert "MULs with bias = (N_in + 1)*N_out = (120 + 1)*84 = 10164" in row["explain"]
    assert row["muls_with_bias"] == 10164
    assert "activations = N_out = 84" in row["explain"]
    assert not any(line.startswith("activations = N = ") for line in row["explain"])
    assert_arithmetic_holds(row["explain"])


def test_linear_without_bias_has_no_muls_with_bias_line_and_batches_multiply():
    lines = explained([120], {"linear": {"features": 84, "bias": False}}, batch=2)
    assert not any(line.startswith("MULs with bias") for line in lines)
    assert "activations = N_out*batch = 84*2 = 168" in lines
    assert_arithmetic_holds(lines)


def test_activations_of_a_spatial_output_multiply_its_axes():
    assert "activations = W2*H2*K = 28*28*6 = 4704" in explained([1, 32, 32], {"conv": {"filters": 6, "kernel": 5}})
    assert "activations = L2*K = 6*4 = 24" in explained([1, 8], {"conv": {"filters": 4, "kernel": 3}})


def test_unpool_explains_its_size_from_the_command_line():
    result = invoke("layer", "unpool", "--input", "1x4x4", "--layout", "chw", "--factor", "2", "--explain",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["output_shape"] == [1, 8, 8]
    assert "W2 = H2 = W1*factor = 4*2 = 8" in row["explain"]
    assert_arithmetic_holds(row["explain"])


@pytest.mark.parametrize("shape, layer, wanted", [
    ([1, 4, 6], {"unpool": {"factor": [2, 3]}}, ["H2 = H1*factor = 4*2 = 8", "W2 = W1*factor = 6*3 = 18"]),
    ([1, 4, 4], {"upsample": {"scale_factor": 2}}, ["W2 = H2 = W1*scale = 4*2 = 8"]),
    ([1, 5], {"upsample": {"scale_factor": 1.5, "mode": "linear"}}, ["L2 = floor(L1*scale) = 5*3//2 = 7"]),
    ([1, 4, 5], {"upsample": {"size": [7, 10]}}, ["H2 = size = 7 (scale 7/4)", "W2 = size = 10 (scale 2)"]),
    ([3, 13, 9], {"adaptive_avgpool": [None, 7]},
     ["H2 = H1 = 13 (null keeps the input size)", "W2 = output = 7 (bins 2 to 3 wide over 9)"]),
    ([3, 12, 12], {"adaptive_maxpool": 6}, ["W2 = H2 = output = 6 (bins 2 wide over 12)"]),
    ([3, 4, 5], "global_avgpool", ["W2 = H2 = 1 (one window covers the whole 4x5 input)"]),
    ([3, 4, 5, 6], "global_maxpool", ["W2 = H2 = D2 = 1 (one window covers the whole 4x5x6 input)"]),
], ids=["unpool per axis", "upsample x2", "upsample x1.5", "upsample to a size", "adaptive (None, 7)",
        "adaptive 6", "global 2-D", "global 3-D"])
def test_resampling_and_pooling_layers_explain_their_sizes(shape, layer, wanted):
    lines = explained(shape, layer)
    for line in wanted:
        assert line in lines
    assert_arithmetic_holds(lines)


def test_check_uses_the_new_size_lines_for_the_output():
    from cnncalc.check import Conventions, analyze_blocks, explain

    spec = cnncalc.load_spec({"input": [1, 4, 4], "layers": [{"unpool": 2, "name": "up"}]})
    block = analyze_blocks(spec, "strict", 1, "float32").by_name()["up"]
    assert "W2 = H2 = W1*factor = 4*2 = 8" in explain(block, "output", Conventions())


# ----------------------------------------------------------------------------- fit messages
def test_two_axes_that_do_not_fit_are_joined_with_are():
    with pytest.raises(CnnCalcError) as info:
        run([1, 10, 11], {"conv": {"filters": 1, "kernel": 3, "stride": 3}}, rounding="strict")
    assert info.value.message.startswith(
        "(10 - 3)/3 + 1 = 3.33 and (11 - 3)/3 + 1 = 3.67 are not whole: a 3x3 filter at stride 3 does not fit "
        "a 10x11 input")


def test_one_formula_keeps_is_not_whole():
    with pytest.raises(CnnCalcError) as info:
        run([1, 7, 7], {"conv": {"filters": 1, "kernel": 3, "stride": 3}}, rounding="strict")
    assert "(7 - 3)/3 + 1 = 2.33 is not whole" in info.value.message  # equal axes share one formula
    with pytest.raises(CnnCalcError) as info:
        run([1, 7, 9], {"conv": {"filters": 1, "kernel": 3, "stride": 3}}, rounding="strict")
    assert "(7 - 3)/3 + 1 = 2.33 is not whole" in info.value.message  # the 9 fits


def test_validate_lists_several_axes_grammatically(tmp_path):
    path = tmp_path / "odd.yaml"
    path.write_text("input: [3, 164, 163]\nlayers:\n  - conv: {filters: 8, kernel: 5, stride: 4}\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert "(164 - 5)/4 + 1 = 40.75 and (163 - 5)/4 + 1 = 40.50 are not whole" in result.stdout
