"""Execute a plan's graph on real arrays with any backend, and compare what comes out.

The rows of ``cnncalc.analyze(spec)`` are a DAG in execution order (``row.inputs``: the rows
that feed a row, -1 = the network input). Each row runs on its backend and the actual output
shape is compared with the engine's ``row.output_shape``; no size formula is used here. An
output is freed as soon as its last reader has run, so memory follows the live set the engine
counts, not the sum of all activations.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy

from ..errors import CnnCalcError, Location
from .values import load_array, shape_text

INPUT = -1  # row.inputs entry meaning the network input
# What an op may raise on arrays it cannot combine: recorded as that layer's failure.
OP_ERRORS = (ArithmeticError, LookupError, RuntimeError, TypeError, ValueError)

Progress = Callable[[int, int, str], None]  # (rows done, rows in all, name of the row just run)


@dataclass
class LayerResult:
    index: int
    name: str
    kind: str
    inferred_shape: tuple[int, ...]
    actual_shape: tuple[int, ...] | None  # without the batch axis; None when the op failed
    seconds: float
    output: Any = None  # the output as a numpy array [N, C, *spatial], when asked to keep it
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.actual_shape == self.inferred_shape

    def to_dict(self) -> dict:
        data = {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "inferred_shape": list(self.inferred_shape),
            "actual_shape": None if self.actual_shape is None else list(self.actual_shape),
            "ok": self.ok,
            "seconds": self.seconds,
        }
        if self.error:
            data["error"] = self.error
        return data


def run_forward(plan, backend, batch: int = 1, seed: int = 0, input_values=None, weights_from_spec: bool = True,
                progress: Progress | None = None, *, keep: Callable[[Any], bool] | None = None,
                parameters=None, source=None) -> list[LayerResult]:
    """Run every row of ``plan`` on ``backend``; one LayerResult per row run.

    ``input_values``: the network input ``[C, *spatial]`` (array, nested lists or a file path;
    batch 1 is added) or None for standard-normal values from ``seed``. ``keep(row)``: which
    outputs to return as numpy arrays. ``parameters(row, x_shape) -> {name: array}``: default
    SeededParameters (the spec's weights where given, random from ``seed`` otherwise). The run
    stops at the first row the backend cannot compute; that row carries the error.
    """
    parameters = parameters or seeded_parameters(plan, seed, weights_from_spec, source)
    keep = keep or (lambda row: False)
    backend.prepare(plan.steps, batch)
    last_reader = last_readers(plan.steps)
    outputs = {INPUT: backend.asarray(input_array(plan, batch, seed, input_values, source))}
    outputs.update({node: backend.asarray(array) for node, array in other_inputs(plan, batch, seed).items()})
    results = []
    for done, row in enumerate(plan.steps, start=1):
        inputs = [outputs[i] for i in row.inputs]
        params = {name: backend.asarray(a) for name, a in parameters(row, tuple(inputs[0].shape)).items()}
        result, out = run_row(backend, row, inputs, params, batch)
        del inputs, params
        if out is not None and keep(row):
            result.output = backend.to_numpy(out)
        results.append(result)
        if result.error:
            break
        outputs[row.index] = out
        del out
        for index in [i for i in outputs if last_reader.get(i, INPUT) <= row.index]:
            del outputs[index]  # no later row reads it
        if progress:
            progress(done, len(plan.steps), row.name)
    return results


def run_row(backend, row, inputs: list, params: dict, batch: int) -> tuple[LayerResult, Any]:
    start = time.perf_counter()
    try:
        out = backend.run(row, inputs, params)
        backend.synchronize()
    except OP_ERRORS as exc:
        seconds = time.perf_counter() - start
        message = f"the {backend.name} backend cannot compute this layer: {type(exc).__name__}: {exc}"
        return LayerResult(row.index, row.name, row.kind, tuple(row.output_shape), None, seconds, error=message), None
    seconds = time.perf_counter() - start
    shape = tuple(out.shape)
    actual = shape[1:] if shape[:1] == (batch,) else shape  # a lost batch axis shows as a mismatch
    return LayerResult(row.index, row.name, row.kind, tuple(row.output_shape), actual, seconds), out


def seeded_parameters(plan, seed: int = 0, weights_from_spec: bool = True, source=None):
    """run_forward's default ``parameters``: the spec's weights where given, random from ``seed``."""
    from .parameters import SeededParameters

    return SeededParameters(seed, weights_from_spec, _base_dir(plan), plan.file, source)


def input_array(plan, batch: int = 1, seed: int = 0, input_values=None, source=None) -> numpy.ndarray:
    """The network input run_forward feeds the first rows (``network_input`` located in the spec)."""
    where = source.locate(("input_values",)) if source is not None else Location(plan.file, None, "input_values")
    return network_input(plan, batch, seed, input_values, _base_dir(plan), where)


def other_inputs(plan, batch: int = 1, seed: int = 0) -> dict[int, numpy.ndarray]:
    """The second, third, ... named inputs (nodes -2, -3, ...): standard normal from ``seed``
    (``input_values`` gives the first input only)."""
    shapes = list(plan.inputs.values())[1:]
    return {INPUT - number: numpy.random.default_rng((seed, number)).standard_normal((batch, *shape), dtype=numpy.float32)
            for number, shape in enumerate(shapes, start=1)}


def _base_dir(plan) -> Path:
    return Path(plan.file).parent if plan.file else Path(".")


def last_readers(rows) -> dict[int, int]:
    """Output index (-1: the input) -> index of the last row that reads it; unread outputs are
    absent (freed right after they are made, unless kept)."""
    last = {}
    for row in rows:
        for index in row.inputs:
            last[index] = row.index
    return last


def network_input(plan, batch: int, seed: int, values, base_dir: Path, where: Location) -> numpy.ndarray:
    """``[batch, C, *spatial]`` float32: the given values (repeated over the batch) or standard
    normal from ``seed``."""
    shape = tuple(plan.input_shape)
    if values is None:
        return numpy.random.default_rng((seed, 0)).standard_normal((batch, *shape), dtype=numpy.float32)
    try:
        array = load_array(values, base_dir)
    except ValueError as exc:
        raise CnnCalcError(f"`input_values` {exc}", where) from None
    if array.shape == (1, *shape):
        array = array[0]
    if array.shape != shape:
        raise CnnCalcError(f"`input_values` has shape {shape_text(array.shape)} but `input` is "
                           f"{shape_text(shape)} ([C, *spatial], no batch axis)", where)
    return numpy.repeat(array[None], batch, axis=0)


# ----------------------------------------------------------------------------- comparing backends
FLOAT32_EPS = float(numpy.finfo(numpy.float32).eps)  # 2**-23: the gap between 1 and the next float32
SAFETY = 16  # the allowance's factor over one typical rounding error (README, `run`: how it was chosen)


@dataclass(frozen=True)
class Difference:
    """How far one layer's output on a backend is from the reference backend's.

    With ``allowed`` (the float32 rule, ``float_allowances``) a layer is ok when ``max_abs_diff
    <= allowed``; without it (a fixed ``--tolerance``) when ``relative <= tolerance``. Either way
    ``tolerance`` is the limit in the units of ``relative``."""

    name: str
    max_abs_diff: float
    max_abs: float  # largest magnitude in the reference output
    tolerance: float
    allowed: float | None = None  # absolute: the float32 difference this layer may show
    carried: float | None = None  # the part of ``allowed`` that its inputs' differences explain
    local: float | None = None  # the part of ``allowed`` for the layer's own rounding
    reduction_length: int | None = None  # n: input values combined into one output value

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(1.0, self.max_abs)

    @property
    def ok(self) -> bool:
        if self.allowed is not None:
            return self.max_abs_diff <= self.allowed  # NaN compares False: never ok
        return self.relative <= self.tolerance  # NaN compares False: never ok

    def to_dict(self) -> dict:
        data = {"name": self.name, "max_abs_diff": self.max_abs_diff, "max_abs": self.max_abs,
                "relative": self.relative, "ok": self.ok}
        if self.allowed is None:
            added = {"tolerance": self.tolerance, "allowed": self.tolerance * max(1.0, self.max_abs)}
        else:
            added = {"tolerance": self.tolerance, "allowed": self.allowed, "carried": self.carried,
                     "local": self.local, "reduction_length": self.reduction_length}
        return {**data, **{key: _finite_or_none(value) for key, value in added.items()}}


def _finite_or_none(value):
    """JSON has no infinity: an allowance made infinite by an earlier layer's failure (or
    unknown where the shapes differ) is null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class Allowance:
    """The float32 difference one layer may show: ``allowed = carried + local``."""

    allowed: float
    carried: float  # the inputs' actual differences, times the layer's gain
    local: float  # the layer's own rounding: SAFETY x eps x sqrt(n) x magnitude
    reduction_length: int


