"""The PyTorch backend: every row through ``torch.nn.functional`` on ``--device cpu|cuda``.

PyTorch's functions take one padding per axis for both sides; asymmetric ``(before, after)``
padding is applied with ``F.pad`` first (conv, pools) or cropped off afterwards (transposed
conv). Ops take ``(inputs, params, row)`` like the NumPy backend's.
"""
from __future__ import annotations

import math

import numpy
import torch
import torch.nn.functional as F

from .common import crop_to_smallest, per_axis
from .memory import host_available_bytes

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}  # the spec's linear modes, by rank


# ----------------------------------------------------------------------------- padding helpers
def symmetric(pairs) -> bool:
    return all(before == after for before, after in pairs)


def flat_padding(pairs) -> list[int]:
    """(before, after) per axis -> F.pad's flat list, last axis first."""
    return [amount for pair in reversed(pairs) for amount in pair]


def rank_of(x) -> int:
    return x.dim() - 2


def crop(x, pairs):
    """Remove ``before`` and ``after`` positions from each spatial axis."""
    window = tuple(slice(before, size - after) for size, (before, after) in zip(x.shape[2:], pairs))
    return x[(slice(None), slice(None)) + window]


def drop_windows_in_right_padding(out, sizes, stride, pairs):
    """ceil_mode after explicit padding: PyTorch no longer sees the padding, so drop a last window
    that starts inside the right padding (start >= size + before) as it would."""
    keep = [slice(None), slice(None)]
    for count, size, s, (before, _) in zip(out.shape[2:], sizes, stride, pairs):
        keep.append(slice(0, count - 1 if (count - 1) * s >= size + before else count))
    return out[tuple(keep)]


# ----------------------------------------------------------------------------- ops
def conv(xs, p, row):
    x, h = xs[0], row.hyper
    pairs = h["padding"]
    if symmetric(pairs):
        padding = tuple(before for before, _ in pairs)
    else:
        x, padding = F.pad(x, flat_padding(pairs)), 0
    return CONV[rank_of(x)](x, p["weight"], p.get("bias"), stride=h["stride"], padding=padding,
                            dilation=h["dilation"], groups=h["groups"])


def conv_transpose(xs, p, row):
    x, h = xs[0], row.hyper
    pairs = h["padding"]
    padding = tuple(before for before, _ in pairs) if symmetric(pairs) else 0
    out = CONV_T[rank_of(x)](x, p["weight"], p.get("bias"), stride=h["stride"], padding=padding,
                             output_padding=h["output_padding"], groups=h["groups"], dilation=h["dilation"])
    return out if symmetric(pairs) else crop(out, pairs)


def max_pool(xs, p, row):
    x, h, ceil_mode = xs[0], row.hyper, row.layer.ceil_mode
    pairs, pool = h["padding"], MAX_POOL[rank_of(x)]
    if symmetric(pairs):
        return pool(x, h["kernel"], h["stride"], tuple(b for b, _ in pairs), h["dilation"], ceil_mode=ceil_mode)
    out = pool(F.pad(x, flat_padding(pairs), value=float("-inf")), h["kernel"], h["stride"], 0, h["dilation"],
               ceil_mode=ceil_mode)
    return drop_windows_in_right_padding(out, x.shape[2:], h["stride"], pairs) if ceil_mode else out


def avg_pool(xs, p, row):
    x, h, layer = xs[0], row.hyper, row.layer
    pairs, pool = h["padding"], AVG_POOL[rank_of(x)]
    if symmetric(pairs):
        return pool(x, h["kernel"], h["stride"], tuple(b for b, _ in pairs), layer.ceil_mode, layer.count_include_pad)

    def padded_pool(t):
        return pool(F.pad(t, flat_padding(pairs)), h["kernel"], h["stride"], 0, layer.ceil_mode, True)

    out = padded_pool(x)
    if not layer.count_include_pad:  # same divisor on both sides: sum / real positions in the window
        out = out / padded_pool(torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device))
    return drop_windows_in_right_padding(out, x.shape[2:], h["stride"], pairs) if layer.ceil_mode else out


def subsample(xs, p, row):
    """LeNet's S2/S4: the window's sum times one coefficient per map, plus one bias per map."""
    x, h = xs[0], row.hyper
    window_sum = AVG_POOL[rank_of(x)](x, h["kernel"], h["stride"]) * math.prod(h["kernel"])
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return window_sum * p["weight"].reshape(shape) + p["bias"].reshape(shape)


def linear(xs, p, row):
    x = xs[0]
    return F.linear(x.reshape(x.shape[0], -1), p["weight"], p.get("bias"))


def batch_norm(xs, p, row):
    return F.batch_norm(xs[0], p["running_mean"], p["running_var"], p.get("weight"), p.get("bias"),
                        training=False, eps=row.layer.eps)


def lrn(xs, p, row):
    x, layer = xs[0], row.layer
    flat = x.dim() < 3  # F.local_response_norm wants a spatial axis
    out = F.local_response_norm(x.unsqueeze(-1) if flat else x, layer.size, layer.alpha, layer.beta, layer.k)
    return out.squeeze(-1) if flat else out


