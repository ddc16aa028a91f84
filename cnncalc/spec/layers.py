"""One frozen pydantic model per layer kind; each knows its own arithmetic.

A leaf layer's ``infer(shape, ctx)`` maps an input shape ``(C, *spatial)`` to an ``Outcome``:
output shape, parameter and multiplication counts, and how it moves the receptive field.
Composite layers (repeat, residual, branches, depthwise_separable) only describe structure;
the engine walks them. Adding a layer kind = one class here (registered by its ``kind``).
"""

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Annotated, Any, Callable, ClassVar, Literal, Protocol, Union

from annotated_types import Ge, Gt, Le, Len, Lt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, Strict

from ..errors import ShapeError
from ..explain import (adaptive_lines, axis_names, conv_lines, global_lines, linear_lines, size_lines, table_lines,
                       transposed_lines, unpool_lines, upsample_lines)
from ..formulas import Window, article, adaptive_bins, half, prod, same_padding, transposed_formula, transposed_size

# ----------------------------------------------------------------------------- field types
PosInt = Annotated[int, Strict(), Gt(0)]
NonNegInt = Annotated[int, Strict(), Ge(0)]
PosNumber = Annotated[Union[Annotated[int, Strict()], Annotated[float, Strict()]], Gt(0)]
Axes = Union[PosInt, Annotated[list[PosInt], Len(1, 3)]]
NonNegAxes = Union[NonNegInt, Annotated[list[NonNegInt], Len(1, 3)]]
PadPair = Annotated[list[NonNegInt], Len(2, 2)]
Padding = Union[NonNegInt, Literal["same", "valid"], Annotated[list[Union[NonNegInt, PadPair]], Len(1, 3)]]
PoolPadding = Union[NonNegInt, Annotated[list[Union[NonNegInt, PadPair]], Len(1, 3)]]
Scale = Union[PosNumber, Annotated[list[PosNumber], Len(1, 3)]]
KeepAxes = Union[PosInt, Annotated[list[Union[PosInt, None]], Len(1, 3)]]  # null: keep that axis' size

AXES_HELP = "a positive whole number, or a list with one per spatial axis"


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RFStep:
    """How one spatial axis of the receptive field moves through a layer.

    size_out = size_in + (extent - 1) * jump_in;  jump_out = jump_in * stride;
    start_out = start_in + offset * jump_in   (offset: centre of output 0 in input units).
    """

    extent: int
    stride: int | Fraction
    offset: int | Fraction


GLOBAL = "global"  # the layer sees its whole input (linear, global pooling)


@dataclass
class Outcome:
    """What one leaf layer does to the shape that reaches it (per sample, exact ints)."""

    shape: tuple[int, ...]
    weights: int = 0
    biases: int = 0
    buffers: int = 0  # non-trainable state, e.g. batch-norm running mean/var
    macs: int = 0  # weight multiply-accumulates, bias excluded
    bias_muls: int = 0  # what the lecture's "+1" adds to MULs
    connections: int | None = None  # LeCun's count of input-to-output links incl. bias; None = macs + bias_muls
    rf: tuple[RFStep, ...] | str | None = None  # None: element-wise, unchanged
    hyper: dict[str, Any] = field(default_factory=dict)  # kernel/stride/padding for display
    explain: Callable[[], list[str]] | None = None  # formulas with the numbers plugged in, made on demand


class Context(Protocol):
    """What a layer may ask of the engine while inferring."""

    def resolve(self, windows: list[Window], what: str) -> tuple[int, ...]:
        """Output sizes of sliding windows under the rounding policy (may raise or warn)."""


# ----------------------------------------------------------------------------- helpers
def per_axis(value, rank: int, key: str) -> tuple:
    """An int for all axes, or a list with exactly one value per spatial axis."""
    if isinstance(value, list):
        if len(value) != rank:
            raise ShapeError(f"`{key}` has {len(value)} values but the input has {rank} spatial axes")
        return tuple(value)
    return (value,) * rank


