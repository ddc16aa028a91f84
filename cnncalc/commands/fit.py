"""`cnncalc fit SPEC --memory 80GiB`: the largest batch whose training fits in a memory, and the
training memory at that batch (cnncalc/training.py counts it, ``largest_batch`` searches).

Exit codes: 0 when a batch fits, 1 when not even one sample fits, 2 for unusable input.
"""
from __future__ import annotations

import sys

import click

from .support import (devices_file_option, dtype_option, fail, format_option, input_option, layout_option,
                      optimizer_option, quantity_option, rounding_option, training_options)


@click.command()
@click.argument("spec")
@quantity_option("--memory", metavar="BYTES", positive=True,
                 help="The memory to fit in: 80GiB, 24GB, 512MiB or plain bytes (GiB = 2^30 B, GB = 10^9 B); "
                      "default: --device's memory.")
@click.option("--device", default=None, metavar="NAME",
              help="Fit in this device's memory (`cnncalc devices` lists them) when --memory is not given.")
@devices_file_option()
@format_option("text", "json")
@optimizer_option()
@training_options
@dtype_option(help="Element type of the weights (and of the activations without --amp).")
@rounding_option(help="What a size that is not whole means (default: the spec's `rounding`, else floor).")
@input_option()
@layout_option("Read the spec's shape strings as chw, hwc or whd where it declares no layout.")
def fit(spec, memory, device, devices_file, fmt, optimizer, dtype, rounding, input_shape, layout, **training):
    """The largest batch of SPEC whose training fits in --memory, with the breakdown at that batch."""
    from ..errors import EXIT_FINDINGS, CnnCalcError

    try:
        limit, written = memory_limit(memory, device, devices_file)
        result = fitted(spec, limit, rounding, dtype, optimizer, input_shape, layout, training)
    except CnnCalcError as exc:
        fail(exc)
    click.echo(fit_json(result, written) if fmt == "json" else fit_text(result, written), nl=False)
    if result.batch == 0:
        sys.exit(EXIT_FINDINGS)  # a finding: not even one sample fits


def memory_limit(memory, device: str | None = None, devices_file: str | None = None) -> tuple[int, str]:
    """(bytes, as written) of --memory, else of --device's memory (the device table's `memory`)."""
    from ..errors import CnnCalcError, Location

    if memory is not None:
        return memory
    if device is None:
        raise CnnCalcError("give the memory to fit in, e.g. --memory 80GiB, or a device, e.g. --device h100-sxm",
                           Location(file="--memory"))
    from ..roofline import find_device

    found = find_device(device, devices_file)
    return found.memory_bytes, f"{found.name}'s {found.memory_bytes / 10**9:g} GB"


class Fitted:
    """What `fit` found: the batch, the report at it (or at batch 1 when none fits) and the peak of
    one more sample."""

    def __init__(self, batch: int, report, limit: int, next_peak: int | None):
        self.batch, self.report, self.limit, self.next_peak = batch, report, limit, next_peak

    @property
    def memory(self) -> dict:
        return self.report.totals.training_memory


def fitted(spec, limit: int, rounding, dtype, optimizer, input_shape, layout, training: dict) -> Fitted:
    from ..api import analyze_spec, load_spec
    from ..errors import CnnCalcError
    from ..training import largest_batch

    loaded = load_spec(spec, layout, input_shape)
    reports = {}

    def report_at(batch: int):
        if batch not in reports:
            reports[batch] = analyze_spec(loaded, rounding, batch, dtype, optimizer, **training).report
        if reports[batch].totals.training_memory is None:
            raise CnnCalcError(f"autograd trains floating-point tensors only; {dtype} has no training memory")
        return reports[batch]

    report_at(1)  # a spec that cannot be analysed is an error here, not a batch that does not fit
    batch = largest_batch(lambda n: report_at(n).totals.training_memory["peak"], limit)
    shown = report_at(max(batch, 1))
    try:
        following = report_at(batch + 1).totals.training_memory["peak"] if batch else None
    except CnnCalcError:
        following = None
    return Fitted(batch, shown, limit, following)


def fit_json(result: Fitted, written: str) -> str:
    import json

    from ..training import conventions

    data = {"name": result.report.name, "batch": result.batch, "memory_limit": result.limit,
            "training_memory": result.memory, "memory_limit_written": written,
            "training_memory_batch": max(result.batch, 1), "next_batch_peak": result.next_peak,
            "conventions": conventions(result.report.training, result.report.dtype)}
    return json.dumps(data, indent=2) + "\n"


LABELS = (("weights", "weights"), ("gradients", "gradients"), ("optimizer", "optimizer"),
          ("saved_activations", "saved activations"), ("weight_copies", "weight copies"),
          ("peak_transient", "peak transient"), ("peak", "peak"))


def fit_text(result: Fitted, written: str) -> str:
    from ..render.text import training_words
    from ..units import human_bytes

    report, memory = result.report, result.memory
    limit = f"{written} ({result.limit:,} bytes)"
    if result.batch == 0:
        lines = [f"{report.name}: not even one sample fits in {limit}; batch 1 needs {human_bytes(memory['peak'])}"]
    else:
        lines = [f"{report.name}: the largest batch that fits in {limit} is {result.batch:,}"]
    lines.append(f"Training memory at batch {max(result.batch, 1):,} ({training_words(report)}):")
    width = max(len(label) for _, label in LABELS)
    for key, label in LABELS:
        if key == "weight_copies" and not memory[key]:
            continue
        lines.append(f"  {label:<{width}}  {human_bytes(memory[key])}")
    if result.next_peak is not None:
        lines.append(f"Batch {result.batch + 1:,} would need {human_bytes(result.next_peak)}.")
    return "\n".join(lines) + "\n"
