"""Shape operations that move values without computing: `permute`, `reshape` (alias `view`),
`squeeze` and `unsqueeze`, as the PyTorch tensor methods of the same names.

`permute`, `squeeze` and `unsqueeze` take PyTorch's axis numbers *with* the batch axis 0, so they
can be copied from PyTorch code (`x.permute(0, 2, 3, 1)` is `permute: [0, 2, 3, 1]`); `reshape`
takes the per-sample shape *without* the batch axis, as every cnncalc shape. None of them moves
the receptive field: it is carried unchanged, per axis of the network input.
"""
from __future__ import annotations

import math
from typing import Annotated, ClassVar, Union

from annotated_types import Len
from pydantic import Field, Strict

from ..errors import ShapeError
from .base import Formula, Leaf, Outcome, PyTorchCode

Int = Annotated[int, Strict()]
MAX_AXES = 4  # per sample, [C, D, H, W]: what every other kind and the backends handle


def _axis(dim: int, ndim: int, what: str) -> int:
    """PyTorch's axis number (negative from the end) among ``ndim`` axes, batch included -> 1..ndim-1."""
    if not -ndim <= dim < ndim:
        raise ShapeError(f"`dim` {dim} is out of range for {what} (PyTorch's dims {-ndim}..{ndim - 1}, "
                         "the batch axis 0)")
    axis = dim + ndim if dim < 0 else dim
    if axis == 0:
        raise ShapeError(f"`dim` {dim} is the batch axis, which stays: PyTorch's dims count the batch as 0, "
                         "so the first per-sample axis is 1")
    return axis


def _at_most_four(shape: tuple[int, ...], kind: str) -> None:
    if len(shape) > MAX_AXES:
        raise ShapeError(f"{kind} would give {list(shape)}, {len(shape)} axes per sample; cnncalc's shapes have at "
                         f"most {MAX_AXES} ([C, D, H, W], the batch axis not counted)")


class Permute(Leaf):
    """Reorders the axes, as ``torch.permute``; `dims` is PyTorch's, batch axis 0 first."""

    kind: ClassVar[str] = "permute"
    primary: ClassVar[str] = "dims"
    dims: Annotated[list[Int], Len(1)] = Field(
        description="the new order of the axes, PyTorch's numbering with the batch axis as 0, e.g. [0, 2, 3, 1] "
                    "for channels last; it must start with 0")

    def infer(self, shape, ctx):
        ndim = len(shape) + 1
        if len(self.dims) != ndim:
            raise ShapeError(f"`dims` {self.dims} has {len(self.dims)} entries, but the input {list(shape)} is a "
                             f"{ndim}-D tensor with its batch axis: list all {ndim} axes, the batch (0) first, "
                             "as PyTorch's permute")
        order = [d + ndim if d < 0 else d for d in self.dims]
        if sorted(order) != list(range(ndim)):
            raise ShapeError(f"`dims` {self.dims} is not an order of the axes 0..{ndim - 1}, each once "
                             "(PyTorch's numbering, the batch axis 0)")
        if order[0] != 0:
            raise ShapeError(f"`dims` {self.dims} moves the batch axis: it must start with 0, since cnncalc's "
                             "shapes are per sample (PyTorch's dims count the batch as 0)")
        return Outcome(shape=tuple(shape[d - 1] for d in order[1:]))

    def pytorch(self, step):
        return PyTorchCode(None, "{x}.permute(" + ", ".join(map(str, self.dims)) + ")")

    def onnx(self, step, graph):
        ndim = len(step.input_shape) + 1
        return graph.node("Transpose", [graph.x], perm=[d + ndim if d < 0 else d for d in self.dims])

    def output_storage(self, step):
        return "view"

    def saved(self, step, grad):
        return []  # a view keeps nothing

    def view_strides(self, step, strides):
        """Output axis k is input axis dims[k + 1] - 1 (per sample)."""
        ndim = len(step.input_shape) + 1
        return tuple(strides[(d + ndim if d < 0 else d) - 1] for d in self.dims[1:])

    def forward(self, ops, xs, params, step):
        return ops.permute(xs[0], self.dims)


