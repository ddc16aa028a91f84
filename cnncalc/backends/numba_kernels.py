"""The NumPy backend's compiled loops (numba): imported only through ``compiled.py``, which
checks that numba is installed and that the arrays suit these kernels.

Each kernel is the layer's definition written out as loops over C-ordered NumPy arrays, for
the ops where NumPy needs one ufunc pass per operation (batch norm: two; SiLU: four) or has no
vectorised loop at all (a depthwise convolution's taps): here each is one pass, its innermost
loop contiguous so that LLVM vectorises it. They run on the calling thread: OpenBLAS keeps the
other cores for the matrix products between them. Sharing the kernels among threads
(numba's ``parallel=True``) was measured slower on 2 cores: OpenMP's spinning workers starve
OpenBLAS's (1x1 convolutions 3-10x slower), and sleeping ones cost a wake-up per kernel.
Nothing here computes a size: every output array arrives allocated by ``ops``, which derives
its shape from sliding-window views as before.

``cache=True`` keeps the machine code on disk (``__pycache__`` beside this file, or numba's
user-wide cache where that is not writable), so only a machine's first run compiles.
"""

from __future__ import annotations

import numpy
from numba import njit

JIT = {"cache": True, "nogil": True, "boundscheck": False, "error_model": "numpy"}
BLOCK = 4096  # values per element-wise block: two of them (and the exponent bits) fit in L1

