"""Fully connected layers and flatten."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..explain import linear_lines
from ..formulas import prod
from .base import (GLOBAL, Formula, Leaf, Outcome, Param, PosInt, PyTorchCode, Saved, largest_row_l1, py_arguments,
                   unless)


class Linear(Leaf):
    """Fully connected. A non-flat input is flattened first, as the lecture's FC layer does; with
    `flatten: false` it applies to the last axis alone, [..., C] -> [..., features], as nn.Linear
    on a channels-last tensor (ConvNeXt's MLP): every position by itself, so the receptive field
    is unchanged. On a flat input [C] both are the same layer."""

    kind: ClassVar[str] = "linear"
    gpu_math: ClassVar[str] = "matmul"
    family: ClassVar[str] = "fc"
    primary: ClassVar[str] = "features"
    features: PosInt = Field(description="number of output features (neurons)")
    bias: bool = Field(True, description="whether each output has a bias")
    weights: list | str | None = Field(None, description="explicit [out, in] weights for `cnncalc run` (list or path)")
    biases: list | str | None = Field(None, description="explicit biases for `cnncalc run` (list or file path)")
    flatten: bool = Field(True, description="flatten a non-flat input first; false: apply to the last axis alone "
                                            "(nn.Linear on a channels-last tensor)")

    def _last_axis(self, shape) -> bool:
        """Whether the layer works on the last axis of a non-flat input (`flatten: false`)."""
        return not self.flatten and len(shape) > 1

    def infer(self, shape, ctx):
        if self._last_axis(shape):
            return self._infer_last_axis(shape)
        n_in = prod(shape)
        weights = n_in * self.features
        return Outcome(
            shape=(self.features,),
            weights=weights,
            biases=self.features if self.bias else 0,
            macs=weights,
            bias_muls=self.features if self.bias else 0,
            rf=GLOBAL,
        )

    def _infer_last_axis(self, shape):
        positions = prod(shape[:-1])  # each applies the same [features, C] matrix
        weights = shape[-1] * self.features
        return Outcome(
            shape=(*shape[:-1], self.features),
            weights=weights,
            biases=self.features if self.bias else 0,
            macs=positions * weights,
            bias_muls=positions * self.features if self.bias else 0,
        )

    def explain(self, step):
        if not self._last_axis(step.input_shape):
            return linear_lines(prod(step.input_shape), self.features, self.bias)
        c, f, n = step.input_shape[-1], self.features, prod(step.input_shape[:-1])
        params = ("(C_in + 1)*C_out", f"({c} + 1)*{f}", str((c + 1) * f)) if self.bias else \
            ("C_in*C_out", f"{c}*{f}", str(c * f))
        lines = [Formula("last axis", "C_out", "", str(f)), Formula("params", *params, "params"),
                 Formula("MACs", "positions*C_in*C_out", f"{n}*{c}*{f}", str(n * c * f), "macs")]
        if self.bias:
            lines.append(Formula("MULs with bias", "positions*(C_in + 1)*C_out", f"{n}*({c} + 1)*{f}",
                                 str(n * (c + 1) * f), "muls_with_bias"))
        return lines

    def tensors(self, step, x_shape):
        # the last axis with `flatten: false`, else all of a sample: a non-flat input is flattened first
        features_in = x_shape[-1] if self._last_axis(x_shape[1:]) else prod(x_shape[1:])
        tensors = {"weight": Param((self.features, features_in), "he", features_in, "[out, in]")}
        if self.bias:
            tensors["bias"] = Param((self.features,), "bias", features_in, "[out]")
        return tensors

    def float_gain(self, step, arrays):
        return largest_row_l1(arrays["weight"]) if "weight" in arrays else 1.0

    def reduction_length(self, step):
        return max(1, step.input_shape[-1] if self._last_axis(step.input_shape) else prod(step.input_shape))

    def autocast(self, step, device):
        return "half"  # on autocast's lower-precision list

    def saved(self, step, grad):
        """addmm / mm keep the 2-D input (a non-flat one flattened, or folded on its last axis: a view
        when it is laid out plainly, else a copy) for the weight's gradient, and the weight for the
        input's gradient, when the input requires one."""
        shape = step.input_shape
        features_in = shape[-1] if self._last_axis(shape) else prod(shape)
        saved = [Saved.input(reshape=None if len(shape) == 1 else "rows" if self._last_axis(shape) else "flatten")]
        if grad.needs_grad[0]:
            saved.append(Saved.weight(features_in * self.features))
        return saved

    def memory_order(self, step, order):
        return tuple(range(len(step.output_shape)))  # a new tensor from a matrix product: contiguous

    def pytorch(self, step):
        """nn.Linear: a non-flat input flattened first (torch.flatten), or on its last axis (`flatten: false`)."""
        shape = step.input_shape
        features_in = shape[-1] if self._last_axis(shape) else prod(shape)
        module = "nn.Linear(" + py_arguments(features_in, self.features, bias=unless(self.bias, True)) + ")"
        flattened = len(shape) > 1 and not self._last_axis(shape)
        return PyTorchCode(module, "{m}(torch.flatten({x}, 1))" if flattened else "{m}({x})")

    def onnx(self, step, graph):
        """Gemm (transB: PyTorch's [out, in] weight), after a Flatten for a non-flat input; with
        `flatten: false` on a non-flat input, MatMul by the [in, out] weight, then Add of the bias."""
        shape = step.input_shape
        if self._last_axis(shape):
            arrays = graph.arrays()
            weight = arrays["weight"].T  # [in, out]
            out = graph.node("MatMul", [graph.x, graph.parameter("weight", weight.shape, weight)])
            if "bias" in arrays:
                out = graph.node("Add", [out, graph.parameter("bias", arrays["bias"].shape, arrays["bias"])])
            return out
        x = graph.node("Flatten", [graph.x], axis=1) if len(shape) > 1 else graph.x
        params = graph.parameters()
        return graph.node("Gemm", [x, params["weight"], *([params["bias"]] if "bias" in params else [])], transB=1)

    def forward(self, ops, xs, params, step):
        if self._last_axis(xs[0].shape[1:]):
            return ops.linear_last(xs[0], params["weight"], params.get("bias"))
        return ops.linear(ops.flatten(xs[0]), params["weight"], params.get("bias"))


class Flatten(Leaf):
    kind: ClassVar[str] = "flatten"
    family: ClassVar[str] = "flatten"

    def infer(self, shape, ctx):
        return Outcome(shape=(prod(shape),))

    def pytorch(self, step):
        return PyTorchCode(None, "torch.flatten({x}, 1)")

    def output_storage(self, step):
        return "reshape"

    def saved(self, step, grad):
        return []  # a view or a copy keeps nothing for backward

    def onnx(self, step, graph):
        return graph.node("Flatten", [graph.x], axis=1)

    def forward(self, ops, xs, params, step):
        return ops.flatten(xs[0])
