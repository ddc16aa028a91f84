"""`cnncalc diff OLD NEW`: layers matched by name, exact deltas against the two `table --format json`
reports, git revisions, budgets of change, the Markdown for a pull request and bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncalc.cli import cli
from cnncalc.diff import ChangeBudget, Change, merged_order, parse_budget

TESTS = Path(__file__).parent
GOLDEN = TESTS / "golden"
QUANTITY_FIELDS = {"params": "params", "macs": "macs", "memory": "activation_bytes"}  # diff key -> table row key


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def diff_json(*args: str) -> dict:
    result = invoke("diff", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def table_json(spec: str) -> dict:
    result = invoke("table", spec, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- real zoo pairs
@pytest.mark.parametrize("old, new, counts", [
    ("resnet18", "resnet34", {"added": 56, "removed": 0, "changed": 0, "same": 69}),
    ("vgg16", "vgg16_bn", {"added": 13, "removed": 0, "changed": 0, "same": 40}),
    ("resnet34", "resnet18", {"added": 0, "removed": 56, "changed": 0, "same": 69}),
    ("resnet50", "wide_resnet50_2", {"added": 0, "removed": 0, "changed": 112, "same": 63}),
], ids=["resnet18 to resnet34 adds blocks", "vgg16 to vgg16_bn adds batch norms",
        "resnet34 to resnet18 removes blocks", "wide_resnet50_2 widens the bottlenecks of resnet50"])
def test_every_delta_is_the_difference_of_the_two_table_reports(old, new, counts):
    data = diff_json(old, new)
    before = {row["name"]: row for row in table_json(old)["layers"]}
    after = {row["name"]: row for row in table_json(new)["layers"]}
    assert data["counts"] == counts
    assert sorted(layer["name"] for layer in data["layers"]) == sorted(before.keys() | after.keys())
    for layer in data["layers"]:
        was, now = before.get(layer["name"]), after.get(layer["name"])
        expected_change = "added" if was is None else "removed" if now is None else layer["change"]
        assert layer["change"] == expected_change
        for key, field in QUANTITY_FIELDS.items():
            old_value = was[field] if was else None
            new_value = now[field] if now else None
            assert layer[key] == {"old": old_value, "new": new_value, "delta": (new_value or 0) - (old_value or 0)}
        assert layer["output_shape"] == {"old": was and was["output_shape"], "new": now and now["output_shape"]}
        if was and now:
            differs = was["output_shape"] != now["output_shape"] or was["params"] != now["params"]
            assert layer["change"] == ("changed" if differs or layer["differs"] else "same")
    totals_before, totals_after = table_json(old)["totals"], table_json(new)["totals"]
    for key, field in QUANTITY_FIELDS.items():
        total = data["totals"][key]
        assert total == {"old": totals_before[field], "new": totals_after[field],
                         "delta": totals_after[field] - totals_before[field]}
        assert sum(layer[key]["delta"] for layer in data["layers"]) == total["delta"]  # absent layers count 0


def test_resnet18_to_resnet34_totals_exactly():
    totals = diff_json("resnet18", "resnet34")["totals"]
    assert totals["params"] == {"old": 11_699_112, "new": 21_814_696, "delta": 10_115_584}  # with BN statistics
    assert totals["macs"] == {"old": 1_814_073_344, "new": 3_663_761_408, "delta": 1_849_688_064}


def test_json_contract_and_options():
    data = diff_json("vgg16", "vgg16_bn", "--batch", "2", "--dtype", "float16")
    assert list(data)[:2] == ["old", "new"] and {"layers", "totals", "counts", "conventions"} <= set(data)
    assert set(data["totals"]) == {"params", "macs", "memory"}
    layer = next(layer for layer in data["layers"] if layer["name"] == "bn1_1")
    assert layer == {"name": "bn1_1", "change": "added", "kind": {"old": None, "new": "batchnorm"},
                     "path": {"old": None, "new": "layers[1]"}, "output_shape": {"old": None, "new": [64, 224, 224]},
                     "params": {"old": None, "new": 256, "delta": 256},
                     "macs": {"old": None, "new": 0, "delta": 0},
                     "memory": {"old": None, "new": 2 * 64 * 224 * 224 * 2, "delta": 2 * 64 * 224 * 224 * 2},
                     "differs": []}
    assert (data["conventions"]["batch"], data["conventions"]["dtype"]) == (2, "float16")
    assert (data["old"]["source"], data["new"]["source"]) == ("vgg16", "vgg16_bn")
    assert data["old"]["file"].endswith("vgg16.yaml") and data["old"]["input_shape"] == [3, 224, 224]
    assert data["budgets"] == []


# ----------------------------------------------------------------------------- every kind of change
SMALL = ("data/diff/old.yaml", "data/diff/new.yaml")


@pytest.fixture
def in_tests(monkeypatch):
    monkeypatch.chdir(TESTS)


def test_every_kind_of_change_in_order(in_tests):
    layers = diff_json(*SMALL)["layers"]
    assert [(layer["name"], layer["change"], layer["differs"]) for layer in layers] == [
        ("c1", "same", []),
        ("act1", "changed", ["kind"]),
        ("pool1", "removed", []),  # right after the OLD layer before it
        ("c2", "changed", ["input_shape", "output_shape", "macs"]),
        ("bn2", "added", []),
        ("pool2", "changed", ["settings", "input_shape"]),  # kernel 4 on 16x32x32: the same 16x8x8
        ("drop", "changed", ["settings"]),  # p 0.5 -> 0.2: nothing counted changes, the layer does
        ("flat", "same", []),
        ("fc", "same", []),
    ]
    c2 = layers[3]
    assert c2["macs"] == {"old": 16 * 16 * 16 * 8 * 9, "new": 16 * 32 * 32 * 8 * 9, "delta": 16 * 16 * 16 * 8 * 9 * 3}
    assert c2["output_shape"] == {"old": [16, 16, 16], "new": [16, 32, 32]}


def test_markdown_for_a_pull_request_matches_golden(request, in_tests):
    result = invoke("diff", *SMALL, "--format", "markdown", "--fail-on", "macs+100%", "--fail-on", "params+1K")
    assert result.exit_code == 1
    golden = GOLDEN / "diff_small.md"
    if request.config.getoption("--update-golden"):
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text()


def test_table_lists_the_layers_that_differ_and_all_with_the_flag(in_tests):
    shown = invoke("diff", *SMALL).stdout
    assert "pool1" in shown and "bn2" in shown and "│ c1 " not in shown
    assert "1 layer added, 1 removed, 4 changed, 3 the same" in shown
    assert "MACs: 526,336 → 1,411,072 (+884,736, +168.1%)" in shown
    assert "│ same    │ c1 " in invoke("diff", *SMALL, "--all").stdout


def test_markdown_of_identical_specs_says_so():
    shown = invoke("diff", "lenet5", "lenet5", "--format", "markdown").stdout
    assert "0 layers added, 0 removed, 0 changed, 12 the same." in shown and "No layer differs." in shown


# ----------------------------------------------------------------------------- budgets of change
@pytest.mark.parametrize("budget, code", [
    ("params+86%", 1), ("params+87%", 0),  # 10,115,584 / 11,699,112 = 86.46%
    ("params+10115583", 1), ("params+10115584", 0),  # at the limit is within it
    ("params+10.2M", 0), ("macs+1.8G", 1), ("macs+1.9G", 0),
    ("memory+50%", 1), ("memory+100%", 0),
    ("params-1%", 0),  # bounds shrinking only: growth never exceeds it
], ids=lambda value: str(value))
def test_fail_on_both_sides_of_the_threshold(budget, code):
    result = invoke("diff", "resnet18", "resnet34", "--format", "json", "--fail-on", budget)
    assert result.exit_code == code, result.output
    [checked] = json.loads(result.stdout)["budgets"]
    assert (checked["budget"], checked["exceeded"]) == (budget, code == 1)
    assert result.stderr.count("\n") == code  # one line per exceeded budget


def test_fail_on_says_which_budget_and_by_how_much():
    result = invoke("diff", "resnet18", "resnet34", "--format", "json", "--fail-on", "params+10%",
                    "--fail-on", "macs+1G", "--fail-on", "memory+100%", "--fail-on", "memory+2MiB")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "cnncalc diff: params+10% exceeded: params grew by 10,115,584 (+86.5%), from 11,699,112 to 21,814,696: "
        "8,945,672.8 more than the 1,169,911.2 (10% of 11,699,112) it allows",
        "cnncalc diff: macs+1G exceeded: MACs grew by 1,849,688,064 (+102.0%), from 1,814,073,344 to 3,663,761,408: "
        "849,688,064 more than the 1,000,000,000 it allows",
        "cnncalc diff: memory+2MiB exceeded: memory (activation bytes) grew by 17,561,600 B (+53.3%), from "
        "32,923,552 B to 50,485,152 B: 15,464,448 B more than the 2,097,152 B it allows",
    ]


def test_fail_on_decrease():
    result = invoke("diff", "resnet34", "resnet18", "--format", "json", "--fail-on", "params-40%")
    assert result.exit_code == 1  # 46.4% fewer
    assert result.stderr.startswith("cnncalc diff: params-40% exceeded: params shrank by 10,115,584 (-46.4%)")
    assert invoke("diff", "resnet34", "resnet18", "--format", "json", "--fail-on", "params-50%").exit_code == 0


def test_budget_arithmetic_is_exact():
    budget = parse_budget("params+10%")
    assert budget.excess(Change(1000, 1100)) is None and budget.excess(Change(1000, 1101)) is not None
    assert parse_budget("memory+2MiB") == ChangeBudget("memory+2MiB", "memory", "+", 2 * 2**20, False)
    grown_from_nothing = parse_budget("params+50%").excess(Change(0, 1))
    assert grown_from_nothing.startswith("params+50% exceeded: params grew by 1, from 0 to 1")


@pytest.mark.parametrize("budget, message", [
    ("params", "cannot read 'params': write QUANTITY+LIMIT or QUANTITY-LIMIT"),
    ("flops+10%", "unknown quantity 'flops' in 'flops+10%'; choose from params, macs, memory"),
    ("params+lots", "cannot read 'lots' as a number"),
])
def test_bad_budgets_are_unusable_input(budget, message):
    result = invoke("diff", "lenet5", "lenet5", "--fail-on", budget)
    assert result.exit_code == 2 and message in result.output


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("old, new, line", [
    ("lenet5", "nosuchnet", "nosuchnet: error: no such file, and no zoo model or example is called `nosuchnet`"),
    ("missing.yaml", "lenet5", "missing.yaml: error: no such file"),
    ("git:HEAD", "lenet5", "git:HEAD: error: write git:REV:PATH, e.g. git:HEAD~1:specs/net.yaml"),
    ("lenet5", "git:HEAD:net.onnx", "git:HEAD:net.onnx: error: ONNX files are not read from git"),
])
def test_bad_input_is_one_line_and_exit_2(old, new, line):
    result = invoke("diff", old, new)
    assert result.exit_code == 2
    assert result.stdout == "" and result.stderr.startswith(line) and result.stderr.count("\n") == 1


def test_a_layer_that_does_not_fit_is_unusable(tmp_path):
    spec = tmp_path / "misfit.yaml"
    spec.write_text("input: [3, 8, 8]\nlayers:\n  - conv: {filters: 4, kernel: 3, stride: 2, name: a}\n")
    result = invoke("diff", "lenet5", str(spec), "--rounding", "strict")
    assert result.exit_code == 2
    assert result.stderr == (f"{spec}:3: layers[0] (a): error: (8 - 3)/2 + 1 = 3.50 is not whole: a 3x3 filter at "
                             "stride 2 does not fit an 8x8 input (1 row and 1 column unused)\n")


# ----------------------------------------------------------------------------- git revisions
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def repository(tmp_path, monkeypatch):
    """A repository with two commits of net.yaml (the second adds a layer) and a third change
    left uncommitted."""
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    spec = tmp_path / "specs" / "net.yaml"
    spec.parent.mkdir()
    git("init", "-q")
    spec.write_text("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8, kernel: 3, name: c1}\n")
    git("add", ".")
    git("commit", "-q", "-m", "one")
    spec.write_text("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8, kernel: 3, name: c1}\n"
                    "  - conv: {filters: 16, kernel: 3, name: c2}\n")
    git("commit", "-q", "-am", "two")
    spec.write_text("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8, kernel: 3, name: c1}\n"
                    "  - conv: {filters: 32, kernel: 3, name: c2}\n")
    monkeypatch.chdir(tmp_path / "specs")  # git's own rules: REV:path from the top, REV:./path from here
    return tmp_path


@needs_git
def test_git_revisions(repository):
    data = diff_json("git:HEAD~1:specs/net.yaml", "git:HEAD:./net.yaml")
    assert [(layer["name"], layer["change"]) for layer in data["layers"]] == [("c1", "same"), ("c2", "added")]
    assert data["totals"]["params"] == {"old": 224, "new": 224 + 16 * (8 * 9 + 1), "delta": 16 * 73}
    assert data["old"]["source"] == "git:HEAD~1:specs/net.yaml" and data["old"]["name"] == "net"
    against_work_tree = diff_json("git:HEAD:specs/net.yaml", "net.yaml")
    assert [(layer["name"], layer["change"]) for layer in against_work_tree["layers"]] == [("c1", "same"),
                                                                                         ("c2", "changed")]


@needs_git
@pytest.mark.parametrize("source, reason", [
    ("git:nosuchrev:specs/net.yaml", "`git show nosuchrev:specs/net.yaml` failed: fatal: invalid object name "
                                     "'nosuchrev'."),
    ("git:HEAD:specs/gone.yaml", "`git show HEAD:specs/gone.yaml` failed: fatal: path 'specs/gone.yaml' does not "
                                 "exist in 'HEAD'"),
])
def test_git_errors_name_the_revision_and_path(repository, source, reason):
    result = invoke("diff", source, "net.yaml")
    assert result.exit_code == 2
    assert result.stderr == f"{source}: error: {reason}\n"


@needs_git
def test_git_spec_errors_are_located_in_the_revision(repository):
    (repository / "specs" / "net.yaml").write_text("input: [3, 32, 32]\nlayers:\n  - conv: {filters: 8}\n")
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-am", "bad"],
                   cwd=repository, check=True)
    result = invoke("diff", "git:HEAD:specs/net.yaml", "net.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("git:HEAD:specs/net.yaml:3: layers[0]")


def test_git_outside_a_repository_and_without_git(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path either
    if shutil.which("git"):
        outside = invoke("diff", "git:HEAD:net.yaml", "lenet5")
        assert outside.exit_code == 2 and "fatal: not a git repository" in outside.stderr
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    missing = invoke("diff", "git:HEAD:net.yaml", "lenet5")
    assert missing.exit_code == 2
    assert missing.stderr == ("git:HEAD:net.yaml: error: git is not installed (or not on PATH); it is needed to read "
                              "git:REV:PATH\n")


# ----------------------------------------------------------------------------- pure parts
def test_merged_order_keeps_removed_layers_where_they_were():
    assert merged_order(["a", "x", "b", "y", "c"], ["a", "b", "n", "c"]) == ["a", "x", "b", "y", "n", "c"]
    assert merged_order(["x", "a"], ["n", "a"]) == ["x", "n", "a"]
    assert merged_order([], ["a"]) == ["a"] and merged_order(["a"], []) == ["a"]


def test_diff_imports_nothing_heavy():
    code = ("import sys; from cnncalc.cli import main\ntry:\n    main(['diff', 'lenet5', 'lenet5_original', "
            "'--format', 'json'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'torch'}), file=sys.stderr)")
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
