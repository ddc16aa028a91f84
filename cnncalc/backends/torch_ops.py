"""The op interface on torch tensors: the same functions and arguments as ``ops`` (NumPy/CuPy),
each a thin adapter over ``torch.nn.functional``. Layer kinds' ``forward`` is written once against
this interface; the torch backend hands them this module.

PyTorch's functions take one padding per axis for both sides; asymmetric ``(before, after)``
padding is applied with ``F.pad`` first (conv, pools) or cropped off afterwards (transposed conv).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
ADAPTIVE_AVG = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
ADAPTIVE_MAX = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}
LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}  # the spec's linear modes, by rank
PAD_MODES = {"zero": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


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


# ----------------------------------------------------------------------------- the interface
def conv(x, w, b, stride, padding, dilation, groups):
    if symmetric(padding):
        pads = tuple(before for before, _ in padding)
    else:
        x, pads = F.pad(x, flat_padding(padding)), 0
    return CONV[rank_of(x)](x, w, b, stride=tuple(stride), padding=pads, dilation=tuple(dilation), groups=groups)


def conv_transpose(x, w, b, stride, padding, dilation, groups, output_padding):
    pads = tuple(before for before, _ in padding) if symmetric(padding) else 0
    out = CONV_T[rank_of(x)](x, w, b, stride=tuple(stride), padding=pads, output_padding=tuple(output_padding),
                             groups=groups, dilation=tuple(dilation))
    return out if symmetric(padding) else crop(out, padding)


def max_pool(x, kernel, stride, padding, dilation, ceil_mode=False):
    pool = MAX_POOL[rank_of(x)]
    if symmetric(padding):
        return pool(x, tuple(kernel), tuple(stride), tuple(b for b, _ in padding), tuple(dilation), ceil_mode=ceil_mode)
    out = pool(F.pad(x, flat_padding(padding), value=float("-inf")), tuple(kernel), tuple(stride), 0,
               tuple(dilation), ceil_mode=ceil_mode)
    return drop_windows_in_right_padding(out, x.shape[2:], stride, padding) if ceil_mode else out


def avg_pool(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True):
    pool = AVG_POOL[rank_of(x)]
    if symmetric(padding):
        return pool(x, tuple(kernel), tuple(stride), tuple(b for b, _ in padding), ceil_mode, count_include_pad)

    def padded_pool(t):
        return pool(F.pad(t, flat_padding(padding)), tuple(kernel), tuple(stride), 0, ceil_mode, True)

    out = padded_pool(x)
    if not count_include_pad:  # same divisor on both sides: sum / real positions in the window
        out = out / padded_pool(torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device))
    return drop_windows_in_right_padding(out, x.shape[2:], stride, padding) if ceil_mode else out


def adaptive_avg_pool(x, output):
    return ADAPTIVE_AVG[rank_of(x)](x, tuple(output))


def adaptive_max_pool(x, output):
    return ADAPTIVE_MAX[rank_of(x)](x, tuple(output))


def linear(x, w, b=None):
    return F.linear(x, w, b)


def flatten(x):
    return x.reshape(x.shape[0], -1)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    return F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=eps)


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    flat = x.dim() < 3  # F.local_response_norm wants a spatial axis
    x = x.contiguous()  # its 5-D path views the input, which fails on a permuted tensor
    out = F.local_response_norm(x.unsqueeze(-1) if flat else x, size, alpha, beta, k)
    return out.squeeze(-1) if flat else out


def pad(x, pairs, mode="zero"):
    return F.pad(x, flat_padding(pairs), mode=PAD_MODES[mode])


relu, relu6, sigmoid, tanh, gelu = F.relu, F.relu6, torch.sigmoid, torch.tanh, F.gelu


def leaky_relu(x, negative_slope=0.01):
    return F.leaky_relu(x, negative_slope)


def softmax(x, axis=1):
    return F.softmax(x, dim=axis)


def upsample(x, size=None, scale_factor=None, mode="nearest"):
    rank = rank_of(x)
    mode = LINEAR_MODES[rank] if mode in LINEAR_MODES.values() else mode
    return F.interpolate(x, size=tuple(size) if size else None, mode=mode,
                         scale_factor=tuple(float(f) for f in scale_factor) if scale_factor else None,
                         align_corners=None if mode == "nearest" else False)


def unpool(x, factor, mode="nearest"):
    if mode == "nearest":
        for axis, f in enumerate(factor, start=2):
            x = x.repeat_interleave(f, dim=axis)
        return x
    out = x.new_zeros((*x.shape[:2], *(n * f for n, f in zip(x.shape[2:], factor))))
    out[(slice(None), slice(None)) + tuple(slice(None, None, f) for f in factor)] = x  # bed of nails
    return out


def add(a, b):
    return a + b


def concat(arrays):
    return torch.cat(list(arrays), dim=1)


def mul(a, b):
    return a * b


# more activations: silu, hardswish, hardsigmoid, mish, elu, selu, prelu, log_softmax
def silu(x):
    return F.silu(x)


def hardswish(x):
    return F.hardswish(x)


def hardsigmoid(x):
    return F.hardsigmoid(x)


def mish(x):
    return F.mish(x)


def elu(x, alpha=1.0):
    return F.elu(x, alpha)


def selu(x):
    return F.selu(x)


def prelu(x, weight):
    return F.prelu(x, weight)


def log_softmax(x, axis=1):
    return F.log_softmax(x, dim=axis)


# ----------------------------------------------------------------------------- channel and shape rearrangements
def channel_shuffle(x, groups):
    # torchvision's view-transpose-view: works on every device (aten::channel_shuffle has lacked CUDA kernels)
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def pixel_shuffle(x, factor):
    return F.pixel_shuffle(x, factor)


def pixel_unshuffle(x, factor):
    return F.pixel_unshuffle(x, factor)


def permute(x, dims):
    return x.permute(*dims)


def reshape(x, shape):
    return x.reshape(x.shape[0], *shape)


def squeeze(x, dim):
    return x.squeeze(dim)


def unsqueeze(x, dim):
    return x.unsqueeze(dim)


def linear_last(x, w, b=None):
    return F.linear(x, w, b)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, over_channels=False):
    if over_channels:  # ConvNeXt's LayerNorm2d: channels last, nn.LayerNorm(C), back
        return F.layer_norm(x.movedim(1, -1), (x.shape[1],), weight, bias, eps).movedim(-1, 1)
    return F.layer_norm(x, tuple(normalized_shape), weight, bias, eps)


def group_norm(x, groups, weight=None, bias=None, eps=1e-5):
    return F.group_norm(x, groups, weight, bias, eps)


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, eps=1e-5):
    """Eval mode: the running statistics when given (track_running_stats), else the instance's own,
    as group norm with one group per channel (the same function; F.instance_norm's batch-norm path
    leaves a constant map an ulp off its mean, which 1/sqrt(eps) magnifies past float32 tolerance)."""
    if running_mean is not None:
        return F.instance_norm(x, running_mean, running_var, weight, bias, use_input_stats=False, eps=eps)
    return F.group_norm(x, x.shape[1], weight, bias, eps)
