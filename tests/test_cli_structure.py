"""The shape of the command line: a thin cli.py (group, registry, main) that loads a command's
module only when it runs; commands that never import cli.py back; only click command functions
exit; shared options defined once from the tables the analysis uses; no output cache."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cnncalc.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cnncalc"
COMMAND_MODULES = sorted((PACKAGE / "commands").glob("*.py"))


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def command(name: str) -> click.Command:
    return cli.get_command(click.Context(cli), name)


def option(name: str, opt: str) -> click.Option:
    [found] = [p for p in command(name).params if opt in getattr(p, "opts", ())]
    return found


# ----------------------------------------------------------------------------- structure
@pytest.mark.parametrize("path", COMMAND_MODULES, ids=lambda p: p.name)
def test_no_command_module_imports_cli(path):
    for node in ast.walk(parsed(path)):
        if isinstance(node, ast.ImportFrom):
            assert not (node.level == 2 and node.module == "cli"), f"{path.name}:{node.lineno} imports ..cli"
            assert node.module != "cnncalc.cli", f"{path.name}:{node.lineno} imports cnncalc.cli"


def _is_click_command(function: ast.FunctionDef) -> bool:
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "command":
            return True
    return False


def _is_exit(node: ast.AST) -> bool:
    """`fail(...)` or `sys.exit(...)`."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "fail") or (
        isinstance(func, ast.Attribute) and func.attr == "exit" and getattr(func.value, "id", "") == "sys")


def exits_outside_commands(tree: ast.Module, exempt: str | None = None) -> list[int]:
    """Lines of exits that are not directly in a click command function (or in ``exempt``)."""
    found = []

    def visit(node: ast.AST, allowed: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, _is_click_command(child) or child.name == exempt)
                continue
            if _is_exit(child) and not allowed:
                found.append(child.lineno)
            visit(child, allowed and not isinstance(child, ast.Lambda))

    visit(tree, False)
    return found


