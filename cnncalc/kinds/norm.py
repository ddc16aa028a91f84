"""Normalisation: batch norm, layer norm, group norm, instance norm and local response
normalisation (AlexNet, VGG A-LRN).

Batch norm (at inference) and instance norm with running statistics scale each channel by fixed
numbers; layer, group and instance norm otherwise take a mean and variance from the input itself,
per sample, over the values named in the kind's worked formula (`n = ...`). The receptive field
counts every kind here as element-wise, as the usual convention does for normalisation.
"""
from __future__ import annotations

import math
from typing import Annotated, ClassVar, Union

from annotated_types import Gt, Len
from pydantic import Field

from ..errors import ShapeError
from ..explain import axis_names
from .base import (COMPUTE, PARAMETER, Formula, Leaf, Outcome, Param, PosInt, PyTorchCode, Saved, py_arguments,
                   spatial_rank, statistics_dtype, torch_rank, unless)

Eps = Annotated[float, Gt(0)]
NormalizedShape = Union[PosInt, Annotated[list[PosInt], Len(1, 4)]]


# ----------------------------------------------------------------------------- shared helpers
def largest_abs(array) -> float:
    """max |gamma|, or 1 when there is no scale."""
    import numpy

    return float(numpy.abs(array).max()) if array is not None and array.size else 1.0


def fixed_statistics_gain(arrays: dict, eps: float) -> float:
    """Running statistics make the layer affine: max |gamma| / sqrt(min running_var + eps)."""
    var = arrays.get("running_var")
    floor = float(var.min()) if var is not None and var.size else 1.0
    return largest_abs(arrays.get("weight")) / math.sqrt(max(floor, 0.0) + eps)


def input_statistics_gain(arrays: dict, eps: float, n: int) -> float:
    """Statistics from the input: the slope of (x - mean)/sqrt(var + eps) over n values is at most
    (2 + 0.39*(1 + sqrt(n - 1)))/sqrt(eps) in the max norm (largest for a nearly constant input,
    whose variance is about eps), which (5 + sqrt(n))/(2*sqrt(eps)) bounds; times max |gamma|."""
    return largest_abs(arrays.get("weight")) * (5 + math.sqrt(n)) / (2 * math.sqrt(eps))


def input_statistics_rounding(n: int, eps: float) -> float:
    """PyTorch computes x*a + (beta - mean*a), a = gamma/sqrt(var + eps): on a nearly constant input
    |a| reaches |gamma|/sqrt(eps), and the rounding of x*a and mean*a (eps x |x| x |a| each) is
    worth about 2/sqrt(eps) eps of the magnitude, besides the sqrt(n) of the sums (gamma about 1:
    the seeded scale is at most 1.5, which the rule's safety factor covers)."""
    return math.sqrt(n) + 2 / math.sqrt(eps)


def per_channel(channels: int, affine: bool, bias: bool = True) -> dict[str, Param]:
    """gamma and beta, one per channel, as PyTorch names them."""
    tensors = {"weight": Param((channels,), "scale", layout="[C]")} if affine else {}
    if affine and bias:
        tensors["bias"] = Param((channels,), "shift", layout="[C]")
    return tensors


def params_line(symbol: str, numbers: str, count: int, affine: bool, bias: bool = True) -> list[Formula]:
    """`params = 2*C = 2*64 = 128`: gamma (and beta) per normalised value; none without affine."""
    if not affine:
        return []
    if not bias:
        return [Formula("params", symbol, numbers if numbers != str(count) else "", str(count), "params")]
    return [Formula("params", f"2*{symbol}", f"2*{numbers}", str(2 * count), "params")]


def product_text(values) -> tuple[str, int]:
    """(arithmetic, value) of a product: ("8*8", 64); one factor needs no arithmetic: ("", 8)."""
    values = tuple(values)
    return ("*".join(map(str, values)) if len(values) > 1 else ""), math.prod(values)


def spatial_symbols(rank: int) -> str:
    """H*W: the spatial axes' names, as the worked formulas write them."""
    return "*".join(axis_names(rank))


