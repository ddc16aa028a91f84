"""`cnncalc run`: print the numbers a spec computes, optionally cross-checked on a second backend.

Only click and the light shared helpers at module level; the analysis, the backends and numpy
come in when the command runs. What `run` shares with `verify` is in forward_common.py.
"""
from __future__ import annotations

import sys

import click

from ..errors import EXIT_FINDINGS, CnnCalcError
from .forward_common import (BACKEND_NAMES, analysed, backend_options, check_memory, findings, load_engine,
                             other_engine, run_header)
from .support import fail, format_option, print_warnings

PRINT_LIMIT = 1024  # `run` prints outputs of at most this many numbers per sample in full...
PRINT_WIDTH = 16  # ...whose rows are at most this long; others as statistics
FLAT_ROW = 10  # numbers per line of a flat output


@click.command("run")
@click.argument("spec")
@backend_options
@click.option("--layer", "layer_name", metavar="NAME", help="Print this layer's output [default: the last layer].")
@click.option("--all", "all_layers", is_flag=True, help="Print every layer's output.")
@click.option("--cross-check", type=click.Choice(BACKEND_NAMES), default=None,
              help="Also run on this backend with the same weights and input; report the largest difference per layer.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=None,
              help="Cross-check: a fixed limit on |difference| / max(1, max |reference|) per layer "
                   "[default: per layer, the float32 error that can reach it; see the README].")
@format_option("text", "json")
def run_command(spec, backend, device, seed, max_memory, layer_name, all_layers, cross_check, tolerance, fmt):
    """Evaluate SPEC on numbers and print the output: the spec's `input_values` (random from
    --seed without them) through its explicit `weights` / `biases` (random where not given).
    Exit 1 when a shape or the cross-check disagrees.

    \b
    cnncalc run specs/examples/edge_detection.yaml
    cnncalc run sobel --all --cross-check torch --format json
    """
    from ..backends.forward import run_forward
    from ..backends.memory import estimate_memory

    if layer_name and all_layers:
        raise click.UsageError("give --layer or --all, not both")
    try:
        loaded, report, plan = analysed(spec, 1, None)
        wanted = _wanted_rows(report, loaded, layer_name, all_layers)
        engine = load_engine(backend, device)
        other = other_engine(cross_check, engine)
        keep_all = all_layers or other is not None
        check_memory(estimate_memory(report, keep_all=keep_all), engine, max_memory, loaded)
        keep = (lambda row: True) if keep_all else (lambda row: row.index in wanted)
        gains = None
        if other is not None and tolerance is None:  # the float32 rule needs each layer's gain: from the weights
            from ..backends.forward import RecordingGains, seeded_parameters

            gains = RecordingGains(seeded_parameters(plan, seed, source=loaded.source))
        results = run_forward(plan, engine, batch=1, seed=seed, keep=keep, input_values=loaded.input_values,
                              source=loaded.source, parameters=gains)
        shown = [r for r in results if r.index in wanted]
        differences = None
        if other is not None:
            reference = run_forward(plan, other, batch=1, seed=seed, keep=lambda row: True,
                                    input_values=loaded.input_values, source=loaded.source)
            differences = _cross_check(plan, loaded, seed, results, reference, tolerance, gains, engine, other)
    except CnnCalcError as exc:
        fail(exc)
    summary = run_summary(report, engine, seed, loaded.input_values is not None, results, shown, other,
                          differences, tolerance)
    if fmt == "json":
        from ..render.json_layout import json_text

        click.echo(json_text(summary), nl=False)
    else:
        click.echo(run_text(summary, results, shown, report.layout), nl=False)
    print_warnings(report)
    if not summary["ok"]:
        sys.exit(EXIT_FINDINGS)


def _wanted_rows(report, loaded, layer_name: str | None, all_layers: bool) -> set[int]:
    """The indices of the rows to print: --all, --layer NAME (all rows of that name), else the last."""
    if all_layers:
        return {row.index for row in report.layers}
    if not layer_name:
        return {report.layers[-1].index}
    matches = [row.index for row in report.layers if row.name == layer_name]
    if matches:
        return set(matches)
    import difflib

    from ..errors import Location, SpecError

    names = [row.name for row in report.layers]
    hint = difflib.get_close_matches(layer_name, names, n=3)
    suggestion = f"; did you mean {', '.join(hint)}?" if hint else f"; layers: {', '.join(names[:12])}"
    raise SpecError(f"no layer is called `{layer_name}`{suggestion}", Location(file=loaded.file))


def _cross_check(plan, loaded, seed, results, reference, tolerance, gains, engine, other) -> list:
    """compare_outputs under a fixed --tolerance, or under the float32 rule: per layer, the
    difference its inputs already carry times its gain, plus its own rounding (forward.py)."""
    from ..backends.forward import compare_outputs, input_array, largest_finite

    if tolerance is not None:
        return compare_outputs(results, reference, tolerance)
    network_input = input_array(plan, 1, seed, loaded.input_values, loaded.source)
    return compare_outputs(results, reference, rows=plan.steps, gains=gains.gains,
                           input_peak=largest_finite(network_input), epsilon=_epsilon(engine, other))


def _epsilon(*engines):
    """row -> the coarsest machine epsilon either backend computes it in (float32's unless a
    backend says otherwise, e.g. TF32 convolutions on a GPU)."""
    from ..backends.forward import FLOAT32_EPS

    def epsilon(row) -> float:
        return max(getattr(engine, "epsilon", lambda layer: FLOAT32_EPS)(row.layer) for engine in engines)

    return epsilon


