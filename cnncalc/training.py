"""Training memory as PyTorch spends it: the tensors autograd saves for backward, each storage
counted once; weights, gradients and optimizer state; autocast (``--amp``) and activation
checkpointing (``--checkpoint``); and the largest batch that fits (``cnncalc fit``).

Each layer kind states what its PyTorch ops save (``Layer.saved``: its input, its output, or a
tensor it makes, such as max pooling's indices) and where its output lives (``output_storage``:
a tensor of its own, or a view of its input's storage). This module walks the rows in order,
follows every tensor's storage, dtype, ``requires_grad`` and memory layout, and counts a storage
the first time a row saves it (that row is the one its bytes are attributed to). The oracle is
``torch.autograd.graph.saved_tensors_hooks`` on the module that ``cnncalc export --to pytorch``
writes (tests/test_training_memory.py).

Only the standard library and the kinds' descriptor types: ``cnncalc table`` imports it.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import CnnCalcError
from .kinds.base import COMPUTE, PARAMETER, Autograd
from .report import DTYPE_BYTES, OPTIMIZER_COPIES

ELEMENT_BYTES = {**DTYPE_BYTES, "int64": 8, "bool": 1}
FLOATS = ("float64", "float32", "float16", "bfloat16")  # what autograd can train
AMP = {"fp16": "float16", "bf16": "bfloat16"}  # --amp: autocast's half dtype
# state tensors per trainable parameter: the copies the earlier estimate counts, less weights and gradients
OPTIMIZER_STATES = {name: copies - 2 for name, copies in OPTIMIZER_COPIES.items()}
TRAIN_ON = ("cuda", "cpu")  # where PyTorch trains: a few ops save differently on each


@dataclass(frozen=True)
class TrainingOptions:
    """How the network is trained. ``optimizer_dtype`` None: the state in the weights' dtype (as
    PyTorch's optimizers allocate it: ``zeros_like(param)``)."""

    optimizer: str = "sgd"
    amp: str | None = None  # "fp16" or "bf16": torch.autocast with that half dtype
    checkpoint: bool = False  # torch.utils.checkpoint (non-reentrant) on every top-level entry
    optimizer_dtype: str | None = None
    train_on: str = "cuda"

    def check(self, dtype: str) -> None:
        if self.optimizer not in OPTIMIZER_STATES:
            raise CnnCalcError(f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}, not {self.optimizer!r}")
        if self.amp is not None and self.amp not in AMP:
            raise CnnCalcError(f"amp must be one of {', '.join(AMP)}, not {self.amp!r}")
        if self.amp is not None and dtype != "float32":
            raise CnnCalcError(f"--amp trains float32 master weights under torch.autocast, so --dtype must be "
                               f"float32, not {dtype}")
        if self.optimizer_dtype is not None and self.optimizer_dtype not in FLOATS:
            raise CnnCalcError(f"optimizer dtype must be one of {', '.join(FLOATS)}, not {self.optimizer_dtype!r}")
        if self.train_on not in TRAIN_ON:
            raise CnnCalcError(f"train_on must be one of {', '.join(TRAIN_ON)}, not {self.train_on!r}")

    @property
    def half(self) -> str | None:
        return AMP[self.amp] if self.amp else None


