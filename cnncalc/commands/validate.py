"""`cnncalc validate` (every problem of every spec, for CI) and `cnncalc schema` (the spec
format as JSON Schema). Only click and the standard library at module level: CI runs
validate on every commit, and start-up time is most of its run time.
"""
from __future__ import annotations

import sys

import click

EXIT_FINDINGS = 1  # as cnncalc.errors.EXIT_FINDINGS (not imported: start-up time)


def _budget(ctx, param, value):
    """'25M' -> (25000000, '25M'); the text is kept to show the limit as the user wrote it."""
    if value is None:
        return None
    from ..units import parse_quantity

    try:
        return parse_quantity(value), value
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one `file:line: layer: message` line per problem; json: one object.")
@click.option("--rounding", type=click.Choice(["strict", "floor", "ceil"]), default=None,
              help="strict: a size that is not whole is a problem; floor/ceil accept it, as PyTorch does.")
@click.option("--max-params", callback=_budget, metavar="N", help="Most parameters allowed, e.g. 25M.")
@click.option("--max-macs", callback=_budget, metavar="N", help="Most MACs allowed, e.g. 5G.")
@click.option("--max-memory", callback=_budget, metavar="BYTES",
              help="Most inference memory (params + peak live activations, bytes), e.g. 2GiB or 500MB.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size for memory.")
@click.option("--dtype", type=click.Choice(["float32", "float64", "float16", "bfloat16", "int8", "uint8"]),
              default="float32", show_default=True, help="Element type for memory.")
def validate(paths, fmt, rounding, max_params, max_macs, max_memory, batch, dtype):
    """Check spec files, folders (recursively: *.yaml, *.yml, *.json, *.toml) and globs.

    Lists every problem: parse errors, shapes that do not fit, failed `expect` values and
    budgets (the spec's `budgets:` and the options; the stricter limit counts). Exit 0 clean,
    1 problems, 2 unusable input (a path that does not exist, a bad option).
    """
    from ..cli import fail
    from ..errors import CnnCalcError
    from ..validate import Options, validate_paths

    cli_budgets = {key: value for key, value in
                   (("max_params", max_params), ("max_macs", max_macs), ("max_memory", max_memory)) if value}
    options = Options(rounding=rounding, budgets=cli_budgets, batch=batch, dtype=dtype)
    try:
        run = validate_paths(list(paths), options)
    except CnnCalcError as exc:
        fail(exc)
    if fmt == "json":
        import json

        click.echo(json.dumps(run.to_dict(), indent=2))
    else:
        for problem in run.problems:
            click.echo(str(problem))
        click.echo(summary(run), err=True)
    if not run.ok:
        sys.exit(EXIT_FINDINGS)


def summary(run) -> str:
    files = f"{len(run.files)} file{'s' if len(run.files) != 1 else ''}"
    if run.ok:
        return f"cnncalc validate: {files}, no problems"
    from collections import Counter

    kinds = Counter(problem.kind for problem in run.problems)
    broken = len({problem.loc.file for problem in run.problems})
    counts = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    count = len(run.problems)
    problems = f"{count} problem{'s' if count != 1 else ''} in {broken} of {files}"
    hint = ""
    if kinds["fit"] and run.rounding == "strict":
        hint = "; --rounding floor accepts sizes that are not whole, as PyTorch does"
    return f"cnncalc validate: {problems} ({counts}){hint}"


@click.command()
@click.option("--indent", type=click.IntRange(min=0), default=2, show_default=True)
def schema(indent):
    """Print a JSON Schema (draft 2020-12) of the spec file format, for editors and other tools."""
    import json

    from ..schema import spec_schema

    click.echo(json.dumps(spec_schema(), indent=indent or None, ensure_ascii=False))
