"""`cnncalc check`: answers marked right or wrong, course conventions, answer sheets."""
from __future__ import annotations

import json
import os
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.check import Conventions, analyze_blocks, parse_count, parse_shape, parse_tolerance
from cnncalc.cli import cli

CASES = Path(__file__).parent / "cases" / "check"
LENET = str(CASES / "lenet.yaml")


def check(*args: str):
    return CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["check", *args])  # the width a pipe gets, whatever runs the tests


def verdicts(result) -> list[tuple]:
    data = json.loads(result.stdout)
    return [(r["layer"], r["quantity"], r["correct"], r["expected"]) for r in data["results"]]


# ----------------------------------------------------------------------------- marking
def test_answers_file_is_marked_row_by_row():
    result = check(LENET, "--answers", str(CASES / "answers.yaml"), "--format", "json")
    assert result.exit_code == 1, result.output
    assert verdicts(result) == [
        ("C1", "output", True, [6, 28, 28]),
        ("C1", "params", True, 156),
        ("C1", "muls", False, 117600),  # the answer counts the bias; MACs do not
        ("S2", "output", True, [6, 14, 14]),
        ("S2", "params", True, 0),
        ("C3", "output", True, [16, 10, 10]),
        ("C3", "params", False, 2416),
        ("S4", "output", False, [16, 5, 5]),
        ("C5", "output", True, [120, 1, 1]),
        ("C5", "params", True, 48120),  # 48.1K is 0.04% off
        ("C5", "macs", True, 48000),
        ("F6", "params", True, 10164),
        ("F6", "rf", True, [32, 32]),
        ("OUTPUT", "params", True, 850),  # `weights:` left empty is no answer
        ("C7", None, False, None),
    ]
    data = json.loads(result.stdout)
    assert (data["right"], data["wrong"]) == (11, 4)
    assert data["results"][2]["formula"] == "MACs = F*F*D1*K*W2*H2 = 5*5*1*6*28*28 = 117600"
    assert data["results"][7]["expected_text"] == "5x5x16"  # shown in the spec's layout (hwc)
    assert data["results"][0]["line"] == 2


def test_csv_answers_are_read_like_yaml():
    result = check(LENET, "--answers", str(CASES / "answers.csv"), "--format", "json")
    assert result.exit_code == 1
    marked = [(r["layer"], r["quantity"], r["correct"]) for r in json.loads(result.stdout)["results"]]
    assert len(marked) == 12  # empty cells are no answers
    assert [m for m in marked if not m[2]] == [("OUTPUT", "params", False)]  # 851


