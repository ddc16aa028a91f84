"""`cnncalc layer KIND --input ...`: one layer from the command line, and `cnncalc explain SPEC`."""
from __future__ import annotations

import json
import re

import click

from ..render.json_layout import json_text
from .support import (batch_option, console, dtype_option, fail, format_option, layout_option, print_warnings,
                      rounding_option)

# Options that map straight onto a layer key; values like 3x3, 3,5, same or [[1,2],[0,1]] are read below.
LAYER_OPTIONS = ("filters", "kernel", "stride", "padding", "dilation", "groups", "output_padding", "features",
                 "output", "size", "scale_factor", "factor", "mode", "multiplier", "p", "negative_slope")


def read_value(text: str):
    """'3' -> 3, '3x5' or '3,5' -> [3, 5], '0.5' -> 0.5, 'same' -> 'same', JSON lists as they are."""
    text = text.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise click.BadParameter(f"cannot read {text!r} as a JSON list") from None
    if any(c.isdigit() for c in text):
        parts = [p for p in re.split(r"[,xX×]", text) if p.strip()]
    else:
        parts = [text]
    values = []
    for part in parts:
        part = part.strip()
        for cast in (int, float):
            try:
                values.append(cast(part))
                break
            except ValueError:
                continue
        else:
            values.append(part)
    return values[0] if len(values) == 1 else values


def layer_options(func):
    for key in reversed(LAYER_OPTIONS):
        func = click.option(f"--{key.replace('_', '-')}", key, default=None, metavar="VALUE",
                            help=f"`{key}` of the layer (int, per-axis 3x5, or as the spec allows).")(func)
    return func


@click.command()
@click.argument("kind")
@click.option("--input", "input_", required=True,
              help="Input shape: 3x32x32 (C x H x W), 32x32x3 (read channels last, with a note), 3@32x32, 28x28 "
                   "(one channel), or in --layout order.")
@layer_options
@click.option("--bias/--no-bias", default=None, help="With or without biases (default: the layer's).")
@click.option("--ceil-mode", is_flag=True, default=None, help="Pooling: round the output size up.")
@click.option("--set", "extra", multiple=True, metavar="KEY=VALUE", help="Any other layer key.")
@layout_option("How --input is read and shapes are shown: chw (C x H x W), hwc (H x W x C, Keras), whd "
               "(W x H x D, the lecture's). Default: C x H x W, or as --input is plainly written.")
@rounding_option(default="strict")
@click.option("--explain", is_flag=True, help="Show every formula with the numbers plugged in.")
@format_option("table", "json")
@batch_option()
@dtype_option()
def layer(kind, input_, bias, ceil_mode, extra, layout, rounding, explain, fmt, batch, dtype, **values):
    """One layer: output shape, params, MACs, memory and receptive field.

    Example: cnncalc layer conv --input 32x32x3 --filters 10 --kernel 5 --stride 1 --padding 2 --explain
    """
    from ..api import analyze_spec
    from ..errors import CnnCalcError
    from ..spec.build import build_spec
    from ..spec.loader import SourceMap

    args = {key: read_value(value) for key, value in values.items() if value is not None}
    if bias is not None:
        args["bias"] = bias
    if ceil_mode:
        args["ceil_mode"] = True
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        args[key.strip()] = read_value(value)
    spec = {"name": kind, "input": input_, "layers": [{kind: args}]}
    try:
        analysis = analyze_spec(build_spec(spec, SourceMap(file="<command line>"), layout=layout),
                                rounding=rounding, batch=batch, dtype=dtype)
    except CnnCalcError as exc:
        fail(exc)
    show_rows(analysis, fmt, explain)


def show_rows(analysis, fmt: str, explain: bool, only: str | None = None) -> None:
    """The rows of an engine Analysis as a table or JSON (one row: an object), with their worked formulas."""
    from ..render.explain import explanation_lines, explanation_text

    report = analysis.report
    if fmt == "json":
        rows = []
        for row, step in zip(report.layers, analysis.plan.steps):
            data = row.to_dict()
            if explain:
                data["explain"] = explanation_lines(row, report, step.formulas())
            rows.append(data)
        click.echo(json_text(rows[0] if len(rows) == 1 else rows), nl=False)
        print_warnings(report)
        return
    from ..render.table import print_table

    print_table(report, None, console())
    if explain:
        click.echo("\n" + explanation_text(analysis, only), nl=False)


@click.command()
@click.argument("spec")
@click.option("--layer", "only", default=None, help="Explain only the layer with this name.")
@rounding_option(help="Default: the spec's `rounding`, else floor.")
@layout_option("Show shapes as chw, hwc or whd (default: the spec's layout).")
@batch_option()
@dtype_option()
def explain(spec, only, rounding, layout, batch, dtype):
    """Worked formulas for every layer of SPEC (or one with --layer NAME)."""
    from ..api import analyze_spec, load_spec
    from ..engine import PartialAnalysis
    from ..errors import CnnCalcError, Location
    from ..render.explain import explanation_text

    error = None
    try:
        loaded = load_spec(spec, layout)
        analysis = analyze_spec(loaded, rounding=rounding, batch=batch, dtype=dtype)
    except PartialAnalysis as exc:
        analysis, error = exc.analysis, exc
    except CnnCalcError as exc:
        fail(exc)
    report = analysis.report
    if only is not None and only not in {row.name for row in report.layers}:
        import difflib

        hint = difflib.get_close_matches(only, [row.name for row in report.layers], n=3)
        fail(CnnCalcError(f"no layer is named `{only}`" + (f"; did you mean {', '.join(hint)}?" if hint else ""),
                          Location(file=report.file)))
    click.echo(explanation_text(analysis, only), nl=False)
    print_warnings(report)
    if error:
        fail(error)