def spatial_rank(shape: tuple[int, ...], kind: str, minimum: int = 1) -> int:
    rank = len(shape) - 1
    if rank < minimum:
        raise ShapeError(
            f"{kind} needs an input with spatial axes [C, *spatial], got {list(shape)}; "
            "it cannot follow flatten or linear"
        )
    return rank


def pad_pairs(padding, rank: int) -> tuple[tuple[int, int], ...]:
    """int | per-axis list of int or [before, after] -> ((before, after), ...)."""
    if padding == "valid":
        return ((0, 0),) * rank
    return tuple((p, p) if isinstance(p, int) else (p[0], p[1]) for p in per_axis(padding, rank, "padding"))


def axes_text(values) -> str:
    values = tuple(values)
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def dims(values) -> str:
    return "x".join(map(str, values))


def check_positive(shape: tuple[int, ...], what: str) -> None:
    if any(size <= 0 for size in shape[1:]):
        raise ShapeError(f"output size reaches zero or less ({dims(shape[1:])}): {what}")


# ----------------------------------------------------------------------------- base classes
class Layer(BaseModel):
    """Fields every layer takes."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    name: str | None = Field(None, description="the layer's name; default: kind + running number")
    from_: str | None = Field(None, alias="from", description="take the input from this named output")
    expect: dict[str, Any] | None = Field(None, description="expected values to check (output, params, ...)")

    kind: ClassVar[str]
    family: ClassVar[str] = ""  # prefix of default names (conv1, pool2, fc3); "" = the kind
    primary: ClassVar[str | None] = None  # the key a scalar shorthand sets (`linear: 10`)

    _path: tuple = PrivateAttr(default=())

    @property
    def is_composite(self) -> bool:
        return False

    def row_count(self) -> int:
        """Rows this entry adds to a report, repeats expanded (for limits, without walking)."""
        return 1

    def children(self) -> list["Layer"]:
        """The layers written inside this one (composites only)."""
        return []

    @property
    def path(self) -> tuple:
        """Where the layer is in the spec's data, e.g. ("layers", 3, "branches", 1, 0)."""
        return self.__pydantic_private__["_path"]  # direct: pydantic's __getattr__ is slow in hot loops


class Leaf(Layer):
    def infer(self, shape: tuple[int, ...], ctx: Context) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError


class Elementwise(Leaf):
    """Same shape out as in, no parameters (activations, dropout)."""

    def infer(self, shape, ctx):
        return Outcome(shape=shape)


# ----------------------------------------------------------------------------- convolutions
class ConvBase(Leaf):
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
        rank = spatial_rank(shape, "conv")
        c_in, sizes = shape[0], shape[1:]
        self._channels(c_in)
        kernel = per_axis(self.kernel, rank, "kernel")
        stride = per_axis(self.stride, rank, "stride")
        dilation = per_axis(self.dilation, rank, "dilation")
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
        check_positive(out, f"{article(dims(kernel))} {dims(kernel)} filter at stride {axes_text(stride)} on {article(dims(sizes))} {dims(sizes)} input")
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
            explain=lambda: size_lines(windows, out_sizes) + (
                conv_lines(kernel, c_in // self.groups, self.groups, self.filters, self.bias, out_sizes)
                if self.connection_table is None else
                table_lines(kernel, [len(r) for r in self.connection_table], self.bias, positions)),
        )

class ConvTranspose(ConvBase):
    kind: ClassVar[str] = "conv_transpose"
    family: ClassVar[str] = "convtranspose"
    padding: PoolPadding = Field(0, description="padding P removed from the output: int, per-axis list or [before, after] pairs")
    output_padding: NonNegAxes = Field(0, description="extra size added on one side of the output: " + AXES_HELP)

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, "conv_transpose")
        c_in, sizes = shape[0], shape[1:]
        self._channels(c_in)
        kernel = per_axis(self.kernel, rank, "kernel")
        stride = per_axis(self.stride, rank, "stride")
        dilation = per_axis(self.dilation, rank, "dilation")
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
            explain=lambda: [f"{axis}2 = ({axis}1 - 1)*S - 2P + D*(F - 1) + OP + 1 = {transposed_formula(*a)} = {o}"
                     for axis, a, o in zip(axis_names(rank), args, out_sizes)]
            + transposed_lines(kernel, c_in, self.groups, self.filters, self.bias, prod(shape)),
        )


