"""`layer_scale`: ConvNeXt's learned per-channel scale (torchvision's CNBlock: a parameter of
shape [C, 1, 1] started at a small value, multiplying the block's output before the residual add)."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from .base import Constant, Formula, Leaf, Outcome, PyTorchCode, Saved, py_literal


class LayerScale(Leaf):
    kind: ClassVar[str] = "layer_scale"
    primary: ClassVar[str] = "init"
    init: float = Field(1e-6, description="the scales' initial value")

    def infer(self, shape, ctx):
        return Outcome(shape=shape, weights=shape[0])  # one scale per channel

    def explain(self, step):
        return [Formula("params", "C", "", str(step.input_shape[0]), "params")]

    def tensors(self, step, x_shape):
        # [C, 1, ..., 1]: broadcast over the spatial axes, as torchvision's [C, 1, 1]; [C] for a flat input
        shape = (x_shape[1], *(1 for _ in x_shape[2:]))
        return {"weight": Constant(shape, value=self.init, layout="[C" + ", 1" * (len(x_shape) - 2) + "]")}

    def float_gain(self, step, arrays):
        weight = arrays.get("weight")
        return float(abs(weight).max()) if weight is not None and weight.size else abs(self.init)

    def pytorch(self, step):
        """A [C, 1, ..., 1] nn.Parameter at the row's name times the input, as torchvision's CNBlock
        (whose state_dict then loads as it is)."""
        shape = (step.input_shape[0], *(1 for _ in step.input_shape[1:]))
        return PyTorchCode(call="{x} * {m}", parameter=f"nn.Parameter(torch.full({py_literal(shape)}, {py_literal(float(self.init))}))")

    def onnx(self, step, graph):
        """Mul by the [C, 1, ..., 1] scale initializer (named ROW.weight)."""
        return graph.node("Mul", [graph.x, graph.parameters()["weight"]])

    def pytorch_state(self, step, arrays):
        return {"": arrays["weight"]}  # the parameter itself carries the row's name

    def saved(self, step, grad):
        """x * scale keeps x for the scale's gradient (and the scale, a parameter, for x's)."""
        return [Saved.input()]

    def output_dtype(self, step, grad):
        return "float32" if grad.amp else grad.compute  # a half input times the float32 scale is float32

    def memory_order(self, step, order):
        return order  # element-wise: laid out as its input

    def forward(self, ops, xs, params, step):
        return xs[0] * params["weight"]  # a broadcasting product, the same on every array type

