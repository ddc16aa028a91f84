"""The roofline (`table --device NAME`) in every format: its columns, its lines under the table, and
the keys it adds to the JSON report. It formats the Roofline's figures; it computes none."""
from __future__ import annotations

from ..units import compact, short_bytes, thousands
from .columns import Column


def seconds_text(seconds: float) -> str:
    """3.52e-06 -> '3.52 µs': three significant digits in s, ms, µs or ns."""
    if seconds == 0:
        return "0"
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= factor:
            return f"{seconds / factor:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def rate_text(value: float, unit: str) -> str:
    """67e12, 'FLOP/s' -> '67 TFLOP/s'; 3.35e12, 'B/s' -> '3.35 TB/s'."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M")):
        if value >= factor:
            return f"{value / factor:.4g} {prefix}{unit}"
    return f"{value:.4g} {unit}"


def device_columns(roofline) -> dict[str, Column] | None:
    """The roofline's columns for ``pick_columns``, or None without ``--device``."""
    return roofline_columns(roofline) if roofline is not None else None


def device_lines(roofline) -> tuple[list[str], list[str]]:
    """The roofline's (totals, conventions) lines; none without ``--device``."""
    return roofline_lines(roofline) if roofline is not None else ([], [])


def roofline_columns(roofline) -> dict[str, Column]:
    """The roofline's columns; a row's figures are found by its index (rows and bounds are in step)."""
    layers = roofline.layers
    totals = roofline.totals_dict()

    def of(row):
        return layers[row.index]

    return {column.key: column for column in [
        Column("roofline_flops", "FLOPs (roofline)", lambda r, _l: of(r).flops, lambda r, _l: compact(of(r).flops),
               True, lambda _report: compact(totals["roofline_flops"])),
        Column("bytes_moved", "bytes moved", lambda r, _l: of(r).bytes_moved,
               lambda r, _l: short_bytes(of(r).bytes_moved), True, lambda _report: short_bytes(totals["bytes_moved"])),
        Column("intensity", "FLOP/B", lambda r, _l: float(of(r).intensity),
               lambda r, _l: f"{float(of(r).intensity):.3g}", True,
               lambda _report: f"{totals['roofline_flops'] / max(totals['bytes_moved'], 1):.3g}"),
        Column("bound", "bound", lambda r, _l: of(r).bound, lambda r, _l: of(r).bound, False,
               lambda _report: f"{totals['memory_bound_layers']}/{totals['timed_layers']} memory"),
        Column("time_s", "min time", lambda r, _l: float(of(r).time), lambda r, _l: seconds_text(float(of(r).time)),
               True, lambda _report: seconds_text(totals["time_s"])),
    ]}


def roofline_lines(roofline) -> tuple[list[str], list[str]]:
    """(the totals line, the convention line) shown under the table and in Markdown."""
    device, totals = roofline.device, roofline.totals_dict()
    share = totals["memory_bound_share"]
    totals_line = (
        f"- Roofline on {device.name} ({roofline.math}: peak {rate_text(float(roofline.peak), 'FLOP/s')}, "
        f"bandwidth {rate_text(float(device.memory_bandwidth), 'B/s')}, ridge {float(roofline.ridge):.3g} FLOP/B): "
        f"at least {seconds_text(totals['time_s'])} per forward pass; memory-bound: "
        f"{thousands(totals['memory_bound_layers'])} of {thousands(totals['timed_layers'])} layers, "
        f"{share['time']:.0%} of the time")
    convention = (
        f"Roofline: time >= max(FLOPs / peak, bytes / bandwidth) per layer, summed; FLOPs = 2 x MACs for conv "
        f"and linear, 1 per output element for other layers; bytes = inputs + params + output at {roofline.dtype}; "
        f"views and inference identities 0; device figures and sources: `cnncalc devices` ({device.key}).")
    return [totals_line], [convention]


def merge_json(data: dict, roofline) -> dict:
    """The report's JSON with the roofline's keys added (never renamed): per row roofline_flops,
    bytes_moved, intensity, bound, time_s; totals the sums and memory_bound_share; the convention;
    and the device with the figures and sources used."""
    from ..roofline import CONVENTION

    for row, bound in zip(data["layers"], roofline.layers):
        row.update(bound.to_dict())
    data["totals"].update(roofline.totals_dict())
    data["conventions"]["roofline"] = CONVENTION
    data["device"] = roofline.device_dict()
    return data
