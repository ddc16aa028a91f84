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


def _sheet_columns(ctx, param, value: str | None):
    from ..check import QUANTITIES, canonical_quantity
    from ..errors import SpecError

    if value is None:
        return None
    try:
        return tuple(canonical_quantity(key, None) for key in value.split(",") if key.strip())
    except SpecError as exc:
        raise click.BadParameter(f"{exc.message}; columns: {', '.join(QUANTITIES)}") from None


@click.command()
@click.argument("spec")
@click.option("--answers", multiple=True, metavar="FILE|FOLDER|GLOB",
              help="Answers to mark: YAML/JSON/TOML (layer: {output: .., params: ..}) or CSV (layer,output,...). "
                   "Default: the spec's `expect` entries. Several files, a folder or a quoted glob "
                   "('submissions/*.csv') make a gradebook (the spec must `ask` its questions).")
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
@click.option("--columns", "sheet_columns", metavar="KEYS", callback=_sheet_columns,
              help="The sheet's quantities, comma-separated [default: the spec's `ask`, else output,params,muls].")
@click.option("--depth", type=click.IntRange(min=0),
              help="Sheet: list layers nested at most this deep (0: top-level entries; composites as a whole).")
@click.option("--output", "output_file", metavar="FILE", help="Write to FILE (atomically) instead of stdout.")
def check(spec, answers, fmt, rounding, layout, muls_with_bias, tolerance, k, batch, dtype, sheet,
          sheet_columns, depth, output_file):
    """Mark answers about SPEC (a file or a zoo model name) right or wrong; exit 1 if any is wrong.
    A spec that `ask`s questions gives points; many answers files give a gradebook (exit 0 when
    every file was marked, 1 when any could not be read).

    \b
    cnncalc check lenet5 --answers answers.yaml --layout hwc
    cnncalc check homework.yaml --sheet blank --format markdown --output sheet.md
    cnncalc check homework.yaml --answers 'submissions/*.csv' --format csv --output grades.csv
    """
    from ..api import load_spec
    from ..check import Conventions, analyze_blocks, is_many, questions_of
    from ..errors import CnnCalcError
    from ..output import refuse_to_overwrite

    if sheet and answers:
        raise click.UsageError("--sheet prints a sheet; it takes no --answers")
    try:
        loaded = load_spec(spec, layout)
        if output_file:
            refuse_to_overwrite(output_file, [loaded.file, *answers])
        conventions = Conventions(loaded.layout, muls_with_bias, tolerance, int(k))
        analysis = analyze_blocks(loaded, rounding or loaded.rounding or "strict", batch, dtype)
        if analysis.error:
            raise analysis.error
        questions = questions_of(loaded, analysis.blocks)
        if sheet:
            emit(render_sheet(analysis, conventions, sheet == "solution", sheet_columns, depth, fmt, questions),
                 output_file)
            return
        if is_many(answers):
            book = gradebook(loaded, analysis, questions, answers, conventions, output_file)
            emit(render_gradebook(book, fmt), output_file)
            sys.exit(EXIT_FINDINGS if len(book.marked) < len(book.submissions) else 0)
        answers_file = answers[0] if answers else None
        results, submission = mark(loaded, analysis, answers_file, conventions, questions)
    except CnnCalcError as exc:
        fail(exc)
    emit(render_results(loaded, results, conventions, fmt, submission), output_file)
    if any(not result.correct for result in results):
        sys.exit(EXIT_FINDINGS)


