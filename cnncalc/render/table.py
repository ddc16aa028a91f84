"""The terminal table: box-drawn columns, a totals footer, the conventions used and warnings.

Cells never wrap, so column widths are known up front and the table is laid out here as
styled rich ``Text`` in one pass; rich's general ``Table`` layout costs about a second for
ResNet-152's 500+ rows, this costs a few milliseconds.
"""
from __future__ import annotations

from rich.console import Console
from rich.control import strip_control_codes
from rich.text import Text

from ..report import Report
from ..units import compact, short_bytes, thousands
from .columns import Column, pick_columns
from .roofline import device_columns, device_lines
from .text import convention_lines, shape_of, totals_lines

FOOTERS = {
    "name": lambda r: "total",
    "params": lambda r: thousands(r.totals.params),
    "trainable_params": lambda r: thousands(r.totals.trainable_params),
    "weights": lambda r: thousands(sum(row.weights for row in r.layers)),
    "biases": lambda r: thousands(sum(row.biases for row in r.layers)),
    "macs": lambda r: compact(r.totals.macs),
    "muls_with_bias": lambda r: compact(r.totals.muls_with_bias),
    "flops": lambda r: compact(r.totals.flops),
    "connections": lambda r: thousands(sum(row.connections for row in r.layers)),
    "activations": lambda r: thousands(r.totals.activations),
    "memory": lambda r: short_bytes(r.totals.activation_bytes),
    "saved": lambda r: "" if r.totals.saved_bytes is None else short_bytes(r.totals.saved_bytes),
    "weights_k": lambda r: f"{sum(row.weights for row in r.layers) / 1024:,.0f}K",
    "params_k": lambda r: f"{r.totals.params / 1024:,.0f}K",
    "ops_m": lambda r: f"{r.totals.macs / 10**6:,.0f}M",
}
QUIET_KINDS = {"relu", "dropout", "flatten"}  # shown dim: they change nothing but the name


def _line(cells: list[str], columns: list[Column], widths: list[int], edges: str) -> str:
    left, middle, right = edges
    padded = [cell.rjust(width) if column.numeric else cell.ljust(width)
              for cell, column, width in zip(cells, columns, widths)]
    return f"{left} " + f" {middle} ".join(padded) + f" {right}"


def _rule(widths: list[int], chars: str) -> str:
    left, fill, middle, right = chars
    return left + middle.join(fill * (width + 2) for width in widths) + right


def table_lines(report: Report, columns: tuple[str, ...] | None = None, roofline=None) -> list[tuple[str, str]]:
    """The table and what follows it, as (line, rich style) pairs; ``roofline`` (``--device``) adds
    its columns and lines."""
    picked = pick_columns(columns, device_columns(roofline))
    header = [column.header for column in picked]
    body = [[column.text(row, report.layout) for column in picked] for row in report.layers]
    footer = [(column.footer or FOOTERS.get(column.key, lambda r: ""))(report) for column in picked]
    widths = [max(len(cell) for cell in cells) for cells in zip(header, footer, *body)]
    title = f"{report.name} — input {shape_of(report)}"
    total_width = sum(widths) + 3 * len(widths) + 1

    lines = [
        (title.center(total_width).rstrip(), "italic"),
        (_rule(widths, "┏━┳┓"), ""),
        (_line(header, picked, widths, "┃┃┃"), "bold"),
        (_rule(widths, "┡━╇┩"), ""),
    ]
    lines += [(_line(cells, picked, widths, "│││"), "dim" if row.kind in QUIET_KINDS else "")
              for row, cells in zip(report.layers, body)]
    lines += [
        (_rule(widths, "├─┼┤"), ""),
        (_line(footer, picked, widths, "│││"), "bold"),
        (_rule(widths, "└─┴┘"), ""),
    ]
    device_totals, device_conventions = device_lines(roofline)
    lines += [(line, "") for line in totals_lines(report) + device_totals + convention_lines(report)
              + device_conventions]
    lines += [(f"note: {note}", "cyan") for note in report.notes]
    lines += [(f"warning: {warning}", "yellow") for warning in report.warnings]
    return lines


def plain_table(report: Report, columns: tuple[str, ...] | None = None, roofline=None) -> str:
    return "\n".join(line for line, _ in table_lines(report, columns, roofline))


def print_table(report: Report, columns=None, console: Console | None = None, roofline=None) -> None:
    console = console or Console()
    if console.color_system is None:  # a pipe or a dumb terminal: no styles to draw, so no rich Text
        console.file.write(strip_control_codes(plain_table(report, columns, roofline)) + "\n")
        return
    text = Text(no_wrap=True, overflow="ignore")
    for number, (line, style) in enumerate(table_lines(report, columns, roofline)):
        text.append(("\n" if number else "") + line, style=style)
    console.print(text, soft_wrap=True)
