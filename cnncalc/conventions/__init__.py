"""Why the numbers differ: every other tool's params and operation count, reproduced from the
report, and where and why each parts from cnncalc's.

The same ResNet-50 is 4.09 G in torchvision's documentation, 8.2 GFLOPs elsewhere and different
again in torchinfo, fvcore, ptflops or thop: MACs or FLOPs, the bias counted or not, batch norm
counted or not, transposed convolutions counted by their outputs instead of their inputs, layers
a tool does not know counted as zero. cnncalc knows every layer exactly, so each convention here
is a small set of rules, one per module a tool sees, that gives the tool's own number for each row
of the report (tested against the tools themselves, `tests/test_compare.py`).

A convention counts a row as a ``Count``: the value, and the reason it differs from cnncalc's
(params: trainable + non-trainable; ops: MACs), or None where it counts as cnncalc does.
``compare`` adds them up per layer kind and for the whole network, and groups the differences by
layer kind and reason. Pure Python: no tool and no torch is imported.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import ClassVar

from .exported import Row, rows


# Every convention's name, cnncalc's own first (`table --compat` offers them without importing the rules).
NAMES = ("cnncalc", "cnncalc-flops", "lecture", "torchinfo", "fvcore", "ptflops", "ptflops-aten", "thop", "torchscan",
         "torchscan-flops", "calflops", "calflops-macs", "keras", "torchvision-docs")


@dataclass(frozen=True)
class Count:
    """One row's count under a convention. ``reason``: why it is not cnncalc's count (None: it is);
    ``miscount``: the tool gets the layer's arithmetic wrong (a bug, not a convention); ``fails``:
    the tool raises on this layer (``reason`` says what, ``value`` what it would count otherwise)."""

    value: int
    reason: str | None = None
    miscount: bool = False
    fails: bool = False


class Convention:
    """How one tool (or document) counts. Subclasses set the class attributes and the rules."""

    name: ClassVar[str]
    tool: ClassVar[str | None] = None  # the package on PyPI, where it is one
    version: ClassVar[str | None] = None  # the release whose counting is reproduced (and tested)
    ops_unit: ClassVar[str | None]  # what one unit of `ops` is: "macs", "flops", "mult-adds", "muls"; None: no ops
    ops_label: ClassVar[str | None]  # what the tool calls its number
    params_label: ClassVar[str] = "params"
    summary: ClassVar[str]  # one sentence: what the number counts
    counts_modules: ClassVar[bool] = True  # its rules depend on the PyTorch module each row runs

    def params(self, row: Row) -> Count:
        """PyTorch's parameters(): batch-norm running statistics are buffers, not parameters."""
        if row.buffers:
            return Count(row.trainable, "counts parameters() only: running mean and variance are buffers")
        return Count(row.params)

    def ops(self, row: Row) -> Count | None:  # pragma: no cover - every convention has its rule
        raise NotImplementedError

    def shown(self, ops: int) -> str | None:
        """The total as the tool or document prints it, where cnncalc reproduces that exactly."""
        return None


@dataclass(frozen=True)
class Difference:
    """What one reason adds to (or takes from) a convention's count for one layer kind."""

    quantity: str  # "params" or "ops"
    kind: str
    delta: int
    reason: str
    miscount: bool
    layers: tuple[tuple[str, int], ...]  # (row name, its delta), in row order

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "kind": self.kind, "delta": self.delta, "reason": self.reason,
                "miscount": self.miscount, "layers": [{"name": name, "delta": delta} for name, delta in self.layers]}