def run_summary(report, engine, seed, given_input: bool, results, shown, other, differences, tolerance) -> dict:
    """The JSON contract of `run --format json`: the last shown layer's output at the top level."""
    last = shown[-1] if shown else results[-1]
    failed = [r for r in results if not r.ok]
    summary = {
        **run_header(report, engine, seed),
        "input": "input_values" if given_input else f"random normal (seed {seed})",
        "layer": last.name,
        "kind": last.kind,
        "shape": None if last.actual_shape is None else list(last.actual_shape),
        "output": _nested(last.output),
        "ok": not failed and len(results) == len(report.layers),
        "mismatches": [r.to_dict() for r in failed],
        **findings(report),
    }
    if len(shown) > 1:
        summary["layers"] = [{"layer": r.name, "kind": r.kind, "shape": list(r.actual_shape or ()),
                              "output": _nested(r.output)} for r in shown]
    if differences is not None:
        from ..backends.forward import SAFETY

        summary["cross_check"] = {
            "backend": other.name,
            "tolerance": tolerance,  # null: the float32 rule, each layer's own in its "tolerance" / "allowed"
            "layers": [d.to_dict() for d in differences],
            "ok": all(d.ok for d in differences),
            "rule": "fixed" if tolerance is not None else "float32",
        }
        if tolerance is None:
            summary["cross_check"]["safety"] = SAFETY
        summary["ok"] = summary["ok"] and summary["cross_check"]["ok"]
    return summary


def _nested(array):
    """One sample's output as nested lists (batch axis dropped); NaN and infinities as null."""
    if array is None:
        return None
    import numpy

    sample = array[0]
    if numpy.isfinite(sample).all():
        return sample.tolist()
    return numpy.where(numpy.isfinite(sample), sample, None).astype(object).tolist()


def run_text(summary: dict, results, shown, layout: str) -> str:
    from ..render.columns import shape_text

    source = "the spec's input_values" if summary["input"] == "input_values" else summary["input"]
    lines = [f"{summary['spec']}: {summary['backend']} on {summary['device']}; input: {source}"]
    for result in shown:
        shape = shape_text(result.actual_shape, layout) if result.actual_shape else "—"
        lines += ["", f"{result.name} ({result.kind}): {shape}"]
        lines += array_lines(result.output[0]) if result.output is not None else [f"  not computed: {result.error}"]
    for failed in summary["mismatches"]:
        lines.append(f"\n{failed['name']}: " + (failed.get("error") or f"actual shape {failed['actual_shape']} "
                                                f"differs from the analysis' {failed['inferred_shape']}"))
    if "cross_check" in summary:
        lines += ["", *cross_check_lines(summary)]
    return "\n".join(lines) + "\n"


def array_lines(sample) -> list[str]:
    """One sample ``[C, *spatial]`` (or flat features) as text: a matrix per channel (per depth
    slice in 3-D) when small, else its statistics."""
    if sample.size > PRINT_LIMIT or (sample.ndim > 1 and sample.shape[-1] > PRINT_WIDTH):
        return [f"  {sample.size:,} numbers: min {sample.min():.6g}, max {sample.max():.6g}, "
                f"mean {sample.mean():.6g} (--format json prints them all)"]
    if sample.ndim == 1:
        cells = _cells(sample)
        width = max(len(cell) for cell in cells)
        return ["  " + "  ".join(cell.rjust(width) for cell in cells[start:start + FLAT_ROW])
                for start in range(0, len(cells), FLAT_ROW)]
    lines = []
    for channel, plane in enumerate(sample):
        for label, matrix in _planes(plane, f"channel {channel}"):
            lines.append(f"  {label}:")
            lines += ["    " + row for row in _matrix_rows(matrix)]
    return lines


def _planes(array, label: str):
    """Split a channel's spatial array into printable 2-D matrices (a 1-D row is a 1-row matrix)."""
    if array.ndim <= 2:
        yield label, array.reshape(1, -1) if array.ndim == 1 else array
        return
    for depth, plane in enumerate(array):
        yield from _planes(plane, f"{label}, depth {depth}")


def _matrix_rows(matrix) -> list[str]:
    cells = [_cells(row) for row in matrix]
    width = max(len(cell) for row in cells for cell in row)
    return ["  ".join(cell.rjust(width) for cell in row) for row in cells]


def _cells(values) -> list[str]:
    """Whole numbers without a decimal point (30, not 30.0); others to 6 significant digits."""
    return [f"{int(v)}" if float(v).is_integer() else f"{float(v):.6g}" for v in values]


def cross_check_lines(summary: dict) -> list[str]:
    check = summary["cross_check"]
    rows = [("layer", "max |diff|", "allowed", "relative", "")]
    rows += [(d["name"], f"{d['max_abs_diff']:.3g}", "—" if d["allowed"] is None else f"{d['allowed']:.3g}",
              f"{d['relative']:.3g}", "ok" if d["ok"] else "OVER") for d in check["layers"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    if check["tolerance"] is None:
        rule = (f"float32 rule: the difference a layer's inputs carry times its gain, plus "
                f"{check['safety']:g} x eps x sqrt(n) x max |x| for its own rounding")
    else:
        rule = f"tolerance {check['tolerance']:g} relative to max(1, max |x|)"
    lines = [f"cross-check against {check['backend']} ({rule}):"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    verdict = "all layers agree" if check["ok"] else f"{sum(not d['ok'] for d in check['layers'])} layers differ"
    return lines + [f"  {verdict}"]
