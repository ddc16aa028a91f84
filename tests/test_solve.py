"""`cnncalc solve`: known answers, malformed questions, a round trip through `analyze`, and the CLI."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnncalc
from cnncalc.cli import cli
from cnncalc.formulas import same_padding
from cnncalc.solve import SolveError, solve

# ----------------------------------------------------------------------------- known answers
KNOWN = [
    # (id, kind, find, known values, rounding, solutions, asymmetric)
    # (32 - 5 + 2*2)/2 + 1 = 16.5: whole only with 3 pixels of padding in all, so strict needs [1, 2]
    ("32 k5 s2 -> 16, strict", "conv", "padding", dict(input=32, output=16, kernel=5, stride=2), "strict", [], [[1, 2]]),
    ("32 k5 s2 -> 16, floor", "conv", "padding", dict(input=32, output=16, kernel=5, stride=2), "floor", [2], [[1, 2]]),
    ("32 k4 s2 -> 16", "conv", "padding", dict(input=32, output=16, kernel=4, stride=2), "strict", [1], []),
    ("7 k3 -> 3", "conv", "stride", dict(input=7, output=3, kernel=3), "strict", [2], []),
    ("7 k3 -> 3, floor", "conv", "stride", dict(input=7, output=3, kernel=3), "floor", [2], []),
    ("7 k3 -> 5", "conv", "stride", dict(input=7, output=5, kernel=3), "strict", [1], []),
    ("7 k3 p1 s3 -> 3", "conv", "stride", dict(input=7, output=3, kernel=3, padding=1), "strict", [3], []),
    ("7 k3 -> 2", "conv", "stride", dict(input=7, output=2, kernel=3), "strict", [4], []),
    ("7 k3 -> 4: no stride fits", "conv", "stride", dict(input=7, output=4, kernel=3), "floor", [], []),
    ("7 k3 -> 2, floor: stride 3 or 4", "conv", "stride", dict(input=7, output=2, kernel=3), "floor", [3, 4], []),
    ("same k3", "conv", "padding", dict(input=32, output="same", kernel=3), "strict", [1], []),
    ("same k5", "conv", "padding", dict(input=32, output="same", kernel=5), "strict", [2], []),
    ("same k7", "conv", "padding", dict(input=32, output="same", kernel=7), "strict", [3], []),
    ("same k3 d2", "conv", "padding", dict(input=32, output="same", kernel=3, dilation=2), "strict", [2], []),
    ("same even k2", "conv", "padding", dict(input=32, output="same", kernel=2), "strict", [], [[0, 1]]),
    ("same even k4", "conv", "padding", dict(input=32, output="same", kernel=4), "strict", [], [[1, 2]]),
    ("same k3 s2", "conv", "padding", dict(input=32, output="same", kernel=3, stride=2), "strict", [], [[0, 1]]),
    ("same k3 s2, floor", "conv", "padding", dict(input=32, output="same", kernel=3, stride=2), "floor", [1], [[0, 1]]),
    ("same k4 s2", "conv", "padding", dict(input=32, output="same", kernel=4, stride=2), "strict", [1], []),
    ("same k3 s2 odd input", "conv", "padding", dict(input=7, output="same", kernel=3, stride=2), "strict", [1], []),
    ("transposed 2 -> 4", "conv_transpose", "output_padding", dict(input=2, output=4, kernel=3, stride=2, padding=1),
     "strict", [1], []),
    ("transposed 2 -> 3", "conv_transpose", "output_padding", dict(input=2, output=3, kernel=3, stride=2, padding=1),
     "strict", [0], []),
    ("transposed 2 -> 4, padding", "deconv", "padding", dict(input=2, output=4, kernel=4, stride=2), "strict", [1], []),
    ("transposed same", "conv_transpose", "padding", dict(input=16, output="same", kernel=4, stride=2), "strict",
     [1], []),
    ("AlexNet conv1 input", "conv", "input", dict(output=55, kernel=11, stride=4), "strict", [227], []),
    ("AlexNet conv1 input, floor", "conv", "input", dict(output=55, kernel=11, stride=4), "floor",
     [227, 228, 229, 230], []),
    ("AlexNet pool stride", "maxpool", "stride", dict(input=55, output=27, kernel=3), "strict", [2], []),
    ("pool kernel, stride follows it", "pool", "kernel", dict(input=28, output=14), "strict", [2], []),
    ("LeNet C1 kernel", "conv", "kernel", dict(input=32, output=28), "strict", [5], []),
    ("dilation", "conv", "dilation", dict(input=32, output=28, kernel=3), "strict", [2], []),
    ("avgpool padding", "avgpool", "padding", dict(input=5, output=3, kernel=2, stride=2), "strict", [], [[0, 1]]),
    ("pool padding over half the kernel", "maxpool", "padding", dict(input=28, output=20, kernel=2), "strict", [], []),
    ("input 8 k3 s2 -> 3: does not fit", "conv", "padding", dict(input=8, output=3, kernel=3, stride=2), "strict",
     [], []),
]


@pytest.mark.parametrize("kind, find, known, rounding, solutions, asymmetric",
                         [case[1:] for case in KNOWN], ids=[case[0] for case in KNOWN])
def test_known_answers(kind, find, known, rounding, solutions, asymmetric):
    answer = solve(kind, find, rounding=rounding, **known)
    assert answer.solutions == solutions
    assert answer.asymmetric == asymmetric
    assert len(answer.to_dict()["formulas"]) == len(solutions) + len(asymmetric)


def test_formula_has_the_numbers_plugged_in():
    answer = solve("conv", "padding", input=32, output=16, kernel=5, stride=2, rounding="floor")
    assert [s.formula for s in answer.found] == ["(32 - 5 + 2*2)/2 + 1 = 16.50 -> 16", "(32 - 5 + 1 + 2)/2 + 1 = 16"]
    transposed = solve("conv_transpose", "output_padding", input=2, output=4, kernel=3, stride=2, padding=1)
    assert transposed.found[0].formula == "(2 - 1)*2 - 2*1 + (3 - 1) + 1 + 1 = 4"


def test_no_solution_says_why():
    fits_floor = solve("conv", "padding", input=8, output=3, kernel=3, stride=2).message
    assert fits_floor.startswith("no padding in 0..") and "with --rounding floor" in fits_floor
    pool = solve("maxpool", "padding", input=28, output=20, kernel=2).message
    assert "6 would give it, but PyTorch allows a pooling padding of at most half the kernel (1)" in pool
    assert "asymmetric padding only: [0, 1]" in solve("conv", "padding", input=32, output=32, kernel=2).message


def test_open_ended_stride():
    answer = solve("conv", "stride", input=7, output=1, kernel=3, rounding="floor")
    assert answer.solutions == [5, 6, 7] and answer.open_ended
    assert not solve("conv", "stride", input=7, output=3, kernel=3).open_ended


MALFORMED = [
    ("unknown kind", dict(kind="convv", find="stride", input=7, output=3, kernel=3), "unknown layer kind `convv`"),
    ("missing kernel", dict(kind="conv", find="stride", input=7, output=3), "`kernel` is missing"),
    ("missing output", dict(kind="conv", find="stride", input=7, output=None, kernel=3), "`output` is missing"),
    ("find is given", dict(kind="conv", find="stride", input=7, output=3, kernel=3, stride=1), "both given"),
    ("avgpool dilation", dict(kind="avgpool", find="dilation", input=7, output=3, kernel=3), "cannot find"),
    ("conv output_padding", dict(kind="conv", find="stride", input=7, output=3, kernel=3, output_padding=1),
     "conv takes no `output_padding`"),
    ("same needs the stride", dict(kind="conv", find="stride", input=7, output="same", kernel=3), "`same` sets"),
    ("same on a pool finding its kernel", dict(kind="maxpool", find="kernel", input=32, output="same"),
     "`same` needs the stride"),
    ("search too wide", dict(kind="conv", find="input", output=10**6, kernel=3, stride=4), "more than cnncalc solves"),
    ("zero kernel", dict(kind="conv", find="stride", input=7, output=3, kernel=0), "`kernel` = 0"),
    ("bad rounding", dict(kind="conv", find="stride", input=7, output=3, kernel=3, rounding="ceil"), "rounding"),
]


@pytest.mark.parametrize("arguments, fragment", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_questions(arguments, fragment):
    arguments = dict(arguments)
    with pytest.raises(SolveError) as caught:
        solve(arguments.pop("kind"), arguments.pop("find"), **arguments)
    assert fragment in caught.value.message


# ----------------------------------------------------------------------------- round trip through analyze
HIDEABLE = {
    "conv": ("input", "kernel", "stride", "padding", "dilation"),
    "maxpool": ("input", "kernel", "stride", "padding", "dilation"),
    "avgpool": ("input", "kernel", "stride", "padding"),
    "conv_transpose": ("input", "kernel", "stride", "padding", "dilation", "output_padding"),
}


def layer_spec(kind: str, values: dict) -> dict:
    args = {key: value for key, value in values.items() if key in HIDEABLE[kind] and key != "input"}
    if isinstance(args["padding"], tuple):
        args["padding"] = [list(args["padding"])]  # one axis holding a [before, after] pair
    if kind.startswith("conv"):
        args["filters"] = 1
    return {"input": [1, values["input"]], "layers": [{kind: args}]}


def output_size(kind: str, values: dict, rounding: str) -> int | None:
    """What `table` computes for the layer; None when it refuses the layer."""
    try:
        report = cnncalc.analyze(cnncalc.load_spec(layer_spec(kind, values)), rounding=rounding)
    except cnncalc.CnnCalcError:
        return None
    return report.to_dict()["layers"][-1]["output_shape"][1]


@st.composite
def layers(draw):
    kind = draw(st.sampled_from(sorted(HIDEABLE)))
    values = {
        "input": draw(st.integers(1, 40)),
        "kernel": draw(st.integers(1, 7)),
        "stride": draw(st.integers(1, 4)),
        "dilation": draw(st.integers(1, 3)),
        "output_padding": draw(st.integers(0, 2)),
    }
    pad = draw(st.integers(0, 4))
    values["padding"] = (pad, pad + 1) if draw(st.booleans()) else pad
    hidden = draw(st.sampled_from(HIDEABLE[kind]))
    if hidden != "padding" and isinstance(values["padding"], tuple):
        values["padding"] = pad  # known padding comes from --padding: one int
    return kind, {k: v for k, v in values.items() if k in HIDEABLE[kind]}, hidden


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(layer=layers(), rounding=st.sampled_from(["strict", "floor"]))
def test_round_trip_through_analyze(layer, rounding):
    kind, values, hidden = layer
    wanted = output_size(kind, values, rounding)
    assume(wanted is not None)
    known = {key: value for key, value in values.items() if key != hidden}
    answer = solve(kind, hidden, output=wanted, rounding=rounding, **known)
    lo, hi = answer.searched
    secret = values[hidden]
    if lo <= (secret[0] if isinstance(secret, tuple) else secret) <= hi:
        assert secret in [s.value for s in answer.found]
    else:  # only a stride or dilation that stopped mattering lies past the search, and the answer says so
        assert answer.open_ended
    for solution in answer.found:
        assert output_size(kind, {**values, hidden: solution.value}, rounding) == wanted, solution.formula


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 64), kernel=st.integers(1, 7), stride=st.integers(1, 4), dilation=st.integers(1, 3))
def test_same_agrees_with_the_tables_same_padding(size, kernel, stride, dilation):
    before, after = same_padding(size, kernel, stride, dilation)
    answer = solve("conv", "padding", input=size, output="same", kernel=kernel, stride=stride, dilation=dilation,
                   rounding="floor")
    assert (before if before == after else (before, after)) in [s.value for s in answer.found]


# ----------------------------------------------------------------------------- the command
def invoke(*args):
    return CliRunner().invoke(cli, ["solve", *args])


def test_cli_prints_the_formula():
    result = invoke("conv", "--input", "32", "--output", "16", "--kernel", "5", "--stride", "2", "--find", "padding",
                    "--rounding", "floor")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "padding = 2: (32 - 5 + 2*2)/2 + 1 = 16.50 -> 16"
    single = invoke("conv", "--input", "7x7", "--output", "3", "--kernel", "3", "--find", "stride")
    assert (single.exit_code, single.stdout) == (0, "stride = 2: (7 - 3)/2 + 1 = 3\n")


def test_cli_json():
    result = invoke("conv", "--input", "32", "--same", "--kernel", "3", "--stride", "2", "--find", "padding",
                    "--rounding", "strict", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"kind", "find", "known", "same", "rounding", "solutions", "asymmetric", "formulas",
                         "searched", "open_ended", "message"}
    assert data["known"] == {"output": 16, "input": 32, "kernel": 3, "stride": 2, "dilation": 1}
    assert (data["solutions"], data["asymmetric"], data["same"]) == ([], [[0, 1]], True)
    assert data["formulas"] == ["(32 - 3 + 0 + 1)/2 + 1 = 16"]


def test_the_issue_example_defaults_to_pytorch_floor_rounding():
    result = invoke("conv", "--input", "32", "--output", "16", "--kernel", "5", "--stride", "2", "--find", "padding",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["find"], data["solutions"], data["rounding"]) == ("padding", [2], "floor")
    assert data["asymmetric"] == [[1, 2]]  # the exact (lecture) fit needs 1 pixel before and 2 after


def test_cli_no_solution_is_a_finding():
    result = invoke("conv", "--input", "7", "--output", "4", "--kernel", "3", "--find", "stride", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["solutions"] == [] and data["message"].startswith("no stride in 1..7 gives output 4")


@pytest.mark.parametrize("args, fragment", [
    (["convv", "--input", "7", "--output", "3", "--kernel", "3", "--find", "stride"], "unknown layer kind"),
    (["conv", "--input", "7", "--output", "3", "--find", "stride"], "`kernel` is missing"),
    (["conv", "--input", "7", "--output", "3", "--kernel", "3", "--stride", "2", "--find", "stride"], "both given"),
    (["conv", "--input", "7x5", "--output", "3", "--kernel", "3", "--find", "stride"], "the axes differ"),
    (["conv", "--input", "7", "--output", "3", "--kernel", "3"], "--find is missing"),
    (["conv", "--input", "7", "--output", "3", "--kernel", "x", "--find", "stride"], "--kernel"),
    (["conv", "--input", "7", "--output", "3", "--kernel", "3", "--same", "--find", "padding"], "contradict"),
], ids=["unknown kind", "missing value", "find is given", "unequal axes", "no --find", "not a number", "same twice"])
def test_cli_malformed_is_one_line_exit_2(args, fragment):
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and fragment in result.stderr
