"""How much memory a forward pass needs, checked before anything is allocated.

The estimate follows ``run_forward`` through the report's rows and the NumPy backend's
allocations (``ops.py``). While a row runs, memory holds
- the outputs still waiting for a later reader, the network input among them (an output that
  is its input again, as dropout's, or a view of it, as split's, shares that array);
- the row's parameters, drawn just before it runs (weights, biases, buffers);
- what the row's op allocates: its output and its scratch (``transient_bytes``), such as a
  convolution's padded channels-last copy, its im2col buffer and reordered weights.
The estimate is the largest such sum over the rows, at float32 and the batch of the run, plus
the executor's own bookkeeping. It is an upper bound by construction where the op's
allocations are known exactly and a generous one elsewhere (an output that may be a view is
counted as a copy); `bench/verify_speed.py` and `tests/test_backend_memory.py` hold it against
the peak that tracemalloc measures. PyTorch and CuPy allocate otherwise: for them it is a guide.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CnnCalcError
from ..units import human_bytes, short_bytes

DEFAULT_SHARE = 0.5  # of the memory available now: the default limit
MAX_BATCH = 2**31  # the largest batch fitting_batch offers
BOOKKEEPING_BYTES = 32 * 2**10  # the executor's own objects: a base ...
BOOKKEEPING_PER_ROW = 1024  # ... and per row (its result record, dictionaries, array headers)
TASK_BYTES = 1024  # per block of an op's work: a closure, index tuples, views
UNMODELLED_SHARE = 200  # 1/200 (0.5%) more for what the model leaves out (BLAS's and NumPy's own buffers)

# Rows whose output is their input's array (or a view of it): no new memory.
SHARED = {"dropout", "drop_path", "identity", "permute", "squeeze", "unsqueeze", "split"}
# Rows whose NumPy output is channels-last in memory, whatever their input.
MAKE_CHANNELS_LAST = {"conv", "conv_transpose", "batchnorm"}
# Rows whose output keeps the memory layout of their inputs.
KEEP_LAYOUT = {"relu", "relu6", "leaky_relu", "prelu", "sigmoid", "tanh", "silu", "gelu", "hardswish", "hardsigmoid",
               "mish", "elu", "selu", "softmax", "log_softmax", "dropout", "drop_path", "identity", "add", "mul",
               "concat", "maxpool", "avgpool", "subsample", "adaptive_avgpool", "adaptive_maxpool", "global_avgpool",
               "global_maxpool", "layer_scale"}
# Element-wise chains that make block-sized temporaries (``ops._fused``, ``ops._by_rows``): bytes
# per value of a block alive at once, per thread (gelu: erf's float32 terms; layer norm: float64).
BLOCK_TEMPORARIES = {"gelu": 40, "mish": 4, "elu": 2, "selu": 2, "leaky_relu": 2, "prelu": 2, "layernorm": 28}
# Ops that work on whole arrays with temporaries: arrays of the input's size alive at once.
INPUT_TEMPORARIES = {"groupnorm": 8, "instancenorm": 7, "lrn": 5}


class MemoryLimitError(CnnCalcError):
    """The run would need more memory than the limit allows."""


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimate at its peak row: the parts that add up to ``total``."""

    weights: int  # the parameters of the peak row
    activations: int  # outputs alive there (its own included), whole batch
    scratch: int  # its op's scratch (NumPy's ufunc buffers included) and the executor's bookkeeping
    kept: int = 0  # outputs kept to print or cross-check
    batch: int = 1
    row: str = ""  # the row where the need peaks
    at_batch: Callable[[int], MemoryEstimate] | None = field(default=None, compare=False, repr=False)

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.scratch + self.kept

    def to_dict(self) -> dict:
        return {"weights": self.weights, "activations": self.activations, "scratch": self.scratch,
                "kept": self.kept, "total": self.total, "row": self.row}


