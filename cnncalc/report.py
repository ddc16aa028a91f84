"""The analysis result as plain data: exact ints and tuples, no display strings.

``Report.to_dict()`` is the JSON contract printed by ``--format json``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from .errors import Location
from .notation import LAYOUTS

DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}
# How many copies of the trainable parameters training keeps: weights, gradients, optimizer state.
OPTIMIZER_COPIES = {"sgd": 2, "momentum": 3, "adam": 4, "adamw": 4}


def plain_number(value: Fraction | int) -> int | float:
    """Whole fractions become ints; others floats rounded for humans and JSON."""
    if type(value) is int:
        return value
    if type(value) is not Fraction:
        value = Fraction(value)
    return int(value) if value.denominator == 1 else round(float(value), 4)


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[Fraction, ...]
    jump: tuple[Fraction, ...]
    start: tuple[Fraction, ...]

    def to_dict(self) -> dict:
        return {key: [plain_number(v) for v in getattr(self, key)] for key in ("size", "jump", "start")}


@dataclass(frozen=True)
class Finding:
    """A located warning or problem about one layer."""

    loc: Location
    message: str

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}"

    def to_dict(self) -> dict:
        return {**self.loc.to_dict(), "message": self.message}


@dataclass(frozen=True)
class Block:
    """One layer instance a user can name, as the engine walked it: a leaf (one row) or a
    composite (its rows ``first`` to ``end``, nested blocks included). ``level`` counts the
    composites around it: 0 for a top-level entry."""

    name: str
    kind: str  # the written kind: `residual`, `repeat`, `conv`, ...
    path: str  # e.g. layers[3].residual.layers[0]
    key: tuple  # the same path as data, ("layers", 3, "residual", "layers", 0)
    level: int
    first: int
    end: int
    composite: bool


@dataclass
class LayerRow:
    index: int
    path: str
    name: str
    kind: str
    depth: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weights: int
    biases: int
    buffers: int  # non-trainable parameters
    macs: int  # for the whole batch
    bias_muls: int
    connections: int  # LeCun's input-to-output links incl. bias, for the whole batch
    activations: int  # output elements for the whole batch
    activation_bytes: int
    receptive_field: ReceptiveField
    hyper: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    scope: tuple[tuple[str, str], ...] = ()  # (name, kind) of the enclosing composites, outermost first
    inputs: tuple[int, ...] = ()  # rows whose outputs feed this one (-1 = the network input): the graph
    saved_bytes: int | None = None  # what autograd keeps for its backward (cnncalc/training.py); None: not trainable

    @property
    def trainable_params(self) -> int:
        return self.weights + self.biases

    @property
    def params(self) -> int:
        return self.trainable_params + self.buffers

    @property
    def muls_with_bias(self) -> int:
        return self.macs + self.bias_muls

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "path": self.path,
            "name": self.name,
            "kind": self.kind,
            "depth": self.depth,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "weights": self.weights,
            "biases": self.biases,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.buffers,
            "macs": self.macs,
            "muls_with_bias": self.muls_with_bias,
            "flops": 2 * self.macs,
            "connections": self.connections,
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "saved_bytes": self.saved_bytes,
            "receptive_field": self.receptive_field.to_dict(),
            "hyper": {key: _jsonable(value) for key, value in self.hyper.items()},
        }


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def fold_to_depth(report: "Report", depth: int) -> "Report":
    """One row per composite nested ``depth`` deep (0: a top-level entry): its layers' counts
    summed, its last output shown (torchinfo's depth). Totals and warnings are unchanged."""
    folded = {block.first: block for block in report.blocks
              if block.composite and block.level == depth and block.end > block.first}
    rows: list[LayerRow] = []
    index = 0
    while index < len(report.layers):
        block = folded.get(index)
        if block is None:
            rows.append(replace(report.layers[index], index=len(rows)))
            index += 1
            continue
        group = _renumbered(report.layers[index], len(rows), name=block.name, kind=block.kind, path=block.path,
                            depth=depth, empty=True)
        for row in report.layers[block.first:block.end]:
            group = _absorb(group, row)
        rows.append(group)
        index = block.end
    return replace(report, layers=rows)


def _renumbered(row: LayerRow, index: int, empty: bool = False, **changes) -> LayerRow:
    if empty:
        changes.update(weights=0, biases=0, buffers=0, macs=0, bias_muls=0, connections=0, activations=0,
                       activation_bytes=0, hyper={}, scope=row.scope[: changes["depth"]],
                       saved_bytes=None if row.saved_bytes is None else 0)
    return replace(row, index=index, **changes)


def _absorb(group: LayerRow, row: LayerRow) -> LayerRow:
    """A composite's row takes in one more of its layers; a merge row of the same name just closes it."""
    return replace(
        group, output_shape=row.output_shape, receptive_field=row.receptive_field,
        weights=group.weights + row.weights, biases=group.biases + row.biases, buffers=group.buffers + row.buffers,
        macs=group.macs + row.macs, bias_muls=group.bias_muls + row.bias_muls,
        connections=group.connections + row.connections,
        activations=group.activations + row.activations, activation_bytes=group.activation_bytes + row.activation_bytes,
        saved_bytes=None if row.saved_bytes is None else (group.saved_bytes or 0) + row.saved_bytes,
    )


@dataclass
class Totals:
    params: int
    trainable_params: int
    non_trainable_params: int
    macs: int
    muls_with_bias: int
    activations: int
    activation_bytes: int
    input_bytes: int
    param_bytes: int
    peak_live_activation_bytes: int
    optimizer_state_bytes: int
    gradient_bytes: int
    saved_bytes: int | None = None  # what autograd keeps for backward, each storage once; None: not trainable
    training_memory: dict | None = None  # cnncalc/training.py's breakdown, in bytes

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def inference_bytes(self) -> int:
        return self.param_bytes + self.peak_live_activation_bytes

    @property
    def training_activation_bytes(self) -> int:
        return 2 * self.activation_bytes  # every activation and its gradient

    @property
    def training_bytes(self) -> int:
        return (self.input_bytes + self.training_activation_bytes + self.param_bytes
                + self.gradient_bytes + self.optimizer_state_bytes)

    def to_dict(self) -> dict:
        return {
            "params": self.params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "macs": self.macs,
            "muls_with_bias": self.muls_with_bias,
            "flops": self.flops,
            "activations": self.activations,
            "activation_bytes": self.activation_bytes,
            "input_bytes": self.input_bytes,
            "param_bytes": self.param_bytes,
            "gradient_bytes": self.gradient_bytes,
            "optimizer_state_bytes": self.optimizer_state_bytes,
            "peak_live_activation_bytes": self.peak_live_activation_bytes,
            "inference_bytes": self.inference_bytes,
            "training_activation_bytes": self.training_activation_bytes,
            "training_bytes": self.training_bytes,
            "saved_bytes": self.saved_bytes,
            "training_memory": self.training_memory,
        }


@dataclass
class Report:
    name: str
    input_shape: tuple[int, ...]
    layout: str
    rounding: str
    batch: int
    dtype: str
    optimizer: str
    layers: list[LayerRow]
    totals: Totals
    warnings: list[Finding] = field(default_factory=list)
    file: str | None = None
    notes: list[Finding] = field(default_factory=list)  # how the input was read, where that needs saying
    blocks: list[Block] = field(default_factory=list)  # every walked layer instance, in walking order
    rounded: list[Finding] = field(default_factory=list)  # every layer whose size was rounded (floor/ceil)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every named input (one: {"input": ...})
    misaligned: list[Finding] = field(default_factory=list)  # merges whose inputs' receptive fields are not aligned
    training: Any = None  # the cnncalc.training.TrainingOptions the training memory was counted with

    def __post_init__(self):
        self.inputs = self.inputs or {"input": self.input_shape}

    @property
    def conventions(self) -> dict:
        return {
            "macs": "weight multiply-accumulates of conv, conv_transpose and linear layers, bias excluded "
                    "(as torch.utils.flop_counter counts them)",
            "muls_with_bias": "MACs plus one multiplication per output for the bias (the lecture's +1)",
            "flops": "2 x MACs",
            "params": "trainable (weights + biases, = PyTorch parameters()) + non-trainable "
                      "(batch-norm and instance-norm running mean and variance, as Keras counts them)",
            "rounding": self.rounding,
            "rounding_meaning": {
                "floor": "sizes that are not whole are rounded down, as PyTorch does (listed in `rounded`; "
                         "warned per layer unless the spec or --rounding chose it)",
                "ceil": "sizes that are not whole are rounded up, as PyTorch's ceil_mode (listed in `rounded`; "
                        "warned per layer unless the spec or --rounding chose it)",
                "strict": "sizes that are not whole are errors, as the lecture treats them",
            }[self.rounding],
            "batch": self.batch,
            "counts_per": f"batch of {self.batch}" if self.batch != 1 else "one sample",
            "dtype": self.dtype,
            "bytes_per_element": DTYPE_BYTES[self.dtype],
            "optimizer": self.optimizer,
            "memory": "bytes; inference = params + peak live activations; training_bytes (the earlier estimate) = "
                      "input + activations and their gradients + params + gradients + optimizer state "
                      f"({OPTIMIZER_COPIES[self.optimizer]}x trainable params in all); training as PyTorch spends it: "
                      "training_memory",
            "units": "MB = 10^6 bytes, MiB = 2^20 bytes",
            "shapes": "[C, *spatial] without the batch axis",
            "layout": self.layout,
            "layout_meaning": LAYOUTS[self.layout].words,
            "lists": "shapes written as lists are always [C, *spatial]",
            **self.training_conventions(),
        }

    def training_conventions(self) -> dict:
        from .training import TrainingOptions, conventions

        return conventions(self.training or TrainingOptions(optimizer=self.optimizer), self.dtype)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "conventions": self.conventions,
            "layers": [row.to_dict() for row in self.layers],
            "totals": self.totals.to_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
            "notes": [n.to_dict() for n in self.notes],
            "rounded": [r.to_dict() for r in self.rounded],
            "inputs": {name: list(shape) for name, shape in self.inputs.items()},  # added after the first contract
            "misaligned": [m.to_dict() for m in self.misaligned],
        }
