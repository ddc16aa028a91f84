"""The NumPy backend: every row through ``ops`` (sliding windows, im2col, zero insertion).

``ArrayBackend`` is array-module agnostic; the CuPy backend is the same class on cupy arrays.
An op takes ``(inputs, params, row)``: the input arrays ``[N, C, *spatial]``, the parameter
arrays by name (see parameters.py) and the report row, whose ``hyper`` holds the normalised
window sizes and ``layer`` the spec's own fields.
"""
from __future__ import annotations

import math

import numpy

from . import ops
from .memory import host_available_bytes
from .common import crop_to_smallest, per_axis

CUBIC_A = -0.75  # PyTorch's bicubic coefficient


# ----------------------------------------------------------------------------- ops
def conv(xs, p, row):
    h = row.hyper
    return ops.conv(xs[0], p["weight"], p.get("bias"), h["stride"], h["padding"], h["dilation"], h["groups"])


def conv_transpose(xs, p, row):
    h = row.hyper
    return ops.conv_transpose(xs[0], p["weight"], p.get("bias"), h["stride"], h["padding"], h["dilation"],
                              h["groups"], h["output_padding"])


def max_pool(xs, p, row):
    h = row.hyper
    return ops.max_pool(xs[0], h["kernel"], h["stride"], h["padding"], h["dilation"], row.layer.ceil_mode)


def avg_pool(xs, p, row):
    h = row.hyper
    return ops.avg_pool(xs[0], h["kernel"], h["stride"], h["padding"], row.layer.ceil_mode,
                        row.layer.count_include_pad)


def subsample(xs, p, row):
    """LeNet's S2/S4: the window's sum times one coefficient per map, plus one bias per map."""
    h, x = row.hyper, xs[0]
    window_sum = ops.avg_pool(x, h["kernel"], h["stride"], h["padding"]) * math.prod(h["kernel"])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return window_sum * p["weight"].reshape(shape) + p["bias"].reshape(shape)


def global_output(x) -> tuple[int, ...]:
    return (1,) * (x.ndim - 2)


def linear(xs, p, row):
    return ops.linear(ops.flatten(xs[0]), p["weight"], p.get("bias"))


def batch_norm(xs, p, row):
    return ops.batch_norm(xs[0], p["running_mean"], p["running_var"], p.get("weight"), p.get("bias"), row.layer.eps)


def lrn(xs, p, row):
    layer = row.layer
    return ops.lrn(xs[0], layer.size, layer.alpha, layer.beta, layer.k)


def relu6(x):
    return ops.array_namespace(x).minimum(ops.relu(x), 6)


def upsample(xs, p, row):
    x, layer = xs[0], row.layer
    rank = x.ndim - 2
    size = per_axis(layer.size, rank)
    factor = per_axis(layer.scale_factor, rank)
    if layer.mode == "bicubic":
        return bicubic(x, size, factor)
    return ops.upsample(x, size=size, scale_factor=factor, mode=layer.mode)


def unpool(xs, p, row):
    return ops.unpool(xs[0], per_axis(row.layer.factor, xs[0].ndim - 2), row.layer.mode)


def add(xs, p, row):
    total = xs[0]
    for x in xs[1:]:
        total = ops.add(total, x)
    return total


def concat(xs, p, row):
    return ops.concat(crop_to_smallest(xs) if getattr(row.layer, "crop", False) else xs)


def elementwise(function):
    """An op from a function of the one input array."""
    return lambda xs, p, row: function(xs[0])


