"""`ask` and `points`: which quantities an assignment asks, and what a right answer is worth.

- Top level: `ask: [output, params]` asks those quantities of every leaf layer (every row of the
  full table). `points: {output: 2, params: 1}` weighs them; one number (`points: 2`) weighs every
  quantity; a quantity without a weight is worth 1 point.
- On a layer (beside the kind key or inside its arguments, like `expect`): `ask` replaces the
  top-level list for that layer (`ask: []`: not asked); on a composite it asks about the block as
  a whole, as `check` names a composite (its own layers still follow the top level). `points` on
  a layer overrides the top level's for that layer. A layer inside a `repeat` is asked in every
  repetition.

Quantities are named as in answers files (``cnncalc.check.canonical_quantity``: `shape` is
`output`, `ops` is `macs`); every key is checked and a mistake is a located error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ..errors import Location, SpecError

KEYS = ("ask", "points")
DEFAULT_POINTS = Fraction(1)


@dataclass(frozen=True)
class Marks:
    """What one place (the top level or one layer entry) says: the quantities it asks and their weights."""

    ask: tuple[str, ...] | None = None  # None: not said here
    points: dict[str, Fraction] = field(default_factory=dict)  # per quantity
    every: Fraction | None = None  # `points: 2`: the weight of every quantity
    loc: Location | None = None
    points_path: tuple = ("points",)  # where `points` is in the spec's data, for errors

    def weight(self, quantity: str) -> Fraction | None:
        return self.points.get(quantity, self.every)


@dataclass(frozen=True)
class Assignment:
    """The questions of a spec: the top level's marks and each layer entry's (by its data path)."""

    top: Marks
    layers: dict[tuple, Marks]
    composites: frozenset = frozenset()  # the paths of composite entries

    def own(self, path: tuple, composite: bool) -> Marks | None:
        """The marks written on the entry at ``path``; none for the rows a composite makes itself
        (`depthwise_separable`'s `.depthwise`, `se`'s `.fc1`), which share its path."""
        path = tuple(path)
        return self.layers.get(path) if composite == (path in self.composites) else None

    def asked(self, path: tuple, composite: bool) -> tuple[str, ...]:
        """The quantities asked of a layer (``composite``: asked about as a whole block)."""
        own = self.own(path, composite)
        if own is not None and own.ask is not None:
            return own.ask
        return () if composite else (self.top.ask or ())

    def points(self, path: tuple, composite: bool, quantity: str) -> Fraction:
        for marks in (self.own(path, composite), self.top):
            weight = marks.weight(quantity) if marks else None
            if weight is not None:
                return weight
        return DEFAULT_POINTS


def read_marks(data: dict, paths: dict, locate) -> Marks:
    """`ask` and `points` of one mapping (``paths``: the data path of each key; ``locate``: path ->
    Location)."""
    ask = _read_ask(data["ask"], paths["ask"], locate) if "ask" in data else None
    points, every = {}, None
    if data.get("points") is not None:
        points, every = _read_points(data["points"], paths["points"], locate)
    where = next((paths[key] for key in KEYS if key in data), None)
    return Marks(ask, points, every, locate(where) if where is not None else None, paths.get("points", ("points",)))


def _read_ask(value: Any, path: tuple, locate) -> tuple[str, ...]:
    from ..check import canonical_quantity

    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError(f"`ask` must be a list of quantities like [output, params], not {value!r}", locate(path))
    asked: list[str] = []
    for index, key in enumerate(value):
        if not isinstance(key, str):
            raise SpecError(f"`ask` lists quantities by name (output, params, ...), not {key!r}",
                            locate(path + (index,)))
        quantity = canonical_quantity(key, locate(path + (index,)))
        if quantity in asked:
            raise SpecError(f"`ask` names `{quantity}` twice", locate(path + (index,)))
        asked.append(quantity)
    return tuple(asked)


def _read_points(value: Any, path: tuple, locate) -> tuple[dict[str, Fraction], Fraction | None]:
    from ..check import canonical_quantity

    if not isinstance(value, dict):
        return {}, _read_weight(value, "points", locate(path))
    weights: dict[str, Fraction] = {}
    for key, weight in value.items():
        loc = locate(path + (key,))
        quantity = canonical_quantity(key, loc)
        if quantity in weights:
            raise SpecError(f"`points` weighs `{quantity}` twice", loc)
        weights[quantity] = _read_weight(weight, f"points.{key}", loc)
    return weights, None


def _read_weight(value: Any, what: str, loc: Location) -> Fraction:
    """A number of points: 2, 0.5 (kept exact: 0.1 + 0.2 points add up to 0.3)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SpecError(f"`{what}` must be a number of points (0 or more, e.g. 2 or 0.5), not {value!r}", loc)
    return Fraction(value) if isinstance(value, int) else Fraction(Decimal(repr(value)))


def check_assignment(assignment: Assignment, locate) -> None:
    """Every weight belongs to an asked quantity (a typo in `points` is an error, never ignored)."""
    everywhere = set(assignment.top.ask or ())
    for path, marks in assignment.layers.items():
        asked = assignment.asked(path, path in assignment.composites)
        everywhere.update(asked)
        for quantity in marks.points:
            if quantity not in asked:
                raise SpecError(_unasked(quantity, "this layer does not ask", asked),
                                locate(marks.points_path + (quantity,)))
        if marks.every is not None and not asked:
            raise SpecError("`points` on a layer that asks nothing; add `ask: [...]`", marks.loc)
    for quantity in assignment.top.points:
        if quantity not in everywhere:
            raise SpecError(_unasked(quantity, "no layer asks", sorted(everywhere)), locate(("points", quantity)))
    if (assignment.top.points or assignment.top.every is not None) and not everywhere:
        raise SpecError("`points` without `ask`: say which quantities are asked, e.g. `ask: [output, params]`",
                        assignment.top.loc)


def _unasked(quantity: str, who: str, asked) -> str:
    listed = ", ".join(asked) if asked else "nothing"
    return f"`points` weighs `{quantity}`, which {who} (asked: {listed})"


def points_value(points: Fraction) -> int | float:
    """Points as JSON shows them: 3, 2.5."""
    return int(points) if points.denominator == 1 else float(points)


def points_text(points: Fraction) -> str:
    return f"{points_value(points):g}" if points.denominator != 1 else str(int(points))