class RecordingGains:
    """Wraps run_forward's ``parameters``: passes the arrays on and records each row's gain
    (``gain(row, arrays)``), so the float32 rule knows the weights without drawing them twice."""

    def __init__(self, parameters):
        self.parameters = parameters
        self.gains: dict[int, float] = {}

    def __call__(self, row, x_shape):
        arrays = self.parameters(row, x_shape)
        self.gains[row.index] = gain(row, arrays)
        return arrays


def compare_outputs(ours: list[LayerResult], reference: list[LayerResult], tolerance: float | None = None, *,
                    rows=None, gains: dict[int, float] | None = None, input_peak: float = 0.0,
                    epsilon=None) -> list[Difference]:
    """Per layer: max |ours - reference| over the outputs both kept.

    ``tolerance`` given: a layer fails when that difference relative to max(1, max |reference|)
    is above it. ``tolerance=None``: the float32 rule (``float_allowances``), which needs
    ``rows`` (the plan's steps: the graph), ``gains`` (row index -> ``gain``, e.g. from
    ``RecordingGains``; a row without one counts 1), ``input_peak`` (max |network input|) and
    ``epsilon(row)`` (the machine epsilon the backends computed that row in; float32's by default).
    """
    allowances = None
    if tolerance is None:
        if rows is None:
            raise ValueError("the float32 rule needs the plan's steps (the graph)")
        allowances = float_allowances(rows, ours, reference, gains or {}, input_peak, epsilon)
    differences = []
    for a, b in zip(ours, reference):
        if a.output is None or b.output is None:
            continue
        if a.output.shape != b.output.shape:
            diff, peak = float("inf"), float("nan")
        else:
            diff, peak = max_abs_difference(a.output, b.output), largest_finite(b.output)
        if allowances is None:
            differences.append(Difference(a.name, diff, peak, tolerance))
            continue
        share = allowances[b.index]
        scale = 1.0 if peak != peak else max(1.0, peak)  # NaN peak: the shapes differ
        differences.append(Difference(a.name, diff, peak, share.allowed / scale, share.allowed, share.carried,
                                      share.local, share.reduction_length))
    return differences


