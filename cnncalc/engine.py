"""Walk a spec, thread the shape and receptive field through every layer, build the Report.

The engine owns all cross-layer state: the current tensor, names, the DAG of named outputs,
live memory. Layers only know their own arithmetic (``Leaf.infer``).
"""
from __future__ import annotations

import gc
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction

from .errors import CnnCalcError, FitError, Location, SpecError
from .formulas import Window, half, misfit_message
from .kinds import GLOBAL, Layer, Leaf, Merge, Outcome, RFStep
from .plan import Plan, Step
from .report import (DTYPE_BYTES, OPTIMIZER_COPIES, Block, Finding, LayerRow, ReceptiveField, Report, Totals,
                     plain_number)
from .spec.build import Spec
from .spec.loader import format_path

ROUNDING = ("floor", "ceil", "strict")
MAX_ELEMENTS = 2**63 - 1  # no tensor library can index more elements than this
MAX_ROWS = 1_000_000  # layers after expanding `repeat`; beyond this an analysis takes minutes


@dataclass(frozen=True)
class Tensor:
    """An activation as the engine tracks it."""

    shape: tuple[int, ...]
    rf: ReceptiveField
    spatial: tuple[int, ...]  # last spatial sizes, kept through flatten for the receptive field
    node: int = -1  # index of the row that produced it; -1 = the network input
    # The field of its positional path, for alignment: ``rf`` itself until a broadcast gate (`mul`,
    # `se`) widens ``rf`` to the whole image; None after a global pool (no position left).
    anchor: ReceptiveField | None = None

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass
class Scope:
    """Names inside a composite get its name as prefix; default names count per scope."""

    prefix: str = ""
    chain: tuple[tuple[str, str], ...] = ()  # (name, kind) of the enclosing composites
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.chain)

    def child(self, name: str, kind: str) -> "Scope":
        return Scope(prefix=f"{name}.", chain=self.chain + ((name, kind),))

    def default_name(self, family: str) -> str:
        self.counters[family] = self.counters.get(family, 0) + 1
        return f"{self.prefix}{family}{self.counters[family]}"


@dataclass
class Analysis:
    """What one walk of a spec gives: the report (plain data) and the plan that executes it."""

    report: Report
    plan: Plan


class PartialAnalysis(CnnCalcError):
    """Raised by ``analyze`` when a layer fails; ``report`` (and ``analysis``) hold the rows
    computed before it."""

    def __init__(self, message: str, loc, analysis: Analysis):
        super().__init__(message, loc)
        self.analysis = analysis
        self.report = analysis.report


