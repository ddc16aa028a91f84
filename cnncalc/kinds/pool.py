"""Pooling: max and average windows, adaptive and global pools, and LeNet-5's trainable
subsampling."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import ClassVar

from pydantic import Field

from ..errors import ShapeError
from ..explain import adaptive_lines, global_lines, size_lines, subsample_lines
from ..formulas import Window, adaptive_bins, article, half, prod
from .base import (AXES_HELP, GLOBAL, Axes, KeepAxes, Leaf, Outcome, Param, PoolPadding, RFStep, averaged_length,
                   axes_text, check_positive, dims, pad_pairs, per_axis, spatial_rank)


class Pool(Leaf):
    kernel: Axes = Field(description="window size F: " + AXES_HELP)
    stride: Axes | None = Field(None, description="stride S (default: the kernel): " + AXES_HELP)
    padding: PoolPadding = Field(0, description="padding: int, per-axis list or [before, after] pairs")
    ceil_mode: bool = Field(False, description="round the output size up, as PyTorch's ceil_mode")
    family: ClassVar[str] = "pool"
    primary: ClassVar[str] = "kernel"
    pad_value: ClassVar[str] = "zero"

    def _dilation(self) -> Axes:
        return 1

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, self.kind)
        sizes = shape[1:]
        kernel = per_axis(self.kernel, rank, "kernel")
        stride = per_axis(self.stride if self.stride is not None else self.kernel, rank, "stride")
        dilation = per_axis(self._dilation(), rank, "dilation")
        pads = pad_pairs(self.padding, rank)
        for k, (before, after) in zip(kernel, pads):
            if max(before, after) > k // 2:  # PyTorch's rule
                raise ShapeError(f"padding {max(before, after)} is more than half the kernel ({k}), which PyTorch rejects")
        windows = [Window(*args) for args in zip(sizes, kernel, stride, pads, dilation)]
        for w in windows:
            if w.extent > w.size + sum(w.pad) and not self.ceil_mode:  # ceil_mode can still fit one window
                raise ShapeError(f"the {dims(kernel)} window is larger than the {dims(sizes)} input; the output would be empty")
        out_sizes = tuple(w.ceil() for w in windows) if self.ceil_mode else ctx.resolve(windows, "window")
        out = (shape[0], *out_sizes)
        check_positive(out, lambda: f"{article(dims(kernel))} {dims(kernel)} window at stride {axes_text(stride)} on {article(dims(sizes))} {dims(sizes)} input")
        return Outcome(
            shape=out,
            rf=tuple(RFStep(w.extent, w.stride, half(w.extent - 1) - w.pad[0]) for w in windows),
            hyper={"kernel": kernel, "stride": stride, "padding": pads, "dilation": dilation},
        )

    def explain(self, step):
        h = step.hyper
        windows = [Window(*a) for a in zip(step.input_shape[1:], h["kernel"], h["stride"], h["padding"], h["dilation"])]
        return size_lines(windows, step.output_shape[1:])


class MaxPool(Pool):
    kind: ClassVar[str] = "maxpool"
    dilation: Axes = Field(1, description="dilation of the window: " + AXES_HELP)

    def _dilation(self):
        return self.dilation

    def forward(self, ops, xs, params, step):
        h = step.hyper
        return ops.max_pool(xs[0], h["kernel"], h["stride"], h["padding"], h["dilation"], self.ceil_mode)


class AvgPool(Pool):
    kind: ClassVar[str] = "avgpool"
    count_include_pad: bool = Field(True, description="whether padded zeros count in the average")

    def infer(self, shape, ctx):
        kernel = per_axis(self.kernel, len(shape) - 1, "kernel")
        if len(shape) == 4 and any(size < k for size, k in zip(shape[1:], kernel)):
            # PyTorch's avg_pool3d alone refuses this, even where padding or ceil_mode would give a window
            raise ShapeError(f"the {dims(shape[1:])} input is smaller than the {dims(kernel)} window, which "
                             "PyTorch's 3-D average pooling refuses whatever the padding")
        return super().infer(shape, ctx)

    def reduction_length(self, step):
        return averaged_length(step)

    def forward(self, ops, xs, params, step):
        h = step.hyper
        return ops.avg_pool(xs[0], h["kernel"], h["stride"], h["padding"], self.ceil_mode, self.count_include_pad)


class AdaptivePool(Leaf):
    output: KeepAxes = Field(description="output size: " + AXES_HELP + "; null in the list keeps that axis' "
                             "input size, as PyTorch's None")
    family: ClassVar[str] = "pool"
    primary: ClassVar[str] = "output"

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, self.kind)
        written = per_axis(self.output, rank, "output")
        if rank == 1 and written[0] is None:
            raise ShapeError(f"`output: [null]` needs 2 or 3 spatial axes: PyTorch's 1-D adaptive pooling takes "
                             f"no None; write the size ({shape[1]}) instead")
        out_sizes = tuple(size if out is None else out for size, out in zip(shape[1:], written))
        steps = []
        for size, out in zip(shape[1:], out_sizes):
            widest = max(end - start for start, end in adaptive_bins(size, out))
            steps.append(RFStep(widest, Fraction(size, out), half(widest - 1)))
        return Outcome(shape=(shape[0], *out_sizes), rf=tuple(steps), hyper={"output": out_sizes})

    def explain(self, step):
        written = per_axis(self.output, len(step.input_shape) - 1, "output")
        return adaptive_lines(step.input_shape[1:], written, step.output_shape[1:])


class AdaptiveAvgPool(AdaptivePool):
    kind: ClassVar[str] = "adaptive_avgpool"

    def reduction_length(self, step):
        return averaged_length(step)

    def forward(self, ops, xs, params, step):
        return ops.adaptive_avg_pool(xs[0], step.hyper["output"])


class AdaptiveMaxPool(AdaptivePool):
    kind: ClassVar[str] = "adaptive_maxpool"

    def forward(self, ops, xs, params, step):
        return ops.adaptive_max_pool(xs[0], step.hyper["output"])


class GlobalPool(Leaf):
    family: ClassVar[str] = "pool"

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, self.kind)
        return Outcome(shape=(shape[0],) + (1,) * rank, rf=GLOBAL, hyper={"kernel": shape[1:]})

    def explain(self, step):
        return global_lines(step.input_shape[1:])


class GlobalAvgPool(GlobalPool):
    kind: ClassVar[str] = "global_avgpool"

    def reduction_length(self, step):
        return averaged_length(step)

    def forward(self, ops, xs, params, step):
        return ops.adaptive_avg_pool(xs[0], (1,) * (xs[0].ndim - 2))


class GlobalMaxPool(GlobalPool):
    kind: ClassVar[str] = "global_maxpool"

    def forward(self, ops, xs, params, step):
        return ops.adaptive_max_pool(xs[0], (1,) * (xs[0].ndim - 2))


class Subsample(Leaf):
    """LeNet-5's trainable subsampling (S2, S4): each map sums a window, multiplies it by one
    trainable coefficient and adds one trainable bias."""

    kind: ClassVar[str] = "subsample"
    family: ClassVar[str] = "pool"
    primary: ClassVar[str] = "kernel"
    kernel: Axes = Field(description="window size: " + AXES_HELP)
    stride: Axes | None = Field(None, description="stride (default: the kernel): " + AXES_HELP)

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, "subsample")
        kernel = per_axis(self.kernel, rank, "kernel")
        stride = per_axis(self.stride if self.stride is not None else self.kernel, rank, "stride")
        windows = [Window(size, k, s, (0, 0)) for size, k, s in zip(shape[1:], kernel, stride)]
        out_sizes = ctx.resolve(windows, "window")
        out = (shape[0], *out_sizes)
        check_positive(out, lambda: f"{article(dims(kernel))} {dims(kernel)} window on {article(dims(shape[1:]))} {dims(shape[1:])} input")
        outputs = prod(out)
        return Outcome(
            shape=out, weights=shape[0], biases=shape[0],
            macs=outputs, bias_muls=outputs,  # one coefficient multiply and one bias per output
            connections=(prod(kernel) + 1) * outputs,  # each output sums its window plus the bias
            rf=tuple(RFStep(w.extent, w.stride, half(w.extent - 1)) for w in windows),
            hyper={"kernel": kernel, "stride": stride, "padding": ((0, 0),) * rank, "dilation": (1,) * rank},
        )

    def explain(self, step):
        h, shape = step.hyper, step.input_shape
        windows = [Window(size, k, s, (0, 0)) for size, k, s in zip(shape[1:], h["kernel"], h["stride"])]
        return size_lines(windows, step.output_shape[1:]) + subsample_lines(shape[0], h["kernel"], step.output_shape)

    def tensors(self, step, x_shape):
        channels = (x_shape[1],)  # one coefficient and one bias per map
        return {"weight": Param(channels, "scale", layout="[C]"), "bias": Param(channels, "shift", layout="[C]")}

    def float_gain(self, step, arrays):
        import numpy

        weight = arrays.get("weight")
        largest = float(numpy.abs(weight).max()) if weight is not None and weight.size else 1.0
        return largest * math.prod(step.hyper["kernel"])

    def forward(self, ops, xs, params, step):
        """The window's sum times one coefficient per map, plus one bias per map."""
        x, h = xs[0], step.hyper
        window_sum = ops.avg_pool(x, h["kernel"], h["stride"], h["padding"]) * math.prod(h["kernel"])
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return window_sum * params["weight"].reshape(shape) + params["bias"].reshape(shape)
