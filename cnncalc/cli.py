"""Command-line interface: parse options, call the API, pick a renderer, exit with the right code.

Exit codes: 0 ok, 1 findings (wrong answers, failed checks), 2 unusable input, 3 internal error.
Heavy modules (rich, pydantic, numpy, torch) are imported inside the commands that need them.
"""
from __future__ import annotations

import os
import sys

import click

from .errors import EXIT_UNUSABLE, CnnCalcError
from .notation import LAYOUT_KEYS

FORMATS = ("table", "json", "csv", "markdown")
EXIT_INTERNAL = 3


def fail(exc: CnnCalcError) -> None:
    """One located error line on stderr, then the exit code of the error's family."""
    click.echo(f"{exc.loc}: error: {exc.message}", err=True)
    sys.exit(exc.exit_code)


def console(err: bool = False):
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout
    # Piped output keeps the table whole instead of squeezing it into 80 columns.
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", 250))
    return Console(file=stream, width=width)


def split_columns(ctx, param, value: str | None):
    if not value:
        return None
    from .render.columns import COLUMNS

    keys = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [k for k in keys if k not in COLUMNS]
    if unknown:
        raise click.BadParameter(f"unknown column {unknown[0]!r}; choose from {', '.join(COLUMNS)}")
    return keys


def analysis_options(func):
    """Options shared by commands that analyse a spec."""
    options = [
        click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size."),
        click.option("--dtype", type=click.Choice(["float32", "float64", "float16", "bfloat16", "int8", "uint8"]),
                     default="float32", show_default=True, help="Element type for memory."),
        click.option("--optimizer", type=click.Choice(["sgd", "momentum", "adam"]), default="sgd",
                     show_default=True, help="Optimizer state counted in training memory."),
        click.option("--layout", type=click.Choice(LAYOUT_KEYS), default=None,
                     help="Show shapes as chw (C x H x W), hwc (H x W x C) or whd (W x H x D); also reads "
                          "the spec's shape strings where it declares no layout (default: the spec's)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cnncalc")
def cli():
    """Exact CNN shapes, parameters, MACs, memory and receptive fields."""


@cli.command()
@click.argument("spec")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--rounding", type=click.Choice(["floor", "ceil", "strict"]), default=None,
              help="What a size that is not whole means: floor/ceil warn (PyTorch), strict is an error. "
                   "Default: the spec's `rounding`, else floor.")
@click.option("--columns", callback=split_columns, help="Comma-separated columns, e.g. name,output,params.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Fold layers nested deeper than this into their composite's row (0 = one row per top-level entry).")
@click.option("--explain", is_flag=True, help="After the table, every formula with the numbers plugged in.")
@click.option("--output", "output_file", default=None, metavar="FILE",
              help="Write the report to FILE (atomically; never over the spec) instead of stdout.")
@analysis_options
def table(spec, fmt, rounding, columns, depth, explain, output_file, batch, dtype, optimizer, layout):
    """Per-layer table of SPEC (a file or a zoo model name)."""
    def produce():
        make_table(spec, fmt, rounding, columns, depth, explain, batch, dtype, optimizer, layout, output_file)

    if output_file:
        produce()  # a file is written every time: the cache only replays terminal output
    else:
        with_output_cache(spec, click.get_current_context().params, produce)


def with_output_cache(spec: str, params: dict, produce) -> None:
    """Replay a stored run when nothing it depends on changed (see cache.py); else run and store."""
    from . import cache, zoo

    folder = cache.cache_dir()
    try:
        spec_file = zoo.spec_path(spec)  # the file load_spec will read
    except CnnCalcError:
        spec_file = None  # no such spec: the run reports it, and is not cached
    key = cache.key_for(spec_file, sorted(map(str, params.items()))) if folder and spec_file else None
    if key is None:
        produce()
        return
    code = cache.replay(folder, key)
    if code is not None:
        sys.exit(code)
    out, err = cache.Recorder(sys.stdout), cache.Recorder(sys.stderr)
    sys.stdout, sys.stderr = out, err
    code = None
    try:
        produce()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        raise
    finally:
        sys.stdout, sys.stderr = out.stream, err.stream
        if code is not None:  # a crash is never replayed
            cache.store(folder, key, out.text(), err.text(), code)


