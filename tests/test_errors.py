"""Malformed specs: each gives exactly one located error line (file:line, layer path) and exit 2."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from cnncalc.cli import cli

HEADER = "name: t\ninput: [3, 8, 8]\nlayers:\n"

CASES = [
    # (id, file name, content, expected line, expected path or None, message fragment)
    ("invalid YAML", "a.yaml", HEADER + "  - conv: {filters: 4, kernel: 3\n  - relu\n", 6, None, "is not valid YAML"),
    ("unknown kind", "a.yaml", HEADER + "  - relu\n  - convv: {filters: 4, kernel: 3}\n", 5, "layers[1].convv",
     "unknown layer kind `convv`; did you mean `conv`?"),
    ("unknown key", "a.yaml", HEADER + "  - conv:\n      filters: 4\n      kernal: 3\n", 6, "layers[0].conv.kernal",
     "`conv` has no key `kernal`; did you mean `kernel`?"),
    ("missing key", "a.yaml", HEADER + "  - conv: {kernel: 3}\n", 4, "layers[0]", "`conv` needs `filters`"),
    ("wrong type", "a.yaml", HEADER + "  - conv: {filters: 4, kernel: three}\n", 4, "layers[0].conv.kernel",
     "`conv.kernel` = 'three' is not valid"),
    ("negative number", "a.yaml", HEADER + "  - conv: {filters: -4, kernel: 3}\n", 4, "layers[0].conv.filters",
     "`conv.filters` = -4 is not valid"),
    ("groups do not divide channels", "a.yaml", HEADER + "  - conv: {filters: 4, kernel: 3, groups: 2}\n", 4,
     "layers[0]", "3 input channels cannot be split into 2 groups"),
    ("size reaches zero", "a.yaml", HEADER + "  - maxpool: 2\n  - conv: {filters: 4, kernel: 5}\n", 5, "layers[1]",
     "larger than the 4x4 input"),
    ("residual shapes differ", "a.yaml",
     HEADER + "  - residual:\n      layers:\n        - conv: {filters: 5, kernel: 3, padding: 1}\n", 4,
     "layers[0]", "cannot add tensors of different shapes: [5, 8, 8] + [3, 8, 8]"),
    ("branch sizes differ", "a.yaml", HEADER + "  - branches: [[conv 4 k1], [conv 4 k3]]\n", 4, "layers[0]",
     "spatial sizes differ (8x8, 6x6)"),
    ("dangling reference", "a.yaml", HEADER + "  - {conv: {filters: 4, kernel: 1}, from: stem}\n", 4, "layers[0]",
     "`from: stem` names no earlier layer"),
    ("same name twice", "a.yaml", HEADER + "  - {relu: , name: a}\n  - {tanh: , name: a}\n", 5, "layers[1]",
     "the name `a` is used by two layers"),
    ("repeated YAML key", "a.yaml", HEADER + "  - conv: {filters: 4, filters: 5, kernel: 3}\n", 4, "layers[0].conv",
     "repeats the key 'filters'"),
    ("top level is a list", "a.yaml", "- conv: {filters: 4, kernel: 3}\n", 1, None, "the top level must be a mapping"),
    ("no input", "a.yaml", "name: t\nlayers: [relu]\n", 1, None, "the spec has no `input`"),
    ("bad input volume", "a.yaml", "input: 32by32\nlayers: [relu]\n", 1, "input", "cannot read the volume '32by32'"),
    ("empty file", "a.yaml", "  \n", None, None, "is empty"),
    ("unsafe YAML tag", "a.yaml", "input: !!python/object:os.system [3, 8, 8]\nlayers: [relu]\n", 1, "input",
     "uses the YAML tag"),
    ("unknown top-level key", "a.yaml", "input: [3, 8, 8]\nlayer: [relu]\n", 2, "layer", "did you mean `layers`?"),
    ("malformed JSON", "a.json", '{"input": [3, 8, 8],\n "layers": [relu]}\n', 2, None, "is not valid JSON"),
    ("malformed TOML", "a.toml", 'input = [3, 8, 8]\nlayers = [\n', 3, None, "is not valid TOML"),
    ("does not fit under strict rounding", "strict.yaml", HEADER + "  - conv: {filters: 4, kernel: 3, stride: 2}\n", 4,
     "layers[0]", "(8 - 3)/2 + 1 = 3.50 is not whole"),
    ("layer on a flat input", "a.yaml", HEADER + "  - flatten\n  - maxpool: 2\n", 5, "layers[1]",
     "cannot follow flatten or linear"),
    ("per-axis list of the wrong length", "a.yaml", HEADER + "  - conv: {filters: 4, kernel: [3, 3, 3]}\n", 4,
     "layers[0]", "`kernel` has 3 values but the input has 2 spatial axes"),
]


@pytest.mark.parametrize("name, content, line, path, fragment",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_spec_gives_one_located_error_line(tmp_path, name, content, line, path, fragment):
    spec = tmp_path / name
    spec.write_text(content)
    before = spec.read_bytes()
    options = ["--rounding", "strict"] if name == "strict.yaml" else []
    result = CliRunner().invoke(cli, ["table", str(spec), "--format", "json", *options])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    where = f"{spec}:{line}:" if line else f"{spec}"
    assert lines[0].startswith(where), lines[0]
    if path:
        assert f" {path}" in lines[0]
    assert fragment in lines[0]
    assert spec.read_bytes() == before  # a user's file is never modified


def test_non_utf8_file(tmp_path):
    spec = tmp_path / "bin.yaml"
    spec.write_bytes(b"input: [3, 8, 8]\nlayers: [relu]\nname: \xff\xfe\n")
    result = CliRunner().invoke(cli, ["table", str(spec)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{spec}:3: error: is not UTF-8 text (byte 0xff at offset 38)"


def test_missing_file_suggests_zoo_names(tmp_path):
    result = CliRunner().invoke(cli, ["table", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr


@pytest.mark.parametrize("content", [
    HEADER + "  - conv: {filters: 4, kernel: 3}\n  - conv: {filters: 4, kernel: 9}\n",
    "input: [3, 8, 8]\nlayers: [{repeat: {times: 3, layers: [residual: {layers: [conv 3 k3]}]}}]\n",
    "input: [3, 8, 8]\nlayers: 7\n",
    "\x00\x01\x02",
])
def test_real_process_prints_no_traceback(tmp_path, content):
    spec = tmp_path / "x.yaml"
    spec.write_text(content)
    done = subprocess.run([sys.executable, "-m", "cnncalc", "table", str(spec)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_failed_layer_still_prints_rows_before_it(tmp_path):
    spec = tmp_path / "x.yaml"
    spec.write_text(textwrap.dedent("""\
        input: [3, 8, 8]
        layers:
          - conv: {filters: 4, kernel: 3, name: first}
          - conv: {filters: 4, kernel: 9, name: second}
        """))
    result = CliRunner().invoke(cli, ["table", str(spec), "--format", "csv", "--columns", "name,output"])
    assert result.exit_code == 2
    assert result.stdout == "name,output\nfirst,4x6x6\n"
    assert result.stderr.startswith(f"{spec}:4: layers[1] (second): error:")


def test_a_one_line_layer_may_sit_as_a_key_beside_its_name(tmp_path):
    """`- {conv 32 k1 nobias, name: a}` reads as the one-line layer named a (as `name=a` does)."""
    spec = tmp_path / "a.yaml"
    spec.write_text("input: [3, 8, 8]\nlayers:\n  - {conv 32 k1 nobias, name: a}\n  - conv 8 k3 p1 name=b\n"
                    "  - {PReLU, name: p}\n")
    result = CliRunner().invoke(cli, ["table", str(spec), "--format", "csv", "--columns", "name,kind,params"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["a,conv,96", "b,conv,2312", "p,prelu,1"]