@dataclass
class TrainingMemory:
    """The result, in bytes. ``saved_by_row``: what each row's saved tensors add (a storage counted
    once, at the first row that saves it; with --checkpoint, the inputs of each top-level entry, at
    its first row that reads them)."""

    weights: int
    gradients: int
    optimizer: int
    saved_activations: int
    weight_copies: int  # autocast's half copies of weights that autograd saves
    peak_transient: int
    saved_by_row: list[int] = field(default_factory=list)

    @property
    def saved(self) -> int:
        return self.saved_activations + self.weight_copies

    @property
    def peak(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.saved + self.peak_transient

    def to_dict(self) -> dict:
        return {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                "saved_activations": self.saved_activations, "weight_copies": self.weight_copies,
                "peak_transient": self.peak_transient, "peak": self.peak}


class Value(NamedTuple):
    """A tensor as autograd sees it: where it lives, its dtype, whether it requires grad, its
    per-sample shape, its elements for the batch, and its layout: per-sample strides and the
    stride between samples, in elements (strides None: a cut of a larger tensor, which no reshape
    views). A named tuple: one is made per row."""

    storage: int
    dtype: str
    requires_grad: bool
    shape: tuple[int, ...]
    elements: int
    strides: tuple[int, ...] | None
    sample_stride: int


def trainable(dtype: str) -> bool:
    return dtype in FLOATS


def promoted(dtypes) -> str:
    """PyTorch's promotion among floating dtypes: the widest; float32 wins over a half dtype."""
    dtypes = set(dtypes)
    for dtype in FLOATS:
        if dtype in dtypes:
            return dtype
    return dtypes.pop()


# ---------------------------------------------------------------------- layouts (PyTorch's strides)
@functools.lru_cache(maxsize=4096)  # a network repeats a few shapes many times
def dense_strides(shape: tuple[int, ...], order: tuple[int, ...]) -> tuple[int, ...]:
    """Strides of a tensor of ``shape`` packed with its axes in ``order``, outermost first."""
    strides, step = [0] * len(shape), 1
    for axis in reversed(order):
        strides[axis] = step
        step *= shape[axis]
    return tuple(strides)


@functools.lru_cache(maxsize=4096)
def memory_order(strides: tuple[int, ...] | None, rank: int) -> tuple[int, ...]:
    """The axes from outermost to innermost (largest stride first); plain for an irregular layout."""
    if strides is None:
        return tuple(range(rank))
    return tuple(sorted(range(rank), key=lambda axis: -strides[axis]))


def is_contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """PyTorch's is_contiguous: packed in plain order; axes of size 1 have no say."""
    expected = 1
    for size, stride in zip(reversed(shape), reversed(strides)):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


def view_strides(shape: tuple[int, ...], strides: tuple[int, ...], new_shape: tuple[int, ...]):
    """The strides of ``view(new_shape)`` of a tensor, or None when PyTorch's reshape must copy:
    ATen's computeStride, which views when every run of old axes merged or split lies packed in
    memory."""
    new_strides = [0] * len(new_shape)
    view_axis, chunk_stride = len(new_shape) - 1, strides[-1] if strides else 1
    tensor_elements = view_elements = 1
    for axis in range(len(shape) - 1, -1, -1):
        tensor_elements *= shape[axis]
        if axis == 0 or (shape[axis - 1] != 1 and strides[axis - 1] != tensor_elements * chunk_stride):
            while view_axis >= 0 and (view_elements < tensor_elements or new_shape[view_axis] == 1):
                new_strides[view_axis] = view_elements * chunk_stride
                view_elements *= new_shape[view_axis]
                view_axis -= 1
            if view_elements != tensor_elements:
                return None
            if axis > 0:
                chunk_stride, tensor_elements, view_elements = strides[axis - 1], 1, 1
    return tuple(new_strides) if view_axis == -1 else None


class Walk:
    """One pass over the rows: every value's storage, what each row saves (storages, in order), and
    per row the bytes of the gradients alive while its backward runs."""

    def __init__(self, rows, steps, inputs: dict, batch: int, dtype: str, options: TrainingOptions):
        self.batch, self.options = batch, options
        self.half = options.half
        self.parameter_dtype = dtype  # float32 master weights under autocast (checked)
        self.sizes: list[int] = []  # bytes of each storage
        self.values: dict[int, Value] = {}
        for number, shape in enumerate(inputs.values()):
            self.values[-1 - number] = self.fresh(tuple(shape), dtype, False)
        self.saved: list[list[tuple[int, bool]]] = []  # per row: (storage, is a weight copy); -1: a parameter
        self.transient: list[int] = []
        for row, step in zip(rows, steps):
            self.row(step, row.weights + row.biases > 0)

    def fresh(self, shape, dtype: str, requires_grad: bool, order: tuple[int, ...] | None = None,
              cut_of: int | None = None) -> Value:
        """A new tensor of ``shape``, packed in ``order`` (plain by default); ``cut_of``: the elements
        per sample of the larger tensor it is a cut of, which its storage holds."""
        per_sample = math.prod(shape)
        stored = per_sample if cut_of is None else cut_of
        strides = None if cut_of is not None else dense_strides(shape, order or tuple(range(len(shape))))
        return Value(self.new(self.batch * stored, dtype), dtype, requires_grad, shape, self.batch * per_sample,
                     strides, stored)

    def new(self, elements: int, dtype: str) -> int:
        self.sizes.append(elements * ELEMENT_BYTES[dtype])
        return len(self.sizes) - 1

    def cast(self, value: Value, dtype: str) -> Value:
        """autocast's copy of an input in ``dtype`` (a new tensor each time; only parameters are
        cached), laid out as the input where that is packed."""
        packed = value.strides is not None and value.sample_stride == value.elements // self.batch
        return self.fresh(value.shape, dtype, value.requires_grad,
                          memory_order(value.strides, len(value.shape)) if packed else None)

    def row(self, step, has_trainable: bool) -> None:
        layer, ins = step.layer, [self.values[i] for i in step.inputs]
        policy = layer.autocast(step, self.options.train_on) if self.half else "follow"
        if policy == "follow":
            compute = ins[0].dtype if len(ins) == 1 else promoted(v.dtype for v in ins)
            received = ins
        else:
            compute = self.half if policy == "half" else "float32"
            received = [v if v.dtype == compute else self.cast(v, compute) for v in ins]
        needs = tuple(v.requires_grad for v in ins)
        grad = Autograd(self.batch, self.options.train_on, needs, compute, self.half, tuple(v.shape for v in ins))
        records = has_trainable or True in needs  # autograd records the op, and saves, only then
        out = self.output(step, ins[0], layer.output_dtype(step, grad), records)
        self.values[step.index] = out
        if records:
            self.saved.append([self.resolve(item, received, out, compute) for item in layer.saved(step, grad)])
            gradients = out.elements * ELEMENT_BYTES[out.dtype]
            self.transient.append(gradients + sum(v.elements * ELEMENT_BYTES[v.dtype] for v in ins if v.requires_grad))
        else:
            self.saved.append([])
            self.transient.append(0)

    def reshaped(self, value: Value, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """The per-sample strides of ``value`` viewed as ``shape`` (the batch axis kept), or None."""
        if value.strides is None:
            return None
        strides = view_strides((self.batch, *value.shape), (value.sample_stride, *value.strides), (self.batch, *shape))
        return None if strides is None else strides[1:]

    def output(self, step, source: Value, dtype: str, records: bool) -> Value:
        layer, shape = step.layer, tuple(step.output_shape)
        mode = layer.output_storage(step)
        if mode == "view":
            strides = None if source.strides is None else layer.view_strides(step, source.strides)
            return Value(source.storage, source.dtype, records, shape, self.batch * math.prod(shape), strides,
                         source.sample_stride)
        if mode == "reshape":
            strides = self.reshaped(source, shape)
            if strides is not None:
                return Value(source.storage, source.dtype, records, shape, source.elements, strides,
                             source.sample_stride)
            return self.fresh(shape, dtype, records)  # a copy, packed plainly
        order = layer.memory_order(step, memory_order(source.strides, len(source.shape)))
        return self.fresh(shape, dtype, records, order, layer.storage_elements(step))

    def resolve(self, item, received: list[Value], out: Value, compute: str) -> tuple[int, bool]:
        """(storage, whether it is a weight copy) of one saved tensor; storage -1: a parameter."""
        source = item.source
        if source == "input":
            value = received[item.index]
            kept = value.storage if self.viewable(value, item.reshape) else self.new(value.elements, value.dtype)
            return kept, False
        if source == "output":
            return out.storage, False
        if source == "weight":  # a parameter; under autocast, its cached half copy
            return (self.new(item.elements, self.half), True) if self.half else (-1, False)
        if source == "new":
            return self.new(item.elements, self.dtype_of(item.dtype, compute)), False
        raise CnnCalcError(f"unknown saved tensor source {source!r}")  # pragma: no cover - a kind's bug

    def viewable(self, value: Value, reshape: str | None) -> bool:
        """Whether an op that first makes its input contiguous, or reshapes it, keeps its storage."""
        if reshape is None:
            return True
        if value.strides is None:
            return False
        if reshape == "contiguous":
            return is_contiguous((self.batch, *value.shape), (value.sample_stride, *value.strides))
        if reshape == "flatten":
            return self.reshaped(value, (math.prod(value.shape),)) is not None
        # "rows": [-1, last axis], the batch folded in with the other axes
        full_shape, full_strides = (self.batch, *value.shape), (value.sample_stride, *value.strides)
        return view_strides(full_shape, full_strides, (math.prod(full_shape[:-1]), full_shape[-1])) is not None

    def dtype_of(self, name: str, compute: str) -> str:
        if name == COMPUTE:
            return compute
        if name == PARAMETER:
            return self.parameter_dtype
        return name


def account(rows, steps, blocks, inputs: dict, batch: int, dtype: str, options: TrainingOptions) -> TrainingMemory:
    """The training memory of a report's rows (``blocks``: the engine's, for --checkpoint's
    top-level entries). Raises CnnCalcError for a kind whose saved tensors cnncalc does not know."""
    walk = Walk(rows, steps, inputs, batch, dtype, options)
    trainable = sum(row.weights + row.biases for row in rows)
    buffers = sum(row.buffers for row in rows)
    parameter_bytes = ELEMENT_BYTES[dtype]
    state_bytes = ELEMENT_BYTES[options.optimizer_dtype or dtype]
    if options.checkpoint:
        by_row, activations, copies, transient = checkpointed(walk, steps, blocks)
    else:
        by_row, activations, copies = first_savers(walk, range(len(steps)))
        transient = max(walk.transient, default=0)
    return TrainingMemory(
        weights=(trainable + buffers) * parameter_bytes,
        gradients=trainable * parameter_bytes,
        optimizer=OPTIMIZER_STATES[options.optimizer] * trainable * state_bytes,
        saved_activations=activations, weight_copies=copies, peak_transient=transient, saved_by_row=by_row)


def first_savers(walk: Walk, rows, alive: set[int] = frozenset()) -> tuple[list[int], int, int]:
    """(bytes per row, activation bytes, weight-copy bytes) of what ``rows`` save, each storage once,
    at the first row that saves it; storages in ``alive`` are already held and count nothing."""
    counted, by_row, activations, copies = set(alive), [0] * len(walk.saved), 0, 0
    for index in rows:
        for storage, copy in walk.saved[index]:
            if storage < 0 or storage in counted:
                continue
            counted.add(storage)
            size = walk.sizes[storage]
            by_row[index] += size
            if copy:
                copies += size
            else:
                activations += size
    return by_row, activations, copies


def entries(blocks, count: int) -> list[range]:
    """The rows of each top-level entry of the spec (the engine's level-0 blocks), in order; rows
    no entry covers (a partial report) form one more."""
    spans = sorted((block.first, block.end) for block in blocks if block.level == 0 and block.end > block.first)
    covered = spans[-1][1] if spans else 0
    if covered < count:
        spans.append((covered, count))
    return [range(first, end) for first, end in spans]


def checkpointed(walk: Walk, steps, blocks) -> tuple[list[int], int, int, int]:
    """--checkpoint: every top-level entry runs under torch.utils.checkpoint(use_reentrant=False),
    which keeps the entry's inputs (the tensors it reads from outside itself) and nothing inside;
    backward recomputes one entry at a time, from those same inputs, into new tensors. Returns
    (bytes per row, kept bytes, 0 weight copies, the largest transient: an entry's recomputed
    saved tensors, its inputs aside, plus its largest gradients)."""
    by_row, kept, transient = [0] * len(steps), set(), 0
    for span in entries(blocks, len(steps)):
        inputs = set()
        for index in span:
            for source in steps[index].inputs:
                storage = walk.values[source].storage
                if source < span.start:
                    inputs.add(storage)
                    if storage not in kept:
                        kept.add(storage)
                        by_row[index] += walk.sizes[storage]
        _, activations, copies = first_savers(walk, span, inputs)
        transient = max(transient, activations + copies + max((walk.transient[i] for i in span), default=0))
    return by_row, sum(by_row), 0, transient


def conventions(options: TrainingOptions, dtype: str) -> dict:
    """The conventions behind the training figures, named in the report's ``conventions``."""
    if not trainable(dtype):
        return {"training_memory": f"none: autograd trains floating-point tensors only, not {dtype}"}
    parameters = dtype
    states = OPTIMIZER_STATES[options.optimizer]
    device = options.train_on
    return {
        "saved_bytes": "bytes autograd keeps for backward in training mode, as torch.autograd.graph."
                       "saved_tensors_hooks sees them in the module `cnncalc export --to pytorch` writes (activations "
                       "out of place, as written there), each storage counted once, at the first layer that saves it"
                       + (" (with --checkpoint: the inputs of each top-level entry, at the first of its layers that "
                          "reads them)" if options.checkpoint else "")
                       + "; parameters and buffers are not in it, autocast's saved half copies of weights are",
        "training_memory": f"bytes: weights (parameters and buffers, {parameters}) + gradients (trainable parameters, "
                           f"{parameters}) + optimizer ({options.optimizer}: {states} state tensor"
                           f"{'' if states == 1 else 's'} per trainable parameter, "
                           f"{options.optimizer_dtype or parameters}) + saved_activations + weight_copies "
                           "(autocast's half copies of weights that autograd saves) + peak_transient = peak",
        "peak_transient": "the largest, over layers, of the gradient of the layer's output plus the gradients of its "
                          "inputs, which autograd holds while that layer's backward runs"
                          + ("; with --checkpoint, plus the saved tensors of the top-level entry being recomputed"
                             if options.checkpoint else ""),
        "peak": "weights + gradients + optimizer + saved_activations + weight_copies + peak_transient; not counted: "
                "the CUDA context, cuDNN and cuBLAS workspaces, the caching allocator's rounding and fragmentation, "
                "the loss, and the input batch where no layer saves it",
        "amp": (f"torch.autocast(\"{device}\", dtype=torch.{options.half}): conv, conv_transpose, linear and prelu "
                f"run in {options.half} (their weights' half copies cached), "
                + ("layer_norm, group_norm, softmax, log_softmax, upsampling and lrn's pow in float32"
                   if device == "cuda" else
                   "3-D pooling and reflection and replication padding in float32")
                + f" (PyTorch's {device} autocast lists), everything else in its inputs' dtype, promoted; float32 "
                "master weights, gradients and optimizer state") if options.amp else "none",
        "checkpoint": ("every top-level entry of `layers` runs under torch.utils.checkpoint(..., use_reentrant=False):"
                       " autograd keeps each entry's inputs (what it reads from outside itself) and nothing inside "
                       "it; backward recomputes one entry at a time") if options.checkpoint else "none",
        "train_on": {"cuda": "cuda: as PyTorch on a GPU: dropout keeps a bool mask",
                     "cpu": "cpu: as PyTorch on the CPU: dropout keeps a mask in the activations' dtype"}[device],
        "training_bytes": "the earlier estimate, kept as it was: input + every activation and its gradient + "
                          "params + gradients + optimizer state, all at --dtype",
    }


MAX_BATCH = 2**48  # a search bound far past any memory a machine has


def largest_batch(peak_at, limit: int) -> int:
    """The largest batch whose peak fits in ``limit`` bytes (0: not even one sample fits).
    ``peak_at(batch)`` computes the peak exactly, by a full analysis at that batch; a batch that
    cannot exist (CnnCalcError: more elements than a tensor can hold) does not fit. Memory grows
    with the batch but need not be affine (--checkpoint takes a maximum over entries): the affine
    guess from batches 1 and 2 is checked exactly, and a bisection between exact evaluations
    settles any disagreement."""
    peaks: dict[int, int | None] = {}

    def peak(batch: int) -> int | None:
        if batch not in peaks:
            try:
                peaks[batch] = peak_at(batch)
            except CnnCalcError:
                peaks[batch] = None
        return peaks[batch]

    def fits(batch: int) -> bool:
        return peak(batch) is not None and peak(batch) <= limit

    if not fits(1):
        return 0
    slope = peak(2) - peak(1) if peak(2) is not None else 0
    guess = min(MAX_BATCH, 1 + (limit - peak(1)) // slope) if slope > 0 else MAX_BATCH
    low, high = 1, guess
    if fits(guess):  # then find the first batch past it that does not fit, doubling the step
        low, step = guess, 1
        while low < MAX_BATCH and fits(min(MAX_BATCH, low + step)):
            low, step = min(MAX_BATCH, low + step), step * 2
        high = min(MAX_BATCH, low + step) if low < MAX_BATCH else MAX_BATCH + 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low