def mark(spec, analysis, answers_file: str | None, conventions, questions):
    """(results, None), or with an assignment (one result per question, then the answers to no
    question; the ``Submission`` with the points)."""
    from ..check import answers_from_spec, judge_all, mark_submission, read_answers
    from ..errors import Location, SpecError

    if answers_file:
        answers = read_answers(answers_file)
    else:
        answers = answers_from_spec(spec, analysis.blocks)
    if not answers and not (questions and answers_file):  # an assignment's empty answers file earns 0 points
        where = answers_file or spec.file
        hint = "it has no answers" if answers_file else \
            "the spec has no `expect` entries; pass --answers FILE, or print a sheet with --sheet blank"
        raise SpecError(f"nothing to check: {hint}", Location(where))
    if not questions:
        return judge_all(answers, analysis.blocks, conventions), None
    submission = mark_submission(answers_file or spec.file, answers, questions, analysis.blocks, conventions)
    return [m.shown(conventions) for m in submission.marked] + submission.extra, submission


def gradebook(spec, analysis, questions, patterns, conventions, output_file):
    from ..check import Gradebook, read_submission, submission_files
    from ..errors import Location, SpecError
    from ..output import refuse_to_overwrite

    if not questions:
        raise SpecError("a gradebook needs questions, and the spec asks none: add `ask: [output, params]` at its "
                        "top level or on layers (see the README's Classroom section)", Location(spec.file))
    files = submission_files(list(patterns), exclude=[spec.file, output_file])
    if output_file:
        refuse_to_overwrite(output_file, [str(path) for path in files])
    submissions = [read_submission(path, questions, analysis.blocks, conventions) for path in files]
    return Gradebook(spec.file, spec.name, questions, submissions, conventions)


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
            result.expected_text or "—", _verdict(result), _formula_cell(result)]


def _verdict(result) -> str:
    if result.correct:
        return "right"
    return "no answer" if result.answer.written is None and result.quantity else "wrong"


def _points_cells(submission) -> list[str] | None:
    """`2/2`, `0/3` per question (the results' order), `—` for answers to no question."""
    if submission is None:
        return None
    from ..spec.assignment import points_text

    cells = [f"{points_text(m.points)}/{points_text(m.question.points)}" for m in submission.marked]
    return cells + ["—"] * len(submission.extra)


def _with_points(headers, rows, points):
    """The points column after the verdict, when there is an assignment."""
    if points is None:
        return list(headers), rows
    return [*headers[:5], "points", *headers[5:]], [[*row[:5], cell, *row[5:]] for row, cell in zip(rows, points)]


def _formula_cell(result, separator: str = " — ") -> str:
    """The formula, then how the answer was read or the convention it is right in."""
    formula = result.formula or result.message
    return f"{formula}{separator}{result.note}" if result.note else formula


def _summary(results, conventions, submission=None) -> str:
    right = sum(r.correct for r in results)
    muls = "MACs + bias" if conventions.muls_with_bias else "MACs (bias excluded)"
    tolerance = float(conventions.rounded_tolerance) * 100
    unanswered = submission.count("unanswered") if submission else 0
    counts = f"{right} right, {len(results) - right - unanswered} wrong" + \
        (f", {unanswered} unanswered" if unanswered else "")
    return (f"{_points_summary(submission)}{counts}. Conventions: shapes {LAYOUTS[conventions.layout].words}; "
            f"muls = {muls}; K = {conventions.k}; rounded answers within {tolerance:g}%.")


def _points_summary(submission) -> str:
    if submission is None:
        return ""
    from ..check import max_points
    from ..spec.assignment import points_text

    most = max_points([m.question for m in submission.marked])
    return f"{points_text(submission.points)} of {points_text(most)} points; "


def render_results(spec, results, conventions, fmt: str, submission=None):
    points = _points_cells(submission)
    if fmt == "json":
        return _results_json(spec, results, conventions, submission)
    if fmt == "csv":
        headers, rows = _with_points(["layer", "quantity", "answer", "expected", "correct", "formula"],
                                     [[r.answer.layer, r.quantity or "", _written(r), r.expected_text,
                                       str(r.correct).lower(), _formula_cell(r)] for r in results], points)
        return _csv(headers, rows)
    headers, rows = _with_points(HEADERS, [_result_cells(r) for r in results], points)
    if fmt == "markdown":
        lines = [f"## Check: {spec.name}", "", *_markdown_table(headers, rows), "",
                 _summary(results, conventions, submission)]
        return "\n".join(lines) + "\n"
    return _rich_results(spec, results, headers, rows, conventions, submission)


