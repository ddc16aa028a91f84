"""The lecture's numeric examples (specs/examples/) evaluated by `cnncalc run`, asserted exactly.

Small integer-valued inputs and filters: float32 represents every value and partial sum
exactly, so the outputs must equal the lecture's numbers, not just come close.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cnncalc
from cnncalc.cli import cli

EXAMPLES = Path(__file__).parent.parent / "specs" / "examples"
HALVES = [[0.5, 0.5, 0.5], [0.5, 1, 0.5], [0.5, 0.5, 0.5]]  # filter 0 of the two-channel example
HOLE = [[1, 1, 1], [1, 0, 1], [1, 1, 1]]  # filter 1

CASES = {
    "edge_detection": ("edge", [1, 4, 4], [[[0, 30, 30, 0]] * 4]),
    "edge_detection_mirrored": ("edge", [1, 4, 4], [[[0, -30, -30, 0]] * 4]),
    "sobel": ("sobel", [1, 4, 4], [[[0, 40, 40, 0]] * 4]),
    "two_channel_filters": ("conv", [2, 3, 3], [HALVES, HOLE]),
    "sobel_typo_as_printed": ("conv4", [3, 3, 3], [HALVES, HOLE, [[-2, -3, -2], [-1, -1, -1], [-2, 1, 0]]]),
    "sobel_typo_corrected": ("conv4", [3, 3, 3], [HALVES, HOLE, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]]),
}


def run_json(*args):
    result = CliRunner().invoke(cli, ["run", *map(str, args), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_example_spec_has_a_case():
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("example", sorted(CASES))
def test_example_output_is_the_lecture_value(example):
    layer, shape, expected = CASES[example]
    data = run_json(EXAMPLES / f"{example}.yaml")
    assert (data["layer"], data["shape"], data["input"]) == (layer, shape, "input_values")
    assert list(data["inputs"].values())[0] == cnncalc.analyze(EXAMPLES / f"{example}.yaml").to_dict()["input_shape"]
    assert data["output"] == expected  # exact
    assert data["ok"] is True


@pytest.mark.parametrize("example", sorted(CASES))
def test_examples_run_by_name(example):
    """`cnncalc run sobel` finds the zoo's examples/ folder from any directory."""
    assert run_json(example)["output"] == CASES[example][2]


def test_the_printed_filters_do_not_give_the_slide_result():
    printed = run_json("sobel_typo_as_printed")["output"][2]
    corrected = run_json("sobel_typo_corrected")["output"][2]
    assert printed != corrected == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]


def test_text_output_prints_a_matrix_per_channel():
    result = CliRunner().invoke(cli, ["run", str(EXAMPLES / "two_channel_filters.yaml")])
    assert result.exit_code == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[lines.index("channel 0:") + 1: lines.index("channel 0:") + 4] == \
        ["0.5  0.5  0.5", "0.5    1  0.5", "0.5  0.5  0.5"]
    assert lines[lines.index("channel 1:") + 2] == "1  0  1"


@pytest.mark.parametrize("example", sorted(CASES))
def test_examples_agree_with_torch(example):
    pytest.importorskip("torch")
    data = run_json(EXAMPLES / f"{example}.yaml", "--cross-check", "torch")
    assert data["cross_check"]["ok"] is True
    assert [layer["max_abs_diff"] for layer in data["cross_check"]["layers"]] == [0.0]


def test_torch_backend_gives_the_same_exact_numbers():
    pytest.importorskip("torch")
    assert run_json("sobel", "--backend", "torch")["output"] == CASES["sobel"][2]


def test_the_installed_entry_point_runs_an_example():
    """A real process: the entry point, exit 0, JSON on stdout, nothing on stderr."""
    done = subprocess.run([sys.executable, "-m", "cnncalc", "run", str(EXAMPLES / "edge_detection.yaml"),
                           "--format", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout)["output"] == CASES["edge_detection"][2]
