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
from .conv import onnx_pads
from .base import (AXES_HELP, COMPUTE, GLOBAL, SKIP, Axes, KeepAxes, Leaf, Outcome, Param, PoolPadding, PyTorchCode,
                   RFStep, Saved,
                   averaged_length, axes_text, check_positive, dims, is_symmetric, pad_arguments, pad_pairs, per_axis,
                   py_arguments, py_literal, spatial_rank, unless)


def cpu_3d_float32(step, device: str) -> str:
    """CPU autocast runs 3-D pooling in float32 (max_pool3d, avg_pool3d and their adaptive forms are on
    its float32 list); everywhere else pooling follows its input's dtype."""
    return "float32" if device == "cpu" and len(step.input_shape) == 4 else "follow"


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

    def _pytorch_module(self, step, name: str, **extra) -> str:
        """nn.MaxPoolNd / nn.AvgPoolNd; with asymmetric padding the module pads nothing (F.pad does)."""
        h, pads = step.hyper, step.hyper["padding"]
        padding = unless(tuple(b for b, _ in pads), 0) if is_symmetric(pads) else SKIP
        return (f"nn.{name}{len(step.input_shape) - 1}d("
                + py_arguments(kernel_size=tuple(h["kernel"]), stride=tuple(h["stride"]), padding=padding, **extra,
                               ceil_mode=unless(self.ceil_mode, False)) + ")")

    def _padded_call(self, step, call: str) -> str:
        """``call`` (on the F.pad-ded input) cut to the row's sizes: with ceil_mode, PyTorch on an input
        padded beforehand may keep a last window that starts in the right padding, which it drops
        when it pads itself (and the backends drop)."""
        h = step.hyper
        cuts = []
        for size, k, s, d, (before, after), out in zip(step.input_shape[1:], h["kernel"], h["stride"], h["dilation"],
                                                         h["padding"], step.output_shape[1:]):
            padded = size + before + after
            count = -(-(padded - d * (k - 1) - 1) // s) + 1 if self.ceil_mode else (padded - d * (k - 1) - 1) // s + 1
            if self.ceil_mode and (count - 1) * s >= padded:
                count -= 1
            cuts.append(":" if count == out else f":{out}")
        return call if all(c == ":" for c in cuts) else f"{call}[:, :, {', '.join(cuts)}]"

    def autocast(self, step, device):
        return cpu_3d_float32(step, device)

    def _uncut(self, step) -> tuple[int, ...]:
        """Per axis, the windows PyTorch's pool makes on the F.pad-ded input of an asymmetric padding,
        before the forward cuts them to the row's sizes (``_padded_call``)."""
        h = step.hyper
        windows = [Window(size + before + after, k, s, (0, 0), d) for size, k, s, d, (before, after)
                   in zip(step.input_shape[1:], h["kernel"], h["stride"], h["dilation"], h["padding"])]
        return tuple(w.ceil() if self.ceil_mode else w.floor() for w in windows)

    def _pooled_input(self, step, grad) -> Saved:
        """What the pool keeps of its input: the input, or the F.pad-ded copy of an asymmetric padding."""
        pads = step.hyper["padding"]
        if is_symmetric(pads):
            return Saved.input()
        padded = prod(size + before + after for size, (before, after) in zip(step.input_shape[1:], pads))
        return Saved.new(grad.batch * step.input_shape[0] * padded, COMPUTE, "padded input")

    def storage_elements(self, step):
        """An asymmetric padding's windows are cut to the row's sizes: the uncut output stays alive."""
        if is_symmetric(step.hyper["padding"]):
            return None
        return step.output_shape[0] * prod(self._uncut(step))


class MaxPool(Pool):
    kind: ClassVar[str] = "maxpool"
    dilation: Axes = Field(1, description="dilation of the window: " + AXES_HELP)

    def _dilation(self):
        return self.dilation

    def pytorch(self, step):
        """nn.MaxPoolNd; asymmetric padding as F.pad with -inf first (what max pooling pads with)."""
        h, pads = step.hyper, step.hyper["padding"]
        module = self._pytorch_module(step, "MaxPool", dilation=unless(h["dilation"], 1))
        if is_symmetric(pads):
            return PyTorchCode(module)
        padded = "F.pad({x}, " + py_literal(pad_arguments(pads)) + ', value=float("-inf"))'
        return PyTorchCode(module, self._padded_call(step, "{m}(" + padded + ")"))

    def onnx(self, step, graph):
        h = step.hyper
        return graph.node("MaxPool", [graph.x], kernel_shape=list(h["kernel"]), strides=list(h["stride"]),
                          pads=onnx_pads(h["padding"]), dilations=list(h["dilation"]), ceil_mode=int(self.ceil_mode))

    def saved(self, step, grad):
        """max_pool keeps its input and the int64 index of every maximum."""
        pooled = step.output_shape[1:] if is_symmetric(step.hyper["padding"]) else self._uncut(step)
        indices = Saved.new(grad.batch * step.input_shape[0] * prod(pooled), "int64", "indices")
        return [self._pooled_input(step, grad), indices]

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

    def pytorch(self, step):
        """nn.AvgPoolNd; asymmetric padding as F.pad (zeros) first, and without count_include_pad the
        window sums divided by the real positions each window holds (the same pool of ones)."""
        pads = step.hyper["padding"]
        if is_symmetric(pads):
            return PyTorchCode(self._pytorch_module(step, "AvgPool",
                                                    count_include_pad=unless(self.count_include_pad, True)))
        module = self._pytorch_module(step, "AvgPool")
        flat = py_literal(pad_arguments(pads))
        call = "{m}(F.pad({x}, " + flat + "))"
        if not self.count_include_pad:
            call = f"({call} / {{m}}(F.pad(torch.ones_like({{x}}[:1, :1]), {flat})))"
        return PyTorchCode(module, self._padded_call(step, call))

    def onnx(self, step, graph):
        h = step.hyper
        return graph.node("AveragePool", [graph.x], kernel_shape=list(h["kernel"]), strides=list(h["stride"]),
                          pads=onnx_pads(h["padding"]), ceil_mode=int(self.ceil_mode),
                          count_include_pad=int(self.count_include_pad))

    def saved(self, step, grad):
        """avg_pool keeps its input; an asymmetric padding without count_include_pad divides by the
        pooled ones, and the division keeps that divisor (one map, whatever the batch)."""
        saved = [self._pooled_input(step, grad)]
        if not is_symmetric(step.hyper["padding"]) and not self.count_include_pad:
            saved.append(Saved.new(prod(self._uncut(step)), COMPUTE, "divisor"))
        return saved

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

    def autocast(self, step, device):
        return cpu_3d_float32(step, device)


    torch_module: ClassVar[str]  # nn.<this>Nd

    def pytorch(self, step):
        """nn.AdaptiveAvgPoolNd / nn.AdaptiveMaxPoolNd; a `null` stays None (keep that axis' size)."""
        written = per_axis(self.output, len(step.input_shape) - 1, "output")
        return PyTorchCode(f"nn.{self.torch_module}{len(step.input_shape) - 1}d({py_literal(tuple(written))})")

    def onnx(self, step, graph):
        """A global pool where every output size is 1; else a pool whose window tiles the input (each
        input size a multiple of its output size), which is what the adaptive pool then computes.
        Other sizes have overlapping, uneven windows, which no ONNX op computes."""
        sizes, outs = step.input_shape[1:], step.output_shape[1:]
        if all(out == 1 for out in outs):
            return graph.node(self.onnx_global, [graph.x])
        if any(size % out for size, out in zip(sizes, outs)):
            from ..export.onnx import unsupported

            raise unsupported(step, f"the input {dims(sizes)} is not a whole multiple of the output {dims(outs)}, "
                                    "so the adaptive windows are uneven and no ONNX pool computes them")
        kernel = [size // out for size, out in zip(sizes, outs)]
        return graph.node(self.onnx_pool, [graph.x], kernel_shape=kernel, strides=kernel)


class AdaptiveAvgPool(AdaptivePool):
    kind: ClassVar[str] = "adaptive_avgpool"
    torch_module: ClassVar[str] = "AdaptiveAvgPool"
    onnx_global: ClassVar[str] = "GlobalAveragePool"
    onnx_pool: ClassVar[str] = "AveragePool"

    def reduction_length(self, step):
        return averaged_length(step)

    def saved(self, step, grad):
        """To 1 on every axis PyTorch takes the mean, which keeps nothing; else the pool keeps its input."""
        return [] if all(size == 1 for size in step.output_shape[1:]) else [Saved.input()]

    def forward(self, ops, xs, params, step):
        return ops.adaptive_avg_pool(xs[0], step.hyper["output"])


class AdaptiveMaxPool(AdaptivePool):
    kind: ClassVar[str] = "adaptive_maxpool"
    torch_module: ClassVar[str] = "AdaptiveMaxPool"
    onnx_global: ClassVar[str] = "GlobalMaxPool"
    onnx_pool: ClassVar[str] = "MaxPool"

    def saved(self, step, grad):
        return [Saved.input(), Saved.new(grad.batch * prod(step.output_shape), "int64", "indices")]

    def forward(self, ops, xs, params, step):
        return ops.adaptive_max_pool(xs[0], step.hyper["output"])


class GlobalPool(Leaf):
    family: ClassVar[str] = "pool"

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, self.kind)
        return Outcome(shape=(shape[0],) + (1,) * rank, rf=GLOBAL, hyper={"kernel": shape[1:]})

    def explain(self, step):
        return global_lines(step.input_shape[1:])

    torch_module: ClassVar[str]  # nn.<this>Nd

    def pytorch(self, step):
        """nn.AdaptiveAvgPoolNd(1) / nn.AdaptiveMaxPoolNd(1): one output per axis, the dims kept."""
        return PyTorchCode(f"nn.{self.torch_module}{len(step.input_shape) - 1}d(1)")

    def onnx(self, step, graph):
        return graph.node(self.onnx_global, [graph.x])

    def autocast(self, step, device):
        return cpu_3d_float32(step, device)


class GlobalAvgPool(GlobalPool):
    kind: ClassVar[str] = "global_avgpool"
    torch_module: ClassVar[str] = "AdaptiveAvgPool"
    onnx_global: ClassVar[str] = "GlobalAveragePool"

    def reduction_length(self, step):
        return averaged_length(step)

    def saved(self, step, grad):
        return []  # the adaptive pool to 1 is a mean, which keeps nothing

    def forward(self, ops, xs, params, step):
        return ops.adaptive_avg_pool(xs[0], (1,) * (xs[0].ndim - 2))


class GlobalMaxPool(GlobalPool):
    kind: ClassVar[str] = "global_maxpool"
    torch_module: ClassVar[str] = "AdaptiveMaxPool"
    onnx_global: ClassVar[str] = "GlobalMaxPool"

    def saved(self, step, grad):
        return [Saved.input(), Saved.new(grad.batch * step.input_shape[0], "int64", "indices")]

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

    def pytorch(self, step):
        """Subsample, written into the file: PyTorch has no module for it."""
        h = step.hyper
        module = "Subsample(" + py_arguments(step.input_shape[0], kernel_size=tuple(h["kernel"]),
                                             stride=tuple(h["stride"])) + ")"
        return PyTorchCode(module, helpers=(("Subsample", SUBSAMPLE),))

    def saved(self, step, grad):
        """avg_pool keeps its input (a float32 copy under CPU autocast in 3-D); the 1x1 depthwise
        convolution keeps the scaled window sums (a half copy under autocast) and its weight."""
        sums = Saved.new(grad.batch * prod(step.output_shape), grad.amp or COMPUTE, "window sums")
        saved = [sums, Saved.weight(step.input_shape[0])]
        if grad.needs_grad[0]:
            if grad.amp and cpu_3d_float32(step, grad.device) == "float32" and grad.compute != "float32":
                saved.insert(0, Saved.new(grad.batch * prod(step.input_shape), "float32", "float32 input"))
            else:
                saved.insert(0, Saved.input())
        return saved

    def output_dtype(self, step, grad):
        return grad.amp or grad.compute  # its convolution runs in the half dtype under autocast

    def forward(self, ops, xs, params, step):
        """The window's sum times one coefficient per map, plus one bias per map."""
        x, h = xs[0], step.hyper
        window_sum = ops.avg_pool(x, h["kernel"], h["stride"], h["padding"]) * math.prod(h["kernel"])
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return window_sum * params["weight"].reshape(shape) + params["bias"].reshape(shape)


SUBSAMPLE = '''\
# LeNet-5's trainable subsampling (S2, S4): PyTorch has no module for it, so it is defined here.
# Each map sums a window, times one trainable coefficient, plus one trainable bias (2 parameters
# per map). The coefficient is applied as a 1x1 depthwise convolution, so FLOP counters see its
# one multiply per output.
class Subsample(nn.Module):
    def __init__(self, channels, kernel_size, stride):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.window = 1
        for size in kernel_size:
            self.window *= size
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        rank = x.dim() - 2
        avg_pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[rank - 1]
        conv = (F.conv1d, F.conv2d, F.conv3d)[rank - 1]
        window_sum = avg_pool(x, self.kernel_size, self.stride) * self.window
        return conv(window_sum, self.weight.view(-1, *[1] * (rank + 1)), self.bias, groups=self.weight.numel())
'''
