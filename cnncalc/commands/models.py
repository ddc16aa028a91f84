"""`cnncalc models`: the shipped model zoo, one line per spec (input, params, MACs, description).

Plain text by default (no rich: the whole zoo is analysed and listed in well under a second),
or JSON / Markdown for machines and documents.
"""
from __future__ import annotations

import click

from .support import fail, format_option

HEADERS = ("name", "input", "params", "trainable", "MACs", "description")
NUMERIC = (False, False, True, True, True, False)


def zoo_entries() -> tuple[list[dict], list]:
    """Every zoo spec analysed at batch 1: the JSON objects, and the errors of specs that
    failed to load or analyse."""
    from .. import zoo
    from ..api import analyze, load_spec
    from ..errors import CnnCalcError

    entries, errors = [], []
    for name in zoo.model_names():
        path = zoo.path_of(name)
        try:
            spec = load_spec(path)
            report = analyze(spec)
        except CnnCalcError as exc:
            errors.append(exc)
            continue
        entries.append({
            "name": name,
            "description": spec.description,
            "input_shape": list(report.input_shape),
            "params": report.totals.params,
            "trainable_params": report.totals.trainable_params,
            "macs": report.totals.macs,
            "file": str(path),
        })
    return entries, errors


def _cells(entry: dict, exact: bool) -> list[str]:
    from ..render.columns import shape_text
    from ..units import compact, thousands

    return [
        entry["name"],
        shape_text(entry["input_shape"], "chw"),  # one layout for the whole column: [C, *spatial]
        thousands(entry["params"]),
        thousands(entry["trainable_params"]),
        thousands(entry["macs"]) if exact else compact(entry["macs"]),
        entry["description"] or "",
    ]


def text_table(entries: list[dict]) -> str:
    """Aligned columns, numbers right-aligned; params exact, MACs compact (15.5G). params
    include batch-norm running statistics; trainable is PyTorch's parameters() count."""
    rows = [list(HEADERS)] + [_cells(entry, exact=False) for entry in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]

    def line(cells):
        padded = [cell.rjust(w) if numeric else cell.ljust(w) for cell, w, numeric in zip(cells, widths, NUMERIC)]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])]) + "\n"


def markdown_table(entries: list[dict]) -> str:
    """A GitHub table with exact params and MACs."""
    lines = ["| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---:" if numeric else "---" for numeric in NUMERIC) + "|"]
    for entry in entries:
        cells = _cells(entry, exact=True)
        cells[0] = f"`{cells[0]}`"
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


@click.command()
@format_option("table", "json", "markdown")
def models(fmt):
    """List the model zoo: input size, params, MACs (batch 1) and description of every spec.

    Any name listed works wherever a SPEC is asked for: `cnncalc table vgg16`.
    """
    entries, errors = zoo_entries()
    if fmt == "json":
        from ..render.json_layout import json_text

        click.echo(json_text(entries), nl=False)
    elif fmt == "markdown":
        click.echo(markdown_table(entries), nl=False)
    else:
        click.echo(text_table(entries), nl=False)
    for error in errors[:-1]:
        click.echo(f"{error.loc}: error: {error.message}", err=True)
    if errors:
        fail(errors[-1])
