"""`cnncalc layer` and `--explain`: the worked examples of formulas.md from the command line,
with the explanation's arithmetic evaluated and compared with the values it claims."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncalc.cli import cli


def layer_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["layer", *args, "--format", "json", "--explain"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def evaluate(line: str) -> tuple[float, float]:
    """`W2 = sym = (32 - 5 + 2*2)/1 + 1 = 32` -> (value of the arithmetic, the claimed value)."""
    parts = [p.strip() for p in line.split(" = ")]
    arithmetic, claimed = parts[-2], parts[-1].split(" -> ")[0].split(" (")[0]
    if re.search(r"[A-Za-z_]", arithmetic):  # symbols, no arithmetic: `activations = N_out = 84`, `W2 = output = 7`
        arithmetic = claimed
    assert re.fullmatch(r"[0-9+\-*/(). ]+", arithmetic), line
    return eval(arithmetic), float(claimed)  # noqa: S307 - digits and operators only, checked above


@pytest.mark.parametrize("args, output, params, lines", [
    (["conv", "--input", "32x32x3", "--filters", "10", "--kernel", "5", "--stride", "1", "--padding", "2"],
     [10, 32, 32], 760,
     ["W2 = H2 = (W1 - F + 2P)/S + 1 = (32 - 5 + 2*2)/1 + 1 = 32", "params = (F*F*D1 + 1)*K = (5*5*3 + 1)*10 = 760"]),
    (["conv", "--input", "32x32x3", "--filters", "10", "--kernel", "5"], [10, 28, 28], 760,
     ["W2 = H2 = (W1 - F)/S + 1 = (32 - 5)/1 + 1 = 28"]),
    (["conv", "--input", "7x7x1", "--filters", "1", "--kernel", "3", "--stride", "2"], [1, 3, 3], 10,
     ["W2 = H2 = (W1 - F)/S + 1 = (7 - 3)/2 + 1 = 3"]),
    (["conv", "--input", "7x7x1", "--filters", "1", "--kernel", "3", "--padding", "1"], [1, 7, 7], 10,
     ["W2 = H2 = (W1 - F + 2P)/S + 1 = (7 - 3 + 2*1)/1 + 1 = 7"]),
    (["conv", "--input", "7x7x1", "--filters", "1", "--kernel", "3", "--stride", "3", "--padding", "1"], [1, 3, 3], 10,
     ["W2 = H2 = (W1 - F + 2P)/S + 1 = (7 - 3 + 2*1)/3 + 1 = 3"]),
    (["conv", "--input", "5x5x3", "--filters", "2", "--kernel", "3", "--stride", "2", "--padding", "1"], [2, 3, 3], 56,
     ["params = (F*F*D1 + 1)*K = (3*3*3 + 1)*2 = 56"]),
    (["conv", "--input", "56x56x64", "--filters", "32", "--kernel", "1"], [32, 56, 56], 2080,
     ["params = (F*F*D1 + 1)*K = (1*1*64 + 1)*32 = 2080"]),
    (["conv", "--input", "227x227x3", "--filters", "96", "--kernel", "11", "--stride", "4"], [96, 55, 55], 34944,
     ["W2 = H2 = (W1 - F)/S + 1 = (227 - 11)/4 + 1 = 55"]),
    (["pool", "--input", "55x55x96", "--kernel", "3", "--stride", "2"], [96, 27, 27], 0,
     ["W2 = H2 = (W1 - F)/S + 1 = (55 - 3)/2 + 1 = 27"]),
    (["conv_transpose", "--input", "2x2x1", "--filters", "1", "--kernel", "3", "--stride", "2", "--padding", "1",
      "--output-padding", "1"], [1, 4, 4], 10,
     ["W2 = (W1 - 1)*S - 2P + D*(F - 1) + OP + 1 = (2 - 1)*2 - 2*1 + (3 - 1) + 1 + 1 = 4"]),
    (["linear", "--input", "84", "--features", "10"], [10], 850, ["params = (N_in + 1)*N_out = (84 + 1)*10 = 850"]),
], ids=["32x32x3 pad 2", "32x32x3 pad 0", "7x7 stride 2", "7x7 pad 1", "7x7 stride 3 pad 1", "5x5x3 two filters",
        "1x1 conv", "AlexNet conv1", "AlexNet pool1", "transposed conv with output padding", "LeNet output layer"])
def test_worked_examples_with_explanations(args, output, params, lines):
    row = layer_json(*args)
    assert row["output_shape"] == output
    assert row["params"] == params
    for line in lines:
        assert line in row["explain"]
    for line in row["explain"]:
        if " = " in line and not line.startswith("receptive"):
            computed, claimed = evaluate(line)
            assert computed == pytest.approx(claimed, abs=0.005), line


def test_lenet_c1_connections_in_the_explanation():
    row = layer_json("conv", "--input", "32x32x1", "--filters", "6", "--kernel", "5")
    assert "MULs with bias = (F*F*D1 + 1)*K*W2*H2 = (5*5*1 + 1)*6*28*28 = 122304" in row["explain"]


def test_strict_rounding_is_the_default_and_says_why():
    result = CliRunner().invoke(cli, ["layer", "conv", "--input", "7x7x1", "--filters", "1", "--kernel", "3",
                                      "--stride", "3"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "<command line>: layers[0] (conv1): error: (7 - 3)/3 + 1 = 2.33 is not whole: a 3x3 filter at stride 3 "
        "does not fit a 7x7 input (1 row and 1 column unused)")


def test_floor_rounding_on_request():
    args = ["conv", "--input", "7x7x1", "--filters", "1", "--kernel", "3", "--stride", "3", "--rounding", "floor"]
    assert layer_json(*args)["output_shape"] == [1, 2, 2]


def test_layer_json_is_the_table_row():
    row = layer_json("conv", "--input", "32x32x1", "--filters", "6", "--kernel", "5")
    table = CliRunner().invoke(cli, ["table", "lenet5", "--format", "json"])
    first = json.loads(table.stdout)["layers"][0]
    assert {k: v for k, v in row.items() if k not in ("name", "explain")} == \
        {k: v for k, v in first.items() if k != "name"}


def test_explain_command_for_one_layer():
    result = CliRunner().invoke(cli, ["explain", "lenet5", "--layer", "C1"])
    assert result.exit_code == 0
    assert "params = (F*F*D1 + 1)*K = (5*5*1 + 1)*6 = 156" in result.stdout
    missing = CliRunner().invoke(cli, ["explain", "lenet5", "--layer", "C9"])
    assert missing.exit_code == 2 and "no layer is named `C9`" in missing.stderr


@settings(max_examples=200, deadline=None)
@given(size=st.integers(4, 64), kernel=st.integers(1, 7), stride=st.integers(1, 4), padding=st.integers(0, 3),
       dilation=st.integers(1, 2), channels=st.integers(1, 8), filters=st.integers(1, 8), bias=st.booleans())
def test_every_explained_number_is_the_arithmetic_it_shows(size, kernel, stride, padding, dilation, channels,
                                                           filters, bias):
    from helpers import run

    from cnncalc.api import analyze_spec

    try:
        analysis = analyze_spec({"input": [channels, size, size + 1], "layers": [{"conv": {
            "filters": filters, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation,
            "bias": bias}}]})
    except Exception as exc:  # the layer may not fit at all; that is tested elsewhere
        assert "cnncalc" in type(exc).__module__
        return
    row, lines = analysis.report.layers[0], [f.text() for f in analysis.plan.steps[0].formulas()]
    for line in lines:
        computed, claimed = evaluate(line)
        assert computed == pytest.approx(claimed, abs=0.005), line
    claims = {line.split(" = ")[0]: float(line.split(" = ")[-1].split(" -> ")[-1]) for line in lines}
    assert claims["params"] == row.params
    assert claims["MACs"] == row.macs
