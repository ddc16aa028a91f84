"""The public API behind ``cnncalc.load_spec`` and ``cnncalc.analyze``."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .engine import Analysis, analyze_spec as _analyze_spec, paused_gc
from .errors import Location, SpecError
from .report import Report
from .spec.build import Spec, build_spec
from .spec.loader import SourceMap, load_file
from . import zoo


def load_spec(source: Any, layout: str | None = None, input_shape: str | None = None,
              partial: bool = False) -> Spec:
    """``layout``: the command line's `--layout`: it shows the shapes, and reads the spec's shape
    strings where the spec declares no `layout` of its own. ``input_shape``: the command line's
    `--input` (e.g. '3x320x320', read in the spec's layout): it replaces the spec's first input, and
    fixes the size an ONNX file leaves dynamic. ``partial`` (`--partial`, ONNX files only): the
    layers before the first op cnncalc cannot map, which a note lists, instead of an error."""
    if isinstance(source, Spec):
        loaded = source if layout is None else replace(source, layout=layout)
    elif isinstance(source, dict):
        with paused_gc():
            loaded = build_spec(source, SourceMap(), layout=layout)
    elif isinstance(source, (str, Path)):
        path = zoo.spec_path(source)
        with paused_gc():
            if path.suffix.lower() == ".onnx" and (input_shape is not None or partial):
                return _onnx_spec(path, layout, input_shape, partial)  # the size is needed to read the graph
            if partial:
                raise SpecError("--partial applies to ONNX files (the layers before the first op cnncalc cannot "
                                "map); a spec's table already shows the layers before one that fails",
                                Location(file="--partial"))
            data, source_map = load_file(path)
            loaded = build_spec(data, source_map, default_name=path.stem, layout=layout)
    else:
        raise SpecError(f"cannot load a spec from {type(source).__name__}; give a path, a model name or a mapping",
                        Location())
    return loaded if input_shape is None else with_input_option(loaded, input_shape)


def _onnx_spec(path: Path, layout: str | None, input_shape: str | None, partial: bool) -> Spec:
    from .importers.onnx_import import read_onnx
    from .report import Finding

    shape = None if input_shape is None else input_option_reading(input_shape, layout).shape
    imported = read_onnx(path, shape, partial)
    spec = build_spec(imported.data, SourceMap(imported.file), default_name=path.stem, layout=layout)
    if imported.stopped_at is None:
        return spec
    left_out = Finding(Location(file=str(path)), f"--partial: {len(imported.data['layers'])} layers, up to the first "
                       f"op cnncalc cannot map; not analysed: {'; '.join(imported.unsupported)}")
    return replace(spec, notes=[*spec.notes, left_out])


def with_input_option(loaded: Spec, input_shape: str) -> Spec:
    """The spec with its first input replaced by `--input` (read in the spec's layout). Its notes
    become the reading's own: those of the replaced input no longer apply."""
    from .report import Finding

    reading = input_option_reading(input_shape, loaded.chosen_layout)
    notes = [Finding(Location(file="--input"), reading.note)] if reading.note else []
    return loaded.with_input(reading.shape, notes=notes,
                             layout=loaded.chosen_layout or reading.layout)


def input_option_reading(input_shape: str, layout: str | None):
    """`--input` as a ``Reading`` (shape, layout, note), located at the option."""
    from .spec.build import read_input

    return read_input(input_shape, layout, Location(file="--input"))


def analyze(spec: Any, rounding: str | None = None, batch: int = 1, dtype: str = "float32",
            optimizer: str = "sgd", amp: str | None = None, checkpoint: bool = False,
            optimizer_dtype: str | None = None, train_on: str = "cuda") -> Report:
    return analyze_spec(spec, rounding, batch, dtype, optimizer, amp, checkpoint, optimizer_dtype, train_on).report


def analyze_spec(spec: Any, rounding: str | None = None, batch: int = 1, dtype: str = "float32",
                 optimizer: str = "sgd", amp: str | None = None, checkpoint: bool = False,
                 optimizer_dtype: str | None = None, train_on: str = "cuda") -> Analysis:
    """The report and the plan that executes it (backends, worked formulas: ``step.formulas()``).
    ``amp`` ("fp16", "bf16"), ``checkpoint``, ``optimizer_dtype`` and ``train_on`` ("cuda", "cpu")
    say how the training memory is counted (cnncalc/training.py)."""
    return _analyze_spec(load_spec(spec), rounding=rounding, batch=batch, dtype=dtype, optimizer=optimizer, amp=amp,
                         checkpoint=checkpoint, optimizer_dtype=optimizer_dtype, train_on=train_on)