def make_table(spec, fmt, rounding, columns, depth, explain, batch, dtype, optimizer, layout,
               output_file=None) -> None:
    from .api import analyze, load_spec
    from .engine import PartialAnalysis

    try:
        loaded = load_spec(spec, layout)
        if output_file:
            from .output import refuse_to_overwrite

            refuse_to_overwrite(output_file, [loaded.file])
        report, error = analyze(loaded, rounding=rounding, batch=batch, dtype=dtype, optimizer=optimizer), None
    except PartialAnalysis as exc:
        report, error = exc.report, exc
        if not report.layers:
            fail(error)
    except CnnCalcError as exc:
        fail(exc)
    if depth is not None:
        from .report import fold_to_depth

        report = fold_to_depth(report, depth)
    if output_file:
        from .output import write_atomically

        try:
            write_atomically(output_file, rendered_text(report, fmt, columns, error, explain))
        except CnnCalcError as exc:
            fail(exc)
        print_warnings(report)
    else:
        emit_report(report, fmt, columns, error, explain)
    if error:
        fail(error)


def rendered_text(report, fmt: str, columns, error: CnnCalcError | None, explain: bool) -> str:
    """The report as text in one of the formats (the table without colours)."""
    from .render import text

    if fmt == "json":
        import json

        data = report.to_dict()
        if error:
            data["error"] = {**error.loc.to_dict(), "message": error.message}
        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv":
        return text.to_csv(report, columns)
    if fmt == "markdown":
        return text.to_markdown(report, columns)
    from .render.table import render_table

    body = render_table(report, columns).plain + "\n"
    if explain:
        from .render.explain import explanation_text

        body += "\n" + explanation_text(report)
    return body


def emit_report(report, fmt: str, columns, error: CnnCalcError | None = None, explain: bool = False) -> None:
    if fmt == "table":
        from .render.table import print_table

        print_table(report, columns, console())
        if explain:
            from .render.explain import explanation_text

            click.echo("\n" + explanation_text(report), nl=False)
        return
    click.echo(rendered_text(report, fmt, columns, error, explain), nl=False)
    print_warnings(report)


def print_warnings(report) -> None:
    for note in report.notes:
        click.echo(f"{note.loc}: note: {note.message}", err=True)
    for warning in report.warnings:
        click.echo(f"{warning.loc}: warning: {warning.message}", err=True)


def main(argv=None) -> None:
    """Entry point: never shows a traceback for a user's mistake."""
    try:
        cli.main(args=argv, prog_name="cnncalc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_UNUSABLE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_UNUSABLE)
    except CnnCalcError as exc:
        fail(exc)
    except SystemExit:
        raise
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    except (KeyboardInterrupt, MemoryError, RecursionError) as exc:
        click.echo(f"cnncalc: stopped ({type(exc).__name__})", err=True)
        sys.exit(EXIT_UNUSABLE)
    except Exception as exc:  # a bug: say so in one line; CNNCALC_DEBUG=1 shows the traceback
        if os.environ.get("CNNCALC_DEBUG"):
            raise
        click.echo(f"cnncalc: internal error ({type(exc).__name__}: {exc}); please report it "
                   "(CNNCALC_DEBUG=1 shows the traceback)", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)


# ---------------------------------------------------------------------- more commands
# Each family lives in cnncalc/commands/<name>.py (importing only click at module level) and
# is registered here, one line each.
from .commands.layer import explain as _explain_command, layer as _layer_command  # noqa: E402
cli.add_command(_layer_command)
cli.add_command(_explain_command)
from .commands.solve import solve as _solve_command; cli.add_command(_solve_command)  # noqa: E402
from .commands.check import check as _check_command; cli.add_command(_check_command)  # noqa: E402
from .commands.validate import validate as _validate_command; cli.add_command(_validate_command)  # noqa: E402
from .commands.validate import schema as _schema_command; cli.add_command(_schema_command)  # noqa: E402
from .commands.models import models as _models_command; cli.add_command(_models_command)  # noqa: E402
from .commands.verify import run_command as _run_command, verify as _verify_command  # noqa: E402
cli.add_command(_verify_command); cli.add_command(_run_command)  # noqa: E702
