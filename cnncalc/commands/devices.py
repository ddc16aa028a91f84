"""`cnncalc devices`: the device table that `table --device NAME` bounds a forward pass with.

Plain aligned text (peaks in TFLOP/s, bandwidth in GB/s, memory in GB, each device's sources
below it), or JSON with every figure exact.
"""
from __future__ import annotations

import click

from .support import devices_file_option, fail, format_option

@click.command()
@format_option("table", "json")
@devices_file_option("Your own device table, listed with the shipped one (its entries replace same-named ones).")
def devices(fmt, devices_file):
    """The devices `table --device` knows: peak FLOP/s, bandwidth, memory and their sources."""
    from ..errors import CnnCalcError
    from ..roofline import load_devices

    try:
        known = load_devices(devices_file)
    except CnnCalcError as exc:
        fail(exc)
    if fmt == "json":
        from ..render.json_layout import json_text

        click.echo(json_text({"devices": {key: device.to_dict() for key, device in known.items()}}), nl=False)
        return
    click.echo(devices_text(known), nl=False)


def devices_text(known: dict) -> str:
    """One aligned line per device (an empty cell: no published figure for that math), then the
    sources and notes of each."""
    from ..roofline import MATHS

    maths = [math for math in MATHS if any(math in device.peak_flops for device in known.values())]
    headers = ["name", *(f"{math} TF/s" for math in maths), "GB/s", "memory GB", "device"]
    rows = [headers] + [_cells(device, maths) for device in known.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(headers))]

    def line(cells):
        padded = [cell.ljust(w) if i in (0, len(cells) - 1) else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(cells, widths))]
        return "  ".join(padded).rstrip()

    lines = [line(rows[0]), "  ".join("-" * w for w in widths), *(line(row) for row in rows[1:]), ""]
    lines.append("Peaks are dense (no 2:4 sparsity); int8 in tera-operations/s; memory GB = 10^9 bytes.")
    for device in known.values():
        lines.append(f"{device.key}: {device.name} ({device.table})")
        lines += [f"  {figure}: {source}" for figure, source in device.sources.items()]
        if device.notes:
            lines.append(f"  notes: {device.notes}")
    return "\n".join(lines) + "\n"


def _cells(device, maths: list[str]) -> list[str]:
    peaks = [f"{float(device.peak_flops[m]) / 1e12:g}" if m in device.peak_flops else "" for m in maths]
    return [device.key, *peaks, f"{float(device.memory_bandwidth) / 1e9:g}", f"{device.memory_bytes / 1e9:g}",
            device.name]
