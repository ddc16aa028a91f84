"""`cnncalc compare SPEC`: every other tool's params and operation count, reproduced from the
analysis, side by side for the whole network and per layer kind, with one line per difference
saying what causes it and how much it adds; and `table --compat TOOL`'s rendering.

Only click and the conventions' names at module level; the analysis and the conventions' rules
come in when the command runs.
"""
from __future__ import annotations

import click

from ..conventions import NAMES
from .support import fail, format_option, layout_option, print_warnings


@click.command()
@click.argument("spec")
@format_option("table", "json", "markdown")
@click.option("--convention", "names", multiple=True, type=click.Choice(NAMES), metavar="NAME",
              help="Show only this convention (repeatable; default: all): " + ", ".join(NAMES) + ".")
@layout_option("How shape strings in the spec are read where it declares no layout.")
def compare(spec, fmt, names, layout):
    """Params and operations of SPEC as every tool counts them, and why they differ."""
    from ..api import analyze_spec, load_spec
    from ..errors import CnnCalcError

    try:
        analysis = analyze_spec(load_spec(spec, layout), batch=1)
        click.echo(comparison_output(analysis, list(names) or None, fmt), nl=False)
        print_warnings(analysis.report)
    except CnnCalcError as exc:
        fail(exc)


def comparison_output(analysis, names, fmt: str) -> str:
    from ..conventions import compare as compare_conventions
    from ..conventions.render import comparison_text

    comparison = compare_conventions(analysis, names)
    if fmt == "json":
        from ..render.json_layout import json_text

        return json_text(comparison.to_dict())
    return comparison_text(comparison, markdown=fmt == "markdown")


def compat_output(analysis, name: str, fmt: str, layout: str) -> str:
    """`table --compat NAME`: the report's rows in that convention (its column names, its counts)."""
    from ..conventions import apply, by_name
    from ..conventions.exported import rows
    from ..conventions.render import compat_text
    from ..notation import shape_text

    result = apply(by_name(name), rows(analysis))
    return compat_text(analysis.report, result, fmt, lambda shape: shape_text(shape, layout))


def write_compat(analysis, name: str, fmt: str, output_file, layout, batch: int, others: bool) -> None:
    """`table --compat NAME`: the table in that convention to stdout or ``output_file``, then notes
    and warnings on stderr."""
    from ..conventions import NAMES

    if name not in NAMES:
        raise click.BadParameter(f"{name!r} is no convention; choose from {', '.join(NAMES)}", param_hint="--compat")
    if batch != 1:
        raise click.BadParameter("a tool's counts are shown at batch 1, as the tools are run", param_hint="--batch")
    if others:
        raise click.BadParameter("shows the tool's own columns: leave out --columns, --depth, --explain and --device",
                                 param_hint="--compat")
    text = compat_output(analysis, name, fmt, layout or analysis.report.layout)
    if output_file:
        from ..output import write_atomically

        write_atomically(output_file, text)
    else:
        click.echo(text, nl=False)
    print_warnings(analysis.report)