OPS = {
    "conv": conv,
    "conv_transpose": conv_transpose,
    "maxpool": max_pool,
    "avgpool": avg_pool,
    "subsample": subsample,
    "adaptive_avgpool": lambda xs, p, row: ops.adaptive_avg_pool(xs[0], row.hyper["output"]),
    "adaptive_maxpool": lambda xs, p, row: ops.adaptive_max_pool(xs[0], row.hyper["output"]),
    "global_avgpool": elementwise(lambda x: ops.adaptive_avg_pool(x, global_output(x))),
    "global_maxpool": elementwise(lambda x: ops.adaptive_max_pool(x, global_output(x))),
    "linear": linear,
    "flatten": elementwise(ops.flatten),
    "batchnorm": batch_norm,
    "lrn": lrn,
    "dropout": elementwise(lambda x: x),  # inference: the identity
    "relu": elementwise(ops.relu),
    "relu6": elementwise(relu6),
    "leaky_relu": lambda xs, p, row: ops.leaky_relu(xs[0], row.layer.negative_slope),
    "sigmoid": elementwise(ops.sigmoid),
    "tanh": elementwise(ops.tanh),
    "gelu": elementwise(ops.gelu),
    "softmax": elementwise(lambda x: ops.softmax(x, axis=1)),  # over channels / features
    "upsample": upsample,
    "unpool": unpool,
    "add": add,
    "concat": concat,
}


# ----------------------------------------------------------------------------- bicubic
def bicubic(x, size, factor):
    """Like ``F.interpolate(mode="bicubic", align_corners=False)``, one axis at a time (PyTorch's
    4x4 weights are the outer product of per-axis cubic weights); ops has no cubic mode."""
    rank = x.ndim - 2
    sizes = size or tuple(math.floor(n * f) for n, f in zip(x.shape[2:], factor))
    if tuple(sizes) == tuple(x.shape[2:]):
        return x  # PyTorch copies when every size is unchanged, whatever the factor
    factors = factor or (None,) * rank
    for axis, size_out, scale in zip(range(2, x.ndim), sizes, factors):
        x = _cubic_axis(x, axis, int(size_out), scale)
    return x


def _cubic_axis(x, axis, size_out, factor):
    xp = ops.array_namespace(x)
    size_in = x.shape[axis]
    scale = numpy.float32(1.0 / factor) if factor else numpy.float32(size_in) / numpy.float32(size_out)
    source = scale * (numpy.arange(size_out, dtype=numpy.float32) + numpy.float32(0.5)) - numpy.float32(0.5)
    base = numpy.floor(source)
    t = source - base  # cubic sources are not clamped at 0, unlike (bi)linear
    shape = [1] * x.ndim
    shape[axis] = size_out
    out = None
    for tap, weight in enumerate(_cubic_weights(t)):
        index = numpy.clip(base.astype(numpy.int64) - 1 + tap, 0, size_in - 1)
        term = xp.take(x, xp.asarray(index), axis=axis) * xp.asarray(weight.reshape(shape)).astype(x.dtype)
        out = term if out is None else out + term
    return out


def _cubic_weights(t):
    def near(d):  # |d| <= 1
        return ((CUBIC_A + 2) * d - (CUBIC_A + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((CUBIC_A * d - 5 * CUBIC_A) * d + 8 * CUBIC_A) * d - 4 * CUBIC_A

    return far(t + 1), near(t), near(1 - t), far(2 - t)


# ----------------------------------------------------------------------------- the backend
class ArrayBackend:
    """A backend for any NumPy-compatible array module (numpy here, cupy in cupy_backend)."""

    def __init__(self, xp, name: str = "numpy", device: str = "cpu"):
        self.xp = xp
        self.name = name
        self.device = device

    def asarray(self, array):
        return self.xp.asarray(array)

    def to_numpy(self, array) -> numpy.ndarray:
        return numpy.asarray(array)

    def run(self, row, inputs: list, params: dict):
        # -inf from a max-pool window that sees only padding may flow on into NaN: a value to
        # report, not a warning to print
        with numpy.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return OPS[row.kind](inputs, params, row)

    def synchronize(self) -> None:
        pass

    def available_bytes(self) -> int | None:
        return host_available_bytes()


def load(device: str) -> ArrayBackend:
    from .registry import BackendUnavailable

    if device != "cpu":
        raise BackendUnavailable("the numpy backend runs on the CPU only; use --backend torch or cupy "
                                 "with --device cuda")
    return ArrayBackend(numpy)