# ----------------------------------------------------------------------------- pooling
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
        check_positive(out, f"{article(dims(kernel))} {dims(kernel)} window at stride {axes_text(stride)} on {article(dims(sizes))} {dims(sizes)} input")
        return Outcome(
            shape=out,
            rf=tuple(RFStep(w.extent, w.stride, half(w.extent - 1) - w.pad[0]) for w in windows),
            hyper={"kernel": kernel, "stride": stride, "padding": pads, "dilation": dilation},
            explain=lambda: size_lines(windows, out_sizes),
        )


class MaxPool(Pool):
    kind: ClassVar[str] = "maxpool"
    dilation: Axes = Field(1, description="dilation of the window: " + AXES_HELP)

    def _dilation(self):
        return self.dilation


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
        return Outcome(shape=(shape[0], *out_sizes), rf=tuple(steps), hyper={"output": out_sizes},
                       explain=lambda: adaptive_lines(shape[1:], written, out_sizes))


class AdaptiveAvgPool(AdaptivePool):
    kind: ClassVar[str] = "adaptive_avgpool"


class AdaptiveMaxPool(AdaptivePool):
    kind: ClassVar[str] = "adaptive_maxpool"


class GlobalPool(Leaf):
    family: ClassVar[str] = "pool"

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, self.kind)
        return Outcome(shape=(shape[0],) + (1,) * rank, rf=GLOBAL, hyper={"kernel": shape[1:]},
                       explain=lambda: global_lines(shape[1:]))


class GlobalAvgPool(GlobalPool):
    kind: ClassVar[str] = "global_avgpool"


class GlobalMaxPool(GlobalPool):
    kind: ClassVar[str] = "global_maxpool"


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
        check_positive(out, f"{article(dims(kernel))} {dims(kernel)} window on {article(dims(shape[1:]))} {dims(shape[1:])} input")
        outputs = prod(out)
        return Outcome(
            shape=out, weights=shape[0], biases=shape[0],
            macs=outputs, bias_muls=outputs,  # one coefficient multiply and one bias per output
            connections=(prod(kernel) + 1) * outputs,  # each output sums its window plus the bias
            rf=tuple(RFStep(w.extent, w.stride, half(w.extent - 1)) for w in windows),
            hyper={"kernel": kernel, "stride": stride, "padding": ((0, 0),) * rank, "dilation": (1,) * rank},
            explain=lambda: size_lines(windows, out_sizes) + [
                f"params = 2*C = 2*{shape[0]} = {2 * shape[0]}",
                f"connections = ({'*'.join(map(str, kernel))} + 1)*{'*'.join(map(str, reversed(out)))} = "
                f"{(prod(kernel) + 1) * outputs}"],
        )


# ----------------------------------------------------------------------------- dense and friends
class Linear(Leaf):
    """Fully connected. A non-flat input is flattened first, as the lecture's FC layer does."""

    kind: ClassVar[str] = "linear"
    family: ClassVar[str] = "fc"
    primary: ClassVar[str] = "features"
    features: PosInt = Field(description="number of output features (neurons)")
    bias: bool = Field(True, description="whether each output has a bias")
    weights: list | str | None = Field(None, description="explicit [out, in] weights for `cnncalc run` (list or path)")
    biases: list | str | None = Field(None, description="explicit biases for `cnncalc run` (list or file path)")

    def infer(self, shape, ctx):
        n_in = prod(shape)
        weights = n_in * self.features
        return Outcome(
            shape=(self.features,),
            weights=weights,
            biases=self.features if self.bias else 0,
            macs=weights,
            bias_muls=self.features if self.bias else 0,
            rf=GLOBAL,
            explain=lambda: linear_lines(n_in, self.features, self.bias),
        )


class Flatten(Leaf):
    kind: ClassVar[str] = "flatten"
    family: ClassVar[str] = "flatten"

    def infer(self, shape, ctx):
        return Outcome(shape=(prod(shape),))