def estimate_memory(report, keep_all: bool = False, batch: int | None = None) -> MemoryEstimate:
    """The peak memory of a forward pass over ``report``'s rows (analysed at float32) at ``batch``
    (default: the report's). ``keep_all``: every output is kept to the end (`run --all`)."""
    batch = report.batch if batch is None else batch
    itemsize = _itemsize(report)
    last_reader = {}
    for row in report.layers:
        for index in row.inputs:
            last_reader[index] = row.index
    inputs = {-1 - number: shape for number, shape in enumerate(report.inputs.values())}
    owner = {index: index for index in inputs}  # output -> the output whose array it is
    held = {index: _elements(shape) * batch * itemsize for index, shape in inputs.items()}  # array -> bytes
    expiry = {index: last_reader.get(index, -1) for index in inputs}  # array -> its last reader
    channels_last = {index: len(shape) < 2 or shape[0] == 1 for index, shape in inputs.items()}  # C = 1: either way
    kept: dict[int, int] = {}
    peak = None
    for row in report.layers:
        params = (row.weights + row.biases + row.buffers) * itemsize
        laid_out = all(channels_last.get(i, False) for i in row.inputs)
        output = 0 if row.kind in SHARED else _elements(row.output_shape) * batch * itemsize
        op = 0 if row.kind in SHARED else transient_bytes(row, batch, itemsize, laid_out)
        scratch = op - output
        alive = sum(held.values())
        waiting = sum(kept.values())
        modelled = params + alive + op + waiting
        need = MemoryEstimate(weights=params, activations=alive + op - scratch,
                              scratch=scratch + BOOKKEEPING_BYTES + BOOKKEEPING_PER_ROW * (row.index + 1)
                              + modelled // UNMODELLED_SHARE,
                              kept=waiting, batch=batch, row=row.name)
        if peak is None or need.total > peak.total:
            peak = need
        _add_output(row, owner, held, expiry, last_reader, batch, itemsize)
        channels_last[row.index] = (len(row.output_shape) < 2 or row.kind in MAKE_CHANNELS_LAST
                                    or (row.kind in KEEP_LAYOUT and laid_out))
        for array in [a for a, last in expiry.items() if last <= row.index]:
            if keep_all and array >= 0:
                kept[array] = held[array]
            del held[array], expiry[array]
    if peak is None:  # no rows: the input alone
        peak = MemoryEstimate(0, sum(held.values()), BOOKKEEPING_BYTES, batch=batch)
    return MemoryEstimate(peak.weights, peak.activations, peak.scratch, peak.kept, batch, peak.row,
                          lambda other: estimate_memory(report, keep_all, other))


def _add_output(row, owner, held, expiry, last_reader, batch, itemsize) -> None:
    """Record the row's output: a new array, or (SHARED) its input's array read for longer."""
    reads_until = last_reader.get(row.index, -1)
    if row.kind in SHARED and row.inputs and owner.get(row.inputs[0]) in held:
        array = owner[row.inputs[0]]
        owner[row.index] = array
        expiry[array] = max(expiry[array], reads_until)
        return
    owner[row.index] = row.index
    held[row.index] = _elements(row.output_shape) * batch * itemsize
    expiry[row.index] = reads_until


