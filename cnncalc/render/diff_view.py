"""`cnncalc diff` as text: the rich table for the terminal and Markdown for a pull-request comment.

Cells show deltas (new - old, signed); shapes and kinds show `old → new` where they differ. The
table and the Markdown list the layers that are not the same (all with ``every_layer``); JSON
(``SpecDiff.to_dict``) always has every layer.
"""
from __future__ import annotations

from ..diff import QUANTITIES, QUANTITY_WORDS, LayerDiff, SpecDiff, percent_text
from ..notation import shape_text
from ..units import compact, short_bytes

HEADERS = {"params": "params", "macs": "MACs", "memory": "memory"}
STYLES = {"added": "green", "removed": "red", "changed": "yellow", "same": "dim"}
ARROW = "→"


# ----------------------------------------------------------------------------- cells
def signed(value: int, unit: str = "") -> str:
    """+1,234 / -1,234 / 0: exact, with thousands separators."""
    return f"{value:+,}{unit}" if value else f"0{unit}"


def signed_compact(quantity: str, value: int) -> str:
    """For the terminal: +115.6M MACs, +802.8 kB memory, params exact."""
    if quantity == "params" or not value:
        return signed(value)
    sign = "+" if value > 0 else "-"
    return sign + (short_bytes(abs(value)) if quantity == "memory" else compact(abs(value)))


def _pair(old, new, show) -> str:
    if old is None:
        return show(new)
    if new is None or old == new:
        return show(old)
    return f"{show(old)} {ARROW} {show(new)}"


def kind_cell(layer: LayerDiff) -> str:
    kinds = layer.side("kind")
    return _pair(kinds["old"], kinds["new"], str)


def shape_cell(layer: LayerDiff, layout: str) -> str:
    shapes = layer.side("output_shape")
    return _pair(shapes["old"], shapes["new"], lambda shape: shape_text(shape, layout))


DIFFERS_WORDS = {"input_shape": "input", "output_shape": "output", "macs": "MACs"}


def differs_cell(layer: LayerDiff) -> str:
    """What makes a changed layer changed: `kind, settings`, `input, output, MACs`."""
    return ", ".join(DIFFERS_WORDS.get(what, what) for what in layer.differs)


def shown_layers(diff: SpecDiff, every_layer: bool) -> list[LayerDiff]:
    return [layer for layer in diff.layers if every_layer or layer.change != "same"]


# ----------------------------------------------------------------------------- shared lines
def counts_line(diff: SpecDiff) -> str:
    added = diff.count("added")
    return (f"{added} layer{'s' if added != 1 else ''} added, {diff.count('removed')} removed, "
            f"{diff.count('changed')} changed, {diff.count('same')} the same")


def conventions_line(diff: SpecDiff) -> str:
    new = diff.new
    return (f"Layers matched by name; delta = new - old (an absent layer counts 0). params = trainable + "
            f"non-trainable; MACs = weight multiply-accumulates, bias excluded; memory = activation bytes, the "
            f"bytes of each layer's output ({new.dtype}, batch {new.batch}), summed over all layers for the total "
            f"(not the inference peak).")


def totals_lines(diff: SpecDiff) -> list[str]:
    lines = []
    for quantity in QUANTITIES:
        change = diff.total(quantity)
        unit = " B" if quantity == "memory" else ""
        lines.append(f"{QUANTITY_WORDS[quantity]}: {change.old:,}{unit} {ARROW} {change.new:,}{unit} "
                     f"({signed(change.delta, unit)}, {percent_text(change)})")
    return lines


# ----------------------------------------------------------------------------- terminal
def print_diff(diff: SpecDiff, console, layout: str, every_layer: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    title = f"{diff.old_source} ({diff.old.name}) {ARROW} {diff.new_source} ({diff.new.name})"
    table = Table(title=title, show_footer=True)
    table.add_column("change", footer="")
    table.add_column("name", footer="total")
    table.add_column("kind", footer="")
    table.add_column("output", footer="")
    for quantity in QUANTITIES:
        table.add_column(f"Δ {HEADERS[quantity]}", justify="right",
                         footer=signed_compact(quantity, diff.total(quantity).delta))
    table.add_column("differs", footer="")
    for layer in shown_layers(diff, every_layer):
        cells = [layer.change, layer.name, kind_cell(layer), shape_cell(layer, layout)]
        cells += [signed_compact(quantity, layer.quantity(quantity).delta) for quantity in QUANTITIES]
        cells.append(differs_cell(layer))
        table.add_row(*(Text(cell) for cell in cells), style=STYLES[layer.change])
    console.print(table)
    for line in [counts_line(diff), *totals_lines(diff), conventions_line(diff)]:
        console.print(Text(line))


# ----------------------------------------------------------------------------- markdown
def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_md(text)}`" if "`" not in text else _md(text)


def to_markdown(diff: SpecDiff, layout: str, exceeded: list[str], every_layer: bool = False) -> str:
    """A pull-request comment: a summary line, the totals, the layers that differ, the budgets
    exceeded and the conventions."""
    lines = [f"### cnncalc diff: {_code(diff.old_source)} {ARROW} {_code(diff.new_source)}", "",
             f"{counts_line(diff)}.", ""]
    lines += ["| | old | new | change |", "|---|---:|---:|---:|"]
    for quantity in QUANTITIES:
        change = diff.total(quantity)
        unit = " B" if quantity == "memory" else ""
        lines.append(f"| {QUANTITY_WORDS[quantity]} | {change.old:,}{unit} | {change.new:,}{unit} | "
                     f"{signed(change.delta, unit)} ({percent_text(change)}) |")
    shown = shown_layers(diff, every_layer)
    lines.append("")
    if shown:
        lines += ["| change | layer | kind | output | params | MACs | memory | differs |",
                  "|---|---|---|---|---:|---:|---:|---|"]
        for layer in shown:
            deltas = [signed(layer.quantity(q).delta, " B" if q == "memory" else "") for q in QUANTITIES]
            lines.append(f"| {layer.change} | {_code(layer.name)} | {_md(kind_cell(layer))} | "
                         f"{_md(shape_cell(layer, layout))} | " + " | ".join(deltas) + f" | {differs_cell(layer)} |")
    else:
        lines.append("No layer differs.")
    if exceeded:
        lines += ["", "**Budgets exceeded:**", *[f"- {_md(line)}" for line in exceeded]]
    lines += ["", f"<sub>{_md(conventions_line(diff))}</sub>"]
    return "\n".join(lines) + "\n"
