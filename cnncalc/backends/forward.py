"""Execute a report's graph on real arrays with any backend, and compare what comes out.

The rows of ``cnncalc.analyze(spec)`` are a DAG in execution order (``row.inputs``: the rows
that feed a row, -1 = the network input). Each row runs on its backend and the actual output
shape is compared with the engine's ``row.output_shape``; no size formula is used here. An
output is freed as soon as its last reader has run, so memory follows the live set the engine
counts, not the sum of all activations.
"""
from __future__ import annotations

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


def run_forward(report, backend, batch: int = 1, seed: int = 0, input_values=None, weights_from_spec: bool = True,
                progress: Progress | None = None, *, keep: Callable[[Any], bool] | None = None,
                parameters=None, source=None) -> list[LayerResult]:
    """Run every row of ``report`` on ``backend``; one LayerResult per row run.

    ``input_values``: the network input ``[C, *spatial]`` (array, nested lists or a file path;
    batch 1 is added) or None for standard-normal values from ``seed``. ``keep(row)``: which
    outputs to return as numpy arrays. ``parameters(row, x_shape) -> {name: array}``: default
    SeededParameters (the spec's weights where given, random from ``seed`` otherwise). The run
    stops at the first row the backend cannot compute; that row carries the error.
    """
    from .parameters import SeededParameters

    base_dir = Path(report.file).parent if report.file else Path(".")
    parameters = parameters or SeededParameters(seed, weights_from_spec, base_dir, report.file, source)
    keep = keep or (lambda row: False)
    last_reader = last_readers(report.layers)
    where = source.locate(("input_values",)) if source is not None else Location(report.file, None, "input_values")
    outputs = {INPUT: backend.asarray(network_input(report, batch, seed, input_values, base_dir, where))}
    results = []
    for done, row in enumerate(report.layers, start=1):
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
            progress(done, len(report.layers), row.name)
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


def last_readers(rows) -> dict[int, int]:
    """Output index (-1: the input) -> index of the last row that reads it; unread outputs are
    absent (freed right after they are made, unless kept)."""
    last = {}
    for row in rows:
        for index in row.inputs:
            last[index] = row.index
    return last


def network_input(report, batch: int, seed: int, values, base_dir: Path, where: Location) -> numpy.ndarray:
    """``[batch, C, *spatial]`` float32: the given values (repeated over the batch) or standard
    normal from ``seed``."""
    shape = tuple(report.input_shape)
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
@dataclass(frozen=True)
class Difference:
    """How far one layer's output on a backend is from the reference backend's."""

    name: str
    max_abs_diff: float
    max_abs: float  # largest magnitude in the reference output
    tolerance: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(1.0, self.max_abs)

    @property
    def ok(self) -> bool:
        return self.relative <= self.tolerance  # NaN compares False: never ok

    def to_dict(self) -> dict:
        return {"name": self.name, "max_abs_diff": self.max_abs_diff, "max_abs": self.max_abs,
                "relative": self.relative, "ok": self.ok}


def compare_outputs(ours: list[LayerResult], reference: list[LayerResult], tolerance: float) -> list[Difference]:
    """Per layer: max |ours - reference| relative to max(1, max |reference|); both kept outputs."""
    differences = []
    for a, b in zip(ours, reference):
        if a.output is None or b.output is None:
            continue
        if a.output.shape != b.output.shape:
            differences.append(Difference(a.name, float("inf"), float("nan"), tolerance))
            continue
        differences.append(Difference(a.name, max_abs_difference(a.output, b.output), largest_finite(b.output),
                                      tolerance))
    return differences


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
