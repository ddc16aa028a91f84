"""Which forward-pass backends exist, and loading one with a clear sentence when it cannot run.

Each backend module imports its array library at module level, so importing it is the test
of whether the library is installed; this module imports none of them.
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

from ..errors import CnnCalcError

BACKENDS = {"numpy": "numpy_backend", "torch": "torch_backend", "cupy": "cupy_backend"}
DEVICES = ("cpu", "cuda")
# A module that may be missing -> what to install, as the sentence says it.
LIBRARIES = {
    "numpy": "NumPy: pip install numpy",
    "torch": "PyTorch: pip install torch",
    "cupy": "CuPy and a CUDA GPU: pip install cupy-cuda12x",
}


class BackendUnavailable(CnnCalcError):
    """The chosen backend cannot run here: a missing library, or no such device."""


class Backend(Protocol):
    """What the executor needs from an array library (see numpy_backend.ArrayBackend)."""

    name: str
    device: str

    def asarray(self, array) -> Any:
        """A host float32 numpy array -> this backend's array on its device."""

    def to_numpy(self, array):
        """This backend's array -> a host numpy array."""

    def run(self, row, inputs: list, params: dict) -> Any:
        """The output of one report row, from its input arrays and parameter arrays."""

    def synchronize(self) -> None:
        """Wait for queued device work (so timings are real)."""

    def prepare(self, steps, batch: int) -> None:
        """Before a pass over ``steps`` at ``batch``: load what its ops will need (NumPy: numba's kernels)."""

    @property
    def kernels(self) -> str | None:
        """What computes the ops, where that varies (NumPy: with or without numba); else None."""

    def available_bytes(self) -> int | None:
        """Free memory on the backend's device, or None when unknown (host: /proc/meminfo)."""


def load_backend(name: str, device: str = "cpu") -> Backend:
    """The backend called ``name`` on ``device``; BackendUnavailable when it cannot run."""
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend `{name}`; choose from {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise BackendUnavailable(f"unknown device `{device}`; choose from {', '.join(DEVICES)}")
    try:
        module = importlib.import_module(f".{BACKENDS[name]}", __package__)
    except ModuleNotFoundError as exc:
        library = (exc.name or "").split(".")[0]
        if library not in LIBRARIES:
            raise  # a bug in cnncalc, not a missing optional library
        raise BackendUnavailable(f"the {name} backend needs {LIBRARIES[library]}") from None
    return module.load(device)