# expf as in Cephes (S. L. Moshier): exp(r) for |r| <= ln2 / 2 by a degree-6 polynomial, times 2^n
# built from its exponent bits; about 1 ulp, and written so that LLVM can vectorise it (libm's
# expf is a call per value).
LOG2E = numpy.float32(1.44269504088896341)
LN2_HIGH = numpy.float32(0.693359375)
LN2_LOW = numpy.float32(-2.12194440e-4)
EXP_POLY = tuple(numpy.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                             4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
EXP_LOWEST = numpy.float32(-86.6)  # 2^(n-1) stays a normal float32 (n >= -125); below, 1 + exp(x) is 1
EXP_OVERFLOW = numpy.float32(88.72283935546875)  # above, exp(x) is inf (n = 128 is as 2 * 2^127)


@njit(**JIT)
def batch_norm(x, mean, variance, weight, bias, eps, out):
    """Inference batch norm of channels-last rows ``x [M, C]``: x * scale + shift with
    scale = weight / sqrt(variance + eps) and shift = bias - mean * scale, PyTorch's order."""
    rows, channels = x.shape
    scale = numpy.empty(channels, x.dtype)
    shift = numpy.empty(channels, x.dtype)
    for c in range(channels):
        scale[c] = numpy.float32(1.0) / numpy.sqrt(variance[c] + eps) * weight[c]
        shift[c] = bias[c] - mean[c] * scale[c]
    step = max(1, BLOCK // channels)
    for block in range((rows + step - 1) // step):
        for r in range(block * step, min(rows, (block + 1) * step)):
            source, target = x[r], out[r]
            for c in range(channels):
                target[c] = source[c] * scale[c] + shift[c]


@njit(**JIT)
def scale_rows(x, gate, out):
    """out[n, m, c] = x[n, m, c] * gate[n, c] (a per-sample channel gate, squeeze-excitation's)."""
    samples, rows, channels = x.shape
    for task in range(samples * rows):
        n, m = task // rows, task % rows
        source, target, g = x[n, m], out[n, m], gate[n]
        for c in range(channels):
            target[c] = source[c] * g[c]


@njit(**JIT)
def clamp(x, low, high, out):
    """min(max(x, low), high) of flat arrays; NaN stays NaN (as torch.clamp)."""
    for block in range((x.size + BLOCK - 1) // BLOCK):
        source, target = x[block * BLOCK : (block + 1) * BLOCK], out[block * BLOCK : (block + 1) * BLOCK]
        for k in range(source.size):
            v = source[k]
            v = low if v < low else v
            target[k] = high if v > high else v


@njit(**JIT)
def hard_gate(x, times_x, out):
    """relu6(x + 3) / 6 (hardsigmoid) or, with ``times_x``, x * relu6(x + 3) / 6 (hardswish), in
    PyTorch's order of operations, float32; NaN stays NaN."""
    three, six, zero = numpy.float32(3.0), numpy.float32(6.0), numpy.float32(0.0)
    for block in range((x.size + BLOCK - 1) // BLOCK):
        source, target = x[block * BLOCK : (block + 1) * BLOCK], out[block * BLOCK : (block + 1) * BLOCK]
        for k in range(source.size):
            v = source[k] + three
            v = zero if v < zero else v
            v = six if v > six else v
            target[k] = (v * source[k] if times_x else v) / six


@njit(**JIT)
def add_or_multiply(a, b, product, out):
    """out = a * b (``product``) or a + b, of flat arrays."""
    for block in range((a.size + BLOCK - 1) // BLOCK):
        first, second = a[block * BLOCK : (block + 1) * BLOCK], b[block * BLOCK : (block + 1) * BLOCK]
        target = out[block * BLOCK : (block + 1) * BLOCK]
        for k in range(first.size):
            target[k] = first[k] * second[k] if product else first[k] + second[k]


@njit(inline="always")
def _exp_parts(v):
    """(p, n): exp(v) = p * 2^n for v in [EXP_LOWEST, EXP_OVERFLOW]."""
    n = numpy.floor(v * LOG2E + numpy.float32(0.5))
    r = v - n * LN2_HIGH - n * LN2_LOW
    p = EXP_POLY[0]
    p = p * r + EXP_POLY[1]
    p = p * r + EXP_POLY[2]
    p = p * r + EXP_POLY[3]
    p = p * r + EXP_POLY[4]
    p = p * r + EXP_POLY[5]
    return p * (r * r) + r + numpy.float32(1.0), n


@njit(**JIT)
def logistic(x, times_x, out):
    """1 / (1 + exp(-x)) (sigmoid) or, with ``times_x``, x / (1 + exp(-x)) (SiLU), PyTorch's
    formulas, float32; below x = -88.72 exp(-x) is inf and the result the limit (0 or -0)."""
    for block in range((x.size + BLOCK - 1) // BLOCK):
        source, target = x[block * BLOCK : (block + 1) * BLOCK], out[block * BLOCK : (block + 1) * BLOCK]
        bits = numpy.empty(source.size, numpy.int32)
        for k in range(source.size):  # exp(-x) = 2p * 2^(n-1): 2p into target, 2^(n-1)'s bits into bits
            v = -source[k]
            v = EXP_LOWEST if v < EXP_LOWEST else v
            v = EXP_OVERFLOW if v > EXP_OVERFLOW else v
            p, n = _exp_parts(v)
            target[k] = p * numpy.float32(2.0)
            bits[k] = (numpy.int32(n) + numpy.int32(126)) << numpy.int32(23)
        powers = bits.view(numpy.float32)
        for k in range(source.size):
            v = source[k]
            e = target[k] * powers[k]
            e = numpy.float32(numpy.inf) if -v > EXP_OVERFLOW else e
            e = v if v != v else e  # NaN in, NaN out
            target[k] = (v if times_x else numpy.float32(1.0)) / (numpy.float32(1.0) + e)


@njit(**JIT)
def depthwise2d(x, w, stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, out, first, stop):
    """out[n, h, j, c] = sum over taps (a, b) of x[n, h*sh - pt + a*dh, j*sw - pl + b*dw, c] * w[a, b, c],
    positions outside ``x`` read as zero (the padding); channels-last, one input channel per output.
    Computes the output rows ``[first, stop)`` of the ``N x H_out`` rows."""
    height, width = x.shape[1], x.shape[2]
    rows, columns, channels = out.shape[1], out.shape[2], out.shape[3]
    for task in range(first, stop):
        n, h = task // rows, task % rows
        for j in range(columns):
            target = out[n, h, j]
            for c in range(channels):
                target[c] = 0.0
            for a in range(w.shape[0]):
                row = h * stride_h - pad_top + a * dilation_h
                if row < 0 or row >= height:
                    continue
                for b in range(w.shape[1]):
                    column = j * stride_w - pad_left + b * dilation_w
                    if column < 0 or column >= width:
                        continue
                    source, weight = x[n, row, column], w[a, b]
                    for c in range(channels):
                        target[c] += source[c] * weight[c]


@njit(**JIT)
def channel_means(x, out):
    """out[n, c] = mean over m of x[n, m, c] (global average pooling of channels-last rows),
    summed in float64."""
    samples, rows, channels = x.shape
    for task in range(samples):
        total = numpy.zeros(channels, numpy.float64)
        for m in range(rows):
            source = x[task, m]
            for c in range(channels):
                total[c] += source[c]
        for c in range(channels):
            out[task, c] = total[c] / rows
