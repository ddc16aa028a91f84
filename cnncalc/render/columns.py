"""The per-layer columns every tabular renderer shares: header, exact value, readable text."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..report import LayerRow, plain_number
from ..notation import LAYOUTS, shape_text
from ..units import compact, short_bytes, thousands


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    value: Callable[[LayerRow, str], object]  # exact, for CSV
    text: Callable[[LayerRow, str], str]  # readable, for tables
    numeric: bool = False
    footer: Callable[[object], str] | None = None  # the totals cell from the report; None: FOOTERS' (table.py)


def hyper_text(row: LayerRow, layout: str = "chw") -> str:
    """k3 s1 p1 style summary of a layer's window hyper-parameters."""
    hyper = row.hyper
    parts = []
    for key, letter in (("kernel", "k"), ("stride", "s"), ("padding", "p"), ("dilation", "d")):
        if key not in hyper:
            continue
        value = hyper[key]
        if key == "padding":
            symmetric = all(a == b for a, b in value)
            value = tuple(a for a, _ in value) if symmetric else tuple(f"{a}+{b}" for a, b in value)
            if not any(str(v) not in ("0",) for v in value):
                continue
        elif key == "dilation" and set(value) == {1}:
            continue
        values = tuple(value)
        parts.append(letter + (str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))))
    if "over" in hyper:  # layernorm: which values share a mean and variance
        parts.append("over C" if hyper["over"] == "C" else "over " + "x".join(map(str, hyper["normalized_shape"])))
    if hyper.get("groups", 1) != 1:
        parts.append(f"g{hyper['groups']}")
    if "output" in hyper:
        parts.append("out " + "x".join(map(str, hyper["output"])))
    if "scale" in hyper:
        parts.append("x" + "x".join(f"{s:g}" for s in hyper["scale"]))
    return " ".join(parts)


def rf_text(row: LayerRow, layout: str = "chw") -> str:
    """Per-axis field sizes in the layout's spatial order (W x H in whd), one number when equal."""
    sizes = LAYOUTS[layout].spatial_order(plain_number(s) for s in row.receptive_field.size)
    if not sizes:
        return ""
    return str(sizes[0]) if len(set(sizes)) == 1 else "x".join(map(str, sizes))


def _kilo(params: int) -> str:
    """GoogLeNet-table style: 2.7K, 159K (K = 1024)."""
    if not params:
        return ""
    k = params / 1024
    return f"{k:.1f}K" if k < 10 else f"{k:,.0f}K"


def _count(attr: str) -> Column:
    return Column(attr, attr, lambda r, _l: getattr(r, attr), lambda r, _l: thousands(getattr(r, attr)), True)


COLUMNS: dict[str, Column] = {c.key: c for c in [
    Column("index", "#", lambda r, _l: r.index, lambda r, _l: str(r.index), True),
    Column("name", "name", lambda r, _l: r.name, lambda r, _l: "  " * r.depth + r.name),
    Column("kind", "kind", lambda r, _l: r.kind, lambda r, _l: r.kind),
    Column("hyper", "k/s/p", hyper_text, hyper_text),
    Column("input", "input", lambda r, l: shape_text(r.input_shape, l), lambda r, l: shape_text(r.input_shape, l)),
    Column("output", "output", lambda r, l: shape_text(r.output_shape, l), lambda r, l: shape_text(r.output_shape, l)),
    _count("weights"),
    _count("biases"),
    _count("params"),
    _count("trainable_params"),
    Column("macs", "MACs", lambda r, _l: r.macs, lambda r, _l: compact(r.macs), True),
    Column("muls_with_bias", "MULs+bias", lambda r, _l: r.muls_with_bias, lambda r, _l: compact(r.muls_with_bias), True),
    Column("flops", "FLOPs", lambda r, _l: 2 * r.macs, lambda r, _l: compact(2 * r.macs), True),
    _count("connections"),  # LeCun's count: links from inputs (and the bias) to outputs
    Column("weights_k", "weights (K=1024)", lambda r, _l: round(r.weights / 1024, 1),
           lambda r, _l: _kilo(r.weights), True),  # what the GoogLeNet table counts (no biases)
    Column("params_k", "params (K=1024)", lambda r, _l: round(r.params / 1024, 1),
           lambda r, _l: _kilo(r.params), True),  # the GoogLeNet paper's unit
    Column("ops_m", "ops (M)", lambda r, _l: round(r.macs / 10**6, 1),
           lambda r, _l: f"{r.macs / 10**6:,.0f}M" if r.macs else "", True),  # MACs in millions
    _count("activations"),
    Column("memory", "memory", lambda r, _l: r.activation_bytes, lambda r, _l: short_bytes(r.activation_bytes), True),
    Column("saved", "saved for backward", lambda r, _l: r.saved_bytes,  # autograd's, at the batch and dtype
           lambda r, _l: "" if r.saved_bytes is None else short_bytes(r.saved_bytes), True),
    Column("rf", "RF", rf_text, rf_text),
]}
DEFAULT_COLUMNS = ("index", "name", "kind", "hyper", "input", "output", "params", "macs", "memory", "rf")
# The roofline's columns (`table --device NAME`): built from its result by render/roofline.py.
DEVICE_COLUMNS = ("roofline_flops", "bytes_moved", "intensity", "bound", "time_s")
DEVICE_DEFAULT_COLUMNS = ("bytes_moved", "intensity", "bound", "time_s")


def pick_columns(keys: tuple[str, ...] | None, device_columns: dict[str, Column] | None = None) -> list[Column]:
    """The columns named (default: DEFAULT_COLUMNS, then the roofline's when ``device_columns`` is given)."""
    available = {**COLUMNS, **(device_columns or {})}
    keys = keys or DEFAULT_COLUMNS + (DEVICE_DEFAULT_COLUMNS if device_columns else ())
    unknown = [k for k in keys if k not in available]
    if unknown:
        needs = " (it needs --device NAME)" if unknown[0] in DEVICE_COLUMNS else ""
        raise ValueError(f"unknown column `{unknown[0]}`{needs}; columns: {', '.join(available)}")
    return [available[k] for k in keys]
