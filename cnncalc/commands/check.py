"""`cnncalc check`: mark answers right or wrong, or print a blank / solution answer sheet.

Only click and the standard library are imported here at module level; the analysis and rich
come in when the command runs.
"""
from __future__ import annotations

import sys

import click

from ..errors import EXIT_FINDINGS
from ..notation import LAYOUTS
from .support import batch_option, console, dtype_option, fail, format_option, layout_option, rounding_option


def _tolerance(ctx, param, value):
    if value is None:
        return None
    from ..check import parse_tolerance

    try:
        return parse_tolerance(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _sheet_columns(ctx, param, value: str):
    from ..check import QUANTITIES, canonical_quantity
    from ..errors import SpecError

    try:
        return tuple(canonical_quantity(key, None) for key in value.split(",") if key.strip())
    except SpecError as exc:
        raise click.BadParameter(f"{exc.message}; columns: {', '.join(QUANTITIES)}") from None


@click.command()
@click.argument("spec")
@click.option("--answers", metavar="FILE",
              help="Answers to mark: YAML/JSON/TOML (layer: {output: .., params: ..}) or CSV (layer,output,...). "
                   "Default: the spec's `expect` entries.")
@format_option("table", "json", "markdown", "csv")
@rounding_option(help="What a size that is not whole means: strict (the lecture) is an error. "
                      "Default: the spec's `rounding`, else strict.")
@layout_option("How shapes are shown and first read: chw (C x H x W), hwc (H x W x C), whd (W x H x D) "
               "(default: the spec's layout). Answers in another unambiguous notation are right too.")
@click.option("--muls-with-bias", is_flag=True,
              help="`muls` answers count the bias too (the lecture's (F*F*D1 + 1)*K*W2*H2); default: MACs.")
@click.option("--tolerance", callback=_tolerance, metavar="PCT",
              help="Allowed relative error of rounded answers (138M, 117.6K, 1.2e6), e.g. 2% [default: 0.5%]. "
                   "Whole numbers written out are compared exactly.")
@click.option("--k", "k", type=click.Choice(["1000", "1024"]), default="1000", show_default=True,
              help="What K means in answers (GoogLeNet's table: 1024); M, G stay 10^6, 10^9. "
                   "Ki, Mi, Gi are always powers of 1024.")
@batch_option()
@dtype_option(help="Element type for `memory` answers.")
@click.option("--sheet", type=click.Choice(["blank", "solution"]),
              help="Print an answer sheet instead of marking answers.")
@click.option("--columns", "sheet_columns", default="output,params,muls", show_default=True, metavar="KEYS",
              callback=_sheet_columns, help="The sheet's quantities, comma-separated.")
@click.option("--depth", type=click.IntRange(min=0),
              help="Sheet: list layers nested at most this deep (0: top-level entries; composites as a whole).")
@click.option("--output", "output_file", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
def check(spec, answers, fmt, rounding, layout, muls_with_bias, tolerance, k, batch, dtype, sheet,
          sheet_columns, depth, output_file):
    """Mark answers about SPEC (a file or a zoo model name) right or wrong; exit 1 if any is wrong.

    \b
    cnncalc check lenet5 --answers answers.yaml --layout hwc
    cnncalc check homework.yaml --sheet blank --format markdown --output sheet.md
    """
    from ..api import load_spec
    from ..check import Conventions, analyze_blocks
    from ..errors import CnnCalcError
    from ..output import refuse_to_overwrite

    if sheet and answers:
        raise click.UsageError("--sheet prints a sheet; it takes no --answers")
    try:
        loaded = load_spec(spec, layout)
        if output_file:
            refuse_to_overwrite(output_file, [loaded.file, answers])
        conventions = Conventions(loaded.layout, muls_with_bias, tolerance, int(k))
        analysis = analyze_blocks(loaded, rounding or loaded.rounding or "strict", batch, dtype)
        if analysis.error:
            raise analysis.error
        if sheet:
            emit(render_sheet(analysis, conventions, sheet == "solution", sheet_columns, depth, fmt), output_file)
            return
        results = mark(loaded, analysis, answers, conventions)
    except CnnCalcError as exc:
        fail(exc)
    emit(render_results(loaded, results, conventions, fmt), output_file)
    if any(not result.correct for result in results):
        sys.exit(EXIT_FINDINGS)


def mark(spec, analysis, answers_file: str | None, conventions):
    from ..check import answers_from_spec, judge_all, read_answers
    from ..errors import Location, SpecError

    if answers_file:
        answers = read_answers(answers_file)
    else:
        answers = answers_from_spec(spec, analysis.blocks)
    if not answers:
        where = answers_file or spec.file
        hint = "it has no answers" if answers_file else \
            "the spec has no `expect` entries; pass --answers FILE, or print a sheet with --sheet blank"
        raise SpecError(f"nothing to check: {hint}", Location(where))
    return judge_all(answers, analysis.blocks, conventions)


# ----------------------------------------------------------------------------- output files
def emit(rendered, output_file: str | None) -> None:
    """``rendered`` is text, or a rich renderable (the table format)."""
    from ..output import write_atomically

    if output_file:
        text = rendered if isinstance(rendered, str) else _plain_text(rendered)
        write_atomically(output_file, text)
    elif isinstance(rendered, str):
        click.echo(rendered, nl=False)
    else:
        console().print(rendered, soft_wrap=True)


def _plain_text(renderable) -> str:
    import io

    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=250, color_system=None, soft_wrap=True).print(renderable)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- rendering results
HEADERS = ("layer", "quantity", "answer", "correct value", "verdict", "formula")


def _written(result) -> str:
    return "" if result.answer.written is None else str(result.answer.written)


def _result_cells(result) -> list[str]:
    return [result.answer.layer, result.quantity or "—", _written(result),
            result.expected_text or "—", "right" if result.correct else "wrong", _formula_cell(result)]


def _formula_cell(result, separator: str = " — ") -> str:
    """The formula, then how the answer was read or the convention it is right in."""
    formula = result.formula or result.message
    return f"{formula}{separator}{result.note}" if result.note else formula


def _summary(results, conventions) -> str:
    right = sum(r.correct for r in results)
    muls = "MACs + bias" if conventions.muls_with_bias else "MACs (bias excluded)"
    tolerance = float(conventions.rounded_tolerance) * 100
    return (f"{right} right, {len(results) - right} wrong. Conventions: shapes {LAYOUTS[conventions.layout].words}; "
            f"muls = {muls}; K = {conventions.k}; rounded answers within {tolerance:g}%.")


def render_results(spec, results, conventions, fmt: str):
    if fmt == "json":
        from ..render.json_layout import json_text

        right = sum(r.correct for r in results)
        data = {"spec": spec.file, "name": spec.name, "conventions": conventions.to_dict(),
                "results": [r.to_dict() for r in results], "right": right, "wrong": len(results) - right}
        return json_text(data)
    if fmt == "csv":
        return _csv(["layer", "quantity", "answer", "expected", "correct", "formula"],
                    [[r.answer.layer, r.quantity or "", _written(r), r.expected_text, str(r.correct).lower(),
                      _formula_cell(r)] for r in results])
    rows = [_result_cells(r) for r in results]
    if fmt == "markdown":
        lines = [f"## Check: {spec.name}", "", *_markdown_table(HEADERS, rows), "", _summary(results, conventions)]
        return "\n".join(lines) + "\n"
    return _rich_results(spec, results, rows, conventions)


def _rich_results(spec, results, rows, conventions):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{spec.name}: {sum(r.correct for r in results)} of {len(results)} right")
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    for result, cells in zip(results, rows):
        verdict = Text("✓ right", style="green") if result.correct else Text("✗ wrong", style="bold red")
        table.add_row(*cells[:4], verdict, _formula_cell(result, "\n"))
    return Group(table, Text(_summary(results, conventions)))


# ----------------------------------------------------------------------------- rendering sheets
def render_sheet(analysis, conventions, solution: bool, columns, depth, fmt: str):
    from ..check import QUANTITIES, make_sheet

    sheet = make_sheet(analysis, conventions, solution, columns, depth)
    if fmt == "json":
        from ..render.json_layout import json_text

        return json_text(sheet.to_dict())
    if fmt == "csv":  # fill it in and pass it back with --answers
        cells = [[name, *(_csv_value(values.get(key), texts[key]) for key in columns)]
                 for name, values, texts in sheet.rows]
        return _csv(["layer", *columns], cells)
    headers = ["layer", *(QUANTITIES[key].label for key in columns)]
    rows = [[name, *(texts[key] for key in columns)] for name, _values, texts in sheet.rows]
    title = f"{sheet.name}: {'solution' if solution else 'answer sheet'}"
    notes = _sheet_notes(analysis.report, conventions, columns)
    if fmt == "markdown":
        numeric = [False, *(QUANTITIES[key].kind in ("count", "bytes") for key in columns)]
        lines = [f"## {title}", "", notes, "", *_markdown_table(headers, rows, numeric)]
        return "\n".join(lines) + "\n"
    return _rich_sheet(title, headers, rows, notes)


def _sheet_notes(report, conventions, columns) -> str:
    from ..check import shape_text

    notes = [f"Input: {shape_text(report.input_shape, conventions.layout)}, "
             f"shapes {LAYOUTS[conventions.layout].words}."]
    if "muls" in columns:
        notes.append("MULs: multiplications " + ("including one per output for the bias."
                                                  if conventions.muls_with_bias else "without the bias (MACs)."))
    if "memory" in columns:
        notes.append(f"Memory: bytes of the output at {report.dtype}.")
    return " ".join(notes)


def _csv_value(value, text: str) -> str:
    """Exact and plain, so a filled-in sheet reads back as an answers file."""
    if value is None:
        return ""
    return text if isinstance(value, list) else str(value)


def _rich_sheet(title, headers, rows, notes):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_lines=False)
    for index, header in enumerate(headers):
        table.add_column(header, justify="left" if index == 0 else "right", min_width=0 if index == 0 else 10)
    for row in rows:
        table.add_row(*row)
    return Group(table, Text(notes))


# ----------------------------------------------------------------------------- text helpers
def _markdown_table(headers, rows, numeric=None) -> list[str]:
    numeric = numeric or [False] * len(headers)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
    return lines


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _csv(header, rows) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
