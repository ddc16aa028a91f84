"""Resampling: upsampling (nearest, linear, cubic) and unpooling (nearest or bed of nails)."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import ClassVar, Literal

from pydantic import Field

from ..errors import ShapeError
from ..explain import unpool_lines, upsample_lines
from .base import (AXES_HELP, SKIP, Axes, Leaf, Outcome, PyTorchCode, RFStep, Scale, check_positive, per_axis,
                   py_arguments, spatial_rank)


def _all_axes(value, rank: int):
    """A field for all axes or per axis -> a tuple (None stays None); the input array decides the rank."""
    if value is None:
        return None
    return tuple(value) if isinstance(value, list) else (value,) * rank


class Upsample(Leaf):
    kind: ClassVar[str] = "upsample"
    family: ClassVar[str] = "upsample"
    primary: ClassVar[str] = "scale_factor"
    scale_factor: Scale | None = Field(None, description="multiplier per axis (output = floor(input * scale))")
    size: Axes | str | None = Field(None, description="output size per axis (instead of scale_factor), or the name of "
                                                     "an earlier output whose size to take (`input`: FCN's resize back)")
    mode: Literal["nearest", "linear", "bilinear", "bicubic", "trilinear"] = Field("nearest", description="interpolation")

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, "upsample")
        if (self.scale_factor is None) == (self.size is None):
            raise ShapeError("upsample needs exactly one of `scale_factor` and `size`")
        size = self.size
        if isinstance(size, str):
            size = list(ctx.spatial_size(size))
            if len(size) != rank:
                raise ShapeError(f"`size: {self.size}` has {len(size)} spatial axes but the input has {rank}")
        out_sizes, scales = self._sizes(shape, size)
        out = (shape[0], *out_sizes)
        check_positive(out, "the scale factor shrinks the input to nothing")
        extent = 1 if self.mode == "nearest" else 2
        hyper = {"scale": tuple(float(s) for s in scales)}
        if size is not None:
            hyper["size"] = out_sizes
        return Outcome(shape=out, rf=tuple(RFStep(extent, 1 / s, (1 / s - 1) / 2) for s in scales), hyper=hyper)

    def _sizes(self, shape, size=None) -> tuple[tuple[int, ...], list[Fraction]]:
        """Output sizes and exact scales: ``size`` (resolved) as given, or floor(input * scale_factor) as PyTorch."""
        rank = len(shape) - 1
        if size is not None:
            out_sizes = per_axis(size, rank, "size")
            return out_sizes, [Fraction(o, i) for o, i in zip(out_sizes, shape[1:])]
        scales = [Fraction(s).limit_denominator(10**6) for s in per_axis(self.scale_factor, rank, "scale_factor")]
        return tuple(math.floor(i * s) for i, s in zip(shape[1:], scales)), scales

    def explain(self, step):
        size = step.hyper.get("size")
        out_sizes, scales = self._sizes(step.input_shape, None if size is None else list(size))
        return upsample_lines(step.input_shape[1:], scales, out_sizes, self.size is not None)

    def float_gain(self, step, arrays):
        rank = len(step.output_shape) - 1
        return 1.375 ** rank if self.mode == "bicubic" else 1.0  # PyTorch's cubic weights: sum |w| <= 1.375

    def reduction_length(self, step):
        rank = len(step.output_shape) - 1
        return {"nearest": 1, "bicubic": 4 ** rank}.get(self.mode, 2 ** rank)

    def rounding_factor(self, step, n):
        """Interpolation computes its sample positions to eps of the position (eps x size pixels)
        and weighs neighbours up to twice the magnitude apart: add the largest input size."""
        if self.mode == "nearest":
            return math.sqrt(n)
        return math.sqrt(n) + 2 * max(step.input_shape[1:], default=1)

    def pytorch(self, step):
        """nn.Upsample with the size (`size`, an earlier output's included, resolved) or the scale
        factors; the linear modes by rank (linear, bilinear, trilinear), as the backends."""
        rank = len(step.input_shape) - 1
        mode = ("linear", "bilinear", "trilinear")[rank - 1] if self.mode in ("linear", "bilinear", "trilinear") \
            else self.mode
        size = step.hyper.get("size")
        scale = None if self.scale_factor is None else tuple(float(f) for f in _all_axes(self.scale_factor, rank))
        return PyTorchCode("nn.Upsample(" + py_arguments(
            size=SKIP if size is None else tuple(size), scale_factor=SKIP if size is not None else scale, mode=mode,
            align_corners=SKIP if mode == "nearest" else False) + ")")

    def onnx(self, step, graph):
        """Resize of the spatial axes (`axes` 2..) to the output sizes, exact where scales are floats
        whose product ONNX rounds, with PyTorch's coordinates
        (nearest: asymmetric, floor; the others: pytorch_half_pixel)."""
        rank = len(step.input_shape) - 1
        inputs = [graph.x, "", "", graph.constant(list(step.output_shape[1:]), label="sizes")]
        axes = list(range(2, 2 + rank))
        if self.mode == "nearest":
            options = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        elif self.mode == "bicubic":
            options = dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel", cubic_coeff_a=-0.75)
        else:
            options = dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")
        return graph.node("Resize", inputs, axes=axes, **options)

    def autocast(self, step, device):
        return "float32" if device == "cuda" else "follow"  # on CUDA autocast's float32 list

    def saved(self, step, grad):
        return []  # interpolation's backward needs only the sizes

    def forward(self, ops, xs, params, step):
        rank = xs[0].ndim - 2
        size = step.hyper.get("size")
        return ops.upsample(xs[0], size=None if size is None else tuple(size),
                            scale_factor=_all_axes(self.scale_factor, rank), mode=self.mode)


class Unpool(Leaf):
    """Nearest-neighbour or bed-of-nails unpooling: each value becomes a factor-sized block."""

    kind: ClassVar[str] = "unpool"
    family: ClassVar[str] = "unpool"
    primary: ClassVar[str] = "factor"
    factor: Axes = Field(2, description="block size per axis: " + AXES_HELP)
    mode: Literal["nearest", "bed_of_nails"] = Field("nearest", description="fill the block, or only its corner")

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, "unpool")
        factors = per_axis(self.factor, rank, "factor")
        return Outcome(
            shape=(shape[0], *(i * f for i, f in zip(shape[1:], factors))),
            rf=tuple(RFStep(1, Fraction(1, f), Fraction(1 - f, 2 * f)) for f in factors),
            hyper={"kernel": factors, "stride": factors},
        )

    def explain(self, step):
        return unpool_lines(step.input_shape[1:], step.hyper["kernel"])

    def pytorch(self, step):
        """Unpool, written into the file (PyTorch's MaxUnpool needs pooling indices)."""
        factor = tuple(_all_axes(self.factor, len(step.input_shape) - 1))
        return PyTorchCode("Unpool(" + py_arguments(factor, self.mode) + ")", helpers=(("Unpool", UNPOOL),))

    def saved(self, step, grad):
        return []  # repeat_interleave, or a copy into zeros, keeps nothing

    def forward(self, ops, xs, params, step):
        return ops.unpool(xs[0], _all_axes(self.factor, xs[0].ndim - 2), self.mode)


UNPOOL = '''\
# Unpooling without indices: each value becomes a factor-sized block, filled with it ("nearest")
# or holding it in its first corner and zeros elsewhere ("bed_of_nails"). PyTorch's MaxUnpool
# needs a pooling's indices, so this is defined here.
class Unpool(nn.Module):
    def __init__(self, factor, mode="nearest"):
        super().__init__()
        self.factor, self.mode = factor, mode

    def forward(self, x):
        if self.mode == "nearest":
            for axis, f in enumerate(self.factor, start=2):
                x = x.repeat_interleave(f, dim=axis)
            return x
        out = x.new_zeros((*x.shape[:2], *(n * f for n, f in zip(x.shape[2:], self.factor))))
        out[(slice(None), slice(None)) + tuple(slice(None, None, f) for f in self.factor)] = x
        return out
'''