def test_all_right_exits_0(tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text("C1: {output: 28x28x6, params: 156}\nOUTPUT: {output: 10}\n")
    result = check(LENET, "--answers", str(answers))
    assert result.exit_code == 0, result.output
    assert "3 right, 0 wrong" in result.stdout


def test_the_table_shows_answer_correct_value_verdict_and_formula():
    result = check(LENET, "--answers", str(CASES / "answers.yaml"))
    lines = result.stdout.splitlines()
    c3 = next(line for line in lines if "│ C3" in line and "params" in line)
    assert [cell.strip() for cell in c3.strip("│").split("│")] == [
        "C3", "params", "2400", "2,416", "✗ wrong", "params = (F*F*D1 + 1)*K = (5*5*6 + 1)*16 = 2416"]
    assert "11 right, 4 wrong" in result.stdout


def test_unknown_layer_is_a_finding_with_a_close_match(tmp_path):
    answers = tmp_path / "a.yaml"
    answers.write_text("C1: {params: 156}\nF7: {params: 10164, output: 84}\n")
    result = check(LENET, "--answers", str(answers), "--format", "json")
    assert result.exit_code == 1
    unknown = json.loads(result.stdout)["results"][1]
    assert unknown["message"] == "no layer is called `F7`; did you mean `F6`?"
    assert len(json.loads(result.stdout)["results"]) == 2  # one finding per unknown name


@pytest.mark.parametrize("written, layout, right", [
    ("28x28x6", "hwc", True),
    ("28x28x6", "chw", True),  # plainly channels last: right, and the verdict names the reading
    ("6x28x28", "chw", True),
    ("6@28x28", "hwc", True),  # LeCun's notation is channels first in any layout
    ([28, 28, 6], "hwc", True),
    ("[6, 28, 28]", "chw", True),
], ids=["hwc string in hwc", "hwc string in chw", "chw string in chw", "C@HxW", "hwc list", "bracketed chw"])
def test_output_shapes_are_read_in_the_layout(tmp_path, written, layout, right):
    answers = tmp_path / "a.json"
    answers.write_text(json.dumps({"C1": {"output": written}}))
    result = check(LENET, "--answers", str(answers), "--layout", layout, "--format", "json")
    assert verdicts(result)[0][2] is right
    assert result.exit_code == (0 if right else 1)


@pytest.mark.parametrize("flag, right, expected", [
    ([], False, 117600),
    (["--muls-with-bias"], True, 122304),  # (5*5*1 + 1)*6*28*28, the lecture's connections
])
def test_muls_with_bias(tmp_path, flag, right, expected):
    answers = tmp_path / "a.yaml"
    answers.write_text("C1: {muls: 122304, connections: 122304}\n")
    result = check(LENET, "--answers", str(answers), "--format", "json", *flag)
    (muls, connections) = verdicts(result)
    assert muls == ("C1", "muls", right, expected)
    assert connections == ("C1", "connections", True, 122304)  # always with the bias (LeCun counts links)


# ----------------------------------------------------------------------------- units and tolerance
@pytest.mark.parametrize("answer, options, right", [
    ("163,328", [], True),
    ("163328", [], True),
    ("163329", [], False),  # whole numbers written out are exact, whatever the tolerance
    ("163329", ["--tolerance", "2%"], False),
    ("163K", [], True),  # 0.2% off
    ("161K", [], False),  # 1.4% off
    ("161K", ["--tolerance", "2%"], True),
    ("159K", ["--k", "1024"], True),  # GoogLeNet's table: 159 * 1024 = 162,816, 0.3% off
    ("159K", [], False),
    ("159.5Ki", [], True),  # Ki is always 1024
    ("1.63e5", [], True),
    ("0.163M", ["--tolerance", "0"], True),  # 163,328 truncated to the digits written is 0.163M
    ("0.162M", ["--tolerance", "0"], False),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_units_and_tolerance_on_inception_params(tmp_path, answer, options, right):
    answers = tmp_path / "a.yaml"
    answers.write_text(f"inception_3a: {{params: '{answer}'}}\n")
    result = check(str(CASES / "inception.yaml"), "--answers", str(answers), "--format", "json", *options)
    assert verdicts(result) == [("inception_3a", "params", right, 163328)]


def test_googlenet_table_row_checks_with_k_1024():
    """The table writes params in K = 1024 but ops in M = 10^6; --k 1024 accepts both."""
    answers = {"inception_3a": {"params": "159K", "ops": "128M", "output": "256x28x28"}}
    spec = cnncalc.load_spec(str(CASES / "inception.yaml"))
    from cnncalc.check import Answer, judge_all
    from cnncalc.errors import Location

    analysis = analyze_blocks(spec)
    marked = judge_all([Answer("inception_3a", "params" if q == "params" else "macs" if q == "ops" else q, v,
                               Location()) for q, v in answers["inception_3a"].items()],
                       analysis.blocks, Conventions(k=1024))
    assert [(r.quantity, r.correct, r.expected) for r in marked] == [
        ("params", True, 163328), ("macs", True, 128049152), ("output", True, [256, 28, 28])]
    assert marked[0].formula == ("sum over the block's 8 layers: 12,288 + 18,432 + 110,592 + 3,072 + 12,800 "
                                 "+ 6,144 = 163,328")


@pytest.mark.parametrize("written, k, value, rounded", [
    ("122,304", 1000, 122304, False),
    ("117.6K", 1000, 117600, True),
    ("138M", 1000, 138_000_000, True),
    ("2GiB", 1000, 2**31, True),
    ("18.8 kB", 1000, 18800, True),
    ("1K", 1024, 1024, True),
    ("1M", 1024, 10**6, True),
    (156, 1000, 156, False),
    (1.5e3, 1000, 1500, True),
])
def test_parse_count(written, k, value, rounded):
    number = parse_count(written, k, allow_bytes=True)
    assert (number.value, number.rounded) == (Fraction(value), rounded)


@pytest.mark.parametrize("written", ["lots", "-3", "1,5", "12 B", True, None, "5Mi B x"])
def test_parse_count_rejects(written):
    with pytest.raises(ValueError):
        parse_count(written, 1000, allow_bytes=False)


def test_parse_shape_and_tolerance():
    assert parse_shape("28x28x6", "hwc") == (6, 28, 28)
    assert parse_shape(84, "hwc") == (84,)
    assert parse_tolerance("2%") == Fraction(1, 50)
    assert parse_tolerance("0.005") == Fraction(1, 200)
    with pytest.raises(ValueError):
        parse_tolerance("150%")


# ----------------------------------------------------------------------------- expectations in the spec
def test_spec_expectations_are_checked_without_an_answers_file():
    result = check(str(CASES / "expect.yaml"), "--format", "json")
    assert result.exit_code == 1
    assert verdicts(result) == [
        ("c1", "output", True, [4, 8, 8]), ("c1", "params", True, 112), ("p1", "output", True, [4, 4, 4]),
        ("c2", "params", False, 74), ("c2", "macs", True, 288)]
    lines = [r["line"] for r in json.loads(result.stdout)["results"]]
    assert lines == [5, 5, 6, 8, 8]  # where each expected value is written


def test_nothing_to_check_is_unusable_input():
    result = check(LENET)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{LENET}: error: nothing to check")


# ----------------------------------------------------------------------------- unusable input
@pytest.mark.parametrize("content, fragment", [
    ("C1: {parms: 156}\n", "a.yaml:1: C1: error: unknown quantity `parms`; did you mean `params`?"),
    ("C1: {params: lots}\n", "a.yaml:1: C1: error: params: cannot read 'lots' as a number"),
    ("C1: {output: 28by28}\n", "a.yaml:1: C1: error: output: cannot read '28by28' as a shape"),
    ("- C1\n", "a.yaml:1: error: an answers file must be a mapping"),
    ("C1: 156\n", "a.yaml:1: C1: error: the answers for `C1` must be a mapping"),
])
def test_unreadable_answers_exit_2_with_a_located_line(tmp_path, content, fragment):
    answers = tmp_path / "a.yaml"
    answers.write_text(content)
    result = check(LENET, "--answers", str(answers))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{tmp_path}{os.sep}{fragment}"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_csv_with_an_unknown_column(tmp_path):
    answers = tmp_path / "a.csv"
    answers.write_text("layer,outptu\nC1,28x28x6\n")
    result = check(LENET, "--answers", str(answers))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{answers}:1: error: unknown quantity `outptu`; did you mean `output`?"


def test_a_layer_that_does_not_fit_is_unusable_under_strict_rounding(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("input: [1, 7, 7]\nlayers:\n  - conv: {filters: 1, kernel: 3, stride: 3, expect: {params: 10}}\n")
    result = check(str(spec))
    assert result.exit_code == 2
    assert "(7 - 3)/3 + 1 = 2.33 is not whole" in result.stderr
    assert check(str(spec), "--rounding", "floor").exit_code == 0


# ----------------------------------------------------------------------------- sheets
SMALL = textwrap.dedent("""\
    name: small
    input: 8x8x3
    layout: whd
    layers:
      - conv: {filters: 4, kernel: 3, padding: 1, name: c1}
      - {residual: {layers: [conv 4 k3 p1, relu]}, name: block}
      - maxpool: 2
    """)


@pytest.fixture
def small(tmp_path) -> Path:
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL)
    return spec


def test_blank_sheet_in_markdown(small):
    result = check(str(small), "--sheet", "blank", "--format", "markdown")
    assert result.exit_code == 0
    assert result.stdout == textwrap.dedent("""\
        ## small: answer sheet

        Input: 8x8x3, shapes channels last, W x H x D (the lecture's notation, width first). MULs: multiplications without the bias (MACs).

        | layer | output | params | MULs |
        |---|---|---:|---:|
        | c1 |  |  |  |
        | block |  |  |  |
        | block.conv1 |  |  |  |
        | block.relu1 |  |  |  |
        | pool1 |  |  |  |
        """)


def test_solution_sheet_in_markdown_counts_a_composite_as_a_whole(small):
    result = check(str(small), "--sheet", "solution", "--format", "markdown", "--muls-with-bias")
    assert result.stdout == textwrap.dedent("""\
        ## small: solution

        Input: 8x8x3, shapes channels last, W x H x D (the lecture's notation, width first). MULs: multiplications including one per output for the bias.

        | layer | output | params | MULs |
        |---|---|---:|---:|
        | c1 | 8x8x4 | 112 | 7,168 |
        | block | 8x8x4 | 148 | 9,472 |
        | block.conv1 | 8x8x4 | 148 | 9,472 |
        | block.relu1 | 8x8x4 | 0 | 0 |
        | pool1 | 4x4x4 | 0 | 0 |
        """)


def test_sheet_depth_and_columns(small):
    result = check(str(small), "--sheet", "solution", "--format", "csv", "--depth", "0", "--columns", "output,rf")
    assert result.stdout == "layer,output,rf\nc1,8x8x4,3x3\nblock,8x8x4,5x5\npool1,4x4x4,6x6\n"


def test_solution_sheet_in_csv_checks_back_all_right(small, tmp_path):
    sheet = tmp_path / "solution.csv"
    assert check(str(small), "--sheet", "solution", "--format", "csv", "--output", str(sheet)).exit_code == 0
    result = check(str(small), "--answers", str(sheet), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["right"] == 15


def test_output_is_written_atomically_and_never_over_an_input(small, tmp_path):
    answers = tmp_path / "answers.yaml"
    answers.write_text("c1: {params: 112}\n")
    before = small.read_bytes(), answers.read_bytes()
    for target in (small, answers, tmp_path / "." / "small.yaml"):
        result = check(str(small), "--answers", str(answers), "--output", str(target))
        assert result.exit_code == 2
        assert "refusing to overwrite the input file" in result.stderr
    assert (small.read_bytes(), answers.read_bytes()) == before
    sheet = tmp_path / "sheet.md"
    sheet.write_text("old")
    assert check(str(small), "--sheet", "blank", "--format", "markdown", "--output", str(sheet)).exit_code == 0
    assert sheet.read_text().startswith("## small: answer sheet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.yaml", "sheet.md", "small.yaml"]  # no temp left


def test_sheet_takes_no_answers(small):
    result = check(str(small), "--sheet", "blank", "--answers", "x.yaml")
    assert result.exit_code == 2