def test_only_click_command_functions_exit():
    """Helpers raise CnnCalcError; `fail` and `sys.exit` appear only in command functions (and in
    cli.main, the entry point, and in `fail` itself)."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in PACKAGE.rglob("*.py") if path != PACKAGE / "cli.py"
             for line in exits_outside_commands(parsed(path), "fail" if path.name == "support.py" else None)]
    assert found == []


def test_the_checker_sees_an_exit_in_a_helper():
    source = ("import sys\nimport click\n\n@click.command()\ndef ok():\n    sys.exit(1)\n\n"
              "def helper():\n    fail(None)\n\n@click.command()\ndef nested():\n    def inner():\n"
              "        sys.exit(2)\n")
    assert exits_outside_commands(ast.parse(source)) == [9, 14]


def test_help_lists_every_command_with_its_short_help():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = dict(line.split(None, 1) for line in result.output.split("Commands:")[1].splitlines() if line.strip())
    assert list(listed) == list(COMMANDS)
    for name, shown in listed.items():
        assert shown.startswith(command(name).get_short_help_str(limit=200)[:30])  # the docstring's first line


def _loaded_commands(*argv: str) -> list[str]:
    """The cnncalc.commands modules loaded by `import cnncalc.cli`, then running ``argv``."""
    run = f"try:\n    cli.main({list(argv)!r}, standalone_mode=False)\nexcept SystemExit:\n    pass\n"
    code = ("import json, sys\nfrom cnncalc.cli import cli\n" + (run if argv else "")
            + "print(json.dumps(sorted(m for m in sys.modules if m.startswith('cnncalc.commands.'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_commands_are_imported_only_when_they_run():
    assert _loaded_commands() == ["cnncalc.commands.support"]
    assert _loaded_commands("table", "lenet5", "--format", "json") == ["cnncalc.commands.support",
                                                                      "cnncalc.commands.table"]
    assert _loaded_commands("solve", "conv", "--input", "32", "--output", "16", "--kernel", "4", "--stride", "2",
                            "--find", "padding") == ["cnncalc.commands.solve", "cnncalc.commands.support"]


def test_solve_loads_no_pydantic():
    code = ("import sys\nfrom cnncalc.cli import cli\ntry:\n    cli.main(['solve', 'conv', '--input', '32', "
            "'--output', '16', '--kernel', '4', '--find', 'stride'], standalone_mode=False)\nexcept SystemExit:\n"
            "    pass\nprint('pydantic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr


# ----------------------------------------------------------------------------- shared options
ROUNDING_DEFAULTS = {"table": None, "layer": "strict", "explain": None, "check": None, "validate": None,
                     "solve": "floor", "diff": None, "draw": None, "fit": None}


@pytest.mark.parametrize("name", COMMANDS)
def test_shared_options_come_from_the_analysis_tables(name):
    from cnncalc.notation import LAYOUT_KEYS
    from cnncalc.report import DTYPE_BYTES, OPTIMIZER_COPIES
    from cnncalc.spec.build import ROUNDINGS

    params = {opt: p for p in command(name).params for opt in getattr(p, "opts", ())}
    if "--dtype" in params:
        assert set(params["--dtype"].type.choices) == set(DTYPE_BYTES) and params["--dtype"].default == "float32"
    if "--optimizer" in params:
        assert set(params["--optimizer"].type.choices) == set(OPTIMIZER_COPIES)
    if "--layout" in params:
        assert tuple(params["--layout"].type.choices) == LAYOUT_KEYS and params["--layout"].default is None
    if "--batch" in params:
        assert params["--batch"].default == 1
    if "--rounding" in params:
        rounding = params["--rounding"]
        assert rounding.default == ROUNDING_DEFAULTS[name]
        allowed = ("strict", "floor") if name == "solve" else ROUNDINGS
        assert sorted(rounding.type.choices) == sorted(allowed) and set(allowed) <= set(ROUNDINGS)
    else:
        assert name not in ROUNDING_DEFAULTS


@pytest.mark.parametrize("name, formats, default", [
    ("table", ("table", "json", "csv", "markdown"), "table"),
    ("check", ("table", "json", "markdown", "csv"), "table"),
    ("layer", ("table", "json"), "table"),
    ("verify", ("table", "json"), "table"),
    ("models", ("table", "json", "markdown"), "table"),
    ("run", ("text", "json"), "text"),
    ("solve", ("text", "json"), "text"),
    ("validate", ("text", "json", "github", "sarif", "junit"), "text"),
])
def test_each_command_keeps_its_formats(name, formats, default):
    fmt = option(name, "--format")
    assert (tuple(fmt.type.choices), fmt.default) == (formats, default)


def test_the_options_are_defined_once():
    """No command module spells out a dtype, rounding or optimizer list of its own."""
    for path in COMMAND_MODULES:
        text = path.read_text(encoding="utf-8")
        for literal in ('"bfloat16"', '"momentum"', '["strict", "floor", "ceil"]', '["floor", "ceil", "strict"]'):
            assert literal not in text, f"{path.name} writes {literal}"


@pytest.mark.parametrize("name", ["table", "verify", "export", "import"])
def test_input_is_one_option_everywhere(name):
    assert option(name, "--input").name == "input_shape"


def test_table_input_replaces_the_spec_input_in_its_layout():
    runner = CliRunner()
    wide = runner.invoke(cli, ["table", "resnet18", "--input", "3x320x320", "--format", "json"])
    assert wide.exit_code == 0, wide.output
    data = json.loads(wide.stdout)
    assert data["input_shape"] == [3, 320, 320] and data["layers"][-1]["output_shape"] == [1000]
    plain = json.loads(runner.invoke(cli, ["table", "resnet18", "--format", "json"]).stdout)
    assert data["totals"]["params"] == plain["totals"]["params"]
    assert data["layers"][0]["macs"] * 224 * 224 == plain["layers"][0]["macs"] * 320 * 320
    bad = runner.invoke(cli, ["table", "resnet18", "--input", "3xbig"])
    assert bad.exit_code == 2 and bad.stderr.startswith("--input: error:")


# ----------------------------------------------------------------------------- no cache
def test_there_is_no_output_cache(tmp_path):
    """The issue: `TTY_COMPATIBLE=1 cnncalc table lenet5 | cat`, then the same without the variable,
    wrote ANSI escapes into the pipe (a replayed run). Every run computes, and nothing is stored."""
    with pytest.raises(ImportError):
        __import__("cnncalc.cache")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg"), "CNNCALC_CACHE_DIR": str(tmp_path / "cache"),
           "HOME": str(tmp_path / "home")}
    env.pop("CNNCALC_NO_CACHE", None)
    env.pop("NO_COLOR", None)
    env.pop("FORCE_COLOR", None)
    command = [sys.executable, "-m", "cnncalc", "table", "lenet5"]
    coloured = subprocess.run(command, capture_output=True, text=True, env={**env, "TTY_COMPATIBLE": "1"},
                              cwd=ROOT, timeout=120)
    plain = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert coloured.returncode == plain.returncode == 0
    assert "\x1b[" in coloured.stdout  # rich honours TTY_COMPATIBLE...
    assert "\x1b[" not in plain.stdout and "LeNet-5" in plain.stdout  # ...and the next run is not a replay
    assert not any(tmp_path.rglob("*"))  # nothing written anywhere