@dataclass(frozen=True)
class Result:
    """One convention applied to a network."""

    convention: Convention
    params: int
    ops: int | None
    per_kind: dict[str, tuple[int, int | None]]  # kind -> (params, ops), in order of first row
    per_row: list[tuple[int, int | None]]  # (params, ops) of each row
    differences: list[Difference]
    fails: list[tuple[str, str, str]]  # (row name, kind, the error) of rows the tool raises on
    unknown: list[tuple[str, str, str]]  # (row name, kind, module) of rows whose module its rules do not know

    @property
    def runs(self) -> bool:
        return not self.fails

    @property
    def exact(self) -> bool:
        """Whether every row is reproduced by a rule tested against the tool."""
        return not self.unknown

    def to_dict(self) -> dict:
        c = self.convention
        return {
            "name": c.name, "version": c.version, "tool": c.tool, "params": self.params, "ops": self.ops,
            "ops_unit": c.ops_unit, "ops_label": c.ops_label, "params_label": c.params_label, "summary": c.summary,
            "shown": None if self.ops is None else c.shown(self.ops),
            "per_kind": {kind: {"params": p, "ops": o} for kind, (p, o) in self.per_kind.items()},
            "differences": [d.to_dict() for d in self.differences],
            "runs": self.runs,
            "fails": [{"name": name, "kind": kind, "error": error} for name, kind, error in self.fails],
            "exact": self.exact,
            "unknown": [{"name": name, "kind": kind, "module": module} for name, kind, module in self.unknown],
        }


@dataclass(frozen=True)
class Comparison:
    name: str
    input_shape: tuple[int, ...]
    reference: Result  # cnncalc's own: params and MACs
    results: list[Result]

    def to_dict(self) -> dict:
        return {"name": self.name, "input_shape": list(self.input_shape), "batch": 1,
                "reference": {"params": self.reference.params, "ops": self.reference.ops, "ops_unit": "macs"},
                "conventions": [result.to_dict() for result in self.results]}


def conventions() -> list[Convention]:
    """Every convention, in the order of NAMES."""
    from . import calflops, fvcore, own, ptflops, thop, torchinfo, torchscan

    found = [cls() for cls in (*own.OWN, torchinfo.Torchinfo, fvcore.Fvcore, ptflops.PtflopsPytorch,
                               ptflops.PtflopsAten, thop.Thop, torchscan.TorchscanMacs, torchscan.TorchscanFlops,
                               calflops.CalflopsFlops, calflops.CalflopsMacs, *own.DOCUMENTS)]
    return sorted(found, key=lambda convention: NAMES.index(convention.name))


def by_name(name: str) -> Convention:
    for convention in conventions():
        if convention.name == name:
            return convention
    raise KeyError(name)


def compare(analysis, names: list[str] | None = None) -> Comparison:
    """Every convention (or those named) applied to an analysis at batch 1."""
    exported = rows(analysis)
    chosen = [c for c in conventions() if names is None or c.name in names]
    reference = apply(by_name("cnncalc"), exported)
    return Comparison(analysis.report.name, analysis.report.input_shape, reference,
                      [apply(convention, exported) for convention in chosen])


def apply(convention: Convention, exported: list[Row]) -> Result:
    """The convention's count for every row, summed per kind and in all, with its differences."""
    per_row, per_kind, fails, unknown = [], {}, [], []
    grouped: dict[tuple, list] = defaultdict(list)
    counts_ops = convention.ops_unit is not None
    for row in exported:
        params = convention.params(row)
        ops = convention.ops(row) if counts_ops else None
        per_row.append((params.value, None if ops is None else ops.value))
        if ops is not None and ops.fails:
            fails.append((row.name, row.kind, ops.reason))
        if convention.counts_modules and not row.known:
            unknown.append((row.name, row.kind, row.module or "code in forward"))
        kind_params, kind_ops = per_kind.get(row.kind, (0, 0 if counts_ops else None))
        per_kind[row.kind] = (kind_params + params.value, None if ops is None else kind_ops + ops.value)
        for quantity, count, own in (("params", params, row.params), ("ops", ops, row.macs)):
            if count is not None and count.value != own:
                key = (quantity, row.kind, count.reason or "counted otherwise", count.miscount)
                grouped[key].append((row.name, count.value - own))
    differences = [Difference(quantity, kind, sum(d for _, d in layers), reason, miscount, tuple(layers))
                   for (quantity, kind, reason, miscount), layers in grouped.items()]
    params_total = sum(p for p, _ in per_row)
    ops_total = sum(o for _, o in per_row) if counts_ops else None
    return Result(convention, params_total, ops_total, per_kind, per_row, differences, fails, unknown)
