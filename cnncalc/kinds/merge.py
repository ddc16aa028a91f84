"""Merges of named outputs (any DAG): element-wise `add` and `mul` (broadcasting as PyTorch does:
squeeze-and-excitation multiplies [C, H, W] by [C, 1, 1]) and channel `concat` (with U-Net's crop)."""
from __future__ import annotations

import functools
from typing import Annotated, ClassVar

from annotated_types import Len
from pydantic import Field

from ..backends.common import crop_to_smallest
from ..errors import ShapeError
from .base import Leaf, PyTorchCode, dims, product_saved


class Merge(Leaf):
    from_: Annotated[list[str], Len(1, None)] = Field(alias="from", description="names of the outputs to merge")
    primary: ClassVar[str] = "from"

    def merge(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError


class ElementwiseMerge(Merge):
    """`add` and `mul`: the op interface's binary function ``op`` folded over the inputs."""

    op: ClassVar[str]

    def reduction_length(self, step):
        return max(1, len(step.inputs))

    def output_storage(self, step):
        return "view" if len(step.inputs) == 1 else "new"  # one input is written as itself

    def memory_order(self, step, order):
        return order  # element-wise: laid out as its (first) input

    def forward(self, ops, xs, params, step):
        return functools.reduce(getattr(ops, self.op), xs)


class Add(ElementwiseMerge):
    kind: ClassVar[str] = "add"
    family: ClassVar[str] = "add"
    op: ClassVar[str] = "add"
    sums_inputs: ClassVar[bool] = True

    def merge(self, shapes):
        return add_shapes(shapes)

    def pytorch(self, step):
        return PyTorchCode(None, " + ".join(f"{{x{i}}}" for i in range(len(step.inputs))))

    def saved(self, step, grad):
        return []  # a sum's gradient is the incoming one: nothing kept

    def onnx(self, step, graph):
        return graph.node("Sum" if len(graph.inputs) > 2 else "Add", list(graph.inputs)) \
            if len(graph.inputs) > 1 else graph.node("Identity", [graph.x])


class Mul(ElementwiseMerge):
    """Element-wise product: a gate (squeeze-and-excitation, attention) scales a feature map."""

    kind: ClassVar[str] = "mul"
    family: ClassVar[str] = "mul"
    op: ClassVar[str] = "mul"
    multiplies_inputs: ClassVar[bool] = True

    def merge(self, shapes):
        return broadcast_shapes(shapes, "multiply", " x ")

    def pytorch(self, step):
        return PyTorchCode(None, " * ".join(f"{{x{i}}}" for i in range(len(step.inputs))))

    def saved(self, step, grad):
        return product_saved(grad)

    def onnx(self, step, graph):
        out = graph.x
        for x in graph.inputs[1:]:  # ONNX's Mul takes two
            out = graph.node("Mul", [out, x])
        return out if len(graph.inputs) > 1 else graph.node("Identity", [out])


class Concat(Merge):
    kind: ClassVar[str] = "concat"
    family: ClassVar[str] = "concat"
    crop: bool = Field(False, description="centre-crop every input to the smallest spatial size first (U-Net)")

    def merge(self, shapes):
        if self.crop:
            smallest = tuple(min(sizes) for sizes in zip(*(s[1:] for s in shapes)))
            shapes = [(s[0], *smallest) for s in shapes]
        return concat_shapes(shapes)

    def pytorch(self, step):
        """torch.cat on channels; with `crop`, centre_crop (written into the file) first, as U-Net."""
        if not self.crop:
            return PyTorchCode(None, "torch.cat([{xs}], dim=1)")
        return PyTorchCode(None, "torch.cat(centre_crop([{xs}]), dim=1)", (("centre_crop", CENTRE_CROP),))

    def onnx(self, step, graph):
        """Concat on channels (axis 1); with `crop`, every input larger than the smallest is first
        centre-cropped by a Slice of its spatial axes."""
        xs = list(graph.inputs)
        if self.crop:
            smallest = step.output_shape[1:]
            for number, (x, shape) in enumerate(zip(graph.inputs, graph.input_shapes)):
                if tuple(shape[1:]) != tuple(smallest):
                    starts = [(have - want) // 2 for have, want in zip(shape[1:], smallest)]
                    xs[number] = graph.node("Slice", [x, graph.constant(starts, label="starts"),
                                                      graph.constant([a + w for a, w in zip(starts, smallest)],
                                                                     label="ends"),
                                                      graph.constant(list(range(2, 2 + len(smallest))), label="axes")])
        return graph.node("Concat", xs, axis=1)

    def saved(self, step, grad):
        return []  # cat (and a centre crop's slices) keeps nothing

    def forward(self, ops, xs, params, step):
        return ops.concat(crop_to_smallest(xs) if self.crop else xs)


CENTRE_CROP = '''\
# U-Net's skip connections: every input centre-cropped to the smallest spatial size among them
# (an odd extra position is cut at the end), so they can be concatenated on channels.
def centre_crop(xs):
    smallest = [min(sizes) for sizes in zip(*(x.shape[2:] for x in xs))]
    return [x[(slice(None), slice(None)) + tuple(slice((have - want) // 2, (have - want) // 2 + want)
                                                 for have, want in zip(x.shape[2:], smallest))]
            for x in xs]
'''


def add_shapes(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    return broadcast_shapes(shapes, "add", " + ")


def broadcast_shapes(shapes: list[tuple[int, ...]], verb: str, sign: str) -> tuple[int, ...]:
    """PyTorch's broadcasting of per-sample shapes. The batch axes line up first, so the ranks must
    be equal (PyTorch would pair the batch of the shorter tensor with a feature axis); on every
    axis the sizes are equal or 1, and the result takes the larger."""
    written = sign.join(str(list(s)) for s in shapes)
    if len({len(s) for s in shapes}) != 1:
        raise ShapeError(f"cannot {verb} tensors of different ranks: {written}; reshape or unsqueeze one first")
    result = []
    for sizes in zip(*shapes):
        kept = {size for size in sizes if size != 1}
        if len(kept) > 1:
            raise ShapeError(f"cannot {verb} tensors of different shapes: {written} "
                             "(they do not broadcast: on every axis the sizes must be equal, or 1)")
        result.append(kept.pop() if kept else 1)
    return tuple(result)


def concat_shapes(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    spatial = {s[1:] for s in shapes}
    if len(spatial) != 1:
        raise ShapeError(
            "cannot concatenate on channels: spatial sizes differ ("
            + ", ".join(dims(s[1:]) or "flat" for s in shapes) + ")"
        )
    return (sum(s[0] for s in shapes), *shapes[0][1:])