class Engine:
    def __init__(self, spec: Spec, rounding: str, batch: int, dtype: str, optimizer: str,
                 rounding_chosen: str | None = None, training=None):
        self.spec = spec
        self.rounding = rounding
        # Who chose `rounding`: "spec" (its `rounding` key), "option" (--rounding, the API's argument) or
        # None (the default). A chosen rounding is not warned per layer: one note lists what it rounded.
        self.rounding_chosen = rounding_chosen
        self.rounded: list[Finding] = []  # every layer whose size was rounded, warned or not
        self.misaligned: list[Finding] = []  # every merge whose inputs' fields are not aligned (also warned)
        self._rounded_briefly: list[str] = []  # "conv1 112.50 -> 112", for that note
        self.batch = batch
        self.dtype = dtype
        self.optimizer = optimizer
        self.training = training  # cnncalc.training.TrainingOptions: --amp, --checkpoint, ...; None: the defaults
        self.bytes_per = DTYPE_BYTES[dtype]
        self.rows: list[LayerRow] = []
        self.steps: list[Step] = []
        self.blocks: list[Block] = []
        self.level = 0  # composites open around the current step
        self.warnings: list[Finding] = []
        self.outputs: dict[str, Tensor] = {}
        self.pinned = 0  # elements kept alive by composites and named references
        self.peak_live = 0
        self.referenced = _referenced_names(spec.layers)
        self._layer: Layer | None = None
        self._name: str | None = None
        self._scope = Scope()

    # ------------------------------------------------------------------ walking
    def run(self) -> Tensor:
        rows = sum(layer.row_count() for layer in self.spec.layers)
        if rows > MAX_ROWS:
            raise SpecError(f"the spec expands to {rows:,} layers (after `repeat`), more than the limit of "
                            f"{MAX_ROWS:,}; check the `times` of its repeats", self.spec.source.locate(("layers",)))
        tensors = [network_input(shape, -1 - number) for number, shape in enumerate(self.spec.inputs.values())]
        self.outputs.update(zip(self.spec.inputs, tensors))
        self.outputs.setdefault("input", tensors[0])  # `from: input` is the first input
        self.pinned = sum(t.elements for t in tensors[1:])  # the others wait for the layers that take them
        self.peak_live = sum(t.elements for t in tensors)
        return self.sequence(self.spec.layers, tensors[0], Scope())

    def sequence(self, layers: list[Layer], x: Tensor, scope: Scope) -> Tensor:
        for layer in layers:
            x = self.step(layer, x, scope)
        return x

    def step(self, layer: Layer, x: Tensor, scope: Scope, name: str | None = None) -> Tensor:
        name = name or self.name_for(layer, scope)
        first, composite = len(self.rows), layer.is_composite
        try:
            if layer.from_ and not isinstance(layer, Merge):
                x = self.lookup(layer.from_, scope)
            if composite:
                self.level += 1
                try:
                    out = layer.walk(self, x, scope, name)
                finally:
                    self.level -= 1
            else:
                out = self.leaf(layer, x, scope, name)
            self.remember(name, out)
        except CnnCalcError as exc:
            raise exc.located(**self.where(layer, name)) from None
        path = layer.path
        self.blocks.append(Block(name, layer.kind, format_path(path), path, self.level, first, len(self.rows),
                                 composite))
        return out

    def leaf(self, layer: Leaf, x: Tensor, scope: Scope, name: str) -> Tensor:
        self._layer, self._name, self._scope = layer, name, scope
        if isinstance(layer, Merge):
            inputs = [self.lookup(ref, scope) for ref in layer.from_]
            return self.merge(layer, inputs, layer.merge([t.shape for t in inputs]), scope, name)
        return self.emit(layer, [x], layer.infer(x.shape, self), scope, name)

    def merge(self, layer: Layer, inputs: list[Tensor], shape: tuple[int, ...], scope: Scope, name: str) -> Tensor:
        """Add or concatenate (also the merge of `residual` and `branches`): every output pixel
        sees what the same pixel of each input sees, so the receptive field is the union of the
        inputs' fields per axis (``union_rf``); `concat` with `crop` first shifts each input's
        field by the rows/columns its centre crop drops."""
        fields, anchors = [t.rf for t in inputs], [t.anchor for t in inputs]
        if getattr(layer, "crop", False) and len(shape) > 1:
            smallest = shape[1:]
            fields = [crop_rf(t.rf, t.shape[1:], smallest) for t in inputs]
            anchors = [a and crop_rf(a, t.shape[1:], smallest) for a, t in zip(anchors, inputs)]
        spatial = next((t.spatial for t in inputs if t.shape == shape), inputs[0].spatial)  # not a broadcast gate's
        if len(shape) == 1 and len(inputs) > 1 and len({len(t.spatial) for t in inputs}) == 1:
            spatial = tuple(map(max, *(t.spatial for t in inputs)))  # flat inputs: the largest last maps
        full = [t.shape[1:] == shape[1:] for t in inputs]
        placed = [whole and a is not None for whole, a in zip(full, anchors)]  # gates and global fields have no grid
        self.check_alignment(inputs, anchors, placed, name)
        merged = union_rf(fields, full)
        anchor = next((a for a, p in zip(anchors, placed) if p), None)
        if all(placed) and all(a == f for a, f in zip(anchors, fields)):
            anchor = merged  # no gate, no global field: the positional field is the whole field
        return self.emit(layer, inputs, Outcome(shape=shape), scope, name, kind=_merge_kind(layer),
                         merged=(merged, spatial, anchor))

    def check_alignment(self, inputs: list[Tensor], anchors: list, placed: list[bool], name: str) -> None:
        """Warn (and list in ``misaligned``) a merge whose positioned inputs see the image on
        different grids: each output pixel would mix features centred at different input pixels."""
        if sum(placed) < 2 or len(self.spec.inputs) > 1:  # fields of two network inputs share no pixel grid
            return
        names = [self.rows[t.node].name if t.node >= 0 else list(self.spec.inputs)[-t.node - 1] for t in inputs]
        problem = misalignment(anchors, placed, names)
        if problem:
            finding = Finding(self.spec.source.locate(self._layer.path, name), problem)
            self.misaligned.append(finding)
            self.warnings.append(finding)

    def emit(self, layer: Layer, inputs: list[Tensor], outcome: Outcome, scope: Scope, name: str,
             kind: str | None = None, merged: tuple | None = None) -> Tensor:
        shape = outcome.shape
        elements = math.prod(shape) * self.batch
        if elements > MAX_ELEMENTS:
            raise CnnCalcError(f"the output {list(shape)} would have {elements:,} elements, more than any "
                               "tensor library can address; such a tensor could never exist")
        if outcome.weights > MAX_ELEMENTS:
            raise CnnCalcError(f"the layer would have {outcome.weights:,} weights, more than any tensor library "
                               "can address; such a weight tensor could never exist")
        rf, spatial, anchor = merged or self.move_rf(inputs[0], outcome.rf)
        if anchor is not None and len(shape) > 1 and max(shape[1:]) == 1:
            anchor = None  # a 1x1 map has no positions: what is made from it (upsampled, broadcast) aligns anywhere
        node = len(self.rows)
        path = layer.path
        text_path, line, kind = format_path(path), self.spec.source.line_of(path), kind or layer.kind
        sources = tuple(t.node for t in inputs)
        self.rows.append(LayerRow(
            index=node,
            path=text_path,
            name=name,
            kind=kind,
            depth=scope.depth,
            scope=scope.chain,
            input_shape=inputs[0].shape,
            output_shape=shape,
            weights=outcome.weights,
            biases=outcome.biases,
            buffers=outcome.buffers,
            macs=outcome.macs * self.batch,
            bias_muls=outcome.bias_muls * self.batch,
            connections=(outcome.macs + outcome.bias_muls if outcome.connections is None
                         else outcome.connections) * self.batch,
            activations=elements,
            activation_bytes=elements * self.bytes_per,
            receptive_field=rf,
            hyper=outcome.hyper,
            line=line,
            inputs=sources,
        ))
        self.steps.append(Step(node, name, kind, text_path, line, layer, outcome.hyper, sources, inputs[0].shape,
                               shape))
        live = sum(t.elements for t in inputs) + math.prod(shape) + self.pinned
        self.peak_live = max(self.peak_live, live)
        return Tensor(shape, rf, spatial if len(shape) == 1 else shape[1:], node, anchor)

    # ------------------------------------------------------------------ context for layers
    def resolve(self, windows: list[Window], what: str) -> tuple[int, ...]:
        """Output sizes under the rounding policy; non-whole sizes raise (strict), or are rounded and
        recorded in ``rounded``: warned when the rounding is the default, listed in one note
        (``rounding_note``) when the spec or the caller chose it."""
        if all(w.exact().denominator == 1 for w in windows):
            return tuple(int(w.exact()) for w in windows)
        message = misfit_message(windows, what)
        if self.rounding == "strict":
            raise FitError(message)
        sizes = tuple(w.ceil() if self.rounding == "ceil" else w.floor() for w in windows)
        verb = "up" if self.rounding == "ceil" else "down"
        framework = "PyTorch's ceil_mode" if self.rounding == "ceil" else "PyTorch does"
        note = f"; rounded {verb} to {'x'.join(map(str, sizes))} ({self.rounding}, as {framework})"
        finding = Finding(self.spec.source.locate(self._layer.path, self._name), message + note)
        self.rounded.append(finding)
        exact = [f"{float(w.exact()):.2f}" for w in windows]
        same = len(set(exact)) == 1 and len(set(sizes)) == 1  # a square: one number says it
        brief = f"{exact[0]} -> {sizes[0]}" if same else f"{'x'.join(exact)} -> {'x'.join(map(str, sizes))}"
        self._rounded_briefly.append(f"{self._name} {brief}")
        if not self.rounding_chosen:
            self.warnings.append(finding)
        return sizes

    def rounding_note(self) -> list[Finding]:
        """One note for all the sizes a chosen rounding rounded (none when nothing was rounded or
        the rounding is the default, whose roundings are warned one by one instead)."""
        if not self.rounding_chosen or not self.rounded:
            return []
        count = len(self.rounded)
        verb = "up" if self.rounding == "ceil" else "down"
        if self.rounding_chosen == "spec":
            why, where = f"as the spec's `rounding: {self.rounding}` says", self.spec.source.locate(("rounding",))
        else:
            why, where = f"as --rounding {self.rounding} asks", Location(file=self.spec.file)
        if count == 1:  # one layer: its own message says it best, where it is
            return [Finding(self.rounded[0].loc, f"{self.rounded[0].message}; {why}")]
        return [Finding(where, f"{count} sizes that are not whole were rounded {verb}, {why}: "
                               f"{', '.join(self._rounded_briefly)}")]

    def spatial_size(self, ref: str) -> tuple[int, ...]:
        return self.lookup(ref, self._scope, key="size").shape[1:]

    # ------------------------------------------------------------------ receptive field
    def move_rf(self, x: Tensor, change) -> tuple[ReceptiveField, tuple[int, ...], ReceptiveField | None]:
        """(field, last spatial sizes, positional field) of a layer's output from its input's."""
        rf, spatial, anchor = x.rf, x.spatial, x.anchor
        if change is None or not rf.size:
            return rf, spatial, anchor
        if change == GLOBAL:  # the whole last map; after it, that map is covered (fc7 sees what fc6 saw)
            change = tuple(RFStep(size, 1, half(size - 1)) for size in spatial)
            return moved_rf(rf, change), (1,) * len(spatial), None
        moved = moved_rf(rf, change)
        return moved, spatial, moved if anchor is rf else anchor and moved_rf(anchor, change)

    # ------------------------------------------------------------------ names and memory
    def name_for(self, layer: Layer, scope: Scope) -> str:
        default = scope.default_name(layer.family or layer.kind)  # counts named layers too: C1, conv2
        return default if layer.name is None else f"{scope.prefix}{layer.name}"

    def remember(self, name: str, out: Tensor) -> None:
        if name in self.outputs:
            raise SpecError(f"the name `{name}` is used by two layers; names must be unique")
        self.outputs[name] = out
        if name in self.referenced:
            self.pinned += out.elements

    def lookup(self, ref: str, scope: Scope, key: str = "from") -> Tensor:
        """The innermost composite's own names first, then each enclosing one's, then the top level."""
        for candidate in (*(f"{name}.{ref}" for name, _ in reversed(scope.chain)), ref):
            if candidate in self.outputs:
                return self.outputs[candidate]
        known = [n for n in self.outputs if n != "input"][-8:]
        raise SpecError(f"`{key}: {ref}` names no earlier layer (the latest are: {', '.join(known)}; "
                        "`input` is the network input)")

    def pin(self, *tensors: Tensor) -> None:
        self.pinned += sum(t.elements for t in tensors)

    def unpin(self, *tensors: Tensor) -> None:
        self.pinned -= sum(t.elements for t in tensors)

    def where(self, layer: Layer, name: str) -> dict:
        return {"file": self.spec.file, "line": self.spec.source.line_of(layer.path),
                "path": format_path(layer.path) or None, "name": name}

    # ------------------------------------------------------------------ result
    def report(self) -> Report:
        rows = self.rows
        trainable = sum(r.trainable_params for r in rows)
        buffers = sum(r.buffers for r in rows)
        params = trainable + buffers
        input_elements = sum(math.prod(shape) for shape in self.spec.inputs.values()) * self.batch
        activations = sum(r.activations for r in rows)
        extra_copies = OPTIMIZER_COPIES[self.optimizer] - 2  # beyond weights and gradients
        totals = Totals(
            params=params,
            trainable_params=trainable,
            non_trainable_params=buffers,
            macs=sum(r.macs for r in rows),
            muls_with_bias=sum(r.muls_with_bias for r in rows),
            activations=activations,
            activation_bytes=activations * self.bytes_per,
            input_bytes=input_elements * self.bytes_per,
            param_bytes=params * self.bytes_per,
            peak_live_activation_bytes=self.peak_live * self.batch * self.bytes_per,
            gradient_bytes=trainable * self.bytes_per,
            optimizer_state_bytes=extra_copies * trainable * self.bytes_per,
        )
        memory = self.training_memory()
        if memory is not None:
            for row, saved in zip(rows, memory.saved_by_row):
                row.saved_bytes = saved
            totals.saved_bytes, totals.training_memory = memory.saved, memory.to_dict()
        blocks = sorted(self.blocks, key=lambda b: (b.first, b.level))  # walking order: a block before its parts
        return Report(self.spec.name, self.spec.input, self.spec.layout, self.rounding, self.batch, self.dtype,
                      self.optimizer, rows, totals, self.warnings, self.spec.file,
                      list(self.spec.notes) + self.rounding_note(), rounded=list(self.rounded), blocks=blocks,
                      misaligned=list(self.misaligned),
                      inputs=dict(self.spec.inputs), training=self.training)

    def training_memory(self):
        """What training the rows needs, as PyTorch spends it (cnncalc/training.py); None for a dtype
        autograd cannot train (int8, uint8)."""
        from .training import TrainingOptions, account, trainable

        if not trainable(self.dtype):
            return None
        options = self.training or TrainingOptions(optimizer=self.optimizer)
        return account(self.rows, self.steps, self.blocks, self.spec.inputs, self.batch, self.dtype, options)

    def analysis(self) -> Analysis:
        return Analysis(self.report(), Plan(self.spec.name, self.spec.file, self.spec.input, list(self.steps),
                                            dict(self.spec.inputs)))