class BatchNorm(Leaf):
    """gamma and beta are trainable; running mean and variance are non-trainable (as Keras counts)."""

    kind: ClassVar[str] = "batchnorm"
    family: ClassVar[str] = "bn"
    eps: Annotated[float, Gt(0)] = Field(1e-5, description="added to the variance")
    affine: bool = Field(True, description="whether gamma and beta are learned")

    def infer(self, shape, ctx):
        channels = shape[0]
        learned = channels if self.affine else 0
        return Outcome(shape=shape, weights=learned, biases=learned, buffers=2 * channels)


class LRN(Leaf):
    kind: ClassVar[str] = "lrn"
    family: ClassVar[str] = "lrn"
    primary: ClassVar[str] = "size"
    size: PosInt = Field(description="number of neighbouring channels to normalise over")
    alpha: float = Field(1e-4, description="scale")
    beta: float = Field(0.75, description="exponent")
    k: float = Field(1.0, description="additive constant")

    def infer(self, shape, ctx):
        return Outcome(shape=shape)


class Dropout(Elementwise):
    kind: ClassVar[str] = "dropout"
    family: ClassVar[str] = "dropout"
    primary: ClassVar[str] = "p"
    p: Annotated[float, Ge(0), Lt(1)] = Field(0.5, description="probability of zeroing an element")


class Activation(Elementwise):
    family: ClassVar[str] = ""  # default names use the kind: relu1, tanh2


class ReLU(Activation):
    kind: ClassVar[str] = "relu"


class LeakyReLU(Activation):
    kind: ClassVar[str] = "leaky_relu"
    primary: ClassVar[str] = "negative_slope"
    negative_slope: float = Field(0.01, description="slope for negative inputs")


class Sigmoid(Activation):
    kind: ClassVar[str] = "sigmoid"


class Tanh(Activation):
    kind: ClassVar[str] = "tanh"


class ReLU6(Activation):
    kind: ClassVar[str] = "relu6"


class GELU(Activation):
    kind: ClassVar[str] = "gelu"


class Softmax(Activation):
    kind: ClassVar[str] = "softmax"


# ----------------------------------------------------------------------------- resampling
class Upsample(Leaf):
    kind: ClassVar[str] = "upsample"
    family: ClassVar[str] = "upsample"
    primary: ClassVar[str] = "scale_factor"
    scale_factor: Scale | None = Field(None, description="multiplier per axis (output = floor(input * scale))")
    size: Axes | None = Field(None, description="output size per axis (instead of scale_factor)")
    mode: Literal["nearest", "linear", "bilinear", "bicubic", "trilinear"] = Field("nearest", description="interpolation")

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, "upsample")
        if (self.scale_factor is None) == (self.size is None):
            raise ShapeError("upsample needs exactly one of `scale_factor` and `size`")
        if self.size is not None:
            out_sizes = per_axis(self.size, rank, "size")
            scales = [Fraction(o, i) for o, i in zip(out_sizes, shape[1:])]
        else:
            scales = [Fraction(s).limit_denominator(10**6) for s in per_axis(self.scale_factor, rank, "scale_factor")]
            out_sizes = tuple(math.floor(i * s) for i, s in zip(shape[1:], scales))
        out = (shape[0], *out_sizes)
        check_positive(out, "the scale factor shrinks the input to nothing")
        extent = 1 if self.mode == "nearest" else 2
        given = self.size is not None
        return Outcome(shape=out, rf=tuple(RFStep(extent, 1 / s, (1 / s - 1) / 2) for s in scales),
                       hyper={"scale": tuple(float(s) for s in scales)},
                       explain=lambda: upsample_lines(shape[1:], scales, out_sizes, given))


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
            explain=lambda: unpool_lines(shape[1:], factors),
        )


# ----------------------------------------------------------------------------- merges (DAG)
class Merge(Leaf):
    from_: Annotated[list[str], Len(1, None)] = Field(alias="from", description="names of the outputs to merge")
    primary: ClassVar[str] = "from"

    def merge(self, shapes: list[tuple[int, ...]]) -> tuple[int, ...]:  # pragma: no cover - abstract
        raise NotImplementedError


