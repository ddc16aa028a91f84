"""Every layer kind, one module per family, registered in ``KINDS`` as it is defined.

A new kind is a new class in a module here (with ``infer``, ``tensors`` and ``forward``, and its
`kind: ClassVar[str] = "name"` line), its tests and its README row: ``KINDS`` finds the modules
by listing this package and imports one when a spec first names one of its kinds.
"""
from __future__ import annotations

from .base import GLOBAL, KINDS, Composite, Elementwise, Formula, Layer, Leaf, Outcome, Param, RFStep

from .merge import Merge, add_shapes, concat_shapes  # noqa: E402  (the engine merges with these)

__all__ = ["GLOBAL", "KINDS", "Composite", "Elementwise", "Formula", "Layer", "Leaf", "Merge", "Outcome", "Param",
           "RFStep", "add_shapes", "concat_shapes"]