class BatchNorm(Leaf):
    """gamma and beta are trainable; running mean and variance are non-trainable (as Keras counts)."""

    kind: ClassVar[str] = "batchnorm"
    family: ClassVar[str] = "bn"
    eps: Eps = Field(1e-5, description="added to the variance")
    affine: bool = Field(True, description="whether gamma and beta are learned")

    def infer(self, shape, ctx):
        channels = shape[0]
        learned = channels if self.affine else 0
        return Outcome(shape=shape, weights=learned, biases=learned, buffers=2 * channels)

    def tensors(self, step, x_shape):
        channels = (x_shape[1],)
        tensors = {"running_mean": Param(channels, "zeros"), "running_var": Param(channels, "ones")}
        if self.affine:
            tensors.update(weight=Param(channels, "scale"), bias=Param(channels, "shift"))
        return tensors

    def float_gain(self, step, arrays):
        """max |gamma| / sqrt(var + eps)."""
        return fixed_statistics_gain(arrays, self.eps)

    def pytorch(self, step):
        """nn.BatchNormNd (1d for a flat input): gamma and beta parameters, running statistics buffers."""
        return PyTorchCode(f"nn.BatchNorm{torch_rank(step.input_shape)}d("
                           + py_arguments(step.input_shape[0], eps=unless(self.eps, 1e-5),
                                          affine=unless(self.affine, True)) + ")")

    def onnx(self, step, graph):
        """BatchNormalization (inference: running statistics); without affine, a scale of ones and a
        shift of zeros, which ONNX needs as inputs."""
        params = graph.parameters()
        channels = (step.input_shape[0],)
        if not self.affine:
            params["weight"] = graph.constant(graph.np.ones(channels), "float32", "scale")
            params["bias"] = graph.constant(graph.np.zeros(channels), "float32", "shift")
        return graph.node("BatchNormalization", [graph.x, params["weight"], params["bias"], params["running_mean"],
                                                 params["running_var"]], epsilon=float(self.eps))

    def saved(self, step, grad):
        """native_batch_norm keeps its input and the batch's mean and inverse deviation per channel;
        gamma and the running statistics are parameters and buffers, not activations."""
        channels, dtype = step.input_shape[0], statistics_dtype(grad, with_parameters=True)  # running statistics
        return [Saved.input(), Saved.new(channels, dtype, "save_mean"), Saved.new(channels, dtype, "save_invstd")]

    def forward(self, ops, xs, params, step):
        return ops.batch_norm(xs[0], params["running_mean"], params["running_var"], params.get("weight"),
                              params.get("bias"), self.eps)


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

    def float_gain(self, step, arrays):
        """(1 + 2 beta sqrt(size)) / k^beta."""
        return (1 + 2 * abs(self.beta) * math.sqrt(self.size)) / self.k ** self.beta if self.k > 0 else math.inf

    def reduction_length(self, step):
        return max(1, self.size)

    def pytorch(self, step):
        """nn.LocalResponseNorm; a flat input gets a spatial axis for it, as the backends do. On 2 or 3
        spatial axes PyTorch views its input, which fails on a non-contiguous one (after a permute):
        the call makes it contiguous (no copy when it already is)."""
        module = "nn.LocalResponseNorm(" + py_arguments(self.size, alpha=unless(self.alpha, 1e-4),
                                                         beta=unless(self.beta, 0.75), k=unless(self.k, 1.0)) + ")"
        call = {1: "{m}({x}.unsqueeze(-1)).squeeze(-1)", 2: "{m}({x})"}.get(len(step.input_shape),
                                                                         "{m}({x}.contiguous())")
        return PyTorchCode(module, call)

    def onnx(self, step, graph):
        """LRN (ONNX's alpha, like PyTorch's, is divided by the size)."""
        from ..export.onnx import unsupported

        if len(step.input_shape) < 2:
            raise unsupported(step, "ONNX's LRN needs spatial axes, and the input is flat")
        if self.size % 2 == 0:
            raise unsupported(step, f"size {self.size} is even: ONNX's window then takes one channel more after "
                                    "than before, PyTorch's one more before")
        return graph.node("LRN", [graph.x], size=self.size, alpha=float(self.alpha), beta=float(self.beta),
                          bias=float(self.k))

    def saved(self, step, grad):
        """F.local_response_norm: the squares, padded by size - 1 channels, averaged over the window
        (avg_pool keeps the padded squares), times alpha plus k (pow keeps that), to the power beta
        (the division keeps the power and the input, made contiguous first on 2 or 3 spatial axes).
        Under autocast, CPU averages 4-D and 5-D tensors in float32 (avg_pool3d) and CUDA takes the
        power in float32 (pow): what follows them is float32."""
        shape, batch = step.input_shape, grad.batch
        positions = math.prod(shape[1:])
        pooled_in_float32 = bool(grad.amp) and grad.device == "cpu" and len(shape) >= 3
        base = "float32" if grad.amp and (pooled_in_float32 or grad.device == "cuda") else COMPUTE
        power = "float32" if grad.amp and grad.device == "cuda" else base
        return [Saved.input(reshape="contiguous" if len(shape) >= 3 else None),
                Saved.new(batch * (shape[0] + self.size - 1) * positions, "float32" if pooled_in_float32 else COMPUTE,
                          "padded squares"),
                Saved.new(batch * math.prod(shape), base, "alpha * average + k"),
                Saved.new(batch * math.prod(shape), power, "(alpha * average + k) ** beta")]

    def output_dtype(self, step, grad):
        """input / power: float32 where the power is (see ``saved``)."""
        if grad.amp and (grad.device == "cuda" or len(step.input_shape) >= 3):
            return "float32"
        return grad.compute

    def forward(self, ops, xs, params, step):
        return ops.lrn(xs[0], self.size, self.alpha, self.beta, self.k)


