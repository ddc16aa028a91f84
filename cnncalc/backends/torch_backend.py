"""The PyTorch backend on ``--device cpu|cuda``: every step's layer kind computes its ``forward``
with ``torch_ops``, the op interface over ``torch.nn.functional``.
"""
from __future__ import annotations

import numpy
import torch

from . import torch_ops
from .common import keep_freed_memory
from .memory import host_available_bytes

# ----------------------------------------------------------------------------- the backend
FLOAT32_EPS = 2.0 ** -23
TF32_EPS = 2.0 ** -10  # TF32 keeps 10 of float32's 23 mantissa bits
TF32_SWITCHES = {  # PyTorch's switch that lets each kind of GPU math (a layer's ``gpu_math``) run in TF32
    "convolution": lambda: torch.backends.cudnn.allow_tf32,
    "matmul": lambda: torch.backends.cuda.matmul.allow_tf32,
}


class TorchBackend:
    name = "torch"

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._device = torch.device(device)

    def asarray(self, array):
        if isinstance(array, torch.Tensor):
            return array.to(self._device)
        host = numpy.require(array, dtype=numpy.float32, requirements=("C", "W"))  # from_numpy shares memory
        return torch.from_numpy(host).to(self._device)

    def to_numpy(self, array) -> numpy.ndarray:
        return array.detach().cpu().numpy()

    def run(self, step, inputs: list, params: dict):
        with torch.inference_mode():
            return step.layer.forward(torch_ops, inputs, params, step)

    def synchronize(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    def prepare(self, steps, batch: int) -> None:
        pass  # torch.nn.functional needs nothing loaded per pass

    kernels = None  # always torch.nn.functional

    def epsilon(self, layer) -> float:
        """The machine epsilon ``layer`` is computed in, for the cross-check's float32 rule: TF32's
        (2**-10) for convolutions and matmuls PyTorch is allowed to run in TF32 on the GPU
        (Ampere or newer; convolutions by default), float32's otherwise."""
        switch = TF32_SWITCHES.get(layer.gpu_math)
        if self._device.type == "cuda" and switch is not None and switch():
            if torch.cuda.get_device_capability(self._device)[0] >= 8:
                return TF32_EPS
        return FLOAT32_EPS

    def available_bytes(self) -> int | None:
        if self._device.type == "cuda":
            return torch.cuda.mem_get_info(self._device)[0]
        return host_available_bytes()


def load(device: str) -> TorchBackend:
    from .registry import BackendUnavailable

    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("--device cuda needs a CUDA GPU that PyTorch can use, and "
                                 f"torch.cuda.is_available() is False here (PyTorch {torch.__version__}); "
                                 "use --device cpu")
    keep_freed_memory()  # as the numpy backend does: both measured on equal terms
    return TorchBackend(device)
