"""Element-wise layers: activations and dropout (the identity at inference)."""
from __future__ import annotations

from typing import Annotated, ClassVar

from annotated_types import Ge, Lt
from pydantic import Field

from .base import Elementwise


class Dropout(Elementwise):
    kind: ClassVar[str] = "dropout"
    family: ClassVar[str] = "dropout"
    primary: ClassVar[str] = "p"
    p: Annotated[float, Ge(0), Lt(1)] = Field(0.5, description="probability of zeroing an element")

    def forward(self, ops, xs, params, step):
        return xs[0]  # inference: the identity


class Activation(Elementwise):
    family: ClassVar[str] = ""  # default names use the kind: relu1, tanh2
    op: ClassVar[str]  # the op interface's function of the one input

    def forward(self, ops, xs, params, step):
        return getattr(ops, self.op)(xs[0])


class ReLU(Activation):
    kind: ClassVar[str] = "relu"
    op: ClassVar[str] = "relu"


class LeakyReLU(Activation):
    kind: ClassVar[str] = "leaky_relu"
    primary: ClassVar[str] = "negative_slope"
    negative_slope: float = Field(0.01, description="slope for negative inputs")

    def float_gain(self, step, arrays):
        return max(1.0, abs(self.negative_slope))

    def forward(self, ops, xs, params, step):
        return ops.leaky_relu(xs[0], self.negative_slope)


class Sigmoid(Activation):
    kind: ClassVar[str] = "sigmoid"
    op: ClassVar[str] = "sigmoid"
    saturating: ClassVar[bool] = True

    def float_gain(self, step, arrays):
        return 0.25  # its steepest slope


class Tanh(Activation):
    kind: ClassVar[str] = "tanh"
    op: ClassVar[str] = "tanh"
    saturating: ClassVar[bool] = True


class ReLU6(Activation):
    kind: ClassVar[str] = "relu6"
    op: ClassVar[str] = "relu6"


class GELU(Activation):
    kind: ClassVar[str] = "gelu"
    op: ClassVar[str] = "gelu"

    def float_gain(self, step, arrays):
        return 1.13  # its steepest slope


class Softmax(Activation):
    kind: ClassVar[str] = "softmax"

    def float_gain(self, step, arrays):
        return 0.5  # the largest max-norm gain of its Jacobian

    def reduction_length(self, step):
        return max(1, step.input_shape[0])

    def forward(self, ops, xs, params, step):
        return ops.softmax(xs[0], axis=1)  # over channels / features