def network_input(shape: tuple[int, ...], node: int) -> Tensor:
    """A network input: its receptive field is one pixel; ``node`` -1 for the first input, -2, ... after."""
    rank = len(shape) - 1
    rf = ReceptiveField((1,) * rank, (1,) * rank, (0,) * rank)
    return Tensor(shape, rf, shape[1:], node, rf)


# ---------------------------------------------------------------------- receptive field of merges
def union_rf(fields: list[ReceptiveField], full: list[bool] | None = None) -> ReceptiveField:
    """The receptive field of a merge (add, concat, the merge of residual and branches): per axis
    the smallest interval holding every input's field.

    ``start`` is the centre of output 0's field (``size`` pixels, from ``start - (size-1)/2`` to
    ``start + (size-1)/2``), so in edges: ``left = start - size/2``, ``right = start + size/2``;
    the union spans ``min(left)..max(right)``. Worked in doubled units so whole fields stay ints.
    Inputs of one merge have one resolution, hence equal jumps; should they differ, the larger
    jump per axis is kept. A broadcast input (``full`` False: a [C, 1, 1] gate of `mul` or `se`)
    widens the field but has no resolution of its own: the jump comes from the full-size inputs.
    Flat fields (no spatial axes) and mismatched ranks keep the first."""
    first = fields[0]
    if len(fields) == 1 or not first.size:
        return first
    rest = fields[1:]
    if all(f == first for f in rest):
        return first
    rank = len(first.size)
    if any(len(f.size) != rank for f in rest):  # cannot happen for one network input; stay defined
        return first
    size, jump, start = [], [], []
    for axis in range(rank):
        left2 = min(2 * f.start[axis] - f.size[axis] for f in fields)  # 2 * left edge
        right2 = max(2 * f.start[axis] + f.size[axis] for f in fields)  # 2 * right edge
        size.append(_divide(right2 - left2, 2))
        start.append(_divide(left2 + right2, 4))
        sized = [f for f, whole in zip(fields, full or [True] * len(fields)) if whole] or fields
        jump.append(max(f.jump[axis] for f in sized))
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def moved_rf(rf: ReceptiveField, change: tuple) -> ReceptiveField:
    """The field after one layer's step per axis (``RFStep``: r_out = r_in + (extent - 1) * j_in)."""
    if len(change) != len(rf.size):
        return rf
    size = tuple(s + (step.extent - 1) * j for s, j, step in zip(rf.size, rf.jump, change))
    jump = tuple(j * step.stride for j, step in zip(rf.jump, change))
    start = tuple(st + step.offset * j for st, j, step in zip(rf.start, rf.jump, change))
    return ReceptiveField(size, jump, start)


