"""`cnncalc table SPEC`: the per-layer table of a spec, or JSON / CSV / Markdown for machines.

Only click at module level; the analysis and rich come in when the command runs. Every run
computes its output: there is no cache of any kind.
"""
from __future__ import annotations

import click

from .support import (batch_option, console, devices_file_option, dtype_option, fail, format_option, input_option,
                      layout_option, optimizer_option, print_warnings, rounding_option, training_options)


def split_columns(ctx, param, value: str | None):
    if not value:
        return None
    from ..render.columns import COLUMNS, DEVICE_COLUMNS

    keys = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [k for k in keys if k not in COLUMNS and k not in DEVICE_COLUMNS]
    if unknown:
        raise click.BadParameter(f"unknown column {unknown[0]!r}; choose from {', '.join(COLUMNS)} "
                                 f"(with --device: {', '.join(DEVICE_COLUMNS)})")
    return keys


@click.command()
@click.argument("spec")
@format_option("table", "json", "csv", "markdown")
@rounding_option(help="What a size that is not whole means: floor/ceil warn (PyTorch), strict is an error. "
                      "Default: the spec's `rounding`, else floor.")
@click.option("--columns", callback=split_columns, help="Comma-separated columns, e.g. name,output,params.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Fold layers nested deeper than this into their composite's row (0 = one row per top-level entry).")
@click.option("--explain", is_flag=True, help="After the table, every formula with the numbers plugged in.")
@click.option("--output", "output_file", default=None, metavar="FILE",
              help="Write the report to FILE (atomically; never over the spec) instead of stdout.")
@input_option()
@click.option("--partial", is_flag=True,
              help="An ONNX file with ops cnncalc cannot map: the layers before the first of them (listed in a "
                   "note) instead of an error.")
@batch_option()
@dtype_option()
@optimizer_option()
@training_options
@layout_option("Show shapes as chw (C x H x W), hwc (H x W x C) or whd (W x H x D); also reads the spec's shape "
               "strings where it declares no layout (default: the spec's).")
@click.option("--device", default=None, metavar="NAME",
              help="Add a roofline lower bound per layer on this device (bytes moved, FLOP/B, bound, time): "
                   "`cnncalc devices` lists the names.")
@devices_file_option()
@click.option("--tf32", is_flag=True,
              help="With --device and float32: bound by the TF32 Tensor Core peak, as PyTorch runs float32 "
                   "convolutions on Ampere and later GPUs by default.")
@click.option("--compat", default=None, metavar="TOOL",
              help="Params and ops per layer as TOOL counts them, with its column names: a convention of "
                   "`cnncalc compare` (torchinfo, fvcore, ptflops, thop, torchscan, calflops, keras, ...).")
def table(spec, fmt, rounding, columns, depth, explain, output_file, input_shape, partial, batch, dtype, optimizer,
          layout, device, devices_file, tf32, compat, **training):
    """Per-layer table of SPEC (a file or a zoo model name)."""
    from ..engine import paused_gc
    from ..errors import CnnCalcError

    check_device_options(columns, device, devices_file, tf32)
    # A large report is many small containers; the cyclic collector would rescan them all, again and again.
    with paused_gc():
        try:
            chosen = None
            if device:  # the device table (YAML) is read only when asked for
                from ..roofline import choose_device

                chosen = choose_device(device, devices_file, dtype, tf32)
            analysis, error = analysed(spec, layout, rounding, batch, dtype, optimizer, output_file, input_shape,
                                       partial, training)
            if compat:
                from .compare import write_compat

                others = bool(columns or depth is not None or explain or device)
                write_compat(analysis, compat, fmt, output_file, layout, batch, others)
                if error:
                    fail(error)  # after the rows that were computed
                return
            report, explained = analysis.report, analysis if explain else None
            roofline = None
            if chosen:
                from ..roofline import bound_on

                roofline = bound_on(report, *chosen)
            if depth is not None:
                from ..report import fold_to_depth

                report = fold_to_depth(report, depth)  # the explanation still covers every layer
                roofline = roofline.folded(analysis.report, depth) if roofline else None
            if output_file:
                from ..output import write_atomically

                write_atomically(output_file, rendered_text(report, fmt, columns, error, explained, roofline))
                print_warnings(report)
            else:
                emit_report(report, fmt, columns, error, explained, roofline)
        except CnnCalcError as exc:
            fail(exc)
        if error:
            fail(error)  # after the rows that were computed


def check_device_options(columns, device, devices_file, tf32) -> None:
    """The roofline's options and columns need --device."""
    from ..render.columns import DEVICE_COLUMNS

    if device:
        return
    wanted = [key for key in columns or () if key in DEVICE_COLUMNS]
    if wanted:
        raise click.BadParameter(f"column {wanted[0]!r} needs --device NAME", param_hint="--columns")
    for flag, given in (("--devices", devices_file), ("--tf32", tf32)):
        if given:
            raise click.BadParameter("needs --device NAME", param_hint=flag)


def analysed(spec, layout, rounding, batch, dtype, optimizer, output_file=None, input_shape=None, partial=False,
             training=None):
    """(the engine's Analysis: report and plan, None), or (the rows before the layer that failed,
    its error); raises when no row could be computed, or when ``output_file`` is the spec itself.
    ``training``: amp, checkpoint, optimizer_dtype, train_on (``training_options``)."""
    from ..api import analyze_spec, load_spec
    from ..engine import PartialAnalysis

    loaded = load_spec(spec, layout, input_shape, partial)
    if output_file:
        from ..output import refuse_to_overwrite

        refuse_to_overwrite(output_file, [loaded.file])
    try:
        return analyze_spec(loaded, rounding=rounding, batch=batch, dtype=dtype, optimizer=optimizer,
                            **(training or {})), None
    except PartialAnalysis as exc:
        if not exc.report.layers:
            raise
        return exc.analysis, exc


def rendered_text(report, fmt: str, columns, error=None, explained=None, roofline=None) -> str:
    """The report as text in one of the formats (the table without colours); ``explained``: the
    Analysis whose worked formulas follow the table; ``roofline``: the bound of ``--device``."""
    from ..render import text

    if fmt == "json":
        from ..render.json_layout import json_text

        data = report.to_dict()
        if roofline:
            from ..render.roofline import merge_json

            merge_json(data, roofline)
        if error:
            data["error"] = {**error.loc.to_dict(), "message": error.message}
        return json_text(data)
    if fmt == "csv":
        return text.to_csv(report, columns, roofline)
    if fmt == "markdown":
        return text.to_markdown(report, columns, roofline)
    from ..render.table import plain_table

    body = plain_table(report, columns, roofline) + "\n"
    if explained:
        from ..render.explain import explanation_text

        body += "\n" + explanation_text(explained)
    return body


def emit_report(report, fmt: str, columns, error=None, explained=None, roofline=None) -> None:
    """On stdout: the rich table (then the explanation), or the text of a machine format (then
    notes and warnings on stderr; the table prints its own below it)."""
    if fmt == "table":
        from ..render.table import print_table

        print_table(report, columns, console(), roofline)
        if explained:
            from ..render.explain import explanation_text

            click.echo("\n" + explanation_text(explained), nl=False)
        return
    click.echo(rendered_text(report, fmt, columns, error, explained, roofline), nl=False)
    print_warnings(report)
