"""Rounding warnings that mean something: a size that is not whole is warned per layer only when
the rounding in force is the default; a rounding the spec declares (`rounding: floor`, the zoo's
torchvision nets) or the command line asks for (`--rounding`) gets one note listing the layers it
rounded, and every JSON report lists them in `rounded`. `run` and `verify`, which always floor as
PyTorch does, say so the same way."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cnncalc.cli import cli

RESNET50_FLOORED = ["conv1", "maxpool", "layer2.0.conv2", "layer2.0.downsample.0", "layer3.0.conv2",
                    "layer3.0.downsample.0", "layer4.0.conv2", "layer4.0.downsample.0"]
ODD = "input: [1, 8, 8]\n{rounding}layers:\n  - conv: {{name: c, filters: 2, kernel: 3, stride: 2}}\n  - relu\n"


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def lines(stream: str, kind: str) -> list[str]:
    return [line for line in stream.splitlines() if f": {kind}: " in line]


def odd_spec(tmp_path, rounding: str | None = None):
    path = tmp_path / "odd.yaml"
    path.write_text(ODD.format(rounding=f"rounding: {rounding}\n" if rounding else ""))
    return path


def test_resnet50_declares_floor_so_json_has_no_per_layer_warnings():
    result = invoke("table", "resnet50", "--format", "json")
    assert result.exit_code == 0
    assert lines(result.stderr, "warning") == []
    (note,) = lines(result.stderr, "note")  # one line for all eight
    assert "resnet50.yaml:13: rounding: note: 8 sizes that are not whole were rounded down, " \
           "as the spec's `rounding: floor` says: conv1 112.50 -> 112, maxpool 56.50 -> 56" in note
    data = json.loads(result.stdout)
    assert data["warnings"] == []
    assert [r["name"] for r in data["rounded"]] == RESNET50_FLOORED
    assert "rounded down to 112x112" in data["rounded"][0]["message"] and data["rounded"][0]["line"] == 16
    assert [n["path"] for n in data["notes"]] == ["rounding"]
    assert data["conventions"]["rounding"] == "floor"


def test_resnet50_table_ends_with_the_note_and_no_warning():
    result = invoke("table", "resnet50")
    assert result.exit_code == 0
    assert "rounding floor" in result.stdout  # the Conventions: line names it
    assert "\nnote: " in result.stdout and "warning:" not in result.stdout
    assert result.stderr == ""


def test_a_spec_without_rounding_that_floors_still_warns_per_layer(tmp_path):
    spec = odd_spec(tmp_path)
    result = invoke("table", str(spec), "--format", "json")
    assert result.exit_code == 0
    (warning,) = lines(result.stderr, "warning")
    assert warning.startswith(f"{spec}:3: layers[0] (c): warning: (8 - 3)/2 + 1 = 3.50 is not whole")
    assert lines(result.stderr, "note") == []
    data = json.loads(result.stdout)
    assert [w["name"] for w in data["warnings"]] == ["c"] and data["rounded"] == data["warnings"]


def test_an_explicit_rounding_option_is_listed_once_not_warned(tmp_path):
    spec = odd_spec(tmp_path)
    result = invoke("table", str(spec), "--format", "csv", "--rounding", "floor")
    assert result.exit_code == 0 and lines(result.stderr, "warning") == []
    (note,) = lines(result.stderr, "note")  # one layer: its own message, at the layer
    assert note.startswith(f"{spec}:3: layers[0] (c): note: (8 - 3)/2 + 1 = 3.50 is not whole")
    assert note.endswith("rounded down to 3x3 (floor, as PyTorch does); as --rounding floor asks")
    several = invoke("table", "resnet18", "--format", "csv", "--rounding", "floor")  # the option wins
    (note,) = lines(several.stderr, "note")
    assert "resnet18.yaml: note: 8 sizes that are not whole were rounded down, as --rounding floor asks: " \
           "conv1 112.50 -> 112, maxpool 56.50 -> 56" in note


def test_a_declared_ceil_is_a_note_too(tmp_path):
    result = invoke("table", str(odd_spec(tmp_path, "ceil")), "--format", "json")
    assert lines(result.stderr, "warning") == []
    data = json.loads(result.stdout)
    assert "rounded up to 4x4" in data["rounded"][0]["message"]
    assert "as the spec's `rounding: ceil` says" in data["notes"][0]["message"]


def test_verify_and_run_warn_when_they_floor_a_spec_without_rounding(tmp_path):
    spec = odd_spec(tmp_path)
    for command in (["verify", str(spec)], ["run", str(spec)]):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
        (warning,) = lines(result.stderr, "warning")
        assert warning.startswith(f"{spec}:3: layers[0] (c): warning: (8 - 3)/2 + 1 = 3.50 is not whole")
        assert warning.endswith("rounded down to 3x3 (floor, as PyTorch does)")
        data = json.loads(invoke(*command, "--format", "json").stdout)
        assert [w["name"] for w in data["warnings"]] == ["c"] and [r["name"] for r in data["rounded"]] == ["c"]


def test_verify_warns_when_it_floors_a_spec_that_declares_strict_or_ceil(tmp_path):
    for rounding in ("strict", "ceil"):
        result = invoke("verify", str(odd_spec(tmp_path, rounding)), "--format", "json")
        assert result.exit_code == 0
        assert len(lines(result.stderr, "warning")) == 1  # the backends floor, whatever the spec says
        assert json.loads(result.stdout)["layers"][0]["actual_shape"] == [2, 3, 3]


def test_verify_of_a_spec_declaring_floor_notes_it_once():
    result = invoke("verify", "resnet50", "--input", "3x64x64", "--format", "json")
    assert result.exit_code == 0
    assert lines(result.stderr, "warning") == [] and len(lines(result.stderr, "note")) == 1
    data = json.loads(result.stdout)
    assert data["warnings"] == [] and [r["name"] for r in data["rounded"]] == RESNET50_FLOORED


def test_run_and_verify_of_a_spec_that_fits_say_nothing():
    for command in (["verify", "lenet5"], ["run", "lenet5"]):
        result = invoke(*command)
        assert result.exit_code == 0 and result.stderr == ""
