"""A roofline lower bound on the time of a forward pass, per layer, on a device from the device table.

No kernel computes faster than the device's peak or moves data faster than its memory, so a layer
takes at least ``max(FLOPs / peak, bytes / bandwidth)`` (the roofline model: Williams, Waterman and
Patterson, CACM 2009). Below the ridge point ``peak / bandwidth`` (FLOPs per byte) a layer is
memory-bound, at or above it compute-bound. Everything here is arithmetic on the report's exact
counts and the table's figures, kept as Fractions until it is shown.

The device table is ``cnncalc/devices.yaml`` (package data); ``--devices FILE`` adds devices and
replaces shipped ones of the same name. Its numbers are read as every quantity is (``67T``, ``80GB``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import Location, SpecError
from .report import DTYPE_BYTES, Report

SHIPPED_TABLE = Path(__file__).with_name("devices.yaml")
MATHS = ("float64", "float32", "tf32", "float16", "bfloat16", "int8", "uint8")  # peak_flops keys
FIGURES = ("peak_flops", "memory_bandwidth", "memory")  # each needs a source
ENTRY_KEYS = ("name", *FIGURES, "sources", "notes")
# Rows PyTorch runs as views (or, at inference, as the identity): no kernel reads or writes memory,
# so they move 0 bytes and take 0 s. Counting their bytes would make the bound exceed the truth.
VIEW_KINDS = frozenset({"flatten", "reshape", "squeeze", "unsqueeze", "permute", "split", "identity",
                        "dropout", "drop_path"})
CONVENTION = ("forward pass (inference), each layer on its own: time_s = max(roofline_flops / peak, "
              "bytes_moved / bandwidth), a lower bound; roofline_flops = 2 x MACs for conv, conv_transpose and "
              "linear (bias excluded), one FLOP per output element for every other layer; bytes_moved = distinct "
              "inputs read + parameters (with buffers) read + output written, all at the dtype, each once (perfect "
              "caching within a layer, none across layers); views (flatten, reshape, squeeze, unsqueeze, permute, "
              "split) and inference identities (identity, dropout, drop_path) move and compute nothing: 0 bytes, "
              "0 s; intensity = roofline_flops / bytes_moved (0 when nothing moves); bound = compute when "
              "intensity >= peak / bandwidth (the ridge point), else memory; totals: time_s = the sum over layers "
              "(no overlap between layers), memory_bound_share over the layers that take time; int8 peaks are "
              "operations/s; --depth rows sum their layers and take the bound that holds most of their time")


# ----------------------------------------------------------------------------- the device table
@dataclass(frozen=True)
class Device:
    key: str
    name: str
    peak_flops: dict[str, Fraction]  # per math, dense FLOP/s (int8: operations/s)
    memory_bandwidth: Fraction  # bytes/s
    memory_bytes: int
    sources: dict[str, str]  # figure -> where it is published
    notes: str
    table: str  # the file it came from

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name,
                "peak_flops": {math_: _number(value) for math_, value in self.peak_flops.items()},
                "memory_bandwidth": _number(self.memory_bandwidth), "memory_bytes": self.memory_bytes,
                "sources": dict(self.sources), "notes": self.notes, "table": self.table}


def load_devices(user_table: str | None = None) -> dict[str, Device]:
    """The shipped devices, then ``user_table``'s: one of its entries replaces the shipped entry of
    the same name as a whole."""
    devices = read_table(SHIPPED_TABLE)
    if user_table:
        devices.update(read_table(Path(user_table)))
    return devices


def find_device(name: str, user_table: str | None = None) -> Device:
    devices = load_devices(user_table)
    device = devices.get(name.lower())
    if device is None:
        import difflib

        close = difflib.get_close_matches(name.lower(), list(devices), n=3, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise SpecError(f"unknown device `{name}`{hint}; known devices: {', '.join(devices)} (`cnncalc devices` "
                        "shows their figures; --devices FILE adds your own)", Location(file="--device"))
    return device


def read_table(path: Path) -> dict[str, Device]:
    """A device table file (YAML, or JSON for a .json file) checked entry by entry; errors name the
    file and line."""
    from .spec.loader import file_errors, load_bytes

    with file_errors(path, "a device table") as where:
        raw = path.read_bytes()
    if not raw.strip():
        raise SpecError("is empty; a device table needs a `devices:` mapping", where)
    data, source = load_bytes(raw, str(path), "json" if path.suffix.lower() == ".json" else "yaml")
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, dict) or not devices:
        raise SpecError("a device table needs a non-empty `devices:` mapping of names to entries",
                        source.locate(("devices",)))
    return {str(key).lower(): _device(str(key).lower(), entry, ("devices", key), source)
            for key, entry in devices.items()}


def _device(key: str, entry, path: tuple, source) -> Device:
    def problem(message: str, *where) -> SpecError:
        return SpecError(f"device `{key}`: {message}", source.locate(path + where))

    if not isinstance(entry, dict):
        raise problem("must be a mapping with " + ", ".join(f"`{k}`" for k in ENTRY_KEYS[:-1]))
    unknown = [k for k in entry if k not in ENTRY_KEYS]
    if unknown:
        raise problem(f"unknown key `{unknown[0]}`; an entry has {', '.join(ENTRY_KEYS)}", unknown[0])
    missing = [k for k in ENTRY_KEYS[:-1] if k not in entry]
    if missing:
        raise problem(f"`{missing[0]}` is missing")
    peaks = entry["peak_flops"]
    if not isinstance(peaks, dict) or not peaks:
        raise problem("`peak_flops` must map maths (" + ", ".join(MATHS) + ") to FLOP/s", "peak_flops")
    for math_ in peaks:
        if math_ not in MATHS:
            raise problem(f"`peak_flops` has `{math_}`; the maths are {', '.join(MATHS)}", "peak_flops", math_)
    sources = entry["sources"]
    if not isinstance(sources, dict):
        raise problem("`sources` must map " + ", ".join(FIGURES) + " to where each is published", "sources")
    for figure in FIGURES:
        if not isinstance(sources.get(figure), str) or not sources[figure].strip():
            raise problem(f"`sources.{figure}` is missing: say where the figure is published (a URL)", "sources")
    if not isinstance(entry["name"], str) or not entry["name"].strip():
        raise problem("`name` must be text", "name")
    return Device(
        key=key, name=entry["name"],
        peak_flops={m: _positive(value, lambda m=m: problem(f"`peak_flops.{m}` must be a positive number such as "
                                                            "67T", "peak_flops", m))
                    for m, value in peaks.items()},
        memory_bandwidth=_positive(entry["memory_bandwidth"], lambda: problem(
            "`memory_bandwidth` must be a positive number of bytes/s such as 3.35T", "memory_bandwidth")),
        memory_bytes=int(_positive(entry["memory"], lambda: problem("`memory` must be a positive size such as 80GB",
                                                                    "memory"))),
        sources={figure: sources[figure] for figure in FIGURES},
        notes=str(entry.get("notes") or ""),
        table=source.file or "",
    )


def _positive(value, error) -> Fraction:
    """A table number: an int, a float as written (3.35e12) or a quantity (67T, 80GB), exactly."""
    from .units import read_quantity

    if isinstance(value, bool):
        raise error()
    try:
        number = read_quantity(value).value if isinstance(value, str) else Fraction(repr(value))
    except (ValueError, TypeError):
        raise error() from None
    if number <= 0:
        raise error()
    return number


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


# ----------------------------------------------------------------------------- the bound
@dataclass(frozen=True)
class LayerBound:
    flops: int
    bytes_moved: int
    time: Fraction  # seconds
    bound: str  # "compute" or "memory"

    @property
    def intensity(self) -> Fraction:
        return Fraction(self.flops, self.bytes_moved) if self.bytes_moved else Fraction(0)

    def to_dict(self) -> dict:
        return {"roofline_flops": self.flops, "bytes_moved": self.bytes_moved, "intensity": float(self.intensity),
                "bound": self.bound, "time_s": float(self.time)}


@dataclass(frozen=True)
class Roofline:
    device: Device
    math: str  # which of the device's peaks: the dtype, or tf32
    dtype: str
    layers: tuple[LayerBound, ...]  # one per row shown (a composite's with --depth)
    leaves: tuple[LayerBound, ...]  # one per layer, for the totals (as --depth keeps the report's)

    @property
    def peak(self) -> Fraction:
        return self.device.peak_flops[self.math]

    @property
    def ridge(self) -> Fraction:
        """FLOPs per byte at which compute and memory take the same time."""
        return self.peak / self.device.memory_bandwidth

    @property
    def time(self) -> Fraction:
        return sum((layer.time for layer in self.leaves), Fraction(0))

    def memory_bound_share(self) -> tuple[int, int, Fraction]:
        """(memory-bound layers, layers that take time, memory-bound share of the time), over every layer."""
        timed = [layer for layer in self.leaves if layer.time > 0]
        memory = [layer for layer in timed if layer.bound == "memory"]
        total = self.time
        share = sum((layer.time for layer in memory), Fraction(0)) / total if total else Fraction(0)
        return len(memory), len(timed), share

    def totals_dict(self) -> dict:
        memory, timed, share = self.memory_bound_share()
        return {
            "roofline_flops": sum(layer.flops for layer in self.leaves),
            "bytes_moved": sum(layer.bytes_moved for layer in self.leaves),
            "time_s": float(self.time),
            "memory_bound_layers": memory,
            "timed_layers": timed,
            "memory_bound_share": {"layers": memory / timed if timed else 0.0, "time": float(share)},
        }

    def device_dict(self) -> dict:
        return {**self.device.to_dict(), "math": self.math, "peak": _number(self.peak),
                "bandwidth": _number(self.device.memory_bandwidth), "ridge_intensity": float(self.ridge)}

    def folded(self, report: Report, depth: int) -> "Roofline":
        """The rows of ``fold_to_depth(report, depth)``: a composite's row sums its layers' FLOPs, bytes
        and times, and takes the bound that holds most of that time (compute on a tie)."""
        groups = {block.first: block.end for block in report.blocks
                  if block.composite and block.level == depth and block.end > block.first}
        rows, index = [], 0
        while index < len(self.leaves):
            end = groups.get(index, index + 1)
            rows.append(_sum_of(self.leaves[index:end]))
            index = end
        return Roofline(self.device, self.math, self.dtype, tuple(rows), self.leaves)


def _sum_of(layers: tuple[LayerBound, ...]) -> LayerBound:
    if len(layers) == 1:
        return layers[0]
    time = sum((layer.time for layer in layers), Fraction(0))
    memory_time = sum((layer.time for layer in layers if layer.bound == "memory"), Fraction(0))
    return LayerBound(sum(layer.flops for layer in layers), sum(layer.bytes_moved for layer in layers), time,
                      "memory" if 2 * memory_time > time else "compute")


def choose_device(name: str, user_table: str | None, dtype: str, tf32: bool) -> tuple[Device, str]:
    """(the device, which of its peaks bounds the layers), checked before any spec is analysed."""
    device, math_ = find_device(name, user_table), math_for(dtype, tf32)
    if math_ not in device.peak_flops:
        raise SpecError(f"device `{device.key}` ({device.name}) has no {math_} peak in its table (it lists "
                        f"{', '.join(device.peak_flops)}); choose another --dtype or device, or add the figure in "
                        "a --devices file", Location(file="--device"))
    return device, math_


def math_for(dtype: str, tf32: bool) -> str:
    """Which peak bounds the layers: the dtype's own, or with ``--tf32`` the TF32 Tensor Core peak
    PyTorch uses for float32 convolutions by default on Ampere and later GPUs."""
    if tf32 and dtype != "float32":
        raise SpecError(f"--tf32 is a float32 mode; the dtype is {dtype}", Location(file="--tf32"))
    return "tf32" if tf32 else dtype


def bound_on(report: Report, device: Device, math_: str) -> Roofline:
    """Every row of ``report`` (unfolded: a row's ``inputs`` index its rows) bounded on ``device`` by
    its ``math_`` peak (see ``choose_device``)."""
    peak, bandwidth = device.peak_flops[math_], device.memory_bandwidth
    per_element = DTYPE_BYTES[report.dtype]
    bounds = []
    for row in report.layers:
        if row.kind in VIEW_KINDS:
            bounds.append(LayerBound(0, 0, Fraction(0), "memory"))
            continue
        flops = 2 * row.macs if row.macs else row.activations
        elements = _input_elements(report, row) + row.params + row.activations
        moved = elements * per_element
        compute, memory = Fraction(flops) / peak, Fraction(moved) / bandwidth
        # intensity >= peak / bandwidth, without dividing: flops * bandwidth >= bytes * peak
        bound = "compute" if flops * bandwidth >= moved * peak else "memory"
        bounds.append(LayerBound(flops, moved, max(compute, memory), bound))
    return Roofline(device, math_, report.dtype, tuple(bounds), tuple(bounds))


def _input_elements(report: Report, row) -> int:
    """Elements of the distinct tensors a row reads: earlier rows' outputs, or network inputs (-1, -2, ...)."""
    if not row.inputs:
        raise ValueError(f"row {row.index} ({row.name}) records no inputs")
    shapes = list(report.inputs.values())
    return sum(report.layers[node].activations if node >= 0 else math.prod(shapes[-1 - node]) * report.batch
               for node in set(row.inputs))
