"""The NumPy backend: every step's layer kind computes its ``forward`` with ``ops`` (sliding
windows, im2col, zero insertion), the independent oracle for the engine's shapes.

``ArrayBackend`` is array-module agnostic; the CuPy backend is the same class on cupy arrays.
"""
from __future__ import annotations

import math

import numpy

from . import ops
from .common import keep_freed_memory
from .memory import host_available_bytes


# ----------------------------------------------------------------------------- the backend
class ArrayBackend:
    """A backend for any NumPy-compatible array module (numpy here, cupy in cupy_backend)."""

    def __init__(self, xp, name: str = "numpy", device: str = "cpu"):
        self.xp = xp
        self.name = name
        self.device = device

    def asarray(self, array):
        return self.xp.asarray(array)

    def to_numpy(self, array) -> numpy.ndarray:
        return numpy.asarray(array)

    def run(self, step, inputs: list, params: dict):
        # -inf from a max-pool window that sees only padding may flow on into NaN: a value to
        # report, not a warning to print
        with numpy.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return step.layer.forward(ops, inputs, params, step)

    def synchronize(self) -> None:
        pass

    def prepare(self, steps, batch: int) -> None:
        """Before a pass: whether it uses the compiled kernels (``compiled.activate_for``: by the
        values it computes), loaded now so that the first layers' times (and memory) are theirs alone."""
        from . import compiled

        if self.xp is numpy:
            compiled.activate_for(batch * sum(math.prod(step.output_shape) for step in steps))

    @property
    def kernels(self) -> str | None:
        """What computes the ops (the compiled kernels are NumPy's only)."""
        from .compiled import description

        return description() if self.xp is numpy else None

    def available_bytes(self) -> int | None:
        return host_available_bytes()


def load(device: str) -> ArrayBackend:
    from .registry import BackendUnavailable

    if device != "cpu":
        raise BackendUnavailable("the numpy backend runs on the CPU only; use --backend torch or cupy "
                                 "with --device cuda")
    keep_freed_memory()
    return ArrayBackend(numpy)
