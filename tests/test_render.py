"""Golden outputs of every renderer; rewrite them deliberately with `pytest --update-golden`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncalc.cli import cli

CASES = Path(__file__).parent / "cases"
GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("case", ["lenet", "mixed"])
@pytest.mark.parametrize("fmt, suffix", [("json", "json"), ("csv", "csv"), ("markdown", "md"), ("table", "txt")])
def test_renderer_matches_golden_file(request, case, fmt, suffix, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.chdir(CASES)  # keeps file names in warnings short and stable
    result = CliRunner().invoke(cli, ["table", f"{case}.yaml", "--format", fmt])
    assert result.exit_code == 0, result.output
    output = result.stdout
    golden = GOLDEN / f"{case}.{suffix}"
    if request.config.getoption("--update-golden"):
        golden.write_text(output)
    assert output == golden.read_text()


def test_json_is_the_report_contract():
    result = CliRunner().invoke(cli, ["table", str(CASES / "lenet.yaml"), "--format", "json"])
    data = json.loads(result.stdout)
    assert list(data) == ["name", "input_shape", "conventions", "layers", "totals", "warnings", "notes", "rounded",
                          "inputs", "misaligned"]  # extended, never renamed
    assert data["inputs"] == {"input": data["input_shape"]}
    assert set(data["totals"]) >= {"params", "trainable_params", "non_trainable_params", "macs", "flops",
                                   "activations", "param_bytes", "inference_bytes", "training_bytes"}
    assert data["totals"]["params"] == 61706
    assert data["conventions"]["rounding"] == "floor"


def test_hwc_layout_changes_display_but_not_json():
    chw = CliRunner().invoke(cli, ["table", str(CASES / "lenet.yaml"), "--format", "json"]).stdout
    hwc = CliRunner().invoke(cli, ["table", str(CASES / "lenet.yaml"), "--format", "json", "--layout", "hwc"]).stdout
    assert json.loads(chw)["layers"] == json.loads(hwc)["layers"]
    csv = CliRunner().invoke(cli, ["table", str(CASES / "lenet.yaml"), "--format", "csv", "--layout", "hwc",
                                   "--columns", "name,output"]).stdout
    assert csv.splitlines()[1] == "C1,28x28x6"


def test_warnings_for_layers_that_do_not_fit_are_shown(monkeypatch):
    monkeypatch.chdir(CASES)
    result = CliRunner().invoke(cli, ["table", "mixed.yaml", "--format", "csv"])
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "mixed.yaml:6: layers[0] (conv1): warning: (16 - 3)/2 + 1 = 7.50 is not whole: a 3x3 filter at stride 2 "
        "does not fit a 16x16 input (1 row and 1 column unused); rounded down to 7x7 (floor, as PyTorch does)"]
    table = CliRunner().invoke(cli, ["table", "mixed.yaml"])
    assert "warning: mixed.yaml:6: layers[0] (conv1): (16 - 3)/2 + 1 = 7.50 is not whole" in table.stdout


def test_unknown_column_is_a_usage_error():
    result = CliRunner().invoke(cli, ["table", str(CASES / "lenet.yaml"), "--columns", "name,bogus"])
    assert result.exit_code == 2
    assert "unknown column 'bogus'" in result.output


def test_output_file_is_written_atomically_and_never_over_the_spec(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text((CASES / "lenet.yaml").read_text())
    report = tmp_path / "report.csv"
    result = CliRunner().invoke(cli, ["table", str(spec), "--format", "csv", "--output", str(report)])
    assert result.exit_code == 0 and result.stdout == ""
    assert report.read_text().startswith("index,name,kind,hyper,input,output,params")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left behind
    refused = CliRunner().invoke(cli, ["table", str(spec), "--output", str(spec)])
    assert refused.exit_code == 2 and "refusing to overwrite the input file" in refused.stderr
    assert spec.read_text() == (CASES / "lenet.yaml").read_text()