class LayerNorm(Leaf):
    """Two forms. Without `normalized_shape`: over the C channels at every position of
    [C, *spatial] (torchvision ConvNeXt's LayerNorm2d: channels last, nn.LayerNorm(C), back; on a
    flat input, nn.LayerNorm(features)). With it: nn.LayerNorm(normalized_shape), over the last
    axes of each sample, whose sizes must equal it (a channels-last block after a permute)."""

    kind: ClassVar[str] = "layernorm"
    family: ClassVar[str] = "ln"
    primary: ClassVar[str] = "normalized_shape"
    normalized_shape: NormalizedShape | None = Field(
        None, description="the sizes of the last axes to normalise over, as PyTorch's LayerNorm; "
                          "default: the channels at every position (ConvNeXt's LayerNorm2d)")
    eps: Eps = Field(1e-5, description="added to the variance")
    elementwise_affine: bool = Field(True, description="whether gamma (and beta) are learned, one per normalised value")
    bias: bool = Field(True, description="whether beta is learned (with elementwise_affine)")

    def normalized(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The sizes one mean and variance are taken over: C, or the last axes named by normalized_shape."""
        if self.normalized_shape is None:
            return shape[:1]
        wanted = tuple(self.normalized_shape) if isinstance(self.normalized_shape, list) else (self.normalized_shape,)
        tail = shape[len(shape) - len(wanted):] if len(wanted) <= len(shape) else None
        if tail is None:
            raise ShapeError(f"normalized_shape {list(wanted)} names {len(wanted)} axes but the input {list(shape)} "
                             f"has only {len(shape)}")
        if tail != wanted:
            last = "last axis" if len(wanted) == 1 else f"last {len(wanted)} axes"
            raise ShapeError(f"normalized_shape {list(wanted)} must equal the input's {last}, but the input "
                             f"{list(shape)} ends in {list(tail)} (PyTorch's LayerNorm normalises the trailing axes)")
        return wanted

    def infer(self, shape, ctx):
        sizes = self.normalized(shape)
        learned = math.prod(sizes) if self.elementwise_affine else 0
        over = "C" if self.normalized_shape is None else "last axis" if len(sizes) == 1 else f"last {len(sizes)} axes"
        return Outcome(shape=shape, weights=learned, biases=learned if self.bias else 0,
                       hyper={"over": over, "normalized_shape": sizes})

    def explain(self, step):
        sizes = step.hyper["normalized_shape"]
        arithmetic, n = product_text(sizes)
        if self.normalized_shape is None:
            symbol = "C"
            where = (f"the {n} channels at each position, as ConvNeXt's LayerNorm2d" if len(step.input_shape) > 1
                     else f"the {n} features of each sample")
        else:
            symbol = "prod(normalized_shape)" if len(sizes) > 1 else "normalized_shape"
            where = f"the {step.hyper['over']} {list(sizes)} of each sample"
        return [Formula("n", symbol, arithmetic, f"{n} (values per mean and variance: {where})", "statistics"),
                *params_line(symbol, arithmetic or str(n), n, self.elementwise_affine, self.bias)]

    def tensors(self, step, x_shape):
        if not self.elementwise_affine:
            return {}
        sizes = self.normalized(tuple(x_shape[1:]))  # from the actual input, as every kind's tensors
        layout = "[C]" if self.normalized_shape is None else "normalized_shape"
        tensors = {"weight": Param(sizes, "scale", layout=layout)}
        if self.bias:
            tensors["bias"] = Param(sizes, "shift", layout=layout)
        return tensors

    def float_gain(self, step, arrays):
        return input_statistics_gain(arrays, self.eps, self.reduction_length(step))

    def reduction_length(self, step):
        return max(1, math.prod(step.hyper["normalized_shape"]))

    def rounding_factor(self, step, n):
        return input_statistics_rounding(n, self.eps)

    def pytorch(self, step):
        """nn.LayerNorm(normalized_shape); over the channels of a [C, *spatial] input, ChannelLayerNorm
        (torchvision ConvNeXt's LayerNorm2d), written into the file."""
        sizes = tuple(step.hyper["normalized_shape"])
        options = dict(eps=unless(self.eps, 1e-5), elementwise_affine=unless(self.elementwise_affine, True),
                       bias=unless(self.bias, True))
        if self.normalized_shape is None and len(step.input_shape) > 1:
            return PyTorchCode("ChannelLayerNorm(" + py_arguments(sizes[0], **options) + ")",
                               helpers=(("ChannelLayerNorm", CHANNEL_LAYER_NORM),))
        return PyTorchCode("nn.LayerNorm(" + py_arguments(sizes[0] if len(sizes) == 1 else sizes, **options) + ")")

    def onnx(self, step, graph):
        """LayerNormalization over the trailing axes; over the channels of a [C, *spatial] input
        (ConvNeXt's LayerNorm2d), between Transposes to channels last and back. Without affine, a
        scale of ones, which ONNX needs as an input."""
        sizes = tuple(step.hyper["normalized_shape"])
        params = graph.parameters()
        scale = params.get("weight") or graph.constant(graph.np.ones(sizes), "float32", "scale")
        inputs = [scale, *([params["bias"]] if "bias" in params else [])]
        eps = float(self.eps)
        ndim = len(step.input_shape) + 1
        if self.normalized_shape is None and ndim > 2:
            last = [0, *range(2, ndim), 1]
            back = [0, ndim - 1, *range(1, ndim - 1)]
            x = graph.node("Transpose", [graph.x], perm=last)
            x = graph.node("LayerNormalization", [x, *inputs], axis=-1, epsilon=eps)
            return graph.node("Transpose", [x], perm=back)
        return graph.node("LayerNormalization", [graph.x, *inputs], axis=-len(sizes), epsilon=eps)

    def autocast(self, step, device):
        return "float32" if device == "cuda" else "follow"  # on CUDA autocast's float32 list

    def saved(self, step, grad):
        """native_layer_norm keeps its input and a mean and an inverse deviation per normalised group of
        values."""
        groups = grad.batch * math.prod(step.input_shape) // math.prod(step.hyper["normalized_shape"])
        dtype = statistics_dtype(grad, self.elementwise_affine)
        return [Saved.input(), Saved.new(groups, dtype, "mean"), Saved.new(groups, dtype, "rstd")]

    def memory_order(self, step, order):
        """nn.LayerNorm writes a contiguous output; over the channels of a [C, *spatial] input it is
        moved back from channels last (ChannelLayerNorm), so it is laid out channels last."""
        rank = len(step.output_shape)
        if self.normalized_shape is None and rank > 1:
            return (*range(1, rank), 0)
        return tuple(range(rank))

    def forward(self, ops, xs, params, step):
        return ops.layer_norm(xs[0], tuple(step.hyper["normalized_shape"]), params.get("weight"), params.get("bias"),
                              self.eps, over_channels=self.normalized_shape is None)


class GroupNorm(Leaf):
    """nn.GroupNorm: the channels split into `groups`, each group of each sample normalised over its
    channels and positions; gamma and beta per channel."""

    kind: ClassVar[str] = "groupnorm"
    family: ClassVar[str] = "gn"
    primary: ClassVar[str] = "groups"
    groups: PosInt = Field(description="number of groups G the channels are split into (PyTorch's num_groups)")
    eps: Eps = Field(1e-5, description="added to the variance")
    affine: bool = Field(True, description="whether gamma and beta are learned")

    def infer(self, shape, ctx):
        channels = shape[0]
        if channels % self.groups:
            raise ShapeError(f"{channels} channels (C) cannot be split into {self.groups} groups: "
                             "groupnorm needs C divisible by groups")
        if channels // self.groups * math.prod(shape[1:]) == 1:
            raise ShapeError(f"each of the {self.groups} groups of {list(shape)} holds one value, so its variance is "
                             "always 0 (PyTorch refuses it: more than 1 value per group is needed); use fewer groups")
        learned = channels if self.affine else 0
        return Outcome(shape=shape, weights=learned, biases=learned, hyper={"groups": self.groups})

    def explain(self, step):
        shape = step.input_shape
        symbols = "C/G" + (f"*{spatial_symbols(len(shape) - 1)}" if len(shape) > 1 else "")
        arithmetic = "*".join([f"{shape[0]}/{self.groups}", *map(str, shape[1:])])
        where = f"each group of {shape[0] // self.groups} channels of a sample"
        return [Formula("n", symbols, arithmetic, f"{self.reduction_length(step)} (values per mean and variance: "
                                                  f"{where})", "statistics"),
                *params_line("C", str(shape[0]), shape[0], self.affine)]

    def tensors(self, step, x_shape):
        return per_channel(x_shape[1], self.affine)

    def float_gain(self, step, arrays):
        return input_statistics_gain(arrays, self.eps, self.reduction_length(step))

    def reduction_length(self, step):
        return max(1, step.input_shape[0] // self.groups * math.prod(step.input_shape[1:]))

    def rounding_factor(self, step, n):
        return input_statistics_rounding(n, self.eps)

    def pytorch(self, step):
        return PyTorchCode("nn.GroupNorm(" + py_arguments(self.groups, step.input_shape[0], eps=unless(self.eps, 1e-5),
                                                           affine=unless(self.affine, True)) + ")")

    def autocast(self, step, device):
        return "float32" if device == "cuda" else "follow"  # on CUDA autocast's float32 list

    def saved(self, step, grad):
        """native_group_norm keeps its input (made contiguous on CUDA; on the CPU a channels-last input
        stays as it is) and a mean and an inverse deviation per sample and group."""
        groups, dtype = grad.batch * self.groups, statistics_dtype(grad, self.affine)
        return [Saved.input(reshape="contiguous" if grad.device == "cuda" else None), Saved.new(groups, dtype, "mean"),
                Saved.new(groups, dtype, "rstd")]

    def forward(self, ops, xs, params, step):
        return ops.group_norm(xs[0], self.groups, params.get("weight"), params.get("bias"), self.eps)


class InstanceNorm(Leaf):
    """nn.InstanceNorm1d/2d/3d in eval mode: each channel of each sample normalised over its positions;
    with track_running_stats, by the running mean and variance instead (as PyTorch in eval mode),
    which count as non-trainable parameters (as batch norm's)."""

    kind: ClassVar[str] = "instancenorm"
    family: ClassVar[str] = "in"
    eps: Eps = Field(1e-5, description="added to the variance")
    affine: bool = Field(False, description="whether gamma and beta are learned (PyTorch's default: no)")
    track_running_stats: bool = Field(False, description="whether running mean and variance are kept and used "
                                                         "at inference (PyTorch's default: no)")

    def infer(self, shape, ctx):
        spatial_rank(shape, "instancenorm")
        channels = shape[0]
        if not self.track_running_stats and math.prod(shape[1:]) == 1:
            raise ShapeError(f"instancenorm takes each channel's mean and variance over its positions, and "
                             f"{list(shape)} has one (PyTorch refuses it); set track_running_stats: true or "
                             "normalise a larger map")
        learned = channels if self.affine else 0
        return Outcome(shape=shape, weights=learned, biases=learned,
                       buffers=2 * channels if self.track_running_stats else 0)

    def explain(self, step):
        shape = step.input_shape
        if self.track_running_stats:
            statistics = Formula("n", "", "", "1 (each channel is scaled by its running mean and variance, "
                                              "as PyTorch in eval mode)", "statistics")
        else:
            arithmetic, n = product_text(shape[1:])
            statistics = Formula("n", spatial_symbols(len(shape) - 1), arithmetic,
                                 f"{n} (values per mean and variance: each channel of a sample)", "statistics")
        return [statistics, *params_line("C", str(shape[0]), shape[0], self.affine)]

    def tensors(self, step, x_shape):
        channels = x_shape[1]
        tensors = {}
        if self.track_running_stats:
            tensors = {"running_mean": Param((channels,), "zeros", layout="[C]"),
                       "running_var": Param((channels,), "ones", layout="[C]")}
        return {**tensors, **per_channel(channels, self.affine)}

    def float_gain(self, step, arrays):
        if self.track_running_stats:
            return fixed_statistics_gain(arrays, self.eps)
        return input_statistics_gain(arrays, self.eps, self.reduction_length(step))

    def reduction_length(self, step):
        return 1 if self.track_running_stats else max(1, math.prod(step.input_shape[1:]))

    def rounding_factor(self, step, n):
        return math.sqrt(n) if self.track_running_stats else input_statistics_rounding(n, self.eps)

    def pytorch(self, step):
        """nn.InstanceNormNd; in eval mode it uses the running statistics when it tracks them."""
        return PyTorchCode(f"nn.InstanceNorm{len(step.input_shape) - 1}d("
                           + py_arguments(step.input_shape[0], eps=unless(self.eps, 1e-5),
                                          affine=unless(self.affine, False),
                                          track_running_stats=unless(self.track_running_stats, False)) + ")")

    def saved(self, step, grad):
        """F.instance_norm runs batch norm on the input viewed as one sample of N*C channels (made
        contiguous first): it keeps that input, gamma and the running statistics repeated N times (new
        tensors, not parameters), and the mean and inverse deviation of each of the N*C."""
        rows = grad.batch * step.input_shape[0]
        saved = [Saved.input(reshape="contiguous")]
        if self.affine:
            saved.append(Saved.new(rows, PARAMETER, "weight repeated"))
        if self.track_running_stats:  # measured: without gamma they come in the input's dtype, as the statistics
            running = PARAMETER if self.affine else COMPUTE
            saved += [Saved.new(rows, running, "running_mean repeated"),
                      Saved.new(rows, running, "running_var repeated")]
        dtype = statistics_dtype(grad, self.affine)
        return saved + [Saved.new(rows, dtype, "save_mean"), Saved.new(rows, dtype, "save_invstd")]

    def memory_order(self, step, order):
        return tuple(range(len(step.output_shape)))  # the batch-norm output of a contiguous view

    def forward(self, ops, xs, params, step):
        return ops.instance_norm(xs[0], params.get("running_mean"), params.get("running_var"), params.get("weight"),
                                 params.get("bias"), self.eps)


CHANNEL_LAYER_NORM = '''\
# Layer norm over the channels at every position, as torchvision ConvNeXt's LayerNorm2d (channels
# last, nn.LayerNorm over C, back), for any number of spatial axes.
class ChannelLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps).movedim(-1, 1)
'''
