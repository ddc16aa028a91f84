"""Forward pass of CNN layers for any NumPy-compatible array module (numpy or cupy).

This module is an *independent oracle* for the analytic shape engine: every output
size here falls out of the array operations themselves (padding, sliding-window
views, strided slicing), never out of a size formula handed in by a caller.

Layout is batch-first, ``[N, C, *spatial]`` with 1, 2 or 3 spatial axes. Hyper-
parameters arrive normalised by the caller: one entry per spatial axis, and
``padding`` as one ``(before, after)`` pair per axis (asymmetric allowed).
Semantics follow ``torch.nn.functional``; float32 inputs stay float32 (no float64
detours, except the normalisations' statistics, computed exactly as PyTorch's are).

Speed without leaving NumPy: arrays are ``[N, C, *spatial]`` views of channels-last
memory (convolutions make it, element-wise ops and pools keep it), so that im2col
copies contiguous runs and 1x1 convolutions need none; depthwise convolutions are
one einsum over the kernel taps; chains of element-wise ufuncs run in place over
cache-sized blocks (``_fused``), shared among the host's threads where arrays are
large enough. Memory: ``backends/memory.py`` models what each op allocates here.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy

from . import compiled

# im2col scratch budget: conv processes output rows in chunks so the column buffer
# stays near this size (bounded memory, and it still feeds BLAS large matrices: 4 MiB was the
# fastest of 1-8 MiB on ResNet's and VGG's layers, measured), and at least IM2COL_MIN_ROWS rows.
IM2COL_BUDGET_BYTES = 4 * 2**20
IM2COL_MIN_ROWS = 256
# Element-wise chains (sigmoid, silu, batch norm, ...) run over blocks of this many values,
# and share them among the host's threads when an array has at least PARALLEL_MIN_ELEMENTS,
# in blocks of up to PARALLEL_BLOCK_ELEMENTS: each block's Python glue holds the GIL, so fewer,
# larger blocks hand it over less (smaller arrays or blocks: the hand-over costs more than it
# saves, measured on 2 cores).
BLOCK_ELEMENTS = 65536
COMPILED_SHARE_ELEMENTS = 2**20  # compiled kernels share work among threads from this many values
PARALLEL_MIN_ELEMENTS = 2**18
PARALLEL_BLOCK_ELEMENTS = 2**18
ROW_ELEMENTS = 2048  # per-channel values repeated along a row of about this many
TAP_BLOCK_BYTES = 2**20  # depthwise convolutions and pools work over output blocks of this size
GELU_BLOCK_ELEMENTS = BLOCK_ELEMENTS // 4  # erf keeps about 8 temporaries of a block alive


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
    """Pad the spatial axes by ``(before, after)`` pairs with a constant value. The result keeps
    ``x``'s memory layout (channels-last stays channels-last, which ``numpy.pad`` would not)."""
    if not any(before or after for before, after in pairs):
        return x
    xp = array_namespace(x)
    return _fill_padded(xp.empty_like(x, shape=_padded_shape(x, pairs)), x, pairs, value)


def _padded_shape(x, pairs) -> tuple:
    return x.shape[:2] + tuple(size + int(before) + int(after) for size, (before, after) in zip(x.shape[2:], pairs))


