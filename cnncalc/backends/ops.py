"""Forward pass of CNN layers for any NumPy-compatible array module (numpy or cupy).

This module is an *independent oracle* for the analytic shape engine: every output
size here falls out of the array operations themselves (padding, sliding-window
views, strided slicing), never out of a size formula handed in by a caller.

Layout is batch-first, ``[N, C, *spatial]`` with 1, 2 or 3 spatial axes. Hyper-
parameters arrive normalised by the caller: one entry per spatial axis, and
``padding`` as one ``(before, after)`` pair per axis (asymmetric allowed).
Semantics follow ``torch.nn.functional``; float32 inputs stay float32.
"""

from __future__ import annotations

import itertools
import math

import numpy

# im2col scratch budget: conv processes output rows in chunks so the column buffer
# stays near this size (bounded memory, and it still feeds BLAS large matrices).
IM2COL_BUDGET_BYTES = 8 * 2**20


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def array_namespace(x):
    """Return the array module (``cupy`` or ``numpy``) that owns ``x``."""
    if type(x).__module__.startswith("cupy"):
        import cupy  # imported lazily: cupy is optional

        return cupy
    return numpy


def _spatial_axes(x) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


def _lowest(dtype):
    """Padding value that never wins a max: -inf, or the smallest integer."""
    dtype = numpy.dtype(dtype)
    if dtype.kind == "f":
        return -numpy.inf
    return numpy.iinfo(dtype).min


def _pad(x, pairs, value=0):
    """Pad the spatial axes by ``(before, after)`` pairs with a constant value."""
    if not any(before or after for before, after in pairs):
        return x
    xp = array_namespace(x)
    widths = ((0, 0), (0, 0)) + tuple((int(b), int(a)) for b, a in pairs)
    return xp.pad(x, widths, mode="constant", constant_values=value)


def _pad_or_crop(x, pairs):
    """Zero-pad the spatial axes; a negative amount crops that many positions instead.

    Padding goes first so a crop may reach into the other side's padding.
    """
    padded = _pad(x, [(max(before, 0), max(after, 0)) for before, after in pairs])
    crop = (slice(None), slice(None)) + tuple(
        slice(max(-before, 0), padded.shape[axis] - max(-after, 0))
        for axis, (before, after) in zip(_spatial_axes(padded), pairs)
    )
    return padded[crop]


def _windows(x, kernel, stride, dilation):
    """Strided view ``[N, C, *out, *kernel]`` of every (dilated, strided) window.

    The output extent per axis is whatever the sliding-window view yields.
    """
    xp = array_namespace(x)
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = xp.lib.stride_tricks.sliding_window_view(x, extent, axis=_spatial_axes(x))
    keep = (slice(None), slice(None))
    return view[keep + tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, d) for d in dilation)]


def _kernel_offsets(kernel):
    return itertools.product(*(range(k) for k in kernel))


def _per_offset(windows, kernel):
    """Yield ``[N, C, *out]`` views, one per kernel offset (no copies)."""
    for offset in _kernel_offsets(kernel):
        yield windows[(Ellipsis,) + offset]


def _as_tuple(value, n):
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,) * n


# ----------------------------------------------------------------------------
# convolutions
# ----------------------------------------------------------------------------


