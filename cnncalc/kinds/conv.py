"""Convolutions: `conv` (any rank, groups, dilation, `same` padding, LeNet-5's connection table)
and `conv_transpose`."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, ClassVar

from annotated_types import Len
from pydantic import Field

from ..errors import ShapeError
from ..explain import conv_lines, size_lines, table_lines, transposed_lines, transposed_size_lines
from ..formulas import Window, article, half, prod, same_padding, transposed_size
from .base import (AXES_HELP, COMPUTE, SKIP, Axes, Leaf, NonNegAxes, NonNegInt, Outcome, Padding, Param, PoolPadding,
                   PosInt, PyTorchCode, RFStep, Saved, axes_text, check_positive, dims, is_symmetric, largest_row_l1,
                   pad_arguments, pad_pairs, per_axis, py_arguments, py_literal, spatial_rank, unless)


class ConvBase(Leaf):
    gpu_math: ClassVar[str] = "convolution"
    filters: PosInt = Field(description="number of filters K (output channels)")
    kernel: Axes = Field(description="kernel size F: " + AXES_HELP)
    stride: Axes = Field(1, description="stride S: " + AXES_HELP)
    dilation: Axes = Field(1, description="dilation D: " + AXES_HELP)
    groups: PosInt = Field(1, description="groups G: input and output channels are split into G groups")
    bias: bool = Field(True, description="whether the layer has a bias per filter")
    weights: list | str | None = Field(None, description="explicit weights for `cnncalc run`: nested lists in "
                                       "PyTorch's layout, or a path to a .npy / .json file")
    biases: list | str | None = Field(None, description="explicit biases for `cnncalc run` (list or file path)")
    primary: ClassVar[str] = "filters"

    def forward(self, ops, xs, params, step):
        h = step.hyper
        return ops.conv(xs[0], params["weight"], params.get("bias"), h["stride"], h["padding"], h["dilation"],
                        h["groups"])

    def float_gain(self, step, arrays):
        return largest_row_l1(arrays["weight"]) if "weight" in arrays else 1.0

    def reduction_length(self, step):  # MACs per output
        per_filter = self._table_inputs(step.input_shape[0]) / self.filters
        return max(1, math.ceil(per_filter * prod(step.hyper["kernel"])))

    def autocast(self, step, device):
        return "half"  # on autocast's lower-precision list

    def _window_axes(self, shape) -> tuple[int, tuple, tuple, tuple]:
        """(rank, kernel, stride, dilation) per spatial axis, after checking the input's channels."""
        rank = spatial_rank(shape, self.kind)
        self._channels(shape[0])
        return (rank, per_axis(self.kernel, rank, "kernel"), per_axis(self.stride, rank, "stride"),
                per_axis(self.dilation, rank, "dilation"))

    def _channels(self, c_in: int) -> None:
        if c_in % self.groups:
            raise ShapeError(f"{c_in} input channels cannot be split into {self.groups} groups")
        if self.filters % self.groups:
            raise ShapeError(f"{self.filters} filters cannot be split into {self.groups} groups")


