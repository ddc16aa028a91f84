"""`identity`: passes its input on unchanged (torch.nn.Identity), e.g. a placeholder in a block."""
from __future__ import annotations

from typing import ClassVar

from .base import Elementwise, PyTorchCode


class Identity(Elementwise):
    kind: ClassVar[str] = "identity"
    family: ClassVar[str] = "identity"

    def pytorch(self, step):
        return PyTorchCode("nn.Identity()")

    def onnx(self, step, graph):
        return graph.node("Identity", [graph.x])

    def output_storage(self, step):
        return "view"  # nn.Identity returns its input itself

    def saved(self, step, grad):
        return []

    def forward(self, ops, xs, params, step):
        return xs[0]
