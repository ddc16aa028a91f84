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


def load_spec(source: Any, layout: str | None = None) -> Spec:
    """``layout``: the command line's `--layout`: it shows the shapes, and reads the spec's shape
    strings where the spec declares no `layout` of its own."""
    if isinstance(source, Spec):
        return source if layout is None else replace(source, layout=layout)
    if isinstance(source, dict):
        with paused_gc():
            return build_spec(source, SourceMap(), layout=layout)
    if isinstance(source, (str, Path)):
        path = zoo.spec_path(source)
        with paused_gc():
            data, source_map = load_file(path)
            return build_spec(data, source_map, default_name=path.stem, layout=layout)
    raise SpecError(f"cannot load a spec from {type(source).__name__}; give a path, a model name or a mapping",
                    Location())


def analyze(spec: Any, rounding: str | None = None, batch: int = 1, dtype: str = "float32",
            optimizer: str = "sgd") -> Report:
    return analyze_spec(spec, rounding, batch, dtype, optimizer).report


def analyze_spec(spec: Any, rounding: str | None = None, batch: int = 1, dtype: str = "float32",
                 optimizer: str = "sgd") -> Analysis:
    """The report and the plan that executes it (backends, worked formulas: ``step.formulas()``)."""
    return _analyze_spec(load_spec(spec), rounding=rounding, batch=batch, dtype=dtype, optimizer=optimizer)
