"""Merges of named outputs (any DAG): element-wise `add` and channel `concat` (with U-Net's crop)."""
from __future__ import annotations

from typing import Annotated, ClassVar

from annotated_types import Len
from pydantic import Field

from ..backends.common import crop_to_smallest
from ..errors import ShapeError
from .base import Leaf, dims


class Merge(Leaf):
    from_: Annotated[list[str], Len(1, None)] = Field(alias="from", description="names of the outputs to merge")
    primary: ClassVar[str] = "from"

    def merge(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError


class Add(Merge):
    kind: ClassVar[str] = "add"
    family: ClassVar[str] = "add"
    sums_inputs: ClassVar[bool] = True

    def reduction_length(self, step):
        return max(1, len(step.inputs))

    def merge(self, shapes):
        return add_shapes(shapes)

    def forward(self, ops, xs, params, step):
        total = xs[0]
        for x in xs[1:]:
            total = ops.add(total, x)
        return total


class Concat(Merge):
    kind: ClassVar[str] = "concat"
    family: ClassVar[str] = "concat"
    crop: bool = Field(False, description="centre-crop every input to the smallest spatial size first (U-Net)")

    def merge(self, shapes):
        if self.crop:
            smallest = tuple(min(sizes) for sizes in zip(*(s[1:] for s in shapes)))
            shapes = [(s[0], *smallest) for s in shapes]
        return concat_shapes(shapes)

    def forward(self, ops, xs, params, step):
        return ops.concat(crop_to_smallest(xs) if self.crop else xs)


def add_shapes(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    if len(set(shapes)) != 1:
        raise ShapeError("cannot add tensors of different shapes: " + " + ".join(str(list(s)) for s in shapes))
    return shapes[0]


def concat_shapes(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    spatial = {s[1:] for s in shapes}
    if len(spatial) != 1:
        raise ShapeError(
            "cannot concatenate on channels: spatial sizes differ ("
            + ", ".join(dims(s[1:]) or "flat" for s in shapes) + ")"
        )
    return (sum(s[0] for s in shapes), *shapes[0][1:])