class Conv(ConvBase):
    kind: ClassVar[str] = "conv"
    family: ClassVar[str] = "conv"
    padding: Padding = Field(0, description="zero padding P: int, per-axis list, [before, after] pairs, same or valid")
    connection_table: Annotated[list[Annotated[list[NonNegInt], Len(1, None)]], Len(1, None)] | None = Field(
        None, description="per filter, the input channels it sees (LeNet-5's C3); default: all of them")

    def _table_inputs(self, c_in: int) -> int:
        """Input channels summed over filters: C_in/G each, or what the connection table says."""
        if self.connection_table is None:
            return (c_in // self.groups) * self.filters
        if self.groups != 1:
            raise ShapeError("a connection_table already chooses each filter's inputs; leave groups at 1")
        if len(self.connection_table) != self.filters:
            raise ShapeError(f"connection_table has {len(self.connection_table)} rows for {self.filters} filters")
        for row in self.connection_table:
            if max(row) >= c_in or len(set(row)) != len(row):
                raise ShapeError(f"connection_table row {row} must name distinct input channels 0..{c_in - 1}")
        return sum(len(row) for row in self.connection_table)

    def infer(self, shape, ctx):
        c_in, sizes = shape[0], shape[1:]
        rank, kernel, stride, dilation = self._window_axes(shape)
        if self.padding == "same":
            pads = tuple(same_padding(*args) for args in zip(sizes, kernel, stride, dilation))
        else:
            pads = pad_pairs(self.padding, rank)
        windows = [Window(*args) for args in zip(sizes, kernel, stride, pads, dilation)]
        for w in windows:
            if w.extent > w.size + sum(w.pad):
                raise ShapeError(
                    f"the {dims(kernel)} filter (extent {w.extent}) is larger than the "
                    f"{dims(sizes)} input with padding {w.pad[0]}+{w.pad[1]}; the output would be empty"
                )
        out_sizes = ctx.resolve(windows, "filter")
        out = (self.filters, *out_sizes)
        check_positive(out, lambda: f"{article(dims(kernel))} {dims(kernel)} filter at stride {axes_text(stride)} on {article(dims(sizes))} {dims(sizes)} input")
        weights = prod(kernel) * self._table_inputs(c_in)  # F*F*D1 (/G) per filter, K filters
        positions = prod(out_sizes)
        return Outcome(
            shape=out,
            weights=weights,
            biases=self.filters if self.bias else 0,
            macs=weights * positions,
            bias_muls=self.filters * positions if self.bias else 0,
            rf=tuple(RFStep(w.extent, w.stride, half(w.extent - 1) - w.pad[0]) for w in windows),
            hyper={"kernel": kernel, "stride": stride, "padding": pads, "dilation": dilation, "groups": self.groups},
        )

    def explain(self, step):
        h, c_in, out_sizes = step.hyper, step.input_shape[0], step.output_shape[1:]
        windows = [Window(*a) for a in zip(step.input_shape[1:], h["kernel"], h["stride"], h["padding"], h["dilation"])]
        if self.connection_table is None:
            counts = conv_lines(h["kernel"], c_in // self.groups, self.groups, self.filters, self.bias, out_sizes)
        else:
            counts = table_lines(h["kernel"], [len(r) for r in self.connection_table], self.bias, prod(out_sizes))
        return size_lines(windows, out_sizes) + counts

    def tensors(self, step, x_shape):
        channels, groups, kernel = x_shape[1], step.hyper["groups"], tuple(step.hyper["kernel"])
        fan_in = channels // groups * math.prod(kernel)
        tensors = {"weight": Param((self.filters, channels // groups, *kernel), "he", fan_in, "[K, C/groups, *kernel]")}
        if self.bias:
            tensors["bias"] = Param((self.filters,), "bias", fan_in, "[K]")
        return tensors


    def pytorch(self, step):
        """nn.ConvNd; asymmetric padding (per-axis pairs, `same` with an odd leftover) as F.pad first.
        A connection table becomes ConnectionTableConv, written into the file (PyTorch has none)."""
        h, pads = step.hyper, step.hyper["padding"]
        symmetric = is_symmetric(pads)
        options = dict(kernel_size=tuple(h["kernel"]), stride=unless(h["stride"], 1),
                       padding=unless(tuple(before for before, _ in pads), 0) if symmetric else SKIP,
                       dilation=unless(h["dilation"], 1))
        if self.connection_table is None:
            module = (f"nn.Conv{len(step.input_shape) - 1}d("
                      + py_arguments(step.input_shape[0], self.filters, **options, groups=unless(self.groups, 1),
                                     bias=unless(self.bias, True)) + ")")
            helpers = ()
        else:
            module = ("ConnectionTableConv(" + py_arguments(self.connection_table, **options,
                                                            bias=unless(self.bias, True)) + ")")
            helpers = (("ConnectionTableConv", CONNECTION_TABLE_CONV),)
        call = "{m}({x})" if symmetric else "{m}(F.pad({x}, " + py_literal(pad_arguments(pads)) + "))"
        return PyTorchCode(module, call, helpers)

    def onnx(self, step, graph):
        """Conv (groups, dilation and asymmetric pads are its attributes)."""
        if self.connection_table is not None:
            return super().onnx(step, graph)  # a connection table has no ONNX op
        h = step.hyper
        params = graph.parameters()
        return graph.node("Conv", [graph.x, params["weight"], *([params["bias"]] if "bias" in params else [])],
                          kernel_shape=list(h["kernel"]), strides=list(h["stride"]), dilations=list(h["dilation"]),
                          pads=onnx_pads(h["padding"]), group=self.groups)

    def saved(self, step, grad):
        """ConvolutionBackward keeps the input and the weight; asymmetric padding is an F.pad first,
        whose padded copy is what the convolution keeps. A connection table gathers each group's
        channels (indexing keeps the indices), convolves the gathered copy and reorders the filters
        (keeping the order)."""
        h, shape = step.hyper, step.input_shape
        weight = Saved.weight(self._table_inputs(shape[0]) * prod(h["kernel"]))
        if self.connection_table is None and is_symmetric(h["padding"]):
            return [Saved.input(), weight]
        positions = prod(size + before + after for size, (before, after) in zip(shape[1:], h["padding"]))
        if self.connection_table is None:
            return [Saved.new(grad.batch * shape[0] * positions, COMPUTE, "padded input"), weight]
        saved = [weight, Saved.new(self.filters, "int64", "filter order")]
        for filters in table_groups(self.connection_table):
            channels = sum(len(self.connection_table[k]) for k in filters)
            if grad.needs_grad[0]:
                saved.append(Saved.new(channels, "int64", "channel indices"))
            saved.append(Saved.new(grad.batch * channels * positions, COMPUTE, "gathered channels"))
        return saved

    def output_dtype(self, step, grad):
        # ConnectionTableConv adds its float32 bias to the half convolutions under autocast: float32
        if self.connection_table is not None and self.bias and grad.amp:
            return "float32"
        return grad.compute

    def pytorch_state(self, step, arrays):
        """A connection table's weights: ConnectionTableConv keeps, per group of filters that see the
        same number of channels, only the connected ones ([filters, channels seen, *kernel])."""
        if self.connection_table is None:
            return dict(arrays)
        import numpy

        state = {f"weights.{i}": numpy.stack([arrays["weight"][k, self.connection_table[k]] for k in filters])
                 for i, filters in enumerate(table_groups(self.connection_table))}
        if "bias" in arrays:
            state["bias"] = arrays["bias"]
        return state


def table_groups(table: list[list[int]]) -> list[list[int]]:
    """The filters of a connection table grouped by how many channels each sees (fewest first),
    as ConnectionTableConv holds them: each group is one grouped convolution."""
    sizes = sorted({len(row) for row in table})
    return [[k for k, row in enumerate(table) if len(row) == size] for size in sizes]


CONNECTION_TABLE_CONV = '''\
# LeNet-5's connection table (C3): PyTorch has no convolution whose filters each see a chosen
# subset of the input channels, so it is defined here. Filters that see the same number of
# channels form one grouped convolution over the channels they read: only the connected
# weights exist, so the parameters and multiply-accumulates are the table's.
class ConnectionTableConv(nn.Module):
    def __init__(self, table, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        sizes = sorted({len(row) for row in table})
        self.filters = [[k for k, row in enumerate(table) if len(row) == size] for size in sizes]
        self.channels = [[c for k in filters for c in table[k]] for filters in self.filters]
        order = [k for filters in self.filters for k in filters]
        self.order = sorted(range(len(order)), key=order.__getitem__)  # back to the table's filter order
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(len(filters), size, *kernel_size))
                                        for filters, size in zip(self.filters, sizes))
        self.bias = nn.Parameter(torch.empty(len(table))) if bias else None
        for weight in self.weights:
            nn.init.kaiming_uniform_(weight, a=5 ** 0.5)  # as nn.Conv2d
        if self.bias is not None:  # as nn.Conv2d, by the widest filter's fan-in
            bound = 1 / self.weights[-1][0].numel() ** 0.5
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        conv = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        out = torch.cat([conv(x[:, channels], weight, None, self.stride, self.padding, self.dilation,
                              groups=len(filters))
                         for channels, filters, weight in zip(self.channels, self.filters, self.weights)], dim=1)
        out = out[:, self.order]
        return out if self.bias is None else out + self.bias.view(-1, *[1] * (x.dim() - 2))
'''


class ConvTranspose(ConvBase):
    kind: ClassVar[str] = "conv_transpose"
    family: ClassVar[str] = "convtranspose"
    padding: PoolPadding = Field(0, description="padding P removed from the output: int, per-axis list or [before, after] pairs")
    output_padding: NonNegAxes = Field(0, description="extra size added on one side of the output: " + AXES_HELP)

    def infer(self, shape, ctx):
        c_in, sizes = shape[0], shape[1:]
        rank, kernel, stride, dilation = self._window_axes(shape)
        pads = pad_pairs(self.padding, rank)
        out_pad = per_axis(self.output_padding, rank, "output_padding")
        for op, s, d in zip(out_pad, stride, dilation):
            if op >= s and op >= d:
                raise ShapeError(f"output_padding {op} must be smaller than the stride ({s}) or the dilation ({d})")
        args = list(zip(sizes, kernel, stride, pads, dilation, out_pad))
        out_sizes = tuple(transposed_size(*a) for a in args)
        out = (self.filters, *out_sizes)
        check_positive(out, "the padding removes more than the transposed convolution produces")
        per_input = prod(kernel) * (self.filters // self.groups)  # each input value feeds F*F*K/G outputs
        extents = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        return Outcome(
            shape=out,
            weights=prod(kernel) * c_in * (self.filters // self.groups),
            biases=self.filters if self.bias else 0,
            macs=per_input * prod(shape),
            bias_muls=prod(out) if self.bias else 0,
            rf=tuple(
                RFStep(-(-e // s), Fraction(1, s), (p[0] - Fraction(e - 1, 2)) / s)
                for e, s, p in zip(extents, stride, pads)
            ),
            hyper={"kernel": kernel, "stride": stride, "padding": pads, "dilation": dilation,
                   "groups": self.groups, "output_padding": out_pad},
        )

    def explain(self, step):
        h, shape = step.hyper, step.input_shape
        args = list(zip(shape[1:], h["kernel"], h["stride"], h["padding"], h["dilation"], h["output_padding"]))
        return (transposed_size_lines(args, step.output_shape[1:])
                + transposed_lines(h["kernel"], shape[0], self.groups, self.filters, self.bias, prod(shape)))

    def tensors(self, step, x_shape):
        channels, groups, kernel = x_shape[1], step.hyper["groups"], tuple(step.hyper["kernel"])
        # each output sums about C/G * prod(kernel / stride) products
        fan_in = max(1.0, channels // groups * math.prod(kernel) / math.prod(step.hyper["stride"]))
        tensors = {"weight": Param((channels, self.filters // groups, *kernel), "he", fan_in,
                                   "[C_in, K/groups, *kernel]")}
        if self.bias:
            tensors["bias"] = Param((self.filters,), "bias", fan_in, "[K]")
        return tensors

    def float_gain(self, step, arrays):
        import numpy

        weight = arrays.get("weight")  # [C_in, K/groups, *kernel]: all the weights that can reach one output
        if weight is None:
            return 1.0
        groups = self.groups
        per_output = numpy.abs(weight).reshape(groups, weight.shape[0] // groups, weight.shape[1], -1).sum(axis=(1, 3))
        return float(per_output.max()) if per_output.size else 0.0

    def reduction_length(self, step):  # MACs per output is an average; the densest outputs see more
        return max(1, step.input_shape[0] // self.groups * prod(step.hyper["kernel"]))

    def saved(self, step, grad):
        weights = prod(step.hyper["kernel"]) * step.input_shape[0] * (self.filters // self.groups)
        return [Saved.input(), Saved.weight(weights)]

    def storage_elements(self, step):
        """Asymmetric padding crops the module's output: the uncropped tensor stays alive under the cut."""
        pads = step.hyper["padding"]
        if is_symmetric(pads):
            return None
        return self.filters * prod(size + before + after for size, (before, after) in zip(step.output_shape[1:], pads))

    def pytorch(self, step):
        """nn.ConvTransposeNd; asymmetric padding: none in the module, the output cropped instead."""
        h, pads = step.hyper, step.hyper["padding"]
        symmetric = is_symmetric(pads)
        module = (f"nn.ConvTranspose{len(step.input_shape) - 1}d("
                  + py_arguments(step.input_shape[0], self.filters, kernel_size=tuple(h["kernel"]),
                                 stride=unless(h["stride"], 1),
                                 padding=unless(tuple(b for b, _ in pads), 0) if symmetric else SKIP,
                                 output_padding=unless(h["output_padding"], 0), groups=unless(self.groups, 1),
                                 bias=unless(self.bias, True), dilation=unless(h["dilation"], 1)) + ")")
        if symmetric:
            return PyTorchCode(module)
        window = ", ".join(f"{before}:{before + size}" for (before, _), size in zip(pads, step.output_shape[1:]))
        return PyTorchCode(module, "{m}({x})[:, :, " + window + "]")

    def onnx(self, step, graph):
        """ConvTranspose (its pads crop the output, before and after, as cnncalc's padding pairs)."""
        h = step.hyper
        params = graph.parameters()
        return graph.node("ConvTranspose",
                          [graph.x, params["weight"], *([params["bias"]] if "bias" in params else [])],
                          kernel_shape=list(h["kernel"]), strides=list(h["stride"]), dilations=list(h["dilation"]),
                          pads=onnx_pads(h["padding"]), output_padding=list(h["output_padding"]), group=self.groups)

    def forward(self, ops, xs, params, step):
        h = step.hyper
        return ops.conv_transpose(xs[0], params["weight"], params.get("bias"), h["stride"], h["padding"],
                                  h["dilation"], h["groups"], h["output_padding"])


def onnx_pads(pairs) -> list[int]:
    """((before, after), ...) per axis -> ONNX's pads: every axis' before, then every axis' after."""
    return [int(before) for before, _ in pairs] + [int(after) for _, after in pairs]
