"""The rich terminal table with a totals footer, the conventions used and warnings."""
from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..report import Report
from ..units import compact, short_bytes, thousands
from .columns import pick_columns
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
    "activations": lambda r: thousands(r.totals.activations),
    "memory": lambda r: short_bytes(r.totals.activation_bytes),
}


def rich_table(report: Report, columns: tuple[str, ...] | None = None) -> Table:
    picked = pick_columns(columns)
    table = Table(title=f"{report.name} — input {shape_of(report)}", show_footer=True, header_style="bold",
                  footer_style="bold")
    for column in picked:
        footer = FOOTERS.get(column.key, lambda r: "")(report)
        table.add_column(column.header, footer=footer, justify="right" if column.numeric else "left",
                         no_wrap=column.key in ("name", "input", "output"))
    for row in report.layers:
        style = "dim" if row.kind in ("relu", "dropout", "flatten") else None
        table.add_row(*[column.text(row, report.layout) for column in picked], style=style)
    return table


def render_table(report: Report, columns: tuple[str, ...] | None = None) -> Group:
    parts = [rich_table(report, columns), Text("\n".join(totals_lines(report) + convention_lines(report)))]
    for warning in report.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def print_table(report: Report, columns=None, console: Console | None = None) -> None:
    (console or Console()).print(render_table(report, columns))
