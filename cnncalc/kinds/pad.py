"""`pad`: explicit padding of the spatial axes (torch.nn.ZeroPad2d, ReflectionPad2d,
ReplicationPad2d, CircularPad2d and their 1-D and 3-D forms, F.pad)."""
from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from ..errors import ShapeError
from ..explain import axis_lines
from .base import (Leaf, Outcome, PoolPadding, PyTorchCode, RFStep, Saved, pad_arguments, pad_pairs, py_literal,
                   spatial_rank)


class Pad(Leaf):
    kind: ClassVar[str] = "pad"
    family: ClassVar[str] = "pad"
    primary: ClassVar[str] = "padding"
    padding: PoolPadding = Field(description="positions added per axis: int, per-axis list, or [before, after] pairs")
    mode: Literal["zero", "reflect", "replicate", "circular"] = Field(
        "zero", description="zero (constant 0), reflect (mirror without the edge), replicate (repeat the edge), "
                            "circular (wrap around)")

    def infer(self, shape, ctx):
        rank = spatial_rank(shape, "pad")
        pairs = pad_pairs(self.padding, rank)
        for size, (before, after) in zip(shape[1:], pairs):
            if self.mode == "reflect" and max(before, after) >= size:
                raise ShapeError(f"reflect padding {max(before, after)} needs an input larger than that, and this "
                                 f"axis has {size} (PyTorch's rule: the padding is less than the size)")
            if self.mode == "circular" and max(before, after) > size:
                raise ShapeError(f"circular padding {max(before, after)} wraps more than the axis ({size}) holds")
        out = (shape[0], *(size + before + after for size, (before, after) in zip(shape[1:], pairs)))
        return Outcome(
            shape=out,
            rf=tuple(RFStep(1, 1, -before) for before, _ in pairs),  # output 0 sits `before` left of input 0
            hyper={"padding": pairs},
        )

    def explain(self, step):
        return axis_lines([("{a}1 + P_before + P_after", f"{size} + {before} + {after}", str(out))
                           for size, (before, after), out in
                           zip(step.input_shape[1:], step.hyper["padding"], step.output_shape[1:])])

    def pytorch(self, step):
        """nn.ZeroPadNd, ReflectionPadNd, ReplicationPadNd or CircularPadNd, padding as F.pad orders it."""
        name = {"zero": "ZeroPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad",
                "circular": "CircularPad"}[self.mode]
        return PyTorchCode(f"nn.{name}{len(step.input_shape) - 1}d({py_literal(pad_arguments(step.hyper['padding']))})")

    def onnx(self, step, graph):
        """Pad of the spatial axes (zero: constant, reflect, replicate: edge, circular: wrap)."""
        pairs = step.hyper["padding"]
        pads = [0, 0, *(int(b) for b, _ in pairs), 0, 0, *(int(a) for _, a in pairs)]
        mode = {"zero": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[self.mode]
        return graph.node("Pad", [graph.x, graph.constant(pads, label="pads")], mode=mode)

    def saved(self, step, grad):
        """Reflection and replication padding keep their input; zero and circular padding keep nothing."""
        return [Saved.input()] if self.mode in ("reflect", "replicate") else []

    def autocast(self, step, device):
        """CPU autocast's float32 list has reflection_pad1d/2d and replication_pad1d/2d/3d."""
        rank = len(step.input_shape) - 1
        listed = (self.mode == "reflect" and rank <= 2) or self.mode == "replicate"
        return "float32" if device == "cpu" and listed else "follow"

    def forward(self, ops, xs, params, step):
        return ops.pad(xs[0], step.hyper["padding"], self.mode)