def _fill_padded(out, x, pairs, value):
    """Write ``x`` into the middle of ``out`` (``[N, C, *spatial]``, padded by ``pairs``) and
    ``value`` around it; returns ``out``."""
    pairs = [(int(before), int(after)) for before, after in pairs]
    out[(slice(None), slice(None)) + tuple(slice(b, b + size) for size, (b, _) in zip(x.shape[2:], pairs))] = x
    for axis, (before, after) in zip(_spatial_axes(x), pairs):
        edge = (slice(None),) * axis
        out[edge + (slice(0, before),)] = value
        out[edge + (slice(out.shape[axis] - after, None),)] = value
    return out


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

    ``w`` is ``[K, C/groups, *kernel]``, ``b`` is ``[K]`` or None. Computed channels-last
    (``[N, *spatial, C]`` in memory, see ``channels_last``), the padding added only to the slab of
    input each block of outputs reads (``_padded_windows``): one im2col GEMM per layer and group,
    a plain matrix product for 1x1 kernels at stride 1, and for depthwise layers (one input
    channel per group) one reduction over the kernel taps of a strided view, all channels at
    once. The result is a ``[N, K, *out]`` view of channels-last memory.
    """
    xp = array_namespace(x)
    dtype = xp.result_type(x, w)
    source = xp.moveaxis(channels_last(x.astype(dtype, copy=False)), 1, -1)  # [N, *spatial, C], C-ordered
    w = w.astype(dtype, copy=False)
    if groups > 1 and w.shape[1] == 1:
        out = _conv_per_channel(source, w, stride, padding, dilation)
    else:
        out = _conv_gemm(source, w, stride, padding, dilation, groups)
    if b is not None:
        out += b.astype(dtype, copy=False)
    return xp.moveaxis(out, -1, 1)


def channels_last(x):
    """``x [N, C, *spatial]`` as a view of channels-last memory (``[N, *spatial, C]`` C-ordered),
    copied only when its memory is laid out otherwise. Every op accepts any layout (NumPy's
    functions follow strides); convolutions, pools and element-wise ops then read channels as
    the contiguous innermost axis, and their results keep that layout."""
    xp = array_namespace(x)
    if x.ndim < 3:
        return x
    moved = xp.moveaxis(x, 1, -1)
    return x if moved.flags.c_contiguous else xp.moveaxis(xp.ascontiguousarray(moved), -1, 1)


def _windows_last(padded, kernel, stride, dilation):
    """Strided view ``[N, *out, C, *kernel]`` of every window of channels-last ``padded`` (no copy)."""
    xp = array_namespace(padded)
    nsp = len(kernel)
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    view = xp.lib.stride_tricks.sliding_window_view(padded, extent, axis=tuple(range(1, 1 + nsp)))
    return view[(slice(None),) + tuple(slice(None, None, s) for s in stride) + (slice(None),)
                + tuple(slice(None, None, d) for d in dilation)]


def _padded_windows(source, padding, kernel, stride, dilation, fill=0, drop=None):
    """``(lead, windows_of)`` for channels-last ``source`` ``[N, *spatial, C]`` padded by
    ``padding`` with ``fill``, without padding it whole: ``lead`` (``[N, *out]``) is the window
    count of a view of one value in the padded shape (no memory), and ``windows_of(block)``
    returns the windows ``[n, *out block, C, *kernel]`` of a block of outputs (an index from
    ``_blocks``) from a padded copy of just the input that block reads. ``drop(lead)``, when
    given, may take windows off the end of each axis (pooling's ceil_mode rule)."""
    xp = array_namespace(source)
    nsp = len(kernel)
    if not any(before or after for before, after in padding):
        windows = _windows_last(source, kernel, stride, dilation)
        return windows.shape[: 1 + nsp], lambda block: windows[_keep_axes(block)]
    pairs = [(int(before), int(after)) for before, after in padding]
    shape = (source.shape[0],) + tuple(size + b + a for size, (b, a) in zip(source.shape[1:-1], pairs)) + source.shape[-1:]
    lead = _windows_last(xp.broadcast_to(xp.zeros((), source.dtype), shape), kernel, stride, dilation).shape[: 1 + nsp]
    lead = drop(lead) if drop else lead

    def windows_of(block):
        samples, reads = _reads(block, lead, kernel, stride, dilation)
        part = source[samples]
        slab = xp.full((part.shape[0],) + tuple(end - start for start, end in reads) + source.shape[-1:], fill,
                       source.dtype)
        into, take = [slice(None)], [slice(None)]
        for (start, end), (before, _), size in zip(reads, pairs, source.shape[1:-1]):
            low, high = max(start, before), min(end, before + size)  # the padded positions that hold input
            high = max(high, low)
            into.append(slice(low - start, high - start))
            take.append(slice(low - before, high - before))
        slab[tuple(into)] = part[tuple(take)]
        return _windows_last(slab, kernel, stride, dilation)

    return lead, windows_of


def _reads(block, lead, kernel, stride, dilation):
    """(the samples, and per spatial axis the padded positions [start, end)) that the outputs of
    ``block`` (an index from ``_blocks`` into ``lead``) read: output o reads o*s + i*d for taps i."""
    index = _keep_axes(block) + (slice(None),) * (len(lead) - len(block))
    spans = [index[1 + axis].indices(lead[1 + axis])[:2] for axis in range(len(kernel))]  # outputs [first, stop)
    return index[0], [(first * s, (stop - 1) * s + d * (k - 1) + 1)
                      for (first, stop), s, d, k in zip(spans, stride, dilation, kernel)]


def slab_bytes(block, lead, kernel, stride, dilation, channels, itemsize) -> int:
    """The padded slab ``_padded_windows`` copies for ``block`` of outputs ``lead`` (the first
    block from ``_blocks`` is the largest), for memory.py's estimate."""
    samples, reads = _reads(block, lead, kernel, stride, dilation)
    return len(range(*samples.indices(lead[0]))) * math.prod(end - start for start, end in reads) * channels * itemsize


def first_blocks(lead, row_bytes, budget, count=None) -> list:
    """The first ``count`` blocks ``_blocks`` makes (all of them: None), in the order it makes them."""
    return list(itertools.islice(_blocks(lead, row_bytes, budget), count))


def _keep_axes(block) -> tuple:
    """A block index from ``_blocks`` with each single index made a slice of one (no axis dropped)."""
    return tuple(slice(i, i + 1) if isinstance(i, int) else i for i in block)


def _conv_gemm(source, w, stride, padding, dilation, groups):
    """``[N, *out, K]``: im2col rows (one per output position) times the weights, one GEMM per
    group, in chunks of rows. The columns take the order that moves less memory: (*kernel, C/g),
    whose copy reads contiguous runs of kernel[-1] * C/g values, with the weights reordered to
    match; or, where the weights outweigh the columns (small maps, many channels), PyTorch's
    (C/g, *kernel), which uses the weights as they are."""
    xp = array_namespace(source)
    nsp, k = w.ndim - 2, w.shape[0]
    kernel = tuple(w.shape[2:])
    cg, kg = w.shape[1], k // groups
    grouped = w.reshape((groups, kg, cg) + kernel)
    unpadded = not any(before or after for before, after in padding)
    if unpadded and all(n == 1 for n in kernel) and all(s == 1 for s in stride):  # its own im2col matrix
        out = xp.empty(source.shape[:-1] + (k,), dtype=source.dtype)
        _grouped_matmul(source.reshape(-1, groups, cg), grouped.reshape(groups, kg, cg), out.reshape(-1, k))
        return out
    lead, windows_of = _padded_windows(source, padding, kernel, stride, dilation)
    major = kernel_major(w.nbytes, math.prod(lead) * source.shape[-1] * math.prod(kernel) * w.itemsize)
    if major:
        weight = xp.ascontiguousarray(grouped.transpose((0, 1) + tuple(range(3, 3 + nsp)) + (2,)))
    else:
        weight = grouped
    weight = weight.reshape(groups, kg, -1)  # [G, Kg, R], R in the columns' order
    out = xp.empty(lead + (k,), dtype=source.dtype)
    row_bytes = groups * weight.shape[2] * source.itemsize
    scratch = xp.empty(im2col_scratch_bytes(lead, row_bytes) // source.itemsize, dtype=source.dtype)
    for block in _blocks(lead, row_bytes, im2col_budget(row_bytes)):
        windows = windows_of(block)  # [n, *out block, C, *kernel]
        columns = windows.reshape(windows.shape[: 1 + nsp] + (groups, cg) + kernel)  # a view
        if major:
            columns = columns.transpose(tuple(range(2 + nsp)) + tuple(range(3 + nsp, 3 + 2 * nsp)) + (2 + nsp,))
        buffer = scratch[: columns.size].reshape(columns.shape)
        xp.copyto(buffer, columns)  # im2col
        del windows, columns  # this block's padded slab goes before the next one is made
        _grouped_matmul(buffer.reshape(-1, groups, weight.shape[2]), weight, out[block].reshape(-1, k))
    return out


def kernel_major(weight_bytes: int, column_bytes: int) -> bool:
    """Whether a convolution's im2col columns go in (*kernel, C/g) order, which needs a reordered
    copy of the weights, or in PyTorch's (C/g, *kernel), whose copy gathers values C apart (about
    twice as slow per value, measured): the first unless the weights are over twice the columns."""
    return weight_bytes <= 2 * column_bytes


def _grouped_matmul(rows, weight, out):
    """``out[M, G*Kg] = rows[M, G, R] @ weight[G, Kg, R]^T`` per group, written in place (BLAS
    reads the strided group slices and the transposed weights directly)."""
    xp = array_namespace(out)
    groups, kg = weight.shape[:2]
    if groups == 1:
        xp.matmul(rows[:, 0], weight[0].T, out=out)
        return
    xp.matmul(rows.transpose(1, 0, 2), weight.transpose(0, 2, 1), out=out.reshape(-1, groups, kg).transpose(1, 0, 2))


def _compiled_2d(source, padding):
    """The compiled kernels, where they take this 2-D convolution's channels-last input."""
    if source.ndim != 4 or any(before < 0 or after < 0 for before, after in padding):
        return None
    return compiled.usable(source)


def _conv_per_channel(source, w, stride, padding, dilation):
    """``[N, *out, K]`` for groups == C (depthwise): every output channel sees one input channel,
    so each output is a sum over kernel taps of input x weight, all channels at once: one
    ``einsum`` reduction over the taps of a windows view per block of outputs, the blocks shared
    among the host's threads. At stride 1 an output row (the last spatial axis and the channels)
    is contiguous in the input too, so each tap's weights are repeated along a row and the
    innermost loop runs over the whole row; with a stride it runs over the channels. A channel
    multiplier m (K = C*m) repeats each input channel m times."""
    xp = array_namespace(source)
    nsp, k = w.ndim - 2, w.shape[0]
    kernel = tuple(w.shape[2:])
    kernels = _compiled_2d(source, padding) if k == source.shape[-1] else None
    if kernels is not None:
        lead, _ = _padded_windows(source, padding, kernel, stride, dilation)
        out = numpy.empty(lead + (k,), dtype=source.dtype)
        taps = numpy.ascontiguousarray(w[:, 0].transpose(1, 2, 0))  # [kh, kw, K]
        source = numpy.ascontiguousarray(source)
        _in_shares(lambda first, stop: kernels.depthwise2d(source, taps, *stride, padding[0][0], padding[1][0],
                                                           *dilation, out, first, stop),
                   out.shape[0] * out.shape[1], out.size)
        return out
    if k != source.shape[-1]:
        source = xp.repeat(source, k // source.shape[-1], axis=-1)  # channel c*m + j reads input channel c
    lead, windows_of = _padded_windows(source, padding, kernel, stride, dilation)
    out = xp.empty(lead + (k,), dtype=source.dtype)
    taps = xp.ascontiguousarray(w.reshape(k, -1).T)  # [taps, K]: the einsum's innermost loop runs along K
    whole_rows = all(s == 1 for s in stride)
    if whole_rows:
        weights = xp.tile(taps, (1, lead[-1])).reshape(kernel + (lead[-1] * k,))
        blocks = _blocks(lead[:-1], lead[-1] * k * source.itemsize, TAP_BLOCK_BYTES)
    else:
        weights = taps.reshape(kernel + (k,))
        blocks = _blocks(lead, k * source.itemsize, TAP_BLOCK_BYTES)
    out_axes, tap_axes = "nabc"[: nsp + (0 if whole_rows else 1)], "ijk"[:nsp]
    formula = f"{out_axes}x{tap_axes},{tap_axes}x->{out_axes}x"

    def task(block):
        def work():
            windows, target = windows_of(block), out[_keep_axes(block)]
            if whole_rows:  # merge the last output axis and the channels: views
                windows = windows.reshape(windows.shape[:nsp] + (-1,) + kernel)
                target = target.reshape(target.shape[:nsp] + (-1,))
            if xp is numpy:
                xp.einsum(formula, windows, weights, out=target)
            else:  # CuPy's einsum has no `out`
                target[...] = xp.einsum(formula, windows, weights)

        return work

    if xp is not numpy:
        blocks = [()]  # the GPU takes the whole array at once
    _run_all([task(block) for block in blocks], out.size)
    return out


def _blocks(lead, row_bytes, budget):
    """Index tuples that split the leading axes ``lead`` of a C-ordered array (whose rows are
    ``row_bytes`` each) into blocks of about ``budget`` bytes: each block a contiguous run, a
    slice of one axis with single indices before it (at least one row)."""
    inner = row_bytes * math.prod(lead[1:])
    if inner <= budget or len(lead) == 1:
        step = max(1, budget // inner)
        for start in range(0, lead[0], step):
            yield (slice(start, min(start + step, lead[0])),)
        return
    for index in range(lead[0]):
        for rest in _blocks(lead[1:], row_bytes, budget):
            yield (index,) + rest


def im2col_scratch_bytes(lead, row_bytes) -> int:
    """The im2col buffer ``conv`` allocates for outputs ``lead`` (``[N, *out]``) whose columns take
    ``row_bytes`` per output position (memory.py's estimate counts it)."""
    return _block_capacity(lead, row_bytes, im2col_budget(row_bytes)) * row_bytes


def im2col_budget(row_bytes) -> int:
    """Bytes of im2col columns per GEMM: ``IM2COL_BUDGET_BYTES``, but at least ``IM2COL_MIN_ROWS``
    rows, so that BLAS's packing of the weights (once per call) pays off."""
    return max(IM2COL_BUDGET_BYTES, IM2COL_MIN_ROWS * row_bytes)


def _block_capacity(lead, row_bytes, budget) -> int:
    """The most rows one of ``_blocks`` holds."""
    inner = math.prod(lead[1:])
    if row_bytes * inner <= budget or len(lead) == 1:
        return min(lead[0], max(1, budget // (row_bytes * inner))) * inner
    return _block_capacity(lead[1:], row_bytes, budget)


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
    tail = [(0, s - 1 if ceil_mode else 0) for s in stride]
    if pad_value == tail_value:  # one padded copy
        padded = _pad(x, [(before, after + extra) for (before, after), (_, extra) in zip(padding, tail)], pad_value)
    else:
        padded = _pad(_pad(x, padding, pad_value), tail, tail_value)
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
    if x.dtype.kind != "f":  # integers: the whole padded array (no block path for them)
        lowest = _lowest(x.dtype)
        windows = _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, lowest, lowest)
        offsets = _per_offset(windows, kernel)
        out = xp.array(next(offsets), copy=True)
        for view in offsets:
            xp.maximum(out, view, out=out)
        return out

    def largest(windows, target):
        offsets = _kernel_offsets(kernel)
        xp.copyto(target, windows[(Ellipsis,) + next(offsets)])
        for offset in offsets:
            xp.maximum(target, windows[(Ellipsis,) + offset], out=target)

    return _pooled(x, kernel, stride, padding, dilation, ceil_mode, -numpy.inf, largest)


def avg_pool(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True):
    """Like ``torch.nn.functional.avg_pool{1,2,3}d``, including its divisor rules.

    The divisor is the window's size clipped at the padded boundary
    (count_include_pad=True) or its overlap with the real input (False); both come
    from pooling an indicator mask through the very same windows.
    """
    xp = array_namespace(x)
    dilation = (1,) * len(kernel)
    mask = xp.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype if x.dtype.kind == "f" else numpy.float64)
    padding_counts = 1 if count_include_pad else 0
    divisor = _window_sum(_pool_windows(mask, kernel, stride, padding, dilation, ceil_mode, padding_counts, 0), kernel)
    if x.dtype.kind != "f":
        return _window_sum(_pool_windows(x, kernel, stride, padding, dilation, ceil_mode, 0, 0), kernel) / divisor

    def summed(windows, target):
        offsets = _kernel_offsets(kernel)
        xp.copyto(target, windows[(Ellipsis,) + next(offsets)])
        for offset in offsets:
            target += windows[(Ellipsis,) + offset]

    total = _pooled(x, kernel, stride, padding, dilation, ceil_mode, 0, summed)
    total /= divisor
    return total


def _pooled(x, kernel, stride, padding, dilation, ceil_mode, fill, reduce):
    """``[N, C, *out]`` (channels-last memory): ``reduce(windows, target)`` over blocks of outputs,
    each block's windows ``[n, *out block, C, *kernel]`` read from a slab of ``x`` padded with
    ``fill`` (``_padded_windows``), the blocks shared among the host's threads. With ceil_mode,
    ``stride-1`` more positions of ``fill`` follow the padding so that partial windows appear,
    and a last window that would start inside the right padding (start >= in + pad_before) is
    dropped, as PyTorch does."""
    xp = array_namespace(x)
    source = xp.moveaxis(channels_last(x), 1, -1)  # [N, *spatial, C]
    pads = [(before, after + (s - 1 if ceil_mode else 0)) for (before, after), s in zip(padding, stride)]

    def drop(lead):
        return lead[:1] + tuple(count - 1 if (count - 1) * s >= size + before else count
                                for count, s, size, (before, _) in zip(lead[1:], stride, x.shape[2:], padding))

    lead, windows_of = _padded_windows(source, pads, kernel, stride, dilation, fill, drop if ceil_mode else None)
    out = xp.empty(lead + (x.shape[1],), dtype=x.dtype)

    def task(block):
        return lambda: reduce(windows_of(block), out[_keep_axes(block)])

    blocks = _blocks(lead, x.shape[1] * x.itemsize, TAP_BLOCK_BYTES) if xp is numpy else [()]
    _run_all([task(block) for block in blocks], out.size)
    return xp.moveaxis(out, -1, 1)


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
    pooled = _global_mean(x, output)
    if pooled is not None:
        return pooled
    return _adaptive(x, output, array_namespace(x).mean)


def _global_mean(x, output):
    """The mean over all positions (an output of size 1 on every axis) by the compiled kernel,
    ``[N, C, 1, ...]``; None where it does not apply."""
    rows = _channel_rows(x)
    kernels = None if rows is None else compiled.usable(x)
    if kernels is None or any(size != 1 for size in _as_tuple(output, x.ndim - 2)):
        return None
    n, c = x.shape[:2]
    out = numpy.empty((n, c), dtype=x.dtype)
    kernels.channel_means(rows.reshape(n, -1, c), out)
    return out.reshape((n, c) + (1,) * (x.ndim - 2))


def adaptive_max_pool(x, output):
    """Like ``torch.nn.functional.adaptive_max_pool{1,2,3}d`` (values only)."""
    return _adaptive(x, output, array_namespace(x).max)


# ----------------------------------------------------------------------------
# element-wise work, fused: each chain of in-place ufuncs runs over cache-sized blocks,
# the blocks shared among the host's cores (NumPy releases the GIL inside its loops)
# ----------------------------------------------------------------------------

_POOL = None


def host_threads() -> int:
    """The CPUs this process may run on: how many blocks run at once (PyTorch's CPU ops use as many)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _run_all(tasks: list, values: int) -> None:
    """Run every task (a callable writing its own block of an output); with more than
    ``PARALLEL_MIN_ELEMENTS`` values in all, split into one contiguous share per host thread.
    The workers run under the caller's NumPy error settings (they are per thread)."""
    global _POOL
    threads = min(host_threads(), len(tasks))
    if threads < 2 or values < PARALLEL_MIN_ELEMENTS:
        for task in tasks:
            task()
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(host_threads(), thread_name_prefix="cnncalc-ops")
    settings = numpy.geterr()
    share = -(-len(tasks) // threads)
    shares = [tasks[start : start + share] for start in range(0, len(tasks), share)]
    futures = [_POOL.submit(_run_share, part, settings) for part in shares[1:]]
    _run_share(shares[0], settings)
    for future in futures:
        future.result()  # re-raises a worker's exception here


def _run_share(tasks: list, settings: dict) -> None:
    with numpy.errstate(**settings):
        for task in tasks:
            task()


def _memory_order(a):
    """``a``'s elements as a 1-D view in memory order, or None when ``a`` is not dense (a slice)."""
    order = sorted(range(a.ndim), key=lambda axis: a.strides[axis], reverse=True)
    ordered = a.transpose(order)
    return ordered.reshape(-1) if ordered.flags.c_contiguous else None


def _fused(steps, *inputs, chain=True, block=None):
    """A new array like ``inputs[0]`` (same shape and memory layout) holding ``steps(*sources,
    result)``, element-wise ufuncs that write ``result`` in place. A ``chain`` of several runs
    in blocks of ``block`` values (default ``BLOCK_ELEMENTS``), so each step reads what the
    previous one left in cache; a single ufunc (``chain=False``) is split only to share it among
    the host's threads. On the GPU, or for inputs that are not dense and alike (``_alike``), it
    runs once over the whole arrays."""
    xp = array_namespace(inputs[0])
    out = xp.empty_like(inputs[0])
    flat = [_memory_order(a) for a in (*inputs, out)]
    if xp is not numpy or not _alike(*inputs) or any(f is None for f in flat):
        steps(*inputs, out)
        return out
    size = _block_values(out.size, block) if chain else max(BLOCK_ELEMENTS, -(-out.size // host_threads()))

    def block(start):
        return lambda: steps(*(f[start : start + size] for f in flat))

    _run_all([block(start) for start in range(0, out.size, size)], out.size)
    return out


def _block_values(size: int, block: int | None = None) -> int:
    """Values per block of an element-wise chain over ``size`` values: ``block`` (default
    ``BLOCK_ELEMENTS``, cache-sized) on one thread; shared among threads, blocks of up to
    ``PARALLEL_BLOCK_ELEMENTS``, one per thread at least (a given ``block`` is kept: it bounds
    the chain's temporaries)."""
    if block is not None or host_threads() < 2 or size < PARALLEL_MIN_ELEMENTS:
        return block or BLOCK_ELEMENTS
    return max(BLOCK_ELEMENTS, min(PARALLEL_BLOCK_ELEMENTS, -(-size // host_threads())))


def _alike(*arrays) -> bool:
    """One shape, dtype and memory layout: their memory-order views pair up element by element."""
    first = arrays[0]
    return all(a.shape == first.shape and a.strides == first.strides and a.dtype == first.dtype for a in arrays)


def _compiled_flat(name, inputs: tuple, scalars: tuple = (), dtypes=(numpy.float32, numpy.float64)):
    """A new array like ``inputs[0]`` (same shape and memory layout) from the compiled kernel
    ``name(*flat inputs, *scalars, flat out)``, where the kernels take the inputs: dense arrays
    alike in shape, layout and dtype; None otherwise. Numbers among ``scalars`` go in the
    inputs' dtype, flags (bool) as they are."""
    x = inputs[0]
    if not all(isinstance(a, numpy.ndarray) for a in inputs) or not _alike(*inputs):
        return None
    kernels = compiled.usable(x, dtypes=dtypes)
    if kernels is None:
        return None
    out = numpy.empty_like(x)
    flat = [_memory_order(a) for a in (*inputs, out)]
    if any(f is None for f in flat):
        return None
    scalars = [a if isinstance(a, bool) else x.dtype.type(a) for a in scalars]
    kernel = getattr(kernels, name)
    _in_shares(lambda first, stop: kernel(*(f[first:stop] for f in flat[:-1]), *scalars, flat[-1][first:stop]),
               x.size, x.size)
    return out


def _in_shares(run, count: int, values: int) -> None:
    """``run(first, stop)`` over ``[0, count)``: a compiled kernel's range of work, split into one
    share per host thread where it computes at least ``COMPILED_SHARE_ELEMENTS`` values (the
    kernels release the GIL); smaller work runs on the calling thread, where handing a share to
    another thread would cost about what it saves."""
    shares = host_threads() if values >= COMPILED_SHARE_ELEMENTS else 1
    step = -(-count // shares)
    _run_all([lambda first=first: run(first, min(count, first + step)) for first in range(0, count, step)], values)


def _channel_rows(x):
    """``x [N, C, *spatial]`` laid out channels-last (``[N, *spatial, C]`` C-ordered) as a ``[M, C]``
    view of its memory, rows of channels in that order; None where it is laid out otherwise."""
    if x.ndim < 3:
        return None
    moved = x.transpose((0, *range(2, x.ndim), 1))
    return moved.reshape(-1, x.shape[1]) if moved.flags.c_contiguous else None


def _empty_channels_last(x):
    """A new ``[N, C, *spatial]`` array shaped and typed as ``x``, channels-last in memory."""
    moved = numpy.empty((x.shape[0], *x.shape[2:], x.shape[1]), dtype=x.dtype)
    return moved.transpose((0, x.ndim - 1, *range(1, x.ndim - 1)))


def _per_channel(x, steps, *vectors):
    """A new array like ``x`` ``[N, C, *spatial]`` (channels-last) holding ``steps(source, result,
    *vectors)``, each vector one value per channel: run over channels-last rows ``[M, C]`` in
    blocks, with the vectors repeated along a row of about ``ROW_ELEMENTS`` values so that each
    ufunc loop runs over many values (a loop of C values alone is short for C = 16)."""
    xp = array_namespace(x)
    x = channels_last(x)
    out = xp.empty_like(x)
    channels = x.shape[1]
    source, result = (xp.moveaxis(a, 1, -1).reshape(-1, channels) for a in (x, out))  # views: [M, C]
    if xp is not numpy:
        steps(source, result, *vectors)
        return out
    repeat = max(1, ROW_ELEMENTS // channels)
    whole = source.shape[0] // repeat * repeat
    wide = [a[:whole].reshape(-1, repeat * channels) for a in (source, result)]
    tasks = _row_tasks(*wide, steps, *(xp.tile(v, repeat) for v in vectors))
    if whole < source.shape[0]:
        tasks.append(lambda: steps(source[whole:], result[whole:], *vectors))
    _run_all(tasks, out.size)
    return out


def _by_rows(source, result, steps, *vectors, block=None):
    """``steps(source, result, *vectors)`` over blocks of rows of the 2-D ``source`` and ``result``
    (e.g. one row per position, its channels along it), shared among the host's threads; ``block``
    bounds the values per block (``_block_values``)."""
    if array_namespace(source) is not numpy:
        steps(source, result, *vectors)
        return
    _run_all(_row_tasks(source, result, steps, *vectors, block=block), source.size)


def _row_tasks(source, result, steps, *vectors, block=None) -> list:
    rows = max(1, _block_values(source.size, block) // max(1, source.shape[1]))

    def block(start):
        return lambda: steps(source[start : start + rows], result[start : start + rows], *vectors)

    return [block(start) for start in range(0, source.shape[0], rows)]


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
    """Inference-mode batch norm over channel axis 1: x * scale + shift per channel."""
    xp = array_namespace(x)
    rows = _channel_rows(x)
    kernels = None if rows is None else compiled.usable(x)
    if kernels is not None:
        vectors = [v.astype(x.dtype, copy=False) for v in (running_mean, running_var)]
        vectors += [xp.full(x.shape[1], fill, x.dtype) if v is None else v.astype(x.dtype, copy=False)
                    for v, fill in ((weight, 1), (bias, 0))]
        out = _empty_channels_last(x)
        eps, rows_out = x.dtype.type(eps), _channel_rows(out)
        _in_shares(lambda first, stop: kernels.batch_norm(rows[first:stop], *vectors, eps, rows_out[first:stop]),
                   rows.shape[0], out.size)
        return out
    scale = 1 / xp.sqrt(running_var.astype(x.dtype, copy=False) + eps)
    if weight is not None:
        scale = scale * weight.astype(x.dtype, copy=False)
    shift = -running_mean.astype(x.dtype, copy=False) * scale
    if bias is not None:
        shift = shift + bias.astype(x.dtype, copy=False)

    def steps(source, result, scale, shift):
        xp.multiply(source, scale, out=result)
        result += shift

    return _per_channel(x, steps, scale, shift)


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
    """max(x, 0) as a clip to [0, inf]: NumPy's clip loop with two bounds is vectorised where
    maximum against a scalar is not (NaN stays NaN either way, as in PyTorch)."""
    xp = array_namespace(x)
    out = _compiled_flat("clamp", (x,), (0, numpy.inf))
    if out is not None:
        return out
    return _fused(lambda source, result: xp.clip(source, 0, numpy.inf, out=result), x, chain=False)


def relu6(x):
    """min(max(x, 0), 6) in one pass (NaN stays NaN, as in PyTorch)."""
    xp = array_namespace(x)
    out = _compiled_flat("clamp", (x,), (0, 6))
    if out is not None:
        return out
    return _fused(lambda source, result: xp.clip(source, 0, 6, out=result), x, chain=False)


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, else x * negative_slope (NaN stays NaN)."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.multiply(source, negative_slope, out=result)
        xp.copyto(result, source, where=source > 0)

    return _fused(steps, x)


def sigmoid(x):
    """1 / (1 + exp(-x)), PyTorch's formula. Below x = -88, exp(-x) overflows to inf and the
    result is the limit, 0: a value, not a warning."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.negative(source, out=result)
        xp.exp(result, out=result)
        result += 1
        xp.reciprocal(result, out=result)

    out = _compiled_flat("logistic", (x,), (False,), dtypes=(numpy.float32,))
    if out is not None:
        return out
    with numpy.errstate(over="ignore"):
        return _fused(steps, x)


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
    """Exact (erf) GELU, PyTorch's default: 0.5 * x * (1 + erf(x / sqrt(2))), in blocks (erf's
    temporaries are block-sized)."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.add(erf(source * (1 / math.sqrt(2))), 1, out=result)
        result *= source
        result *= 0.5  # exact: the same as PyTorch's (0.5 * x) * (1 + erf)

    return _fused(steps, x, block=GELU_BLOCK_ELEMENTS)


def softmax(x, axis=1):
    """Numerically stable softmax: shift by the max before exponentiating (in place after the shift)."""
    xp = array_namespace(x)
    shifted = xp.subtract(x, xp.max(x, axis=axis, keepdims=True))
    xp.exp(shifted, out=shifted)
    shifted /= xp.sum(shifted, axis=axis, keepdims=True)
    return shifted


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
        term = xp.take(x, xp.asarray(index), axis=axis)
        term *= xp.asarray(weight.reshape(shape)).astype(x.dtype)
        if out is None:
            out = term
        else:
            out += term
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
    above -= below  # below + (above - below) * weight, in place
    above *= upper_weight
    below += above
    return below


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
    out = _compiled_flat("add_or_multiply", (a, b), (False,))
    if out is not None:
        return out
    if not _alike(a, b):
        return a + b  # broadcasting or mixed layouts: NumPy picks the result's shape and layout
    return _fused(lambda a, b, result: array_namespace(a).add(a, b, out=result), a, b, chain=False)


def concat(arrays):
    """Concatenate along the channel axis."""
    arrays = list(arrays)
    return array_namespace(arrays[0]).concatenate(arrays, axis=1)


def mul(a, b):
    """Element-wise product, broadcasting as PyTorch does ([N, C, H, W] x [N, C, 1, 1])."""
    out = _compiled_flat("add_or_multiply", (a, b), (True,))
    if out is None:
        out = _channel_gate(a, b)
    if out is not None:
        return out
    if not _alike(a, b):
        return a * b
    return _fused(lambda a, b, result: array_namespace(a).multiply(a, b, out=result), a, b, chain=False)


def _channel_gate(x, gate):
    """``x [N, C, *spatial]`` (channels-last) times ``gate [N, C, 1, ...]`` by the compiled kernel;
    None where it does not apply."""
    if x.ndim < 3 or gate.shape != x.shape[:2] + (1,) * (x.ndim - 2):
        return None
    rows = _channel_rows(x)
    kernels = None if rows is None else compiled.usable(x, gate)
    if kernels is None:
        return None
    out = _empty_channels_last(x)
    n, c = x.shape[:2]
    kernels.scale_rows(rows.reshape(n, -1, c), numpy.ascontiguousarray(gate.reshape(n, c)),
                       _channel_rows(out).reshape(n, -1, c))
    return out


# ----------------------------------------------------------------------------
# more activations: silu, hardswish, hardsigmoid, mish, elu, selu, prelu, log_softmax
# ----------------------------------------------------------------------------

SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. 2017, as torch.nn.SELU
SELU_SCALE = 1.0507009873554804934193349852946


def silu(x):
    """x * sigmoid(x) (swish) as x / (1 + exp(-x)), PyTorch's formula; below x = -88, exp(-x)
    overflows to inf and the result is the limit, -0."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.negative(source, out=result)
        xp.exp(result, out=result)
        result += 1
        xp.divide(source, result, out=result)

    out = _compiled_flat("logistic", (x,), (True,), dtypes=(numpy.float32,))
    if out is not None:
        return out
    with numpy.errstate(over="ignore"):
        return _fused(steps, x)


def hardsigmoid(x):
    """relu6(x + 3) / 6, in PyTorch's order of operations."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.add(source, 3, out=result)
        xp.clip(result, 0, 6, out=result)
        result /= 6

    out = _compiled_flat("hard_gate", (x,), (False,), dtypes=(numpy.float32,))
    return out if out is not None else _fused(steps, x)


def hardswish(x):
    """x * relu6(x + 3) / 6, in PyTorch's order of operations."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.add(source, 3, out=result)
        xp.clip(result, 0, 6, out=result)
        result *= source
        result /= 6

    out = _compiled_flat("hard_gate", (x,), (True,), dtypes=(numpy.float32,))
    return out if out is not None else _fused(steps, x)


def mish(x):
    """x * tanh(softplus(x)); softplus = max(x, 0) + log1p(exp(-|x|)) never overflows."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.abs(source, out=result)
        xp.negative(result, out=result)
        xp.exp(result, out=result)
        xp.log1p(result, out=result)
        result += xp.maximum(source, 0)
        xp.tanh(result, out=result)
        result *= source

    return _fused(steps, x)


def elu(x, alpha=1.0, scale=None):
    """x for x > 0, alpha * (exp(x) - 1) otherwise, times ``scale`` when given (SELU); exp only
    sees non-positive arguments."""
    xp = array_namespace(x)

    def steps(source, result):
        xp.minimum(source, 0, out=result)
        xp.expm1(result, out=result)
        result *= alpha
        xp.copyto(result, source, where=source > 0)
        if scale is not None:
            result *= scale

    return _fused(steps, x)


def selu(x):
    return elu(x, SELU_ALPHA, SELU_SCALE)


def prelu(x, weight):
    """Leaky ReLU with learned slopes ``weight`` ([1]: shared, [C]: one per channel, axis 1)."""
    xp = array_namespace(x)
    slope = weight.astype(x.dtype, copy=False)

    def steps(source, result, slope):
        xp.multiply(source, slope, out=result)
        xp.copyto(result, source, where=source > 0)

    if slope.size == 1:
        return _fused(lambda source, result: steps(source, result, slope.reshape(())), x)
    return _per_channel(x, steps, slope)


def log_softmax(x, axis=1):
    """x - logsumexp(x), shifted by the max first so exp never overflows."""
    xp = array_namespace(x)
    shifted = xp.subtract(x, xp.max(x, axis=axis, keepdims=True))
    shifted -= xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
    return shifted


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
    axis 1 at every position instead (ConvNeXt's LayerNorm2d), gamma and beta then per channel.
    Each row of values normalised together is one row of a 2-D view, done in blocks of rows
    (the float64 temporaries stay block-sized)."""
    xp = array_namespace(x)
    if over_channels:
        x = channels_last(x)
        out = xp.empty_like(x)
        source, result = (xp.moveaxis(a, 1, -1).reshape(-1, x.shape[1]) for a in (x, out))
    else:
        x = xp.ascontiguousarray(x)
        out = xp.empty_like(x)
        width = math.prod(normalized_shape)
        source, result = x.reshape(-1, width), out.reshape(-1, width)
    gamma, beta = (None if v is None else v.astype(x.dtype, copy=False).reshape(-1) for v in (weight, bias))

    def steps(source, result):
        result[...] = _standardised(source, (1,), eps)
        if gamma is not None:
            result *= gamma
        if beta is not None:
            result += beta

    _by_rows(source, result, steps, block=BLOCK_ELEMENTS)  # cache-sized: its float64 temporaries are large
    return out


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