class Reshape(Leaf):
    """A new shape for the same values in the same order, as ``torch.reshape`` / ``view``. `shape`
    is per sample, WITHOUT the batch axis: PyTorch's ``x.view(N, 512, 4, 4)`` is ``shape: [512, 4, 4]``."""

    kind: ClassVar[str] = "reshape"
    primary: ClassVar[str] = "shape"
    shape: Union[Int, Annotated[list[Int], Len(1)]] = Field(
        description="the per-sample shape, without the batch axis; one entry may be -1 (inferred)")

    def target(self) -> tuple[int, ...]:
        return tuple(self.shape) if isinstance(self.shape, list) else (self.shape,)

    def infer(self, shape, ctx):
        target, total = self.target(), math.prod(shape)
        if any(size == 0 or size < -1 for size in target) or target.count(-1) > 1:
            raise ShapeError(f"`shape` {list(target)} may hold positive sizes and at most one -1 (the size inferred)")
        if -1 in target:
            known = -math.prod(target)  # the product of the given sizes
            if total % known:
                raise ShapeError(f"cannot reshape {list(shape)} ({total:,} values) into {list(target)}: {total:,} "
                                 f"is not divisible by {known:,}, the product of the given sizes; `shape` is per "
                                 "sample, without the batch axis")
        else:
            known = math.prod(target)
            if total != known:
                raise ShapeError(f"cannot reshape {list(shape)} ({total:,} values) into {list(target)}, which holds "
                                 f"{known:,}; `shape` is per sample, without the batch axis")
        out = tuple(total // known if size == -1 else size for size in target)
        _at_most_four(out, "reshape")
        return Outcome(shape=out)

    def explain(self, step):
        target = self.target()
        if -1 not in target:
            return []
        total = math.prod(step.input_shape)
        known = -math.prod(target)
        return [Formula("inferred size (-1)", "N_in/(product of the given sizes)", f"{total}/{known}",
                        str(total // known))]

    def pytorch(self, step):
        return PyTorchCode(None, "{x}.reshape({x}.shape[0], " + ", ".join(map(str, self.target())) + ")")

    def onnx(self, step, graph):
        """Reshape to [0, *output]: 0 keeps the batch axis."""
        return graph.node("Reshape", [graph.x, graph.constant([0, *step.output_shape], label="shape")])

    def output_storage(self, step):
        return "reshape"

    def saved(self, step, grad):
        return []  # a view or a copy keeps nothing

    def forward(self, ops, xs, params, step):
        return ops.reshape(xs[0], self.target())


class Squeeze(Leaf):
    """Removes axis `dim` if its size is 1, as ``torch.squeeze(x, dim)``; an axis of another size
    is left, and the shape unchanged, as PyTorch does (no error)."""

    kind: ClassVar[str] = "squeeze"
    primary: ClassVar[str] = "dim"
    dim: Int = Field(description="the axis, PyTorch's numbering with the batch axis as 0 (so at least 1; "
                                 "negative counts from the end)")

    def infer(self, shape, ctx):
        ndim = len(shape) + 1
        axis = _axis(self.dim, ndim, f"the input {list(shape)}, a {ndim}-D tensor with its batch axis")
        if shape[axis - 1] != 1:
            return Outcome(shape=shape)
        if len(shape) == 1:
            raise ShapeError(f"squeeze would remove the only per-sample axis of {list(shape)}; cnncalc's shapes "
                             "keep at least one axis besides the batch")
        return Outcome(shape=shape[:axis - 1] + shape[axis:])

    def pytorch(self, step):
        return PyTorchCode(None, f"{{x}}.squeeze({self.dim})")

    def onnx(self, step, graph):
        """Squeeze of the axis when its size is 1 (torch.squeeze leaves other sizes alone: Identity)."""
        if step.output_shape == step.input_shape:
            return graph.node("Identity", [graph.x])
        ndim = len(step.input_shape) + 1
        axis = self.dim + ndim if self.dim < 0 else self.dim
        return graph.node("Squeeze", [graph.x, graph.constant([axis], label="axes")])

    def output_storage(self, step):
        return "view"

    def saved(self, step, grad):
        return []  # a view keeps nothing

    def view_strides(self, step, strides):
        if step.output_shape == step.input_shape:
            return strides
        ndim = len(step.input_shape) + 1
        axis = (self.dim + ndim if self.dim < 0 else self.dim) - 1  # per sample
        return strides[:axis] + strides[axis + 1:]

    def forward(self, ops, xs, params, step):
        return ops.squeeze(xs[0], self.dim)


class Unsqueeze(Leaf):
    """Inserts an axis of size 1 at `dim`, as ``torch.unsqueeze(x, dim)``."""

    kind: ClassVar[str] = "unsqueeze"
    primary: ClassVar[str] = "dim"
    dim: Int = Field(description="where the new axis goes, PyTorch's numbering with the batch axis as 0 (so at "
                                 "least 1; negative counts from the end)")

    def infer(self, shape, ctx):
        ndim = len(shape) + 2  # PyTorch numbers the axes of the result
        axis = _axis(self.dim, ndim, f"unsqueeze of {list(shape)}, whose result has {ndim} axes with the batch")
        out = shape[:axis - 1] + (1,) + shape[axis - 1:]
        _at_most_four(out, "unsqueeze")
        return Outcome(shape=out)

    def pytorch(self, step):
        return PyTorchCode(None, f"{{x}}.unsqueeze({self.dim})")

    def onnx(self, step, graph):
        ndim = len(step.output_shape) + 1
        axis = self.dim + ndim if self.dim < 0 else self.dim
        return graph.node("Unsqueeze", [graph.x, graph.constant([axis], label="axes")])

    def output_storage(self, step):
        return "view"

    def saved(self, step, grad):
        return []  # a view keeps nothing

    def view_strides(self, step, strides):
        """As PyTorch: the new axis' stride is the size times the stride of the axis it goes before."""
        ndim = len(step.output_shape) + 1
        axis = (self.dim + ndim if self.dim < 0 else self.dim) - 1  # per sample, in the output
        shape = step.input_shape
        stride = shape[axis] * strides[axis] if axis < len(shape) else 1
        return strides[:axis] + (stride,) + strides[axis:]

    def forward(self, ops, xs, params, step):
        return ops.unsqueeze(xs[0], self.dim)