def float_allowances(rows, ours: list[LayerResult], reference: list[LayerResult], gains: dict[int, float],
                     input_peak: float = 0.0, epsilon=None) -> dict[int, Allowance]:
    """The float32 difference each row compared may show, ``allowed = carried + local``:

    - carried: both backends start from the same network input, but a later row receives inputs
      that already differ by what the earlier rows produced (measured, not estimated). The row
      can amplify that by at most its gain in the max norm (``gain``): ``carried = gain x max
      |input difference|`` (``add``: the sum over its inputs; ``mul``: each input's difference
      times the other inputs' largest values).
    - local, the row's own rounding: a sum of n rounded terms is off by about eps x sqrt(n)
      times the magnitude of what it adds up (rounding errors of random sign grow like a random
      walk; Higham & Mary 2019): ``local = SAFETY x eps x sqrt(n) x M``, n =
      ``reduction_length(row)``, M = the largest |value| among the row's inputs and output
      (the output's alone for sigmoid and tanh, whose result is bounded whatever comes in).

    A difference beyond that was made by the row itself: a wrong weight, a wrong formula, a
    reordering. A row after one that failed inherits its difference and is not blamed again.
    """
    epsilon = epsilon or (lambda row: FLOAT32_EPS)
    ours_by_index = {r.index: r.output for r in ours if r.output is not None}
    ref_by_index = {r.index: r.output for r in reference if r.output is not None}
    # Every network input is the same array on both sides.
    entries = {INPUT, *(i for row in rows for i in row.inputs if i < 0)}
    differences, peaks = dict.fromkeys(entries, 0.0), dict.fromkeys(entries, float(input_peak))
    allowances: dict[int, Allowance] = {}
    for row in rows:
        a, b = ours_by_index.get(row.index), ref_by_index.get(row.index)
        if b is None:
            continue
        peaks[row.index] = out = largest_finite(b)
        if a is not None:
            differences[row.index] = max_abs_difference(a, b) if a.shape == b.shape else math.inf
        incoming = [differences.get(i, math.inf) for i in row.inputs]  # an input not kept: unknown
        if row.layer.multiplies_inputs:  # d(ab) = a db + b da: each difference times the others' peaks
            others = [math.prod(peaks.get(j, math.inf) for k, j in enumerate(row.inputs) if k != i)
                      for i in range(len(row.inputs))]
            spread = sum(d * other if d and other else 0.0 for d, other in zip(incoming, others))
        else:
            spread = sum(incoming) if row.layer.sums_inputs else max(incoming, default=0.0)
        amplification = gains.get(row.index, 1.0)
        carried = amplification * spread if spread and amplification else 0.0
        magnitude = out if row.layer.saturating else max([out, *(peaks.get(i, 0.0) for i in row.inputs)])
        n = reduction_length(row)
        local = max(SAFETY * epsilon(row) * rounding_factor(row, n) * magnitude, SAFETY * FLOAT32_TINY)
        allowances[row.index] = Allowance(carried + local, carried, local, n)
    return allowances


