"""`cnncalc verify` (run a spec on real arrays and compare every layer's shape with the analysis)
and `cnncalc run` (print the numbers a spec computes, optionally cross-checked on a second backend).

Only click and the standard library at module level; the analysis, the backends (numpy, torch,
cupy) and rich come in when a command runs.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

EXIT_FINDINGS = 1  # as cnncalc.errors.EXIT_FINDINGS (not imported: start-up time)
BACKEND_NAMES = ("numpy", "torch", "cupy")
PROGRESS_DELAY_S = 1.0  # a bar for runs that take longer than this
PRINT_LIMIT = 1024  # `run` prints outputs of at most this many numbers per sample in full...
PRINT_WIDTH = 16  # ...whose rows are at most this long; others as statistics
FLAT_ROW = 10  # numbers per line of a flat output


# ----------------------------------------------------------------------------- options
def _bytes(ctx, param, value):
    """'4GiB' -> (4294967296, '4GiB')."""
    if value is None:
        return None
    from ..units import parse_quantity

    try:
        count = parse_quantity(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if count <= 0:
        raise click.BadParameter("must be more than 0 bytes")
    return count, value


def backend_options(func):
    options = [
        click.option("--backend", type=click.Choice(BACKEND_NAMES), default="numpy", show_default=True,
                     help="numpy: ops.py on the CPU; torch: torch.nn.functional; cupy: ops.py on a GPU."),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
                     help="Where the arrays live [default: cpu; cuda for cupy]."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Seed of the random weights and input."),
        click.option("--max-memory", callback=_bytes, metavar="BYTES",
                     help="Refuse runs estimated above this, e.g. 4GiB [default: 50% of the available memory]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# ----------------------------------------------------------------------------- verify
@click.command()
@click.argument("spec")
@backend_options
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Batch size.")
@click.option("--input", "input_shape", metavar="SHAPE",
              help="Run at another input size, e.g. 3x64x64 (read in the spec's layout).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def verify(spec, backend, device, seed, max_memory, batch, input_shape, fmt):
    """Run SPEC (a file or a zoo model name) forward on real arrays (seeded random weights where the
    spec gives none) and compare every layer's actual output shape with the analysis.
    Exit 0 all match, 1 a mismatch, 2 unusable input.

    \b
    cnncalc verify resnet50 --input 3x64x64
    cnncalc verify my_net.yaml --backend torch --device cuda --batch 8 --format json
    """
    from ..backends.memory import estimate_memory

    loaded, report = _analysed(spec, batch, input_shape)
    engine = _backend(backend, device)
    estimate, limit = _check_memory(estimate_memory(report), engine, max_memory, loaded)
    progress = _progress(fmt)
    try:
        results = _forward(report, engine, batch, seed, progress=progress, source=loaded.source)
    finally:
        if progress:
            progress.close()
    summary = verify_summary(report, engine, batch, seed, results, estimate.total, limit)
    if fmt == "json":
        import json

        click.echo(json.dumps(summary, indent=2))
    else:
        from ..cli import console

        console().print(verify_table(summary, report.layout), soft_wrap=True)
    _print_findings(report)
    if not summary["ok"]:
        sys.exit(EXIT_FINDINGS)


def verify_summary(report, engine, batch: int, seed: int, results: list, estimated_bytes: int, limit) -> dict:
    """The JSON contract of `verify --format json`."""
    failed = [r for r in results if not r.ok]
    summary = {
        "spec": report.name,
        "file": report.file,
        "backend": engine.name,
        "device": engine.device,
        "batch": batch,
        "seed": seed,
        "input_shape": list(report.input_shape),
        "layers": [r.to_dict() for r in results],
        "ok": not failed and len(results) == len(report.layers),
        "mismatches": len(failed),
        "not_run": len(report.layers) - len(results),
        "seconds": sum(r.seconds for r in results),
        "estimated_bytes": estimated_bytes,
        "memory_limit_bytes": limit,
        **_findings(report),
    }
    errors = [r for r in results if r.error]
    if errors:
        summary["error"] = {"name": errors[0].name, "message": errors[0].error}
    return summary


def verify_table(summary: dict, layout: str):
    """A per-layer table as one rich Text (fast for 500 rows), then a one-line verdict."""
    from rich.text import Text

    from ..render.columns import shape_text
    from ..units import human_bytes

    header = ["#", "layer", "kind", "inferred", "actual", "result", "time"]
    body = []
    for layer in summary["layers"]:
        actual = "—" if layer["actual_shape"] is None else shape_text(layer["actual_shape"], layout)
        status = "OK" if layer["ok"] else ("ERROR" if layer.get("error") else "MISMATCH")
        body.append([str(layer["index"]), layer["name"], layer["kind"], shape_text(layer["inferred_shape"], layout),
                     actual, status, _duration(layer["seconds"])])
    widths = [max(len(cells[i]) for cells in [header, *body]) for i in range(len(header))]
    right = {0, 6}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    text = Text(no_wrap=True, overflow="ignore")
    text.append(line(header).rstrip() + "\n", style="bold")
    for cells in body:
        style = {"OK": "", "MISMATCH": "bold red", "ERROR": "bold red"}[cells[5]]
        text.append(line(cells).rstrip() + "\n", style=style)
    where = (f"{summary['backend']} on {summary['device']}, batch {summary['batch']}, seed {summary['seed']}, "
             f"{_duration(summary['seconds'])} forward, estimated memory {human_bytes(summary['estimated_bytes'])}")
    count = len(summary["layers"])
    if summary["ok"]:
        text.append(f"all {count} layers match the analysis ({where})", style="green")
    else:
        text.append(f"{summary['mismatches']} of {count} layers do not match the analysis ({where})", style="bold red")
        if "error" in summary:
            text.append(f"\nstopped at {summary['error']['name']}: {summary['error']['message']}; "
                        f"{summary['not_run']} layers not run", style="red")
    return text


def _findings(report) -> dict:
    """The analysis' warnings (e.g. a size floored by default), notes and floored layers, as `table
    --format json` has them."""
    return {"warnings": [w.to_dict() for w in report.warnings], "notes": [n.to_dict() for n in report.notes],
            "rounded": [r.to_dict() for r in report.rounded]}


def _print_findings(report) -> None:
    """Notes and warnings on stderr, one located line each, as `table` prints them."""
    from ..cli import print_warnings

    print_warnings(report)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


# ----------------------------------------------------------------------------- run
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
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def run_command(spec, backend, device, seed, max_memory, layer_name, all_layers, cross_check, tolerance, fmt):
    """Evaluate SPEC on numbers and print the output: the spec's `input_values` (random from
    --seed without them) through its explicit `weights` / `biases` (random where not given).
    Exit 1 when a shape or the cross-check disagrees.

    \b
    cnncalc run specs/examples/edge_detection.yaml
    cnncalc run sobel --all --cross-check torch --format json
    """
    from ..backends.memory import estimate_memory

    if layer_name and all_layers:
        raise click.UsageError("give --layer or --all, not both")
    loaded, report = _analysed(spec, 1, None)
    wanted = _wanted_rows(report, loaded, layer_name, all_layers)
    engine = _backend(backend, device)
    other = _other_backend(cross_check, engine)
    keep_all = all_layers or other is not None
    _check_memory(estimate_memory(report, keep_all=keep_all), engine, max_memory, loaded)
    keep = (lambda row: True) if keep_all else (lambda row: row.index in wanted)
    gains = None
    if other is not None and tolerance is None:  # the float32 rule needs each layer's gain: from the weights
        from ..backends.forward import RecordingGains, seeded_parameters

        gains = RecordingGains(seeded_parameters(report, seed, source=loaded.source))
    results = _forward(report, engine, 1, seed, keep=keep, input_values=loaded.input_values, source=loaded.source,
                       parameters=gains)
    shown = [r for r in results if r.index in wanted]
    differences = None
    if other is not None:
        reference = _forward(report, other, 1, seed, keep=lambda row: True, input_values=loaded.input_values,
                             source=loaded.source)
        differences = _cross_check(report, loaded, seed, results, reference, tolerance, gains, engine, other)
    summary = run_summary(report, engine, seed, loaded.input_values is not None, results, shown, other,
                          differences, tolerance)
    if fmt == "json":
        import json

        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(run_text(summary, results, shown, report.layout), nl=False)
    _print_findings(report)
    if not summary["ok"]:
        sys.exit(EXIT_FINDINGS)


def _cross_check(report, loaded, seed, results, reference, tolerance, gains, engine, other) -> list:
    """compare_outputs under a fixed --tolerance, or under the float32 rule: per layer, the
    difference its inputs already carry times its gain, plus its own rounding (forward.py)."""
    from ..backends.forward import compare_outputs, input_array, largest_finite

    if tolerance is not None:
        return compare_outputs(results, reference, tolerance)
    network_input = input_array(report, 1, seed, loaded.input_values, loaded.source)
    return compare_outputs(results, reference, rows=report.layers, gains=gains.gains,
                           input_peak=largest_finite(network_input), epsilon=_epsilon(engine, other))


def _epsilon(*engines):
    """row -> the coarsest machine epsilon either backend computes it in (float32's unless a
    backend says otherwise, e.g. TF32 convolutions on a GPU)."""
    from ..backends.forward import FLOAT32_EPS

    def epsilon(row) -> float:
        return max(getattr(engine, "epsilon", lambda kind: FLOAT32_EPS)(row.kind) for engine in engines)

    return epsilon


def run_summary(report, engine, seed, given_input: bool, results, shown, other, differences, tolerance) -> dict:
    """The JSON contract of `run --format json`: the last shown layer's output at the top level."""
    last = shown[-1] if shown else results[-1]
    failed = [r for r in results if not r.ok]
    summary = {
        "spec": report.name,
        "file": report.file,
        "backend": engine.name,
        "device": engine.device,
        "seed": seed,
        "input": "input_values" if given_input else f"random normal (seed {seed})",
        "layer": last.name,
        "kind": last.kind,
        "shape": None if last.actual_shape is None else list(last.actual_shape),
        "output": _nested(last.output),
        "ok": not failed and len(results) == len(report.layers),
        "mismatches": [r.to_dict() for r in failed],
        **_findings(report),
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


# ----------------------------------------------------------------------------- shared steps
def resolve_spec(spec: str) -> str:
    """A file, a zoo model, or a lecture example: ``zoo.spec_path``, the resolver every command
    uses (it raises SpecError, with close matches, for a name that is none of them)."""
    from .. import zoo

    return str(zoo.spec_path(spec))


def _analysed(spec: str, batch: int, input_shape: str | None):
    """(spec, report at float32 and ``batch``); exit 2 when the spec or a layer is unusable."""
    from ..api import analyze, load_spec
    from ..cli import fail
    from dataclasses import replace

    from ..errors import CnnCalcError, Location
    from ..report import Finding
    from ..spec.build import read_input

    try:
        loaded = load_spec(resolve_spec(spec))
        if input_shape:
            where = Location(file="--input")
            reading = read_input(input_shape, loaded.chosen_layout, where)
            notes = [Finding(where, reading.note)] if reading.note else []
            loaded = replace(loaded, input=reading.shape, notes=notes,
                             layout=loaded.chosen_layout or reading.layout)
        # The backends floor a size that is not whole, as PyTorch does, whatever the spec says. That is the
        # spec's own choice only when it declares `rounding: floor` (one note lists the layers); otherwise
        # the floor is the default, and each floored layer is warned, as `table` warns it.
        analysed = loaded if loaded.rounding == "floor" else replace(loaded, rounding=None)
        return loaded, analyze(analysed, rounding=None, batch=batch, dtype="float32")
    except CnnCalcError as exc:
        fail(exc)


def _backend(name: str, device: str | None):
    from ..backends.registry import load_backend
    from ..cli import fail
    from ..errors import CnnCalcError

    try:
        return load_backend(name, device or ("cuda" if name == "cupy" else "cpu"))
    except CnnCalcError as exc:
        fail(exc.located(file=f"--backend {name}" + (f" --device {device}" if device else "")))


def _other_backend(name: str | None, engine):
    if name is None:
        return None
    if name == engine.name:
        raise click.BadParameter(f"cross-checking {name} against itself shows nothing; pick another backend",
                                 param_hint="--cross-check")
    device = {"numpy": "cpu", "cupy": "cuda"}.get(name, engine.device)  # torch goes where the first one ran
    return _backend(name, device)


def _check_memory(estimate, engine, max_memory, loaded):
    """(estimate, limit); exit 2 with advice when the estimate is above the limit."""
    from ..backends.memory import check_memory, default_limit
    from ..cli import fail
    from ..errors import CnnCalcError

    if max_memory:
        limit, limit_text = max_memory[0], f"--max-memory {max_memory[1]}"
    else:
        limit, limit_text = default_limit(engine.available_bytes())
        limit_text += f" on {engine.device}"
    try:
        check_memory(estimate, limit, limit_text, smaller_input(loaded))
    except CnnCalcError as exc:
        fail(exc.located(file=loaded.file))
    return estimate, limit


def smaller_input(loaded) -> str | None:
    """The spec's input at half the spatial size, written as --input takes it (None if flat)."""
    from ..notation import shape_text

    channels, *spatial = loaded.input
    if not spatial or max(spatial) < 2:
        return None
    return shape_text([channels, *(max(1, s // 2) for s in spatial)], loaded.layout)


def _wanted_rows(report, loaded, layer_name: str | None, all_layers: bool) -> set[int]:
    if all_layers:
        return {row.index for row in report.layers}
    if not layer_name:
        return {report.layers[-1].index}
    matches = [row.index for row in report.layers if row.name == layer_name]
    if matches:
        return set(matches)
    import difflib

    from ..cli import fail
    from ..errors import SpecError, Location

    names = [row.name for row in report.layers]
    hint = difflib.get_close_matches(layer_name, names, n=3)
    suggestion = f"; did you mean {', '.join(hint)}?" if hint else f"; layers: {', '.join(names[:12])}"
    fail(SpecError(f"no layer is called `{layer_name}`{suggestion}", Location(file=loaded.file)))


def _forward(report, engine, batch, seed, **options):
    """run_forward with the CLI's error handling (a bad `weights` entry exits 2)."""
    from ..backends.forward import run_forward
    from ..cli import fail
    from ..errors import CnnCalcError

    try:
        return run_forward(report, engine, batch=batch, seed=seed, **options)
    except CnnCalcError as exc:
        fail(exc)


# ----------------------------------------------------------------------------- progress
def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


def _progress(fmt: str):
    """A delayed progress bar on a terminal in table format; None for JSON or piped output."""
    if fmt != "table" or not _stdout_is_terminal():
        return None
    return DelayedProgress()


class DelayedProgress:
    """`layer k of n` on stderr, shown only once the run has taken PROGRESS_DELAY_S (quick runs stay
    quiet), removed when the run ends."""

    def __init__(self, delay: float | None = None, clock=time.monotonic):
        self.clock = clock
        self.deadline = clock() + (PROGRESS_DELAY_S if delay is None else delay)
        self.bar = None
        self.task = None

    def __call__(self, done: int, total: int, name: str) -> None:
        description = f"layer {done} of {total} ({name})"
        if self.bar is None:
            if self.clock() < self.deadline:
                return
            self.bar = make_bar()
            self.task = self.bar.add_task(description, total=total, completed=done)
            self.bar.start()
        self.bar.update(self.task, completed=done, description=description)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def make_bar():
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..cli import console

    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=console(err=True), transient=True)