def upsample(xs, p, row):
    x, layer = xs[0], row.layer
    rank = rank_of(x)
    factor = per_axis(layer.scale_factor, rank)
    mode = LINEAR_MODES[rank] if layer.mode in LINEAR_MODES.values() else layer.mode
    return F.interpolate(x, size=per_axis(layer.size, rank), mode=mode,
                         scale_factor=tuple(float(f) for f in factor) if factor else None,
                         align_corners=None if mode == "nearest" else False)


def unpool(xs, p, row):
    x, mode = xs[0], row.layer.mode
    factors = per_axis(row.layer.factor, rank_of(x))
    if mode == "nearest":
        for axis, f in enumerate(factors, start=2):
            x = x.repeat_interleave(f, dim=axis)
        return x
    out = x.new_zeros((*x.shape[:2], *(n * f for n, f in zip(x.shape[2:], factors))))
    out[(slice(None), slice(None)) + tuple(slice(None, None, f) for f in factors)] = x  # bed of nails
    return out


def add(xs, p, row):
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    return total


def concat(xs, p, row):
    return torch.cat(crop_to_smallest(xs) if getattr(row.layer, "crop", False) else xs, dim=1)


def elementwise(function):
    return lambda xs, p, row: function(xs[0])


OPS = {
    "conv": conv,
    "conv_transpose": conv_transpose,
    "maxpool": max_pool,
    "avgpool": avg_pool,
    "subsample": subsample,
    "adaptive_avgpool": lambda xs, p, row: ADAPTIVE_AVG[rank_of(xs[0])](xs[0], row.hyper["output"]),
    "adaptive_maxpool": lambda xs, p, row: ADAPTIVE_MAX[rank_of(xs[0])](xs[0], row.hyper["output"]),
    "global_avgpool": elementwise(lambda x: ADAPTIVE_AVG[rank_of(x)](x, 1)),
    "global_maxpool": elementwise(lambda x: ADAPTIVE_MAX[rank_of(x)](x, 1)),
    "linear": linear,
    "flatten": elementwise(lambda x: x.reshape(x.shape[0], -1)),
    "batchnorm": batch_norm,
    "lrn": lrn,
    "dropout": elementwise(lambda x: x),  # inference: the identity
    "relu": elementwise(F.relu),
    "relu6": elementwise(F.relu6),
    "leaky_relu": lambda xs, p, row: F.leaky_relu(xs[0], row.layer.negative_slope),
    "sigmoid": elementwise(torch.sigmoid),
    "tanh": elementwise(torch.tanh),
    "gelu": elementwise(F.gelu),
    "softmax": elementwise(lambda x: F.softmax(x, dim=1)),
    "upsample": upsample,
    "unpool": unpool,
    "add": add,
    "concat": concat,
}


# ----------------------------------------------------------------------------- the backend
FLOAT32_EPS = 2.0 ** -23
TF32_EPS = 2.0 ** -10  # TF32 keeps 10 of float32's 23 mantissa bits
TF32_FLAGS = {  # which switch lets each kind run in TF32 on CUDA
    "conv": lambda: torch.backends.cudnn.allow_tf32,
    "conv_transpose": lambda: torch.backends.cudnn.allow_tf32,
    "linear": lambda: torch.backends.cuda.matmul.allow_tf32,
}


class TorchBackend:
    name = "torch"

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._device = torch.device(device)

    def asarray(self, array):
        if isinstance(array, torch.Tensor):
            return array.to(self._device)
        host = numpy.require(array, dtype=numpy.float32, requirements=("C", "W"))  # from_numpy shares memory
        return torch.from_numpy(host).to(self._device)

    def to_numpy(self, array) -> numpy.ndarray:
        return array.detach().cpu().numpy()

    def run(self, row, inputs: list, params: dict):
        with torch.inference_mode():
            return OPS[row.kind](inputs, params, row)

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def epsilon(self, kind: str) -> float:
        """The machine epsilon ``kind`` is computed in, for the cross-check's float32 rule: TF32's
        (2**-10) for convolutions and matmuls PyTorch is allowed to run in TF32 on the GPU
        (Ampere or newer; convolutions by default), float32's otherwise."""
        if self._device.type == "cuda" and kind in TF32_FLAGS and TF32_FLAGS[kind]():
            if torch.cuda.get_device_capability(self._device)[0] >= 8:
                return TF32_EPS
        return FLOAT32_EPS

    def available_bytes(self) -> int | None:
        if self._device.type == "cuda":
            return torch.cuda.mem_get_info(self._device)[0]
        return host_available_bytes()


def load(device: str) -> TorchBackend:
    from .registry import BackendUnavailable

    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda needs a CUDA GPU that PyTorch can use, and "
                                 f"torch.cuda.is_available() is False here (PyTorch {torch.__version__}); "
                                 "use --device cpu")
    return TorchBackend(device)
