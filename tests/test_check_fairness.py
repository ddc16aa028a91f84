"""`cnncalc check` judges like a fair teacher: any unambiguous notation, flat outputs as the lecture
writes them, rounded answers by their digits, and a pointer to the convention a wrong answer is
right in."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cnncalc.cli import cli


def mark(tmp_path, spec: str, answers: str, *options: str) -> list[dict]:
    path = tmp_path / "answers.yaml"
    path.write_text(answers)
    result = CliRunner().invoke(cli, ["check", spec, "--answers", str(path), "--format", "json", *options])
    assert result.exit_code in (0, 1), result.output
    results = json.loads(result.stdout)["results"]
    assert result.exit_code == (0 if all(r["correct"] for r in results) else 1)
    return results


def one(tmp_path, spec: str, layer: str, quantity: str, written, *options: str) -> dict:
    return mark(tmp_path, spec, json.dumps({layer: {quantity: written}}), *options)[0]


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("written, right, note", [
    ("6x28x28", True, None),
    ("28x28x6", True, "read as H x W x C"),  # the lecture's notation on a channels-first spec
    ("28X28X6", True, "read as H x W x C"),
    ("28×28×6", True, "read as H x W x C"),
    ("6@28x28", True, None),
    ([6, 28, 28], True, None),
    ([28, 28, 6], True, "read as H x W x C"),
    ("28x28x16", False, None),
    ("6x24x24", False, None),
])
def test_c1_output_in_any_unambiguous_notation(tmp_path, written, right, note):
    result = one(tmp_path, "lenet5", "C1", "output", written)
    assert (result["correct"], result["expected"]) == (right, [6, 28, 28])
    assert (note in result["note"]) if note else result["note"] is None


@pytest.mark.parametrize("layer, written, right", [
    ("F6", "84", True), ("F6", 84, True), ("F6", "84x1", True), ("F6", "1x84", True), ("F6", "1x1x84", True),
    ("F6", [84], True), ("F6", "84x2", False), ("F6", "85", False),
    ("OUTPUT", "1x1x10", True), ("OUTPUT", "10x1x1", True),
    ("C5", "1x1x120", True), ("C5", "120x1x1", True), ("C5", "120", True), ("C5", "120x1", False),
])
def test_flat_outputs_as_the_lecture_writes_them(tmp_path, layer, written, right):
    assert one(tmp_path, "lenet5", layer, "output", written)["correct"] is right


def test_vgg_fc8_written_as_a_volume(tmp_path):
    assert one(tmp_path, "vgg16", "fc8", "output", "1x1x1000")["correct"]


def test_an_answer_right_only_in_another_notation_names_it(tmp_path):
    """A spec in the lecture's W x H x D: an H x W x C answer for a non-square map is wrong, with the flag."""
    spec = tmp_path / "net.yaml"
    spec.write_text("input: 8x4x1\nlayout: whd\nlayers: [{conv: {filters: 2, kernel: [3, 1], name: c1}}]\n")
    result = one(tmp_path, str(spec), "c1", "output", "2x8x2")  # H x W x C of the true 2 x (H 2, W 8)
    assert not result["correct"]
    assert "--layout hwc" in result["note"] and result["expected_text"] == "8x2x2"


# ----------------------------------------------------------------------------- rounded numbers
NET_1024K = json.dumps({"input": [1000], "layers": [{"linear": {"features": 1024, "bias": False, "name": "fc"}}]})
NET_73M = json.dumps({"input": [73600], "layers": [{"linear": {"features": 1000, "bias": False, "name": "fc"}}]})


@pytest.mark.parametrize("spec, written, right", [
    (NET_1024K, "1M", True),  # 1,024,000 to one digit
    (NET_1024K, "1.0M", True),
    (NET_1024K, "1.02M", True),
    (NET_1024K, "1.03M", False),
    (NET_1024K, "1024K", True),
    (NET_1024K, "1.1M", False),
    (NET_73M, "73M", True),  # 73.6M truncated
    (NET_73M, "74M", True),  # 73.6M rounded
    (NET_73M, "70M", False),  # two digits written: 70 is neither
    (NET_73M, "7e7", True),  # one digit written
    (NET_73M, "73.6M", True),
    (NET_73M, "73.2M", False),  # 0.54% off: outside the default 0.5% too
    (NET_73M, "73,600,000", True),
    (NET_73M, "73600001", False),  # whole numbers written out are exact
])
def test_rounded_answers_are_judged_by_their_digits(tmp_path, spec, written, right):
    path = tmp_path / "net.json"
    path.write_text(spec)
    assert one(tmp_path, str(path), "fc", "params", written)["correct"] is right


def test_tolerance_still_widens(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(NET_73M)
    assert one(tmp_path, str(path), "fc", "params", "70M", "--tolerance", "6%")["correct"]


# ----------------------------------------------------------------------------- other conventions
def test_lecture_muls_point_at_muls_with_bias(tmp_path):
    result = one(tmp_path, "lenet5", "C1", "muls", 122304)
    assert not result["correct"]
    assert "--muls-with-bias" in result["note"] and "--muls-with-bias" in result["message"]
    assert one(tmp_path, "lenet5", "C1", "muls", 122304, "--muls-with-bias")["correct"]


def test_macs_with_the_bias_are_named(tmp_path):
    result = one(tmp_path, "lenet5", "C1", "macs", 122304)
    assert not result["correct"] and "muls_with_bias" in result["note"]


def test_weights_without_biases_are_named(tmp_path):
    result = one(tmp_path, "lenet5", "C3", "params", 2400)
    assert not result["correct"] and "weights only" in result["note"]


def test_googlenet_k_1024_is_named_and_then_right(tmp_path):
    """The README's example: inception (3a) as the paper's table writes it, 159K params and 128M ops."""
    answers = "inception_3a: {params: 159K, ops: 128M}\n"
    params, ops = mark(tmp_path, "googlenet_paper", answers)
    assert not params["correct"] and "--k 1024" in params["note"]
    assert ops["correct"]
    assert [r["correct"] for r in mark(tmp_path, "googlenet_paper", answers, "--k", "1024")] == [True, True]


def test_a_wrong_answer_in_no_convention_gets_no_note(tmp_path):
    result = one(tmp_path, "lenet5", "C3", "params", 2500)
    assert not result["correct"] and result["note"] is None
