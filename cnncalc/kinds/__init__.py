"""Every layer kind, one module per family; importing this package registers them all in ``KINDS``.

A new kind is a new module here (its class, with ``infer``, ``tensors`` and ``forward``), its
tests and its README row: the modules are found by listing this package, nothing else changes.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import GLOBAL, KINDS, Composite, Elementwise, Formula, Layer, Leaf, Outcome, Param, RFStep

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

from .merge import Merge, add_shapes, concat_shapes  # noqa: E402  (the engine merges with these)

__all__ = ["GLOBAL", "KINDS", "Composite", "Elementwise", "Formula", "Layer", "Leaf", "Merge", "Outcome", "Param",
           "RFStep", "add_shapes", "concat_shapes"]
