"""`cnncalc validate` (every problem of every spec, for CI) and `cnncalc schema` (the spec
format as JSON Schema). Only click and the light shared helpers at module level: CI runs
validate on every commit, and start-up time is most of its run time.
"""
from __future__ import annotations

import sys

import click

from ..errors import EXIT_FINDINGS, CnnCalcError
from .support import batch_option, dtype_option, fail, format_option, quantity_option, rounding_option


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@format_option("text", "json", "github", "sarif", "junit",
               help="text: one `file:line: layer: message` line per problem; json: one object; github: GitHub "
                    "Actions workflow commands (annotations); sarif: SARIF 2.1.0 (code scanning); junit: JUnit XML, "
                    "one test case per spec.")
@rounding_option(help="strict: a size that is not whole is a problem; floor/ceil accept it, as PyTorch does. "
                      "Default: the spec's `rounding`, else strict.")
@quantity_option("--max-params", help="Most parameters allowed, e.g. 25M.")
@quantity_option("--max-macs", help="Most MACs allowed, e.g. 5G.")
@quantity_option("--max-memory", metavar="BYTES",
                 help="Most inference memory (params + peak live activations, bytes), e.g. 2GiB or 500MB.")
@batch_option(help="Batch size for memory.")
@dtype_option()
@click.option("--require-aligned", is_flag=True,
              help="A merge whose inputs' receptive fields are not aligned (a warning otherwise) is a problem.")
def validate(paths, fmt, rounding, max_params, max_macs, max_memory, batch, dtype, require_aligned):
    """Check spec files, folders (recursively: *.yaml, *.yml, *.json, *.toml) and globs.

    Lists every problem: parse errors, shapes that do not fit, failed `expect` values and
    budgets (the spec's `budgets:` and the options; the stricter limit counts). Exit 0 clean,
    1 problems, 2 unusable input (a path that does not exist, a bad option).
    """
    from ..validate import Options, validate_paths

    cli_budgets = {key: value for key, value in
                   (("max_params", max_params), ("max_macs", max_macs), ("max_memory", max_memory)) if value}
    options = Options(rounding=rounding, budgets=cli_budgets, batch=batch, dtype=dtype,
                      require_aligned=require_aligned)
    try:
        run = validate_paths(list(paths), options)
    except CnnCalcError as exc:
        fail(exc)
    if fmt == "json":
        from ..render.json_layout import json_text

        click.echo(json_text(run.to_dict()), nl=False)
    elif fmt == "text":
        for problem in run.problems:
            click.echo(str(problem))
        for finding in run.findings:  # warnings and notes to stderr, as every command's
            if finding.level != "error":
                click.echo(f"{finding.loc}: {finding.level}: {finding.message}", err=True)
        click.echo(summary(run), err=True)
    else:
        from ..render import ci_formats

        click.echo(ci_formats.render(run, fmt), nl=False)
        click.echo(summary(run), err=True)
    if not run.ok:
        sys.exit(EXIT_FINDINGS)


def summary(run) -> str:
    files = f"{len(run.files)} file{'s' if len(run.files) != 1 else ''}"
    advisory = "".join(f", {len(found)} {name}{'s' if len(found) != 1 else ''}"
                       for name, found in (("warning", run.warnings), ("note", run.notes)) if found)
    if run.ok:
        return f"cnncalc validate: {files}, no problems{advisory}"
    from collections import Counter

    kinds = Counter(problem.kind for problem in run.problems)
    broken = len({problem.loc.file for problem in run.problems})
    counts = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    count = len(run.problems)
    problems = f"{count} problem{'s' if count != 1 else ''} in {broken} of {files}"
    hint = ""
    if kinds["fit"] and run.rounding == "strict":
        hint = "; --rounding floor accepts sizes that are not whole, as PyTorch does"
    return f"cnncalc validate: {problems} ({counts}){advisory}{hint}"


@click.command()
@click.option("--indent", type=click.IntRange(min=0), default=2, show_default=True)
def schema(indent):
    """Print a JSON Schema (draft 2020-12) of the spec file format, for editors and other tools."""
    import json

    from ..schema import spec_schema

    click.echo(json.dumps(spec_schema(), indent=indent or None, ensure_ascii=False))