def _op_overhead(output_bytes: int, itemsize: int) -> int:
    """What an op holds beside its output while it finishes it: NumPy's ufunc buffer for a
    broadcast operand (an in-place bias add: ``numpy.getbufsize()`` values, or the output's size
    if smaller), one per thread, and the small Python objects of each block of work. The
    estimate takes the larger of this and the op's scratch, which is gone by then."""
    import numpy

    from . import ops

    blocks = -(-output_bytes // (ops.BLOCK_ELEMENTS * itemsize))
    return ops.host_threads() * min(output_bytes, numpy.getbufsize() * itemsize) + TASK_BYTES * blocks


def _itemsize(report) -> int:
    for row in report.layers:
        if row.activations:
            return row.activation_bytes // row.activations
    return 4


def _elements(shape) -> int:
    return math.prod(shape)


# ----------------------------------------------------------------------------- what each op allocates
def transient_bytes(row, batch: int, itemsize: int, channels_last: bool) -> int:
    """What the NumPy backend allocates while it computes ``row``: its output and its scratch.
    ``channels_last``: whether the row's inputs are laid out channels-last in memory."""
    out = _elements(row.output_shape) * batch * itemsize
    if row.kind in ("conv", "conv_transpose"):  # their scratch is gone before the bias add's buffer comes
        return TRANSIENTS[row.kind](row, batch, itemsize, channels_last)
    overhead = _op_overhead(out, itemsize)
    special = TRANSIENTS.get(row.kind)
    if special is not None:
        return special(row, batch, itemsize, channels_last) + overhead
    input_bytes = _elements(row.input_shape) * batch * itemsize
    return (out + overhead + INPUT_TEMPORARIES.get(row.kind, 0) * input_bytes
            + _block_temporaries(row.kind) + (0 if channels_last else _layout_copy(row, batch, itemsize)))


def _layout_copy(row, batch, itemsize) -> int:
    """The channels-last copy batch norm and layer norm make of an input laid out otherwise."""
    return _elements(row.input_shape) * batch * itemsize if row.kind in ("batchnorm", "layernorm", "prelu") else 0


def _block_temporaries(kind: str) -> int:
    from . import ops

    tiled = 2 * ops.ROW_ELEMENTS * 8 if kind in ("batchnorm", "prelu") else 0  # per-channel vectors along a row
    block = {"gelu": ops.GELU_BLOCK_ELEMENTS, "layernorm": ops.BLOCK_ELEMENTS}.get(
        kind, max(ops.BLOCK_ELEMENTS, ops.PARALLEL_BLOCK_ELEMENTS))
    return BLOCK_TEMPORARIES.get(kind, 0) * ops.host_threads() * block + tiled


def _conv(row, batch, itemsize, channels_last) -> int:
    h = row.hyper
    return conv_bytes(batch, itemsize, row.input_shape, row.output_shape, h["kernel"], h["stride"], h["dilation"],
                      h["groups"], h["padding"], channels_last)


def conv_bytes(n, itemsize, input_shape, output_shape, kernel, stride, dilation, groups, padding,
               channels_last) -> int:
    """``ops.conv``: its output, a channels-last copy of an input laid out otherwise, and while
    it computes (``_conv_scratch``) the padded slab of input each block of outputs reads, and
    either the depthwise path's repeated channels and tap weights, or the GEMM path's reordered
    weights and im2col buffer; the bias is added after those are gone."""
    out = n * _elements(output_shape) * itemsize
    total = out + (0 if channels_last else n * _elements(input_shape) * itemsize)
    return total + max(_conv_scratch(n, itemsize, input_shape, output_shape, kernel, stride, dilation, groups,
                                     padding), _op_overhead(out, itemsize))


def _conv_scratch(n, itemsize, input_shape, output_shape, kernel, stride, dilation, groups, padding) -> int:
    """What ``ops.conv`` holds only while it computes."""
    from . import ops

    c, *spatial = input_shape
    k, *out_spatial = output_shape
    lead = (n, *out_spatial)
    padded = any(before or after for before, after in padding)
    taps = _elements(kernel)
    if groups > 1 and c // groups == 1:  # depthwise: channel multiplier m = k / c
        total = n * k * _elements(spatial) * itemsize if k > c else 0  # the input's channels repeated
        if all(s == 1 for s in stride):  # whole output rows, each tap's weights along a row
            total += taps * out_spatial[-1] * k * itemsize
            blocks = (lead[:-1], out_spatial[-1] * k * itemsize)
        else:
            blocks = (lead, k * itemsize)
        if padded:
            total += _slabs(*blocks, lead, kernel, stride, dilation, k, itemsize)
        return total
    if not padded and all(size == 1 for size in kernel) and all(s == 1 for s in stride):
        return 0  # the input is its own im2col matrix
    row_bytes = groups * (c // groups) * taps * itemsize
    weight_bytes = k * (c // groups) * taps * itemsize
    total = weight_bytes if ops.kernel_major(weight_bytes, _elements(lead) * row_bytes) else 0
    if padded:  # one block at a time (BLAS threads the GEMM itself)
        block = ops.first_blocks(lead, row_bytes, ops.im2col_budget(row_bytes), 1)[0]
        total += ops.slab_bytes(block, lead, kernel, stride, dilation, c, itemsize)
    return total + ops.im2col_scratch_bytes(lead, row_bytes)


def _slabs(block_lead, row_bytes, lead, kernel, stride, dilation, channels, itemsize) -> int:
    """The padded slabs alive at once where blocks of outputs are shared among threads as
    ``ops._run_all`` shares them: thread t takes the t-th contiguous share, so the i-th block of
    every share runs at the same time."""
    from . import ops

    sizes = [ops.slab_bytes(block, lead, kernel, stride, dilation, channels, itemsize)
             for block in ops.first_blocks(block_lead, row_bytes, ops.TAP_BLOCK_BYTES)]
    threads = min(ops.host_threads(), len(sizes)) if _elements(lead) * channels >= ops.PARALLEL_MIN_ELEMENTS else 1
    share = -(-len(sizes) // max(threads, 1))
    return max(sum(sizes[i::share][:threads]) for i in range(share))


def _conv_transpose(row, batch, itemsize, channels_last) -> int:
    """Zero insertion, the margins padded, copies of the flipped weights, then a stride-1 conv."""
    from . import ops

    h = row.hyper
    c, *spatial = row.input_shape
    spread = [(size - 1) * s + 1 for size, s in zip(spatial, h["stride"])]
    margins = [(d * (k - 1) - before, d * (k - 1) - after + extra)
               for k, d, (before, after), extra in zip(h["kernel"], h["dilation"], h["padding"], h["output_padding"])]
    grown = [size + max(before, 0) + max(after, 0) for size, (before, after) in zip(spread, margins)]
    cropped = [size + before + after for size, (before, after) in zip(spread, margins)]
    weight_bytes = row.weights * itemsize
    inserted = batch * c * _elements(spread) * itemsize if any(s > 1 for s in h["stride"]) else 0
    padded = batch * c * _elements(grown) * itemsize
    conv = conv_bytes(batch, itemsize, (c, *cropped), row.output_shape, h["kernel"], (1,) * len(spatial),
                      h["dilation"], h["groups"], [(0, 0)] * len(spatial), False)
    # the flipped weights are copied where the conv uses them as they are (a GEMM reorders them
    # anyway) and, grouped, once more to swap inputs and outputs
    columns = batch * _elements(row.output_shape[1:]) * c * _elements(h["kernel"]) * itemsize
    copies = (0 if ops.kernel_major(weight_bytes, columns) else 1) + (1 if h["groups"] > 1 else 0)
    # the zero-inserted array goes once its padded copy exists; the padded one lives through the conv
    return max(inserted + padded, padded + copies * weight_bytes + conv)


def _pool(row, batch, itemsize, channels_last) -> int:
    """Output, a channels-last copy of an input laid out otherwise, and the padded slab of input
    each block of outputs reads (one per thread at work; ceil_mode's extra stride - 1 positions,
    which the report does not say, counted); subsampling scales and shifts into new arrays."""
    h = row.hyper
    c = row.input_shape[0]
    out = batch * _elements(row.output_shape) * itemsize
    lead = (batch, *row.output_shape[1:])
    pads = [(before, after + s - 1) for (before, after), s in zip(h["padding"], h["stride"])]
    slab = 0
    if any(before or after for before, after in pads):
        slab = _slabs(lead, c * itemsize, lead, h["kernel"], h["stride"], h["dilation"], c, itemsize)
    copy = 0 if channels_last else batch * _elements(row.input_shape) * itemsize
    return out + copy + slab + (out if row.kind == "subsample" else 0)


def _stages(row, batch, itemsize, channels_last) -> int:
    """Ops that resize one axis after another (adaptive pools, upsample, unpool): while an axis is
    done, the previous stage and two arrays of the new one (pieces and their concatenation, or
    the two neighbours an interpolation reads)."""
    shape = list(row.input_shape)
    previous, worst = 0, 0
    for axis, size in enumerate(row.output_shape[1:], start=1):
        shape[axis] = size
        stage = batch * _elements(shape) * itemsize
        worst = max(worst, previous + 2 * stage)
        previous = stage
    return max(worst, batch * _elements(row.output_shape) * itemsize)


def _linear(row, batch, itemsize, channels_last) -> int:
    """Output, and a flattened copy of an input that has more than one axis per sample (the
    layers that work on the last axis alone, whose output keeps the other axes, flatten nothing)."""
    out = batch * _elements(row.output_shape) * itemsize
    flattens = len(row.input_shape) > 1 and len(row.output_shape) == 1
    return out + (batch * _elements(row.input_shape) * itemsize if flattens else 0)


def _log_softmax(row, batch, itemsize, channels_last) -> int:
    return 2 * batch * _elements(row.output_shape) * itemsize  # the shifted values and their exp


TRANSIENTS = {"conv": _conv, "conv_transpose": _conv_transpose, "maxpool": _pool, "avgpool": _pool,
              "subsample": _pool, "adaptive_avgpool": _stages, "adaptive_maxpool": _stages, "global_avgpool": _stages,
              "global_maxpool": _stages, "upsample": _stages, "unpool": _stages, "linear": _linear,
              "log_softmax": _log_softmax}


# ----------------------------------------------------------------------------- the limit
def host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free pages from sysconf, else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_limit(available: int | None) -> tuple[int | None, str]:
    """(limit in bytes or None for no limit, how it was chosen in words)."""
    if available is None:
        return None, "no limit: the available memory is unknown"
    share = int(available * DEFAULT_SHARE)
    return share, f"{DEFAULT_SHARE:.0%} of the {human_bytes(available)} available"


def check_memory(estimate: MemoryEstimate, limit: int | None, limit_text: str, smaller_input: str | None) -> None:
    """Raise MemoryLimitError with what to change when the estimate is above the limit."""
    if limit is None or estimate.total <= limit:
        return
    parts = (f"weights {short_bytes(estimate.weights)}, activations {short_bytes(estimate.activations)}, "
             f"scratch {short_bytes(estimate.scratch)}"
             + (f", kept outputs {short_bytes(estimate.kept)}" if estimate.kept else ""))
    advice = []
    batch = fitting_batch(estimate, limit)
    if batch and batch < estimate.batch:
        advice.append(f"--batch {batch}")
    if smaller_input:
        advice.append(f"a smaller --input such as {smaller_input}")
    hint = f"; try {' or '.join(advice)}" if advice else ""
    raise MemoryLimitError(
        f"the run needs about {human_bytes(estimate.total)} ({parts}, at {estimate.row}) at batch {estimate.batch}, "
        f"more than the limit of {human_bytes(limit)} ({limit_text}){hint}, or raise --max-memory")


def fitting_batch(estimate: MemoryEstimate, limit: int) -> int:
    """The largest batch whose estimate fits the limit (0 if not even one sample does); the need
    grows with the batch, so a binary search over batches finds it."""
    if estimate.at_batch is None:  # an estimate made by hand: only its own batch is known
        return estimate.batch if estimate.total <= limit else 0
    at_batch = estimate.at_batch
    if at_batch(1).total > limit:
        return 0
    low, high = 1, 2
    while at_batch(high).total <= limit:
        if high >= MAX_BATCH:
            return MAX_BATCH
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if at_batch(middle).total <= limit else (low, middle)
    return low