def _results_json(spec, results, conventions, submission) -> str:
    from ..render.json_layout import json_text

    right = sum(r.correct for r in results)
    data = {"spec": spec.file, "name": spec.name, "conventions": conventions.to_dict(),
            "results": [r.to_dict() for r in results], "right": right, "wrong": len(results) - right}
    if submission is not None:  # an assignment: points per question and in all
        from ..check import max_points
        from ..spec.assignment import points_value

        for entry, marked in zip(data["results"], submission.marked):
            entry.update(points=points_value(marked.points), max_points=points_value(marked.question.points))
        for entry in data["results"][len(submission.marked):]:
            entry.update(points=None, max_points=None)
        data.update(points=points_value(submission.points),
                    max_points=points_value(max_points([m.question for m in submission.marked])),
                    unanswered=submission.count("unanswered"))
    return json_text(data)


def _rich_results(spec, results, headers, rows, conventions, submission=None):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{spec.name}: {sum(r.correct for r in results)} of {len(results)} right")
    for header in headers:
        table.add_column(header, overflow="fold")
    for result, cells in zip(results, rows):
        verdict = Text("✓ right", style="green") if result.correct else Text(f"✗ {_verdict(result)}", style="bold red")
        table.add_row(*cells[:4], verdict, *cells[5:-1], _formula_cell(result, "\n"))
    return Group(table, Text(_summary(results, conventions, submission)))


# ----------------------------------------------------------------------------- rendering sheets
def render_sheet(analysis, conventions, solution: bool, columns, depth, fmt: str, questions=()):
    """``columns`` None: the assignment's questions (its layers and quantities), else output,params,muls."""
    from ..check import QUANTITIES, SHEET_COLUMNS, asked_columns, make_sheet

    if columns is not None or not questions:
        questions = ()
    columns = columns or asked_columns(questions) or SHEET_COLUMNS
    sheet = make_sheet(analysis, conventions, solution, columns, depth, questions)
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
    notes = _sheet_notes(analysis.report, conventions, columns, questions)
    if fmt == "markdown":
        numeric = [False, *(QUANTITIES[key].kind in ("count", "bytes") for key in columns)]
        lines = [f"## {title}", "", notes, "", *_markdown_table(headers, rows, numeric)]
        return "\n".join(lines) + "\n"
    return _rich_sheet(title, headers, rows, notes)


def _sheet_notes(report, conventions, columns, questions=()) -> str:
    from ..check import NOT_ASKED, max_points, shape_text
    from ..spec.assignment import points_text

    notes = [f"Input: {shape_text(report.input_shape, conventions.layout)}, "
             f"shapes {LAYOUTS[conventions.layout].words}."]
    if questions:
        notes.append(f"{len(questions)} questions, {points_text(max_points(list(questions)))} points "
                     f"in all ({NOT_ASKED}: not asked).")
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


# ----------------------------------------------------------------------------- rendering gradebooks
def render_gradebook(book, fmt: str):
    """One row per submission (points per layer, total, error), then the questions most missed."""
    if fmt == "json":
        from ..render.json_layout import json_text

        return json_text(book.to_dict())
    headers, rows = _gradebook_rows(book, fmt)
    if fmt == "csv":
        return _csv(headers, rows)
    missed_headers, missed = _missed_rows(book)
    if fmt == "markdown":
        lines = [f"## Gradebook: {book.name}", "", _gradebook_notes(book), "",
                 *_markdown_table(headers, rows, [False, *([True] * (len(headers) - 2)), False]), ""]
        if missed:
            lines += ["### Most missed questions", "", *_markdown_table(missed_headers, missed), ""]
        lines += _feedback_lines(book)
        return "\n".join(lines) + "\n"
    return _rich_gradebook(book, headers, rows, missed_headers, missed)