def misalignment(fields: list[ReceptiveField], full: list[bool], names: list[str]) -> str | None:
    """What keeps a merge's inputs from being aligned (Araujo, Norris & Sim, "Computing Receptive
    Fields of Convolutional Neural Networks", Distill 2019): output pixel i of input k is centred
    at ``start_k + i * jump_k`` input pixels, so the inputs agree for every i only with equal
    jumps and equal starts. Broadcast gates (``full`` False, a [C, 1, 1] `mul`/`se` scale) have
    no grid of their own and are left out; None when aligned."""
    sized = [(f, n) for f, whole, n in zip(fields, full, names) if whole and f.size]
    if len(sized) < 2:
        return None
    (first, first_name), axes = sized[0], _axis_names(len(sized[0][0].size))
    for rf, other in sized[1:]:
        if len(rf.size) != len(first.size):
            continue
        if rf.jump != first.jump:
            return (f"the merged inputs are not aligned: `{other}` steps {_per_axis(rf.jump, axes)} "
                    f"per output pixel, `{first_name}` {_per_axis(first.jump, axes)}, so they sample the input on "
                    "different grids (receptive-field alignment, Araujo et al. 2019)")
        if rf.start != first.start:
            offsets = tuple(b - a for a, b in zip(first.start, rf.start))
            whole = all(Fraction(o) % Fraction(j) == 0 for o, j in zip(offsets, first.jump))
            grid = ("a whole number of output pixels: the same grid, shifted" if whole
                    else "off the grid of output pixels")
            return (f"the merged inputs are not aligned: the fields of `{other}` are centred "
                    f"{_per_axis(offsets, axes, signed=True)} from those of `{first_name}` ({grid}), "
                    "so each output pixel mixes features centred at different input pixels (receptive-field "
                    "alignment, Araujo et al. 2019)")
    return None


