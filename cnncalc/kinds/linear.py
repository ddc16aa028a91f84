"""Fully connected layers and flatten."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ..explain import linear_lines
from ..formulas import prod
from .base import GLOBAL, Leaf, Outcome, Param, PosInt, largest_row_l1


class Linear(Leaf):
    """Fully connected. A non-flat input is flattened first, as the lecture's FC layer does."""

    kind: ClassVar[str] = "linear"
    gpu_math: ClassVar[str] = "matmul"
    family: ClassVar[str] = "fc"
    primary: ClassVar[str] = "features"
    features: PosInt = Field(description="number of output features (neurons)")
    bias: bool = Field(True, description="whether each output has a bias")
    weights: list | str | None = Field(None, description="explicit [out, in] weights for `cnncalc run` (list or path)")
    biases: list | str | None = Field(None, description="explicit biases for `cnncalc run` (list or file path)")

    def infer(self, shape, ctx):
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

    def explain(self, step):
        return linear_lines(prod(step.input_shape), self.features, self.bias)

    def tensors(self, step, x_shape):
        features_in = prod(x_shape[1:])  # a non-flat input is flattened first
        tensors = {"weight": Param((self.features, features_in), "he", features_in, "[out, in]")}
        if self.bias:
            tensors["bias"] = Param((self.features,), "bias", features_in, "[out]")
        return tensors

    def float_gain(self, step, arrays):
        return largest_row_l1(arrays["weight"]) if "weight" in arrays else 1.0

    def reduction_length(self, step):
        return max(1, prod(step.input_shape))

    def forward(self, ops, xs, params, step):
        return ops.linear(ops.flatten(xs[0]), params["weight"], params.get("bias"))


class Flatten(Leaf):
    kind: ClassVar[str] = "flatten"
    family: ClassVar[str] = "flatten"

    def infer(self, shape, ctx):
        return Outcome(shape=(prod(shape),))

    def forward(self, ops, xs, params, step):
        return ops.flatten(xs[0])