class Add(Merge):
    kind: ClassVar[str] = "add"
    family: ClassVar[str] = "add"

    def merge(self, shapes):
        return add_shapes(shapes)


class Concat(Merge):
    kind: ClassVar[str] = "concat"
    family: ClassVar[str] = "concat"
    crop: bool = Field(False, description="centre-crop every input to the smallest spatial size first (U-Net)")

    def merge(self, shapes):
        if self.crop:
            smallest = tuple(min(sizes) for sizes in zip(*(s[1:] for s in shapes)))
            shapes = [(s[0], *smallest) for s in shapes]
        return concat_shapes(shapes)


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


# ----------------------------------------------------------------------------- composites
class Composite(Layer):
    """Structure only; the engine walks the children."""

    @property
    def is_composite(self) -> bool:
        return True


class Repeat(Composite):
    kind: ClassVar[str] = "repeat"
    family: ClassVar[str] = "repeat"
    times: PosInt = Field(description="how many times to repeat the layers")
    layers: list[Any] = Field(description="the layers to repeat")
    start: NonNegInt = Field(0, description="number of the first repetition in names (R.start.*)")

    def row_count(self) -> int:
        return self.times * sum(layer.row_count() for layer in self.layers)

    def children(self):
        return list(self.layers)


class Residual(Composite):
    kind: ClassVar[str] = "residual"
    family: ClassVar[str] = "residual"
    layers: list[Any] = Field(description="the main path F(x)")
    shortcut: list[Any] = Field(default_factory=list, description="the shortcut path; empty = identity")
    after: list[Any] = Field(default_factory=list, description="layers applied after the add, e.g. [relu]")

    def row_count(self) -> int:
        return 1 + sum(layer.row_count() for layer in self.children())

    def children(self):
        return [*self.layers, *self.shortcut, *self.after]


class Branches(Composite):
    kind: ClassVar[str] = "branches"
    family: ClassVar[str] = "branches"
    primary: ClassVar[str] = "paths"
    paths: Annotated[list[list[Any]], Len(1, None)] = Field(description="parallel paths, concatenated on channels")

    def row_count(self) -> int:
        return 1 + sum(layer.row_count() for layer in self.children())

    def children(self):
        return [layer for path in self.paths for layer in path]


class DepthwiseSeparable(Composite):
    """Sugar: a depthwise conv (groups = input channels) then a 1x1 pointwise conv."""

    kind: ClassVar[str] = "depthwise_separable"
    family: ClassVar[str] = "dwsep"
    primary: ClassVar[str] = "filters"
    filters: PosInt = Field(description="output channels of the pointwise conv")
    kernel: Axes = Field(3, description="depthwise kernel: " + AXES_HELP)
    stride: Axes = Field(1, description="depthwise stride: " + AXES_HELP)
    padding: Padding = Field(0, description="depthwise padding P, as `conv` takes it (default 0: no padding)")
    dilation: Axes = Field(1, description="depthwise dilation: " + AXES_HELP)
    multiplier: PosInt = Field(1, description="depthwise filters per input channel")
    bias: bool = Field(True, description="whether both convs have biases")

    def row_count(self) -> int:
        return 2

    def expand(self, channels: int) -> list[Conv]:
        depthwise = Conv(name="depthwise", filters=channels * self.multiplier, kernel=self.kernel, stride=self.stride,
                         padding=self.padding, dilation=self.dilation, groups=channels, bias=self.bias)
        pointwise = Conv(name="pointwise", filters=self.filters, kernel=1, bias=self.bias)
        return [depthwise, pointwise]


LAYER_CLASSES: tuple[type[Layer], ...] = (
    Conv, ConvTranspose, MaxPool, AvgPool, AdaptiveAvgPool, AdaptiveMaxPool, GlobalAvgPool, GlobalMaxPool, Subsample,
    Linear, Flatten, BatchNorm, LRN, Dropout, ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh, GELU, Softmax,
    Upsample, Unpool, Add, Concat, Repeat, Residual, Branches, DepthwiseSeparable,
)
KINDS: dict[str, type[Layer]] = {cls.kind: cls for cls in LAYER_CLASSES}
