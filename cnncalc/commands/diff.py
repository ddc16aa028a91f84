"""`cnncalc diff OLD NEW`: layers added, removed and changed between two specs, and the change in
params, MACs and memory, for a pull request. OLD and NEW are files, zoo names or `git:REV:path`
(read with `git show`). Only click at module level.
"""
from __future__ import annotations

import sys

import click

from ..errors import EXIT_FINDINGS, CnnCalcError, Location, SpecError
from .support import batch_option, console, dtype_option, fail, format_option, layout_option, rounding_option

GIT_PREFIX = "git:"
GIT_TIMEOUT_S = 60


def read_budgets(ctx, param, values):
    from ..diff import parse_budget

    try:
        return [parse_budget(value) for value in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("old")
@click.argument("new")
@format_option("table", "markdown", "json",
               help="table: for the terminal; markdown: a pull-request comment; json: every layer, for tools.")
@click.option("--fail-on", "budgets", multiple=True, callback=read_budgets, metavar="BUDGET",
              help="Exit 1 when a total changes by more: params+10% (growth relative to OLD), macs+1G (absolute), "
                   "memory-5% (shrinking). Repeatable; quantities params, macs, memory.")
@click.option("--all", "every_layer", is_flag=True, help="Table and markdown: list the layers that are the same too.")
@rounding_option(help="What a size that is not whole means (both specs): floor/ceil, or strict (an error). "
                      "Default: each spec's `rounding`, else floor.")
@batch_option(help="Batch size (MACs and memory are for the batch).")
@dtype_option(help="Element type for memory (activation bytes).")
@layout_option("Show shapes as chw, hwc or whd (default: NEW's layout).")
def diff(old, new, fmt, budgets, every_layer, rounding, batch, dtype, layout):
    """Compare OLD and NEW (spec files, zoo names, or git:REV:path read with `git show`).

    Layers are matched by name: added, removed, changed or the same, with the change in output
    shape, params, MACs and memory per layer and in total. Exit 0, or 1 when a --fail-on budget is
    exceeded, 2 for unusable input.
    """
    from ..diff import diff_analyses

    try:
        old_analysis = analysed(old, layout, rounding, batch, dtype)
        new_analysis = analysed(new, layout, rounding, batch, dtype)
        result = diff_analyses(old_analysis, new_analysis, old, new)
    except CnnCalcError as exc:
        fail(exc)
    shown_layout = layout or result.new.layout
    exceeded = [message for budget in budgets
                if (message := budget.excess(result.total(budget.quantity))) is not None]
    if fmt == "json":
        from ..render.json_layout import json_text

        data = result.to_dict()
        data["budgets"] = [budget.to_dict(result.total(budget.quantity)) for budget in budgets]
        click.echo(json_text(data), nl=False)
    elif fmt == "markdown":
        from ..render.diff_view import to_markdown

        click.echo(to_markdown(result, shown_layout, exceeded, every_layer), nl=False)
    else:
        from ..render.diff_view import print_diff

        print_diff(result, console(), shown_layout, every_layer)
    for message in exceeded:
        click.echo(f"cnncalc diff: {message}", err=True)
    if exceeded:
        sys.exit(EXIT_FINDINGS)


def analysed(source: str, layout, rounding, batch: int, dtype: str):
    """The engine's Analysis of one side; a layer that fails is an error (exit 2): a diff of half
    a network would be wrong in total."""
    from ..api import analyze_spec, load_spec

    spec = git_spec(source, layout) if source.startswith(GIT_PREFIX) else load_spec(source, layout)
    return analyze_spec(spec, rounding=rounding, batch=batch, dtype=dtype)


def git_spec(source: str, layout):
    """`git:REV:path`: the spec as it is at revision REV, read with `git show REV:path` in the
    current directory's repository (git's rules: `path` from the repository root, `./path` from
    here). Errors name the source as written."""
    import subprocess
    from pathlib import PurePosixPath

    from ..spec.build import build_spec
    from ..spec.loader import MAX_FILE_BYTES, load_bytes

    where = Location(file=source)
    revision, _, path = source[len(GIT_PREFIX):].partition(":")
    if not revision or not path:
        raise SpecError("write git:REV:PATH, e.g. git:HEAD~1:specs/net.yaml", where)
    suffix = PurePosixPath(path).suffix.lower()
    if suffix == ".onnx":
        raise SpecError("ONNX files are not read from git; check the file out and give its path", where)
    try:
        done = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise SpecError("git is not installed (or not on PATH); it is needed to read git:REV:PATH", where) from None
    except subprocess.TimeoutExpired:
        raise SpecError(f"`git show {revision}:{path}` took more than {GIT_TIMEOUT_S} s", where) from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = said[0] if said else f"exit status {done.returncode}"
        raise SpecError(f"`git show {revision}:{path}` failed: {reason}", where)
    if len(done.stdout) > MAX_FILE_BYTES:
        raise SpecError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB; refusing to read it", where)
    fmt = {".json": "json", ".toml": "toml"}.get(suffix, "yaml")
    data, source_map = load_bytes(done.stdout, source, fmt)
    return build_spec(data, source_map, default_name=PurePosixPath(path).stem, layout=layout)