FLOAT32_TINY = float(numpy.finfo(numpy.float32).tiny)  # differences below it: subnormals flushed to zero


def gain(row, arrays: dict) -> float:
    """The most a difference of d in the step's inputs can change an output (max norm), per unit
    d: its layer kind's ``float_gain`` (conv and linear: the largest L1 norm of a filter or weight
    row; sigmoid 1/4; 1 for ReLU, pools and copies; ...)."""
    return row.layer.float_gain(row, arrays)


def rounding_factor(row, n: int) -> float:
    """How many eps of the magnitude one output's rounding is worth (the kind's ``rounding_factor``)."""
    return row.layer.rounding_factor(row, n)


def reduction_length(row) -> int:
    """How many input values one output value of the step combines (the kind's ``reduction_length``:
    C/groups x kernel volume for conv, in_features for linear, the window for average pools, ...)."""
    return row.layer.reduction_length(row)


def max_abs_difference(ours: numpy.ndarray, reference: numpy.ndarray) -> float:
    """Equal values count as no difference, infinities and NaNs included (a max-pool window that
    sees only padding is -inf on every backend); a NaN on one side only is an infinite one."""
    ours, reference = ours.astype(numpy.float64), reference.astype(numpy.float64)
    same = (ours == reference) | (numpy.isnan(ours) & numpy.isnan(reference))
    with numpy.errstate(invalid="ignore"):
        diff = numpy.where(same, 0.0, numpy.abs(ours - reference))
    return float(numpy.nan_to_num(diff, nan=numpy.inf).max()) if diff.size else 0.0


def largest_finite(array: numpy.ndarray) -> float:
    finite = numpy.abs(array[numpy.isfinite(array)])
    return float(finite.max()) if finite.size else 0.0