def _gradebook_rows(book, fmt: str):
    """CSV: plain layer names and numbers (a spreadsheet sums them); others: each column's maximum."""
    from ..spec.assignment import points_text

    layer_max = book.layer_max_points()
    total = points_text(book.max_points)
    if fmt == "csv":
        headers = ["file", *layer_max, "points", "max_points", "error"]
    else:
        headers = ["file", *(f"{layer} /{points_text(m)}" for layer, m in layer_max.items()), f"points /{total}",
                   "error"]
    rows = []
    for submission in book.submissions:
        got = submission.layer_points()
        cells = ["" if submission.error else points_text(got.get(layer, 0)) for layer in layer_max]
        points = "" if submission.error else points_text(submission.points)
        rows.append([submission.file, *cells, points, *([total] if fmt == "csv" else []), submission.error or ""])
    return headers, rows


def _missed_rows(book):
    marked = len(book.marked)
    rows = [[f"{s.question.layer} {s.question.quantity}", f"{s.missed} of {marked}", str(s.wrong), str(s.unanswered),
             _expected_text(book, s.question)] for s in book.most_missed()]
    return ["question", "missed", "wrong", "unanswered", "correct value"], rows


def _expected_text(book, question) -> str:
    from ..check import value_text

    return value_text(question.block, question.quantity, book.conventions)


def _gradebook_notes(book) -> str:
    from ..spec.assignment import points_text

    marked = book.marked
    mean = sum(s.points for s in marked) / len(marked) if marked else None
    average = f"; mean {points_text(mean) if mean.denominator == 1 else f'{float(mean):.2f}'}" if marked else ""
    errors = len(book.submissions) - len(marked)
    unread = f"; {errors} could not be read (see `error`)" if errors else ""
    return (f"{len(book.submissions)} submissions, {len(book.questions)} questions, "
            f"{points_text(book.max_points)} points in all{average}{unread}. {_conventions_text(book.conventions)}")


def _conventions_text(conventions) -> str:
    muls = "MACs + bias" if conventions.muls_with_bias else "MACs (bias excluded)"
    tolerance = float(conventions.rounded_tolerance) * 100
    return (f"Conventions: shapes {LAYOUTS[conventions.layout].words}; muls = {muls}; K = {conventions.k}; "
            f"rounded answers within {tolerance:g}%.")


def _feedback_lines(book) -> list[str]:
    """Per submission, each wrong or missing answer with its worked formula."""
    from ..check import feedback
    from ..spec.assignment import points_text

    lines = ["### Feedback", ""]
    for submission in book.submissions:
        if submission.error:
            lines += [f"#### {submission.file}: not marked", "", f"- {_md_cell(submission.error)}", ""]
            continue
        lines += [f"#### {submission.file}: {points_text(submission.points)} of {points_text(book.max_points)}", ""]
        wrong = [m for m in submission.marked if not m.correct]
        for marked in wrong:
            shown = marked.shown(book.conventions)
            given = f"`{_written(shown)}`" if marked.results else "no answer"
            lines.append(f"- {marked.question.layer} {marked.question.quantity}: {given}; "
                         f"correct: {_md_cell(shown.expected_text)} ({_md_cell(feedback(shown))})")
        lines += ([] if wrong else ["- every question right"]) + [""]
    return lines


def _rich_gradebook(book, headers, rows, missed_headers, missed):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{book.name}: gradebook")
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if 0 < index < len(headers) - 1 else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    parts = [table, Text(_gradebook_notes(book))]
    if missed:
        worst = Table(title="most missed questions")
        for header in missed_headers:
            worst.add_column(header)
        for row in missed:
            worst.add_row(*row)
        parts.append(worst)
    return Group(*parts)


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