def _axis_names(rank: int) -> tuple[str, ...]:
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(rank, tuple(f"axis {i}" for i in range(rank)))


def _per_axis(values, axes, signed: bool = False) -> str:
    def number(v):
        text = str(plain_number(v))
        return f"+{text}" if signed and v > 0 else text

    if len(set(values)) == 1:
        return f"{number(values[0])} input pixels{' on every axis' if len(values) > 1 else ''}"
    return ", ".join(f"{number(v)} ({axis})" for v, axis in zip(values, axes)) + " input pixels"


def crop_rf(rf: ReceptiveField, have: tuple[int, ...], want: tuple[int, ...]) -> ReceptiveField:
    """The field of an input that `concat`'s `crop` centre-crops from ``have`` to ``want``: output
    0 is its pixel ``(have - want) // 2`` (the odd one more is cut at the end, as the backends do)."""
    if have == want or len(rf.size) != len(have):
        return rf
    start = tuple(st + ((h - w) // 2) * j for st, j, h, w in zip(rf.start, rf.jump, have, want))
    return ReceptiveField(rf.size, rf.jump, start)


def _divide(value, by: int):
    """value / by, an int when whole (ints stay fast; Fractions stay exact)."""
    if type(value) is int and value % by == 0:
        return value // by
    value = Fraction(value, by)
    return value.numerator if value.denominator == 1 else value


def _merge_kind(layer: Layer) -> str:
    return {"residual": "add", "branches": "concat", "se": "mul"}.get(layer.kind, layer.kind)


def _referenced_names(layers: list[Layer]) -> set[str]:
    names: set[str] = set()
    stack = list(layers)
    while stack:
        layer = stack.pop()
        refs = layer.from_
        if refs:
            names.update([refs] if isinstance(refs, str) else refs)
        stack.extend(layer.children())
    return names


def analyze(spec: Spec, rounding: str | None = None, batch: int = 1, dtype: str = "float32",
            optimizer: str = "sgd", **training) -> Report:
    """The report of ``spec``; see ``analyze_spec``."""
    return analyze_spec(spec, rounding, batch, dtype, optimizer, **training).report


def analyze_spec(spec: Spec, rounding: str | None = None, batch: int = 1, dtype: str = "float32",
                 optimizer: str = "sgd", amp: str | None = None, checkpoint: bool = False,
                 optimizer_dtype: str | None = None, train_on: str = "cuda") -> Analysis:
    """Infer every layer of ``spec``. A failing layer raises ``PartialAnalysis`` (a CnnCalcError)
    whose ``report`` holds the rows before it. ``rounding=None`` takes the spec's own ``rounding``
    key, else floor (PyTorch). Only that default floor warns each rounded layer; a rounding given
    here or declared by the spec puts one note in ``report.notes`` (``report.rounded`` lists all).
    ``amp``, ``checkpoint``, ``optimizer_dtype``, ``train_on``: how training memory is counted
    (cnncalc.training.TrainingOptions)."""
    from .training import TrainingOptions

    chosen = "option" if rounding else ("spec" if spec.rounding else None)
    rounding = rounding or spec.rounding or "floor"
    _check_options(rounding, batch, dtype, optimizer)
    training = TrainingOptions(optimizer, amp, checkpoint, optimizer_dtype, train_on)
    training.check(dtype)
    engine = Engine(spec, rounding, batch, dtype, optimizer, rounding_chosen=chosen, training=training)
    try:
        with paused_gc():
            engine.run()
    except CnnCalcError as exc:
        raise PartialAnalysis(exc.message, exc.loc, engine.analysis()) from None
    return engine.analysis()


@contextmanager
def paused_gc():
    """The cyclic garbage collector rescans every live object as rows pile up, which makes large
    specs quadratic; nothing made here needs it, so it waits until the walk is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_options(rounding: str, batch: int, dtype: str, optimizer: str) -> None:
    if rounding not in ROUNDING:
        raise CnnCalcError(f"rounding must be one of {', '.join(ROUNDING)}, not {rounding!r}")
    if not isinstance(batch, int) or batch < 1:
        raise CnnCalcError(f"batch must be a positive whole number, not {batch!r}")
    if dtype not in DTYPE_BYTES:
        raise CnnCalcError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, not {dtype!r}")
    if optimizer not in OPTIMIZER_COPIES:
        raise CnnCalcError(f"optimizer must be one of {', '.join(OPTIMIZER_COPIES)}, not {optimizer!r}")
