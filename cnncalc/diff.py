"""`cnncalc diff OLD NEW`: what changed between two analysed specs, layer by layer and in total.

Layers are matched by name (names are unique in a spec). Each is `added` (only in NEW),
`removed` (only in OLD), `changed` or `same`. A matched layer is `changed` when what its row
computes differs: its kind, its written settings (the layer's own keys, without its `name` and
`expect`; the merge row of a block compares its hyper-parameters), its input or output shape, its
params or its MACs. Per layer and in total the diff gives old, new and delta of three quantities:

  params  trainable + non-trainable parameters
  macs    weight multiply-accumulates, bias excluded (for the batch)
  memory  activation bytes: the bytes of the layer's output at the dtype, for the batch; the
          total is their sum over all layers (the table's memory column and total), not the
          inference peak

An absent layer counts 0 in a delta, so the per-layer deltas add up to the total delta exactly.

Budgets of change (`--fail-on params+10%`) are checked against the totals. Nothing here reads
files or prints: ``cnncalc.commands.diff`` loads the two specs and renders.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from .errors import Location, SpecError

QUANTITIES = ("params", "macs", "memory")
CHANGES = ("added", "removed", "changed", "same")
MEMORY_MEANING = ("activation bytes: each layer's output (elements x bytes per element, for the batch); the "
                  "total is their sum over all layers, as the table's memory column, not the inference peak")


# ----------------------------------------------------------------------------- quantities
@dataclass(frozen=True)
class Change:
    """One quantity before and after; ``None`` where the layer does not exist on that side."""

    old: int | None
    new: int | None

    @property
    def delta(self) -> int:
        return (self.new or 0) - (self.old or 0)

    @property
    def relative(self) -> Fraction | None:
        """delta / old; None when old is 0 or absent (any growth from nothing is unbounded)."""
        return Fraction(self.delta, self.old) if self.old else None

    def to_dict(self) -> dict:
        return {"old": self.old, "new": self.new, "delta": self.delta}


def row_quantity(row, quantity: str) -> int:
    return {"params": row.params, "macs": row.macs, "memory": row.activation_bytes}[quantity]


def total_quantity(report, quantity: str) -> int:
    totals = report.totals
    return {"params": totals.params, "macs": totals.macs, "memory": totals.activation_bytes}[quantity]


# ----------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class LayerDiff:
    name: str
    change: str  # one of CHANGES
    old: object | None  # the OLD report's LayerRow, None when added
    new: object | None
    differs: tuple[str, ...] = ()  # what differs in a changed layer: kind, settings, input_shape, ...

    def quantity(self, quantity: str) -> Change:
        return Change(row_quantity(self.old, quantity) if self.old else None,
                      row_quantity(self.new, quantity) if self.new else None)

    def side(self, attribute: str) -> dict:
        def value(row):
            if row is None:
                return None
            found = getattr(row, attribute)
            return list(found) if isinstance(found, tuple) else found

        return {"old": value(self.old), "new": value(self.new)}

    def to_dict(self) -> dict:
        data = {"name": self.name, "change": self.change, "kind": self.side("kind"), "path": self.side("path"),
                "output_shape": self.side("output_shape")}
        data.update({quantity: self.quantity(quantity).to_dict() for quantity in QUANTITIES})
        data["differs"] = list(self.differs)
        return data


@dataclass(frozen=True)
class SpecDiff:
    old: object  # Report
    new: object
    old_source: str  # as the user named it: a file, a zoo name, git:REV:path
    new_source: str
    layers: list[LayerDiff]

    def total(self, quantity: str) -> Change:
        return Change(total_quantity(self.old, quantity), total_quantity(self.new, quantity))

    def count(self, change: str) -> int:
        return sum(layer.change == change for layer in self.layers)

    def to_dict(self) -> dict:
        def side(report, source):
            return {"source": source, "name": report.name, "file": report.file,
                    "input_shape": list(report.input_shape)}

        return {
            "old": side(self.old, self.old_source),
            "new": side(self.new, self.new_source),
            "conventions": {"match": "layers are matched by name",
                            "params": "trainable + non-trainable parameters",
                            "macs": "weight multiply-accumulates, bias excluded, for the batch",
                            "memory": MEMORY_MEANING,
                            "delta": "new - old; an absent layer counts 0",
                            "batch": self.new.batch, "dtype": self.new.dtype,
                            "rounding": {"old": self.old.rounding, "new": self.new.rounding}},
            "counts": {change: self.count(change) for change in CHANGES},
            "layers": [layer.to_dict() for layer in self.layers],
            "totals": {quantity: self.total(quantity).to_dict() for quantity in QUANTITIES},
        }


def diff_analyses(old, new, old_source: str, new_source: str) -> SpecDiff:
    """Compare two analyses (``engine.Analysis``: report and plan) row by row, matched by name."""
    settings_old = {step.name: layer_settings(step) for step in old.plan.steps}
    settings_new = {step.name: layer_settings(step) for step in new.plan.steps}
    return diff_reports(old.report, new.report, old_source, new_source, settings_old, settings_new)


def diff_reports(old, new, old_source: str, new_source: str, settings_old: dict, settings_new: dict) -> SpecDiff:
    """Compare two reports row by row, matched by name. ``settings_*``: row name -> the layer's
    written settings (``layer_settings``); a layer whose settings differ is changed."""
    old_rows, new_rows = _by_name(old), _by_name(new)
    layers = []
    for name in merged_order(list(old_rows), list(new_rows)):
        before, after = old_rows.get(name), new_rows.get(name)
        if before is None:
            layers.append(LayerDiff(name, "added", None, after))
        elif after is None:
            layers.append(LayerDiff(name, "removed", before, None))
        else:
            differs = differences(before, after, settings_old.get(name), settings_new.get(name))
            layers.append(LayerDiff(name, "changed" if differs else "same", before, after, differs))
    return SpecDiff(old, new, old_source, new_source, layers)


def _by_name(report) -> dict:
    rows = {row.name: row for row in report.layers}
    if len(rows) != len(report.layers):  # the engine refuses duplicate names; a diff by name needs that
        raise SpecError("layer names are not unique, so layers cannot be matched by name", Location(report.file))
    return rows


def differences(old, new, old_settings, new_settings) -> tuple[str, ...]:
    """What differs between two rows of the same name, in the order a reader checks it."""
    found = []
    if old.kind != new.kind:
        found.append("kind")
    if old_settings != new_settings or old.hyper != new.hyper:
        found.append("settings")
    for attribute in ("input_shape", "output_shape"):
        if getattr(old, attribute) != getattr(new, attribute):
            found.append(attribute)
    for quantity in ("params", "macs"):  # memory follows the output shape
        if row_quantity(old, quantity) != row_quantity(new, quantity):
            found.append(quantity)
    return tuple(found)


def layer_settings(step) -> object:
    """A plan step's written settings, to compare: a leaf layer's own keys without `name` and
    `expect`; None for the merge row of a block (its hyper-parameters are compared instead, and
    the block's insides are rows of their own)."""
    from .kinds.base import Composite

    if isinstance(step.layer, Composite):
        return None
    return step.layer.model_dump(exclude={"name", "expect"})


def merged_order(old: list[str], new: list[str]) -> list[str]:
    """Every name once: NEW's order, with each removed name right after the OLD name before it
    (removed names at OLD's start come first)."""
    kept = set(new)
    removed_after: dict[str | None, list[str]] = {}
    previous = None
    for name in old:
        if name in kept:
            previous = name
        else:
            removed_after.setdefault(previous, []).append(name)
    order = list(removed_after.get(None, []))
    for name in new:
        order.append(name)
        order += removed_after.get(name, [])
    return order


# ----------------------------------------------------------------------------- budgets of change
BUDGET = re.compile(r"^\s*(?P<quantity>[A-Za-z]+)\s*(?P<sign>[+-])\s*(?P<amount>[^%]+?)\s*(?P<percent>%)?\s*$")


@dataclass(frozen=True)
class ChangeBudget:
    """`params+10%`: params may grow by at most 10% of OLD's total; `macs+1G`: by at most 10^9;
    `memory-5%`: may shrink by at most 5%. At the limit is within it."""

    written: str
    quantity: str  # one of QUANTITIES
    sign: str  # "+" (bounds growth) or "-" (bounds shrinking)
    amount: Fraction  # a percentage when ``relative``, else a count (bytes for memory)
    relative: bool

    def limit(self, old_total: int) -> Fraction:
        """The most change allowed, as a count."""
        return self.amount * old_total / 100 if self.relative else self.amount

    def excess(self, change: Change) -> str | None:
        """None within the budget, else one sentence saying by how much it is exceeded."""
        moved = change.delta if self.sign == "+" else -change.delta
        limit = self.limit(change.old)
        if moved <= limit:
            return None
        unit = " B" if self.quantity == "memory" else ""
        verb = "grew" if self.sign == "+" else "shrank"
        percent = f" ({percent_text(change)})" if change.relative is not None else ""
        allowed = f"{_amount(limit)}{unit}"
        if self.relative:
            allowed += f" ({float(self.amount):g}% of {change.old:,})"
        return (f"{self.written} exceeded: {QUANTITY_WORDS[self.quantity]} {verb} by {abs(change.delta):,}{unit}"
                f"{percent}, from {change.old:,}{unit} to {change.new:,}{unit}: {_amount(moved - limit)}{unit} more than "
                f"the {allowed} it allows")

    def to_dict(self, change: Change) -> dict:
        return {"budget": self.written, "quantity": self.quantity,
                "direction": "increase" if self.sign == "+" else "decrease",
                "limit": _number(self.limit(change.old)), "delta": change.delta,
                "exceeded": self.excess(change) is not None}


QUANTITY_WORDS = {"params": "params", "macs": "MACs", "memory": "memory (activation bytes)"}


def parse_budget(text: str) -> ChangeBudget:
    """`params+10%`, `macs+1G`, `memory+2MiB`, `params-5%` (raises ValueError saying why)."""
    from .units import read_quantity

    match = BUDGET.match(text)
    if not match:
        raise ValueError(f"cannot read {text!r}: write QUANTITY+LIMIT or QUANTITY-LIMIT, e.g. params+10%, "
                         "macs+1G, memory+2MiB")
    quantity = match["quantity"].lower()
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {match['quantity']!r} in {text!r}; choose from {', '.join(QUANTITIES)}")
    amount = read_quantity(match["amount"]).value  # 10, 2.5, 1M, 2MiB: exact
    return ChangeBudget(text.strip(), quantity, match["sign"], amount, bool(match["percent"]))


def percent_text(change: Change) -> str:
    """+86.5%, -3.2%, +0.012% (two digits below 0.1%), 0%; `new` when OLD had none."""
    if change.relative is None:
        return "new" if change.delta else "0%"
    value = float(change.relative) * 100
    if value == 0:
        return "0%"
    return f"{value:+.1f}%" if abs(value) >= 0.1 else f"{value:+.2g}%"


def _amount(value: Fraction) -> str:
    """1,168,951.2: whole numbers exactly, others to one decimal."""
    return f"{int(value):,}" if value.denominator == 1 else f"{float(value):,.1f}"


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)
