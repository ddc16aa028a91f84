"""Machine and plain-text formats: JSON (the contract), CSV (exact values), Markdown."""
from __future__ import annotations

import csv
import io

from ..report import Report
from ..units import human_bytes, short_bytes, thousands
from .columns import Column, pick_columns
from .roofline import device_columns, device_lines


def to_csv(report: Report, columns: tuple[str, ...] | None = None, roofline=None) -> str:
    picked = pick_columns(columns, device_columns(roofline))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.key for c in picked])
    for row in report.layers:
        writer.writerow([c.value(row, report.layout) for c in picked])
    return buffer.getvalue()


def to_markdown(report: Report, columns: tuple[str, ...] | None = None, roofline=None) -> str:
    picked = pick_columns(columns, device_columns(roofline))
    device_totals, device_conventions = device_lines(roofline)
    lines = [f"## {report.name}", "", f"Input: {shape_of(report)}", ""]
    lines.append("| " + " | ".join(c.header for c in picked) + " |")
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in picked) + "|")
    for row in report.layers:
        lines.append("| " + " | ".join(_md_cell(c, row, report) for c in picked) + " |")
    lines += ["", *totals_lines(report), *device_totals, "", *convention_lines(report), *device_conventions]
    if report.notes:
        lines += ["", "Notes:", *[f"- {n}" for n in report.notes]]
    if report.warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in report.warnings]]
    return "\n".join(lines) + "\n"


def _md_cell(column: Column, row, report: Report) -> str:
    value = column.value(row, report.layout)
    exact_count = column.numeric and isinstance(value, int) and column.key != "memory"
    text = thousands(value) if exact_count else column.text(row, report.layout)
    return text.replace("|", "\\|")


def shape_of(report: Report) -> str:
    from .columns import shape_text

    if len(report.inputs) == 1:
        return shape_text(report.input_shape, report.layout) + f" ({report.layout})"
    return ", ".join(f"{name} {shape_text(shape, report.layout)}" for name, shape in report.inputs.items()) \
        + f" ({report.layout})"


def totals_lines(report: Report) -> list[str]:
    t = report.totals
    return [
        f"- Params: {thousands(t.params)} (trainable {thousands(t.trainable_params)}, "
        f"non-trainable {thousands(t.non_trainable_params)})",
        f"- MACs: {thousands(t.macs)}; FLOPs: {thousands(t.flops)}; MULs with bias: {thousands(t.muls_with_bias)}",
        f"- Activations: {thousands(t.activations)} values, {human_bytes(t.activation_bytes)}",
        f"- Memory: params {human_bytes(t.param_bytes)}; inference {human_bytes(t.inference_bytes)}",
        training_line(report),
    ]


def training_words(report: Report) -> str:
    """How the training was counted, in a few words: `adam, bf16 autocast, checkpointed, on cuda`."""
    options = report.training
    if options is None:
        return f"{report.optimizer}, {report.dtype}"
    words = [options.optimizer, f"{options.amp} autocast" if options.amp else report.dtype]
    if options.checkpoint:
        words.append("checkpointed")
    return ", ".join(words + [f"on {options.train_on}"])


def training_line(report: Report) -> str:
    """The training memory's summary line: the peak and what it is made of."""
    memory = report.totals.training_memory
    if memory is None:
        return f"- Training: none ({report.dtype} cannot be trained by autograd)"
    parts = [("weights", "weights"), ("gradients", "gradients"), ("optimizer", "optimizer"),
             ("saved activations", "saved_activations"), ("weight copies", "weight_copies"),
             ("peak transient", "peak_transient")]
    terms = " + ".join(f"{label} {short_bytes(memory[key])}" for label, key in parts
                       if key != "weight_copies" or memory[key])
    return f"- Training ({training_words(report)}): peak {human_bytes(memory['peak'])} = {terms}"


def convention_lines(report: Report) -> list[str]:
    return [
        f"Conventions: MACs = weight multiply-accumulates (bias excluded), FLOPs = 2 x MACs; "
        f"rounding {report.rounding}; {report.dtype}, batch {report.batch}; MB = 10^6 B, MiB = 2^20 B.",
    ]
