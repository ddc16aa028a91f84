"""The CuPy backend: the NumPy backend's ops (``ops`` is array-module agnostic) on GPU arrays."""
from __future__ import annotations

import cupy
import numpy

from .numpy_backend import ArrayBackend


class CupyBackend(ArrayBackend):
    def __init__(self):
        super().__init__(cupy, name="cupy", device="cuda")

    def asarray(self, array):
        return cupy.asarray(array)

    def to_numpy(self, array) -> numpy.ndarray:
        return cupy.asnumpy(array)

    def synchronize(self) -> None:
        cupy.cuda.get_current_stream().synchronize()

    def available_bytes(self) -> int | None:
        return cupy.cuda.runtime.memGetInfo()[0]


def load(device: str) -> CupyBackend:
    from .registry import BackendUnavailable

    if device != "cuda":
        raise BackendUnavailable("the cupy backend runs on a CUDA GPU only; use --device cuda "
                                 "(or --backend numpy / torch for the CPU)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise BackendUnavailable(f"the cupy backend needs a CUDA GPU, and CUDA reports none ({exc})") from None
    if count == 0:
        raise BackendUnavailable("the cupy backend needs a CUDA GPU, and CUDA reports none")
    return CupyBackend()
