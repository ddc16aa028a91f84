"""`cnncalc validate` (every problem of every spec, for CI), the pre-commit hook and `cnncalc schema`."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import cnncalc
from cnncalc.cli import cli
from cnncalc.errors import CnnCalcError

ROOT = Path(__file__).parent.parent
CASES = Path(__file__).parent / "cases"
ZOO = sorted((ROOT / "specs").glob("*.yaml"))

BROKEN = "validate/broken.yaml:6: is not valid YAML: did not find expected ',' or '}'"
OVER_SPEC_BUDGET = "validate/budget.yaml:4: budgets.max_params: 156 params exceed the budget of 100"
EXPECT = ("validate/expect.yaml:5: layers[0] (c1): expected params 108, but it is 112 "
          "(params = (F*F*D1 + 1)*K = (3*3*3 + 1)*4 = 112)")
MISFITS = [
    "validate/misfit.yaml:5: layers[0] (a): (8 - 3)/2 + 1 = 3.50 is not whole: a 3x3 filter at stride 2 does not "
    "fit an 8x8 input (1 row and 1 column unused); rounded down to 3x3 (floor, as PyTorch does)",
    "validate/misfit.yaml:7: layers[2] (pool1): (3 - 2)/2 + 1 = 1.50 is not whole: a 2x2 window at stride 2 does "
    "not fit a 3x3 input (1 row and 1 column unused); rounded down to 1x1 (floor, as PyTorch does)",
]


@pytest.fixture(autouse=True)
def in_cases(monkeypatch):
    monkeypatch.chdir(CASES)  # file names in the output are as given: validate/...


def validate(*args: str):
    return CliRunner().invoke(cli, ["validate", *args])


# ----------------------------------------------------------------------------- lines and exit codes
def test_every_problem_of_every_file_one_line_each():
    result = validate("validate")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [BROKEN, OVER_SPEC_BUDGET, EXPECT, *MISFITS]
    assert result.stderr == ("cnncalc validate: 5 problems in 4 of 6 files (1 parse, 1 budget, 1 expect, 2 fit); "
                             "--rounding floor accepts sizes that are not whole, as PyTorch does\n")


def test_the_stricter_of_the_cli_and_spec_budgets_counts_and_floor_accepts_misfits():
    result = validate("validate", "--max-params", "150", "--rounding", "floor")
    assert result.stdout.splitlines() == [
        BROKEN,
        OVER_SPEC_BUDGET + " (stricter than --max-params of 150)",  # the spec's 100 is stricter: it counts
        EXPECT,
        "validate/good.yaml: 156 params exceed --max-params of 150 (stricter than the spec's budget of 200)",
    ]


def test_macs_budget():
    result = validate("validate/good.yaml", "--max-macs", "100K")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["validate/good.yaml: 117,600 MACs exceed --max-macs of 100K (100,000)"]


def test_memory_budget_is_inference_bytes():
    from cnncalc.units import human_bytes

    used = cnncalc.analyze("validate/good.yaml", batch=2, dtype="float16").totals.inference_bytes
    result = validate("validate/good.yaml", "--max-memory", "10kB", "--batch", "2", "--dtype", "float16")
    assert result.stdout.splitlines() == [
        f"validate/good.yaml: inference memory {used:,} B ({human_bytes(used)}: params + peak live activations, "
        "float16, batch 2) exceeds --max-memory of 10kB (10,000 B)"]
    at_limit = validate("validate/good.yaml", "--max-memory", str(used), "--batch", "2", "--dtype", "float16")
    assert at_limit.exit_code == 0  # at the limit is within it


@pytest.mark.parametrize("args, code", [
    (["validate/good.yaml", "validate/good.json"], 0),
    (["validate/g*.*"], 0),  # a glob
    (["validate/misfit.yaml"], 1),
    (["validate/broken.yaml"], 1),  # a file that cannot be parsed is a finding: CI lists all problems
    (["validate/missing.yaml"], 2),  # a PATH that does not exist is unusable input
    (["validate/nothing*.yaml"], 2),  # as is a glob that matches nothing
    (["validate/good.yaml", "--max-params", "lots"], 2),
    ([], 2),
], ids=["clean files", "glob", "misfit", "malformed", "missing path", "empty glob", "bad option", "no path"])
def test_exit_codes(args, code):
    result = validate(*args)
    assert result.exit_code == code, result.output
    if code == 0:
        assert result.stdout == ""
        assert result.stderr == "cnncalc validate: 2 files, no problems\n"


def test_missing_path_is_one_located_error_line():
    result = validate("validate/good.yaml", "validate/missing.yaml")
    assert result.stderr == "validate/missing.yaml: error: no such file or directory\n"


def test_json_output():
    result = validate("validate", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert (data["files"], data["ok"]) == (6, False)
    assert data["problems"][2] == {
        "file": "validate/expect.yaml", "line": 5, "path": "layers[0]", "name": "c1", "kind": "expect",
        "message": "expected params 108, but it is 112 (params = (F*F*D1 + 1)*K = (3*3*3 + 1)*4 = 112)"}
    assert [p["kind"] for p in data["problems"]] == ["parse", "budget", "expect", "fit", "fit"]
    assert data["checked"] == [f"validate/{name}" for name in
                               ("broken.yaml", "budget.yaml", "expect.yaml", "good.json", "good.yaml", "misfit.yaml")]
    clean = json.loads(validate("validate/good.yaml", "--format", "json").stdout)
    assert clean == {"files": 1, "problems": [], "ok": True, "checked": ["validate/good.yaml"]}


def test_a_hard_error_stops_only_its_file(tmp_path):
    spec = tmp_path / "hard.yaml"
    spec.write_text("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3, groups: 2}\n"
                    "  - conv: {filters: 4, kernel: 3, stride: 2, expect: {params: 1}}\n")
    result = validate(str(spec), "validate/misfit.yaml")
    assert result.stdout.splitlines() == [
        f"{spec}:3: layers[0] (conv1): 3 input channels cannot be split into 2 groups", *MISFITS]


def test_unknown_expect_quantity_and_bad_budget_are_parse_problems(tmp_path):
    spec = tmp_path / "x.yaml"
    spec.write_text("input: [1, 4, 4]\nbudgets: {max_params: lots}\nlayers:\n"
                    "  - conv: {filters: 1, kernel: 1, expect: {parms: 2, output: 1x4x4}}\n")
    result = validate(str(spec), "--format", "json")
    problems = [(p["line"], p["kind"], p["message"]) for p in json.loads(result.stdout)["problems"]]
    assert problems == [
        (2, "parse", "`budgets.max_params`: cannot read 'lots' as a number like 25M, 5G or 2GiB"),
        (4, "parse", "unknown quantity `parms`; did you mean `params`?"),
    ]


# ----------------------------------------------------------------------------- the real thing
@pytest.mark.skipif(not ZOO, reason="specs/ has no yaml")
def test_real_process_over_the_zoo_is_fast_and_prints_no_traceback():
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cnncalc", "validate", "specs/"], cwd=ROOT,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert all(re.match(r"^specs/\S+\.(yaml|yml|json|toml):\d+: \S.*: .+$", line) for line in done.stdout.splitlines())
    assert done.stderr.startswith("cnncalc validate: ")
    assert elapsed < 6, f"validate over the zoo took {elapsed:.1f} s"  # about 0.7 s on a laptop; CI may be slower
    floor = subprocess.run([sys.executable, "-m", "cnncalc", "validate", "specs/", "--rounding", "floor"], cwd=ROOT,
                           capture_output=True, text=True)
    assert floor.returncode == 0, floor.stdout  # the zoo fits as PyTorch computes it


def test_validate_imports_nothing_heavy():
    code = ("import sys; from cnncalc.cli import cli; "
            "cli.main(['validate', 'validate/good.yaml'], standalone_mode=False); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'torch', 'rich'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_pre_commit_hook():
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "cnncalc-validate")
    assert (hook["entry"], hook["language"]) == ("cnncalc validate", "python")
    pattern = re.compile(hook["files"])
    assert [bool(pattern.search(name)) for name in ("a.yaml", "b.yml", "c.json", "d.toml", "e.py", "yaml.txt")] == \
        [True, True, True, True, False, False]


# ----------------------------------------------------------------------------- schema
@pytest.fixture(scope="module")
def schema_validator():
    jsonschema = pytest.importorskip("jsonschema")
    from cnncalc.schema import spec_schema

    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


SPEC_FILES = ZOO + sorted(CASES.glob("*.yaml")) + [CASES / "check" / name for name in
                                                    ("lenet.yaml", "inception.yaml", "expect.yaml")]


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_spec_validates_against_the_schema(schema_validator, path):
    data = yaml.safe_load(path.read_text())
    if not schema_validator.is_valid(data):  # is_valid first: collecting errors is slow
        pytest.fail("; ".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in schema_validator.iter_errors(data)))


@pytest.mark.parametrize("layer", [
    {"convv": {"filters": 4, "kernel": 3}},  # unknown kind
    {"conv": {"filters": 4, "kernal": 3}},  # unknown key
    {"conv": 4},  # conv needs a kernel too, so no scalar form
    {"conv": {"filters": 4, "kernel": 3}, "relu": None},  # two kinds in one entry
    {"name": "x"},  # no kind
    "frobnicate 3",
    {"conv": {"filters": 4, "kernel": 3, "expect": {"parms": 1}}},
    {"residual": {"layers": [{"convv": 3}]}},  # composites refer back to the layer entry
    {"kind": "convv", "filters": 4},  # flat form, unknown kind
    {"kind": "conv", "filters": 4, "kernal": 3},  # flat form, unknown key
    {"kind": "conv", "filters": 4},  # flat form, missing kernel
], ids=["unknown kind", "unknown key", "scalar without kernel", "two kinds", "no kind", "unknown one-line kind",
        "unknown expect key", "nested unknown kind", "flat unknown kind", "flat unknown key", "flat missing key"])
def test_schema_rejects(schema_validator, layer):
    assert not schema_validator.is_valid({"input": [3, 8, 8], "layers": [layer]})


def test_schema_accepts_every_entry_form(schema_validator):
    spec = {"input": "32x32x3", "layout": "hwc", "budgets": {"max_params": "25M", "max_memory": 10**9},
            "layers": ["conv 64 k3 p1", "conv3-64", "FC-10", "LRN", "relu", {"relu": None, "name": "a"},
                       {"linear": 10}, {"fc": 10}, {"concat": ["a", "a"]}, {"concat": None, "from": ["a", "a"]},
                       {"branches": [["relu"], [{"conv": {"filters": 3, "kernel": 1}}]]},
                       {"conv": {"filters": 6, "kernel": 5}, "expect": {"params": 456, "output": "28x28x6"}},
                       {"kind": "conv", "filters": 3, "kernel": 1, "name": "flat"}, {"kind": "Add", "from": ["a", "a"]},
                       {"kind": "fc", "features": 10}]}
    assert schema_validator.is_valid(spec)


def test_the_flat_form_reads_as_the_one_key_form():
    flat = {"input": [3, 8, 8], "layers": [{"kind": "conv", "filters": 4, "kernel": 3, "name": "c"},
                                           {"kind": "ReLU"}, {"kind": "linear", "features": 2}]}
    nested = {"input": [3, 8, 8], "layers": [{"conv": {"filters": 4, "kernel": 3}, "name": "c"}, "relu",
                                             {"linear": 2}]}
    assert cnncalc.analyze(flat).to_dict()["layers"] == cnncalc.analyze(nested).to_dict()["layers"]
    with pytest.raises(CnnCalcError, match="unknown layer kind `convv`; did you mean `conv`"):
        cnncalc.load_spec({"input": [3, 8, 8], "layers": [{"kind": "convv", "filters": 4}]})


def test_schema_command_prints_draft_2020_12():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["layers"]  # and one of `input` (one input) or `inputs` (several, by name)
    assert schema["oneOf"] == [{"required": ["input"]}, {"required": ["inputs"]}]
    assert {"conv.args", "layer", "layer_mapping", "expect"} <= set(schema["$defs"])


def test_the_schema_accepts_named_inputs_and_refuses_both_forms():
    import jsonschema

    schema = json.loads(CliRunner().invoke(cli, ["schema"]).stdout)
    jsonschema.validate({"inputs": {"image": "3x8x8", "meta": [10]}, "layers": ["relu"]}, schema)
    for bad in ({"input": [3, 8, 8], "inputs": {"a": [3]}, "layers": ["relu"]}, {"layers": ["relu"]},
                {"inputs": {"input": [3]}, "layers": ["relu"]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
