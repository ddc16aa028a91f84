"""`cnncalc models`: the zoo listing in its three formats."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncalc import zoo
from cnncalc.cli import cli

FIELDS = {"name", "description", "input_shape", "params", "trainable_params", "macs", "file"}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, ["models", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def listing() -> list[dict]:
    return json.loads(invoke("--format", "json"))


def test_json_lists_every_zoo_spec_in_order(listing):
    assert [entry["name"] for entry in listing] == zoo.model_names()
    assert len(listing) >= 20


def test_json_fields(listing):
    for entry in listing:
        assert set(entry) == FIELDS
        assert entry["description"], f"{entry['name']} has no description"
        assert isinstance(entry["input_shape"], list) and all(isinstance(n, int) for n in entry["input_shape"])
        assert entry["params"] >= entry["trainable_params"] > 0
        assert entry["macs"] > 0
        assert Path(entry["file"]) == zoo.path_of(entry["name"]) and Path(entry["file"]).is_file()


def test_lenet5_values(listing):
    lenet5 = next(entry for entry in listing if entry["name"] == "lenet5")
    assert lenet5["params"] == lenet5["trainable_params"] == 61_706
    assert lenet5["input_shape"] == [1, 32, 32]
    assert lenet5["macs"] == 416_520  # 117,600 + 240,000 + 48,000 + 10,080 + 840
    assert lenet5["description"].startswith("LeNet-5")


def test_batchnorm_statistics_are_params_but_not_trainable(listing):
    by_name = {entry["name"]: entry for entry in listing}
    assert by_name["vgg16_bn"]["trainable_params"] == 138_365_992
    assert by_name["vgg16_bn"]["params"] == 138_365_992 + 2 * 4_224  # running mean and var, 13 BN layers
    assert by_name["vgg16"]["params"] == by_name["vgg16"]["trainable_params"] == 138_357_544
    assert by_name["unet"]["input_shape"] == [1, 572, 572]


def test_text_table_lists_all_names(listing):
    out = invoke()
    lines = out.splitlines()
    assert lines[0].split() == ["name", "input", "params", "trainable", "MACs", "description"]
    assert set(lines[1]) <= {"-", " "}
    body = lines[2:]
    assert [line.split()[0] for line in body] == zoo.model_names()
    lenet = next(line for line in body if line.split()[0] == "lenet5")
    assert lenet.split()[1:5] == ["1x32x32", "61,706", "61,706", "416.5K"]
    assert "LeNet-5 (lecture version)" in lenet
    vgg16 = next(line for line in body if line.split()[0] == "vgg16")
    assert vgg16.split()[1:5] == ["3x224x224", "138,357,544", "138,357,544", "15.5G"]
    # numbers are right-aligned: every row's params column ends at the same place
    ends = {line.index(line.split()[2]) + len(line.split()[2]) for line in body}
    assert len(ends) == 1


def test_markdown(listing):
    out = invoke("--format", "markdown")
    lines = out.splitlines()
    assert lines[0] == "| name | input | params | trainable | MACs | description |"
    assert lines[1] == "|---|---|---:|---:|---:|---|"
    assert len(lines) == 2 + len(listing)
    assert "| `lenet5` | 1x32x32 | 61,706 | 61,706 | 416,520 | LeNet-5 (lecture version)" in out
    assert all(line.startswith("| `") and line.endswith(" |") for line in lines[2:])


def test_default_format_needs_no_rich():
    """The plain listing does not import rich (a fast command)."""
    import subprocess

    code = ("import sys; from cnncalc.cli import main; sys.argv = ['cnncalc', 'models']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'rich' not in sys.modules, 'rich imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "lenet5" in result.stdout


def test_a_broken_spec_is_reported_and_the_rest_listed(monkeypatch, tmp_path):
    (tmp_path / "good.yaml").write_text("name: good\ndescription: fine\ninput: [1, 8, 8]\nlayers:\n  - linear: 2\n")
    (tmp_path / "bad.yaml").write_text("name: bad\ndescription: broken\ninput: [1, 8, 8]\nlayers:\n  - conv: 4\n")
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path)
    result = CliRunner().invoke(cli, ["models", "--format", "json"])
    assert result.exit_code == 2
    assert [entry["name"] for entry in json.loads(result.stdout)] == ["good"]
    assert "bad.yaml" in result.stderr and "error:" in result.stderr
