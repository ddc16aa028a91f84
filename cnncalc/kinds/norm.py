"""Normalisation: batch norm and local response normalisation (AlexNet, VGG A-LRN)."""
from __future__ import annotations

import math
from typing import Annotated, ClassVar

from annotated_types import Gt
from pydantic import Field

from .base import Leaf, Outcome, Param, PosInt


class BatchNorm(Leaf):
    """gamma and beta are trainable; running mean and variance are non-trainable (as Keras counts)."""

    kind: ClassVar[str] = "batchnorm"
    family: ClassVar[str] = "bn"
    eps: Annotated[float, Gt(0)] = Field(1e-5, description="added to the variance")
    affine: bool = Field(True, description="whether gamma and beta are learned")

    def infer(self, shape, ctx):
        channels = shape[0]
        learned = channels if self.affine else 0
        return Outcome(shape=shape, weights=learned, biases=learned, buffers=2 * channels)

    def tensors(self, step, x_shape):
        channels = (x_shape[1],)
        tensors = {"running_mean": Param(channels, "zeros"), "running_var": Param(channels, "ones")}
        if self.affine:
            tensors.update(weight=Param(channels, "scale"), bias=Param(channels, "shift"))
        return tensors

    def float_gain(self, step, arrays):
        """max |gamma| / sqrt(var + eps)."""
        import numpy

        weight, var = arrays.get("weight"), arrays.get("running_var")
        scale = float(numpy.abs(weight).max()) if weight is not None and weight.size else 1.0
        floor = float(var.min()) if var is not None and var.size else 1.0
        return scale / math.sqrt(max(floor, 0.0) + self.eps)

    def forward(self, ops, xs, params, step):
        return ops.batch_norm(xs[0], params["running_mean"], params["running_var"], params.get("weight"),
                              params.get("bias"), self.eps)


class LRN(Leaf):
    kind: ClassVar[str] = "lrn"
    family: ClassVar[str] = "lrn"
    primary: ClassVar[str] = "size"
    size: PosInt = Field(description="number of neighbouring channels to normalise over")
    alpha: float = Field(1e-4, description="scale")
    beta: float = Field(0.75, description="exponent")
    k: float = Field(1.0, description="additive constant")

    def infer(self, shape, ctx):
        return Outcome(shape=shape)

    def float_gain(self, step, arrays):
        """(1 + 2 beta sqrt(size)) / k^beta."""
        return (1 + 2 * abs(self.beta) * math.sqrt(self.size)) / self.k ** self.beta if self.k > 0 else math.inf

    def reduction_length(self, step):
        return max(1, self.size)

    def forward(self, ops, xs, params, step):
        return ops.lrn(xs[0], self.size, self.alpha, self.beta, self.k)