def conv(x, w, b, stride, padding, dilation, groups):
    """Cross-correlation like ``torch.nn.functional.conv{1,2,3}d``.

    ``w`` is ``[K, C/groups, *kernel]``, ``b`` is ``[K]`` or None. im2col + BLAS
    matmul, in chunks of output rows along the first spatial axis.
    """
    xp = array_namespace(x)
    dtype = xp.result_type(x, w)
    kernel = tuple(w.shape[2:])
    columns = _column_view(x.astype(dtype, copy=False), kernel, stride, padding, dilation)
    out = xp.empty(x.shape[:1] + w.shape[:1] + columns.shape[2 + len(kernel) :], dtype=dtype)
    weight = w.astype(dtype, copy=False).reshape(groups, w.shape[0] // groups, -1)  # [G, Kg, Cg*prod(k)]
    _matmul_by_row_chunks(weight, columns, out)
    if b is not None:
        out += b.astype(dtype, copy=False).reshape((1, -1) + (1,) * len(kernel))
    return out


def _column_view(x, kernel, stride, padding, dilation):
    """Strided im2col view ``[N, C, *kernel, *out]`` of the padded input (no copy yet).

    Kernel axes sit right after C so ``[N, G, Cg*prod(kernel), L]`` is a plain
    reshape and the matmul result comes out channel-first.
    """
    nsp = len(kernel)
    windows = _windows(_pad(x, padding), kernel, stride, dilation)  # [N, C, *out, *kernel]
    return windows.transpose((0, 1) + tuple(range(2 + nsp, 2 + 2 * nsp)) + tuple(range(2, 2 + nsp)))


def _matmul_by_row_chunks(weight, columns, out):
    """``out[N, K, *o] = weight[G, Kg, R] @ columns``, copying at most a budget of columns at a time."""
    xp = array_namespace(out)
    n, groups = out.shape[0], weight.shape[0]
    out_grouped = out.reshape((n, groups, -1) + out.shape[2:])
    row_axis = columns.ndim - (out.ndim - 2)  # first output axis inside `columns`
    rows_total = columns.shape[row_axis]
    row_size = columns.size // rows_total
    rows_per_chunk = max(1, min(rows_total, IM2COL_BUDGET_BYTES // (row_size * columns.itemsize)))
    scratch = xp.empty(rows_per_chunk * row_size, dtype=out.dtype)
    for start in range(0, rows_total, rows_per_chunk):
        rows = slice(start, min(start + rows_per_chunk, rows_total))
        chunk = columns[(slice(None),) * row_axis + (rows,)]
        buffer = scratch[: chunk.size].reshape(chunk.shape)
        xp.copyto(buffer, chunk)
        buffer = buffer.reshape(n, groups, weight.shape[2], -1)
        target = out_grouped[(slice(None),) * 3 + (rows,)]
        flat_target = target.reshape(target.shape[:3] + (-1,))  # a view: rows and the rest are adjacent
        if xp.may_share_memory(flat_target, out):
            xp.matmul(weight, buffer, out=flat_target)
        else:  # defensive: a copying reshape would lose the result
            target[...] = xp.matmul(weight, buffer).reshape(target.shape)


def conv_transpose(x, w, b, stride, padding, dilation, groups, output_padding):
    """Transposed convolution like ``torch.nn.functional.conv_transpose{1,2,3}d``.

    ``w`` is ``[C_in, K/groups, *kernel]``. Computed as zero insertion (stride),
    padding by ``dilation*(k-1) - pad`` (plus ``output_padding`` at the end) and a
    stride-1 conv with the flipped, in/out-swapped kernel.
    """
    kernel = tuple(w.shape[2:])
    nsp = len(kernel)
    spread = _insert_zeros(x, stride)
    margins = [
        (d * (k - 1) - before, d * (k - 1) - after + extra)
        for k, d, (before, after), extra in zip(kernel, dilation, padding, output_padding)
    ]
    spread = _pad_or_crop(spread, margins)
    return conv(spread, _transposed_kernel(w, groups), b, (1,) * nsp, [(0, 0)] * nsp, dilation, groups)


def _insert_zeros(x, stride):
    """Put ``stride-1`` zeros between neighbouring samples along each spatial axis."""
    if all(s == 1 for s in stride):
        return x
    xp = array_namespace(x)
    shape = x.shape[:2] + tuple((size - 1) * s + 1 for size, s in zip(x.shape[2:], stride))
    spread = xp.zeros(shape, dtype=x.dtype)
    spread[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)] = x
    return spread


def _transposed_kernel(w, groups):
    """``[C_in, K/g, *k]`` -> ``[K, C_in/g, *k]``, spatially flipped."""
    c_in, k_per_group = w.shape[:2]
    kernel = w.shape[2:]
    grouped = w.reshape((groups, c_in // groups, k_per_group) + kernel).swapaxes(1, 2)
    swapped = grouped.reshape((groups * k_per_group, c_in // groups) + kernel)
    return swapped[(slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)]


# ----------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------


def _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, pad_value, tail_value):
    """Windows for pooling, honouring PyTorch's ceil_mode.

    With ceil_mode, ``stride-1`` positions of ``tail_value`` are appended after the
    padding so partial windows appear; a last window that would start inside the
    right padding (start >= in + pad_before) is dropped, as PyTorch does.
    """
    padded = _pad(x, padding, pad_value)
    if ceil_mode:
        padded = _pad(padded, [(0, s - 1) for s in stride], tail_value)
    windows = _windows(padded, kernel, stride, dilation)
    if ceil_mode:
        keep = [slice(None), slice(None)]
        for axis, (size, s, (before, _)) in enumerate(zip(x.shape[2:], stride, padding)):
            count = windows.shape[2 + axis]
            starts_in_right_padding = (count - 1) * s >= size + before
            keep.append(slice(0, count - 1 if starts_in_right_padding else count))
        windows = windows[tuple(keep)]
    return windows


def max_pool(x, kernel, stride, padding, dilation, ceil_mode=False):
    """Like ``torch.nn.functional.max_pool{1,2,3}d`` (padding counts as -inf)."""
    xp = array_namespace(x)
    lowest = _lowest(x.dtype)
    windows = _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, lowest, lowest)
    offsets = _per_offset(windows, kernel)
    out = xp.array(next(offsets), copy=True)
    for view in offsets:
        xp.maximum(out, view, out=out)
    return out


def avg_pool(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True):
    """Like ``torch.nn.functional.avg_pool{1,2,3}d``, including its divisor rules.

    The divisor is the window's size clipped at the padded boundary
    (count_include_pad=True) or its overlap with the real input (False); both come
    from pooling an indicator mask through the very same windows.
    """
    xp = array_namespace(x)
    dilation = (1,) * len(kernel)
    total = _window_sum(_pool_windows(x, kernel, stride, padding, dilation, ceil_mode, 0, 0), kernel)
    mask = xp.ones((1, 1) + tuple(x.shape[2:]), dtype=total.dtype)
    padding_counts = 1 if count_include_pad else 0
    mask_windows = _pool_windows(mask, kernel, stride, padding, dilation, ceil_mode, padding_counts, 0)
    return total / _window_sum(mask_windows, kernel)


def _window_sum(windows, kernel):
    xp = array_namespace(windows)
    offsets = _per_offset(windows, kernel)
    total = xp.array(next(offsets), copy=True)
    if total.dtype.kind in "iub":
        total = total.astype(numpy.float64)
    for view in offsets:
        total += view
    return total


def _adaptive_bins(size_in, size_out):
    """PyTorch's adaptive bins: [floor(i*in/out), ceil((i+1)*in/out))."""
    return [((i * size_in) // size_out, -(-((i + 1) * size_in) // size_out)) for i in range(size_out)]


def _adaptive(x, output, reduce):
    """Apply ``reduce`` over adaptive bins, one spatial axis at a time.

    Separable because every bin is a box: the max (or mean) of a box is the max (or
    mean) of per-axis maxima (means over equally sized rows).
    """
    xp = array_namespace(x)
    output = _as_tuple(output, x.ndim - 2)
    for axis, size_out in zip(_spatial_axes(x), output):
        if size_out is None:
            continue
        pieces = [
            reduce(x[(slice(None),) * axis + (slice(start, end),)], axis=axis, keepdims=True)
            for start, end in _adaptive_bins(x.shape[axis], size_out)
        ]
        x = xp.concatenate(pieces, axis=axis)
    return x


def adaptive_avg_pool(x, output):
    """Like ``torch.nn.functional.adaptive_avg_pool{1,2,3}d``."""
    return _adaptive(x, output, array_namespace(x).mean)


def adaptive_max_pool(x, output):
    """Like ``torch.nn.functional.adaptive_max_pool{1,2,3}d`` (values only)."""
    return _adaptive(x, output, array_namespace(x).max)


# ----------------------------------------------------------------------------
# dense and normalisation
# ----------------------------------------------------------------------------


def linear(x, w, b=None):
    """``x [N, F_in] @ w[F_out, F_in].T + b``."""
    xp = array_namespace(x)
    out = xp.matmul(x, w.T)
    if b is not None:
        out += b.astype(out.dtype, copy=False)
    return out


def _channel_shape(x, v):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5):
    """Inference-mode batch norm over channel axis 1."""
    xp = array_namespace(x)
    scale = 1 / xp.sqrt(running_var.astype(x.dtype, copy=False) + eps)
    if weight is not None:
        scale = scale * weight.astype(x.dtype, copy=False)
    shift = -running_mean.astype(x.dtype, copy=False) * scale
    if bias is not None:
        shift = shift + bias.astype(x.dtype, copy=False)
    return x * _channel_shape(x, scale) + _channel_shape(x, shift)


def lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Like ``torch.nn.functional.local_response_norm``.

    x / (k + alpha * mean(x^2 over a channel window))^beta, the window zero-padded by
    size//2 before and (size-1)//2 after along channels.
    """
    xp = array_namespace(x)
    squares = x * x
    widths = ((0, 0), (size // 2, (size - 1) // 2)) + ((0, 0),) * (x.ndim - 2)
    padded = xp.pad(squares, widths, mode="constant")
    windows = xp.lib.stride_tricks.sliding_window_view(padded, size, axis=1)
    total = xp.array(windows[..., 0], copy=True)
    for offset in range(1, size):
        total += windows[..., offset]
    return x / (total * (alpha / size) + k) ** beta


# ----------------------------------------------------------------------------
# activations
# ----------------------------------------------------------------------------


PAD_MODES = {"zero": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(x, pairs, mode="zero"):
    """Pad the spatial axes by ``(before, after)`` pairs: zero, reflect (mirror without the edge),
    replicate (repeat the edge) or circular (wrap around), as ``F.pad``'s modes."""
    if mode == "zero":
        return _pad(x, pairs)
    xp = array_namespace(x)
    widths = ((0, 0), (0, 0)) + tuple((int(b), int(a)) for b, a in pairs)
    return xp.pad(x, widths, mode=PAD_MODES[mode])


def relu(x):
    return array_namespace(x).maximum(x, 0)


def relu6(x):
    return array_namespace(x).minimum(relu(x), 6)


def leaky_relu(x, negative_slope=0.01):
    return array_namespace(x).where(x > 0, x, x * negative_slope)


def sigmoid(x):
    """Stable logistic: exp only ever sees non-positive arguments."""
    xp = array_namespace(x)
    decay = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + decay), decay / (1 + decay))


def tanh(x):
    return array_namespace(x).tanh(x)


# Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, below float32 resolution near 1).
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf(x):
    """Vectorised error function, accurate to ~1.5e-7 absolute, in ``x``'s dtype."""
    xp = array_namespace(x)
    magnitude = xp.abs(x)
    t = 1 / (1 + _ERF_P * magnitude)
    poly = _ERF_A[-1]
    for a in reversed(_ERF_A[:-1]):  # Horner
        poly = poly * t + a
    return xp.sign(x) * (1 - poly * t * xp.exp(-magnitude * magnitude))


def gelu(x):
    """Exact (erf) GELU, PyTorch's default."""
    return 0.5 * x * (1 + erf(x * (1 / math.sqrt(2))))


def softmax(x, axis=1):
    """Numerically stable softmax: shift by the max before exponentiating."""
    xp = array_namespace(x)
    shifted = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return shifted / xp.sum(shifted, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------
# resampling
# ----------------------------------------------------------------------------

_LINEAR_MODES = ("linear", "bilinear", "trilinear")
CUBIC_A = -0.75  # PyTorch's bicubic coefficient


def upsample(x, size=None, scale_factor=None, mode="nearest"):
    """Like ``torch.nn.functional.interpolate`` (nearest, or (bi/tri)linear with align_corners=False).

    With ``scale_factor`` the output is floor(in * factor) per axis and the source
    coordinate uses 1/factor, exactly as PyTorch does when it is not recomputed.
    """
    if (size is None) == (scale_factor is None):
        raise ValueError("give exactly one of size and scale_factor")
    if mode == "bicubic":
        return _bicubic(x, size and _as_tuple(size, x.ndim - 2), scale_factor and _as_tuple(scale_factor, x.ndim - 2))
    if mode != "nearest" and mode not in _LINEAR_MODES:
        raise ValueError(f"unsupported upsample mode {mode!r}")
    nsp = x.ndim - 2
    factors = _as_tuple(scale_factor, nsp) if scale_factor is not None else (None,) * nsp
    sizes = _as_tuple(size, nsp) if size is not None else tuple(
        math.floor(n * f) for n, f in zip(x.shape[2:], factors)
    )
    resample = _nearest_axis if mode == "nearest" else _linear_axis
    for axis, size_out, factor in zip(_spatial_axes(x), sizes, factors):
        x = resample(x, axis, int(size_out), factor)
    return x


def _bicubic(x, size, factor):
    """Like ``F.interpolate(mode="bicubic", align_corners=False)``, one axis at a time (PyTorch's
    4x4 weights are the outer product of per-axis cubic weights)."""
    rank = x.ndim - 2
    sizes = size or tuple(math.floor(n * f) for n, f in zip(x.shape[2:], factor))
    if tuple(sizes) == tuple(x.shape[2:]):
        return x  # PyTorch copies when every size is unchanged, whatever the factor
    factors = factor or (None,) * rank
    for axis, size_out, scale in zip(range(2, x.ndim), sizes, factors):
        x = _cubic_axis(x, axis, int(size_out), scale)
    return x


def _cubic_axis(x, axis, size_out, factor):
    xp = array_namespace(x)
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


def _source_scale(size_in, size_out, factor):
    """PyTorch's coordinate scale: 1/factor when a factor was given, else in/out."""
    if factor is not None and factor > 0:
        return numpy.float32(1.0 / factor)
    return numpy.float32(size_in) / numpy.float32(size_out)


def _nearest_axis(x, axis, size_out, factor):
    xp = array_namespace(x)
    size_in = x.shape[axis]
    # PyTorch's 2-D nearest kernel (only it) treats out == in and out == 2*in exactly,
    # even when a scale_factor such as 1.1 or 2.1 produced those sizes.
    if x.ndim == 4 and size_out == size_in:
        return x
    if x.ndim == 4 and size_out == 2 * size_in:
        index = numpy.arange(size_out) >> 1
    else:  # float32 arithmetic, as PyTorch's nearest kernel: floor(dst * scale)
        scaled = numpy.arange(size_out, dtype=numpy.float32) * _source_scale(size_in, size_out, factor)
        index = numpy.minimum(numpy.floor(scaled).astype(numpy.int64), size_in - 1)
    return xp.take(x, xp.asarray(index), axis=axis)


def _linear_axis(x, axis, size_out, factor):
    xp = array_namespace(x)
    size_in = x.shape[axis]
    if size_out == size_in:  # PyTorch's linear kernels copy such axes, whatever the factor
        return x
    scale = _source_scale(size_in, size_out, factor)
    source = numpy.maximum(scale * (numpy.arange(size_out, dtype=numpy.float32) + 0.5) - 0.5, 0)
    lower = numpy.minimum(numpy.floor(source).astype(numpy.int64), size_in - 1)
    upper = numpy.where(lower < size_in - 1, lower + 1, lower)
    upper_weight = numpy.clip(source - lower, 0, 1)
    shape = [1] * x.ndim
    shape[axis] = size_out
    upper_weight = xp.asarray(upper_weight.reshape(shape)).astype(x.dtype, copy=False)
    below = xp.take(x, xp.asarray(lower), axis=axis)
    above = xp.take(x, xp.asarray(upper), axis=axis)
    return below + (above - below) * upper_weight


def unpool(x, factor, mode="nearest"):
    """Inverse-pooling upsample by an integer factor per axis.

    ``nearest`` repeats every value; ``bed_of_nails`` puts it at the top-left corner
    of its block and zeros elsewhere.
    """
    xp = array_namespace(x)
    factors = _as_tuple(factor, x.ndim - 2)
    if mode == "nearest":
        for axis, f in zip(_spatial_axes(x), factors):
            x = xp.repeat(x, f, axis=axis)
        return x
    if mode == "bed_of_nails":
        out = xp.zeros(x.shape[:2] + tuple(n * f for n, f in zip(x.shape[2:], factors)), dtype=x.dtype)
        out[(slice(None), slice(None)) + tuple(slice(None, None, f) for f in factors)] = x
        return out
    raise ValueError(f"unsupported unpool mode {mode!r}")


# ----------------------------------------------------------------------------
# structural
# ----------------------------------------------------------------------------


def flatten(x):
    """``[N, *rest]`` -> ``[N, prod(rest)]``."""
    return x.reshape(x.shape[0], -1)


def add(a, b):
    return a + b


def concat(arrays):
    """Concatenate along the channel axis."""
    arrays = list(arrays)
    return array_namespace(arrays[0]).concatenate(arrays, axis=1)


def mul(a, b):
    """Element-wise product, broadcasting as PyTorch does ([N, C, H, W] x [N, C, 1, 1])."""
    return a * b


# ----------------------------------------------------------------------------
# more activations: silu, hardswish, hardsigmoid, mish, elu, selu, prelu, log_softmax
# ----------------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. 2017, as torch.nn.SELU
SELU_SCALE = 1.0507009873554804934193349852946


def silu(x):
    """x * sigmoid(x) (swish), with the stable sigmoid: no overflow for large |x|."""
    return x * sigmoid(x)


def hardsigmoid(x):
    """relu6(x + 3) / 6, in PyTorch's order of operations."""
    xp = array_namespace(x)
    return xp.minimum(xp.maximum(x + 3, 0), 6) / 6


def hardswish(x):
    """x * relu6(x + 3) / 6, in PyTorch's order of operations."""
    xp = array_namespace(x)
    return x * xp.minimum(xp.maximum(x + 3, 0), 6) / 6


def mish(x):
    """x * tanh(softplus(x)); softplus = max(x, 0) + log1p(exp(-|x|)) never overflows."""
    xp = array_namespace(x)
    softplus = xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))
    return x * xp.tanh(softplus)


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise; exp only sees non-positive arguments."""
    xp = array_namespace(x)
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0)))


def selu(x):
    return SELU_SCALE * elu(x, SELU_ALPHA)


def prelu(x, weight):
    """Leaky ReLU with learned slopes ``weight`` ([1]: shared, [C]: one per channel, axis 1)."""
    xp = array_namespace(x)
    slope = weight.astype(x.dtype, copy=False).reshape((1, -1) + (1,) * (x.ndim - 2))
    return xp.where(x > 0, x, x * slope)


def log_softmax(x, axis=1):
    """x - logsumexp(x), shifted by the max first so exp never overflows."""
    xp = array_namespace(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


# ----------------------------------------------------------------------------
# channel and shape rearrangements (no arithmetic; axis numbers as PyTorch's, batch = 0)
# ----------------------------------------------------------------------------


def channel_shuffle(x, groups):
    """Like ``torch.nn.ChannelShuffle``: [N, G*K, ...] viewed as [N, G, K, ...], G and K swapped."""
    n, c = x.shape[:2]
    grouped = x.reshape((n, groups, c // groups) + tuple(x.shape[2:]))
    return grouped.swapaxes(1, 2).reshape(x.shape)


def pixel_shuffle(x, factor):
    """Like ``F.pixel_shuffle``: [N, C*r*r, H, W] -> [N, C, H*r, W*r]; channel c*r*r + i*r + j
    becomes pixel (h*r + i, w*r + j) of channel c."""
    n, c, h, w = x.shape
    r = factor
    blocks = x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3)  # [N, C, H, r, W, r]
    return blocks.reshape(n, c // (r * r), h * r, w * r)


def pixel_unshuffle(x, factor):
    """Like ``F.pixel_unshuffle``, the inverse of ``pixel_shuffle``: [N, C, H*r, W*r] -> [N, C*r*r, H, W]."""
    n, c, h, w = x.shape
    r = factor
    blocks = x.reshape(n, c, h // r, r, w // r, r).transpose(0, 1, 3, 5, 2, 4)  # [N, C, r, r, H, W]
    return blocks.reshape(n, c * r * r, h // r, w // r)


def permute(x, dims):
    """Like ``torch.permute``: ``dims`` numbers every axis, the batch too (negative from the end)."""
    return array_namespace(x).transpose(x, tuple(dims))


def reshape(x, shape):
    """Like ``torch.reshape`` on each sample: ``shape`` without the batch axis, one -1 inferred."""
    return x.reshape((x.shape[0],) + tuple(shape))


def squeeze(x, dim):
    """Like ``torch.squeeze(x, dim)``: an axis whose size is not 1 stays (numpy would refuse)."""
    return array_namespace(x).squeeze(x, axis=dim) if x.shape[dim] == 1 else x


def unsqueeze(x, dim):
    """Like ``torch.unsqueeze``: a new axis of size 1 at ``dim`` of the result (negative from the end)."""
    return array_namespace(x).expand_dims(x, axis=dim)


def linear_last(x, w, b=None):
    """``linear`` over the last axis alone: ``x [N, ..., F_in] -> [N, ..., F_out]`` (matmul
    broadcasts over the leading axes), as ``torch.nn.functional.linear`` on a channels-last tensor."""
    return linear(x, w, b)


# ----------------------------------------------------------------------------
# layer, group and instance norm (statistics from the input itself)
# ----------------------------------------------------------------------------


def _standardised(x, axes, eps):
    """(x - mean) / sqrt(var + eps), mean and biased variance over ``axes`` (two passes), computed in
    float64 and rounded once to x's dtype: a constant input gives exactly 0, as PyTorch's Welford
    statistics do, where a float32 mean would be an ulp off and 1/sqrt(eps) would magnify it."""
    xp = array_namespace(x)
    wide = x.astype(xp.promote_types(x.dtype, xp.float64), copy=False)
    centred = wide - wide.mean(axis=axes, keepdims=True)
    var = (centred * centred).mean(axis=axes, keepdims=True)
    return (centred / xp.sqrt(var + eps)).astype(x.dtype, copy=False)


def _scaled_and_shifted(x, weight, bias, shape):
    """x * gamma + beta, both reshaped to ``shape`` to broadcast; None leaves that step out."""
    if weight is not None:
        x = x * weight.astype(x.dtype, copy=False).reshape(shape)
    if bias is not None:
        x = x + bias.astype(x.dtype, copy=False).reshape(shape)
    return x


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, over_channels=False):
    """Like ``F.layer_norm`` over the last ``len(normalized_shape)`` axes; ``over_channels``: over
    axis 1 at every position instead (ConvNeXt's LayerNorm2d), gamma and beta then per channel."""
    if over_channels:
        return _scaled_and_shifted(_standardised(x, (1,), eps), weight, bias, (1, -1) + (1,) * (x.ndim - 2))
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    return _scaled_and_shifted(_standardised(x, axes, eps), weight, bias, tuple(normalized_shape))


def group_norm(x, groups, weight=None, bias=None, eps=1e-5):
    """Like ``F.group_norm``: statistics per sample and group of channels, gamma and beta per channel."""
    grouped = x.reshape(x.shape[0], groups, -1)
    out = _standardised(grouped, (2,), eps).reshape(x.shape)
    return _scaled_and_shifted(out, weight, bias, (1, -1) + (1,) * (x.ndim - 2))


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, eps=1e-5):
    """Like ``nn.InstanceNorm{1,2,3}d`` in eval mode: statistics per sample and channel over the
    spatial axes, or the running statistics when given (track_running_stats)."""
    if running_mean is not None:
        return batch_norm(x, running_mean, running_var, weight, bias, eps)
    out = _standardised(x, _spatial_axes(x), eps)
    return _scaled_and_shifted(out, weight, bias, (1, -1) + (1,) * (x.ndim - 2))
