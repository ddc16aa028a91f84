"""`cnncalc verify`: run a spec on real arrays and compare every layer's shape with the analysis.

Only click and the light shared helpers at module level; the analysis, the backends (numpy,
torch, cupy) and rich come in when the command runs. What `verify` shares with `run` is in
forward_common.py.
"""
from __future__ import annotations

import sys
import time

import click

from ..errors import EXIT_FINDINGS, CnnCalcError
from .forward_common import (analysed, backend_options, check_memory, duration, findings, load_engine,
                             resolve_spec, run_header)  # noqa: F401 (resolve_spec: imported from here too)
from .support import batch_option, console, fail, format_option, input_option, print_warnings

PROGRESS_DELAY_S = 1.0  # a bar for runs that take longer than this


@click.command()
@click.argument("spec")
@backend_options
@batch_option()
@input_option("Run at another input size, e.g. 3x64x64 (read in the spec's layout); fixes the size an ONNX "
              "file leaves dynamic.")
@format_option("table", "json")
def verify(spec, backend, device, seed, max_memory, batch, input_shape, fmt):
    """Run SPEC (a file or a zoo model name) forward on real arrays (seeded random weights where the
    spec gives none) and compare every layer's actual output shape with the analysis.
    Exit 0 all match, 1 a mismatch, 2 unusable input.

    \b
    cnncalc verify resnet50 --input 3x64x64
    cnncalc verify my_net.yaml --backend torch --device cuda --batch 8 --format json
    """
    from ..backends.forward import run_forward
    from ..backends.memory import estimate_memory

    try:
        loaded, report, plan = analysed(spec, batch, input_shape)
        engine = load_engine(backend, device)
        estimate, limit = check_memory(estimate_memory(report), engine, max_memory, loaded)
        progress = _progress(fmt)
        try:
            results = run_forward(plan, engine, batch=batch, seed=seed, progress=progress, source=loaded.source)
        finally:
            if progress:
                progress.close()
    except CnnCalcError as exc:
        fail(exc)
    summary = verify_summary(report, engine, batch, seed, results, estimate.total, limit)
    if fmt == "json":
        from ..render.json_layout import json_text

        click.echo(json_text(summary), nl=False)
    else:
        console().print(verify_table(summary, report.layout), soft_wrap=True)
    print_warnings(report)
    if not summary["ok"]:
        sys.exit(EXIT_FINDINGS)


def verify_summary(report, engine, batch: int, seed: int, results: list, estimated_bytes: int, limit) -> dict:
    """The JSON contract of `verify --format json`."""
    failed = [r for r in results if not r.ok]
    summary = {
        **run_header(report, engine, seed),
        "batch": batch,
        "input_shape": list(report.input_shape),
        "layers": [r.to_dict() for r in results],
        "ok": not failed and len(results) == len(report.layers),
        "mismatches": len(failed),
        "not_run": len(report.layers) - len(results),
        "seconds": sum(r.seconds for r in results),
        "estimated_bytes": estimated_bytes,
        "memory_limit_bytes": limit,
        "kernels": engine.kernels,
        **findings(report),
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
                     actual, status, duration(layer["seconds"])])
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
             f"{duration(summary['seconds'])} forward, estimated memory {human_bytes(summary['estimated_bytes'])}")
    count = len(summary["layers"])
    if summary["ok"]:
        text.append(f"all {count} layers match the analysis ({where})", style="green")
    else:
        text.append(f"{summary['mismatches']} of {count} layers do not match the analysis ({where})", style="bold red")
        if "error" in summary:
            text.append(f"\nstopped at {summary['error']['name']}: {summary['error']['message']}; "
                        f"{summary['not_run']} layers not run", style="red")
    if summary.get("kernels"):
        text.append(f"\nkernels: {summary['kernels']}", style="dim")
    return text


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

    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=console(err=True), transient=True)
