"""Worked solutions per layer: the layer's own formulas plus activations, memory and field."""
from __future__ import annotations

from ..explain import axis_names
from ..notation import LAYOUTS
from ..report import LayerRow, Report, plain_number
from ..units import human_bytes
from .columns import hyper_text, shape_text


def explanation_lines(row: LayerRow, report: Report, formulas: list) -> list[str]:
    """The row's own worked formulas (``Step.formulas()``, as text), then activations, memory and field."""
    lines = [formula.text() for formula in formulas]
    shape = row.output_shape
    batch = f"*{report.batch}" if report.batch != 1 else ""
    if len(shape) > 1:
        symbols = "*".join([*(f"{a}2" for a in reversed(axis_names(len(shape) - 1))), "K"])
        numbers = "*".join(map(str, [*reversed(shape[1:]), shape[0]]))
        lines.append(f"activations = {symbols}{'*batch' if batch else ''} = {numbers}{batch} = {row.activations}")
    elif batch:
        lines.append(f"activations = N_out*batch = {shape[0]}{batch} = {row.activations}")
    else:  # one flat axis: the count is the output size itself, nothing to multiply
        lines.append(f"activations = N_out = {row.activations}")
    bytes_per = row.activation_bytes // row.activations if row.activations else 0
    lines.append(f"memory = activations*{bytes_per} B ({report.dtype}) = {row.activations}*{bytes_per} = "
                 f"{row.activation_bytes} ({human_bytes(row.activation_bytes)})")
    field = row.receptive_field
    if field.size:
        order = LAYOUTS[report.layout].spatial_order  # W x H in the lecture's layout, as its shapes
        sizes = "x".join(str(plain_number(s)) for s in order(field.size))
        jumps = "x".join(str(plain_number(j)) for j in order(field.jump))
        lines.append(f"receptive field: {sizes} input pixels (jump {jumps}; r_out = r_in + D*(F - 1)*j_in)")
    return lines


def explanation_text(analysis, only: str | None = None) -> str:
    """Every row's worked solution (or only the row called ``only``), from an engine ``Analysis``."""
    report, blocks = analysis.report, []
    for row, step in zip(report.layers, analysis.plan.steps):
        if only is not None and row.name != only:
            continue
        title = (f"{row.name} ({row.kind}{', ' + hyper_text(row) if hyper_text(row) else ''}) {row.path}: "
                 f"{shape_text(row.input_shape, report.layout)} -> {shape_text(row.output_shape, report.layout)}")
        blocks.append("\n".join([title, *(f"  {line}" for line in explanation_lines(row, report, step.formulas()))]))
    return "\n\n".join(blocks) + "\n"
