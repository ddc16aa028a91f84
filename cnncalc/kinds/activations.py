"""Element-wise layers: activations (PReLU with learned slopes), dropout and drop path (the
identity at inference)."""
from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from annotated_types import Ge, Lt
from pydantic import Field

from ..errors import ShapeError
from .base import (COMPUTE, Constant, Elementwise, Formula, Leaf, Outcome, PosInt, PyTorchCode, Saved, py_arguments,
                   unless)


class Dropout(Elementwise):
    kind: ClassVar[str] = "dropout"
    family: ClassVar[str] = "dropout"
    primary: ClassVar[str] = "p"
    p: Annotated[float, Ge(0), Lt(1)] = Field(0.5, description="probability of zeroing an element")

    def pytorch(self, step):
        return PyTorchCode(f"nn.Dropout(p={self.p!r})")

    def onnx(self, step, graph):
        """Dropout with its ratio (the identity at inference, training_mode absent)."""
        return graph.node("Dropout", [graph.x, graph.constant(self.p, "float32", "ratio")])

    def output_storage(self, step):
        return "view" if self.p == 0 else "new"  # F.dropout returns its input itself when p is 0

    def saved(self, step, grad):
        """The mask: CUDA's fused dropout keeps it as bool; on the CPU, F.dropout multiplies by a noise
        tensor of the input's dtype (0 or 1/(1-p)), which the product saves."""
        if self.p == 0:
            return []
        elements = grad.batch * math.prod(step.input_shape)
        return [Saved.new(elements, "bool" if grad.device == "cuda" else COMPUTE, "mask")]

    def forward(self, ops, xs, params, step):
        return xs[0]  # inference: the identity


class DropPath(Elementwise):
    """Stochastic depth (torchvision's StochasticDepth): in training it drops a residual branch for
    whole samples ("row") or the whole batch ("batch"); at inference it is the identity."""

    kind: ClassVar[str] = "drop_path"
    primary: ClassVar[str] = "p"
    p: Annotated[float, Ge(0), Lt(1)] = Field(description="probability of dropping the whole branch in training")
    mode: Literal["row", "batch"] = Field("row", description="row: per sample; batch: the whole batch at once")

    def pytorch(self, step):
        """StochasticDepth, written into the file (torchvision.ops has it; the file needs PyTorch alone)."""
        return PyTorchCode("StochasticDepth(" + py_arguments(self.p, self.mode) + ")",
                           helpers=(("StochasticDepth", STOCHASTIC_DEPTH),))

    def onnx(self, step, graph):
        """Identity: stochastic depth is the identity at inference, and ONNX has no such op."""
        return graph.node("Identity", [graph.x])

    def output_storage(self, step):
        return "view" if self.p == 0 else "new"  # StochasticDepth returns its input when p is 0

    def saved(self, step, grad):
        """x * keep / (1 - p): the product saves the keep mask, one value per sample ("row") or one
        for the batch ("batch"), in the input's dtype; dividing by a number saves nothing."""
        if self.p == 0:
            return []
        return [Saved.new(grad.batch if self.mode == "row" else 1, COMPUTE, "keep mask")]

    def forward(self, ops, xs, params, step):
        return xs[0]  # inference: the identity


class Activation(Elementwise):
    family: ClassVar[str] = ""  # default names use the kind: relu1, tanh2
    op: ClassVar[str]  # the op interface's function of the one input
    gain: ClassVar[float] = 1.0  # the most it scales a difference in its input: its steepest slope

    def float_gain(self, step, arrays):
        return self.gain
    torch_module: ClassVar[str] = ""  # its PyTorch module, e.g. nn.ReLU()
    onnx_op: ClassVar[str | None] = None  # its one ONNX op, e.g. Relu; None: the kind writes its own nodes
    saves: ClassVar[str] = "input"  # what its backward reads: its input, or its output (relu, sigmoid, tanh, softmax)

    def saved(self, step, grad):
        return [Saved.output() if self.saves == "output" else Saved.input()]

    def pytorch(self, step):
        return PyTorchCode(self.torch_module)

    def onnx(self, step, graph):
        if self.onnx_op is None:
            return super().onnx(step, graph)
        return graph.node(self.onnx_op, [graph.x])

    def forward(self, ops, xs, params, step):
        return getattr(ops, self.op)(xs[0])


class ReLU(Activation):
    kind: ClassVar[str] = "relu"
    torch_module: ClassVar[str] = "nn.ReLU()"
    op: ClassVar[str] = "relu"
    onnx_op: ClassVar[str] = "Relu"
    saves: ClassVar[str] = "output"


class LeakyReLU(Activation):
    kind: ClassVar[str] = "leaky_relu"
    primary: ClassVar[str] = "negative_slope"
    negative_slope: float = Field(0.01, description="slope for negative inputs")

    def float_gain(self, step, arrays):
        return max(1.0, abs(self.negative_slope))

    def pytorch(self, step):
        return PyTorchCode(f"nn.LeakyReLU({self.negative_slope!r})")

    def onnx(self, step, graph):
        return graph.node("LeakyRelu", [graph.x], alpha=float(self.negative_slope))

    def forward(self, ops, xs, params, step):
        return ops.leaky_relu(xs[0], self.negative_slope)


class Sigmoid(Activation):
    kind: ClassVar[str] = "sigmoid"
    torch_module: ClassVar[str] = "nn.Sigmoid()"
    op: ClassVar[str] = "sigmoid"
    onnx_op: ClassVar[str] = "Sigmoid"
    saturating: ClassVar[bool] = True
    saves: ClassVar[str] = "output"

    gain: ClassVar[float] = 0.25  # its steepest slope


class Tanh(Activation):
    kind: ClassVar[str] = "tanh"
    torch_module: ClassVar[str] = "nn.Tanh()"
    op: ClassVar[str] = "tanh"
    onnx_op: ClassVar[str] = "Tanh"
    saturating: ClassVar[bool] = True
    saves: ClassVar[str] = "output"


class ReLU6(Activation):
    kind: ClassVar[str] = "relu6"
    torch_module: ClassVar[str] = "nn.ReLU6()"
    op: ClassVar[str] = "relu6"

    def onnx(self, step, graph):
        """Clip to [0, 6]."""
        return graph.node("Clip", [graph.x, graph.constant(0.0, "float32", "min"), graph.constant(6.0, "float32", "max")])


class GELU(Activation):
    kind: ClassVar[str] = "gelu"
    torch_module: ClassVar[str] = "nn.GELU()"
    op: ClassVar[str] = "gelu"
    onnx_op: ClassVar[str] = "Gelu"  # opset 20; the exact (erf) form, as nn.GELU()

    gain: ClassVar[float] = 1.13  # its steepest slope


class Softmax(Activation):
    """Over channels / features (axis 1 of [N, C, ...])."""

    kind: ClassVar[str] = "softmax"
    torch_module: ClassVar[str] = "nn.Softmax(dim=1)"
    op: ClassVar[str] = "softmax"
    onnx_op: ClassVar[str] = "Softmax"
    gain: ClassVar[float] = 0.5  # the largest max-norm gain of its Jacobian
    saves: ClassVar[str] = "output"

    def autocast(self, step, device):
        return "float32" if device == "cuda" else "follow"  # CUDA autocast's float32 list (softmax, log_softmax)

    def onnx(self, step, graph):
        return graph.node(self.onnx_op, [graph.x], axis=1)

    def reduction_length(self, step):
        return max(1, step.input_shape[0])

    def forward(self, ops, xs, params, step):
        return getattr(ops, self.op)(xs[0], axis=1)


class SiLU(Activation):
    """x * sigmoid(x), also called swish."""

    kind: ClassVar[str] = "silu"
    torch_module: ClassVar[str] = "nn.SiLU()"
    op: ClassVar[str] = "silu"

    def onnx(self, step, graph):
        """x * Sigmoid(x), as PyTorch's exporter writes it."""
        return graph.node("Mul", [graph.x, graph.node("Sigmoid", [graph.x])])

    gain: ClassVar[float] = 1.1  # its steepest slope, 1.0998


class Hardswish(Activation):
    kind: ClassVar[str] = "hardswish"
    torch_module: ClassVar[str] = "nn.Hardswish()"
    op: ClassVar[str] = "hardswish"
    onnx_op: ClassVar[str] = "HardSwish"

    gain: ClassVar[float] = 1.5  # its steepest slope, at x = 3


class Hardsigmoid(Activation):
    kind: ClassVar[str] = "hardsigmoid"
    torch_module: ClassVar[str] = "nn.Hardsigmoid()"
    op: ClassVar[str] = "hardsigmoid"

    def onnx(self, step, graph):
        """HardSigmoid with PyTorch's alpha 1/6 and beta 0.5 (ONNX's default alpha is 0.2)."""
        return graph.node("HardSigmoid", [graph.x], alpha=1 / 6, beta=0.5)
    saturating: ClassVar[bool] = True

    gain: ClassVar[float] = 1 / 6  # its slope between -3 and 3


class Mish(Activation):
    kind: ClassVar[str] = "mish"
    torch_module: ClassVar[str] = "nn.Mish()"
    op: ClassVar[str] = "mish"
    onnx_op: ClassVar[str] = "Mish"

    gain: ClassVar[float] = 1.09  # its steepest slope, 1.0885


class ELU(Activation):
    kind: ClassVar[str] = "elu"
    primary: ClassVar[str] = "alpha"
    alpha: float = Field(1.0, description="scale of the negative part, alpha * (exp(x) - 1)")

    def float_gain(self, step, arrays):
        return max(1.0, abs(self.alpha))  # the negative part's slope is at most |alpha|

    def pytorch(self, step):
        return PyTorchCode("nn.ELU(" + py_arguments(alpha=unless(self.alpha, 1.0)) + ")")

    def onnx(self, step, graph):
        return graph.node("Elu", [graph.x], alpha=float(self.alpha))

    def forward(self, ops, xs, params, step):
        return ops.elu(xs[0], self.alpha)


class SELU(Activation):
    kind: ClassVar[str] = "selu"
    torch_module: ClassVar[str] = "nn.SELU()"
    op: ClassVar[str] = "selu"
    onnx_op: ClassVar[str] = "Selu"  # ONNX's default alpha and gamma are PyTorch's

    gain: ClassVar[float] = 1.7581  # scale * alpha: its slope just below 0


class LogSoftmax(Softmax):
    kind: ClassVar[str] = "log_softmax"
    torch_module: ClassVar[str] = "nn.LogSoftmax(dim=1)"
    op: ClassVar[str] = "log_softmax"
    onnx_op: ClassVar[str] = "LogSoftmax"
    gain: ClassVar[float] = 2.0  # the largest max-norm of its Jacobian, I - softmax


class PReLU(Leaf):
    """Leaky ReLU whose negative slopes are learned (torch.nn.PReLU): one shared, or one per channel."""

    kind: ClassVar[str] = "prelu"
    primary: ClassVar[str] = "num_parameters"
    num_parameters: PosInt = Field(1, description="learned slopes: 1 (shared) or the input's channel count")
    init: float = Field(0.25, description="the slopes' initial value")

    def infer(self, shape, ctx):
        channels = shape[0]
        if self.num_parameters not in (1, channels):
            raise ShapeError(f"prelu has num_parameters {self.num_parameters} but its input has {channels} "
                             f"channels; use 1 (one shared slope) or {channels} (one per channel)")
        return Outcome(shape=shape, weights=self.num_parameters)

    def explain(self, step):
        return [Formula("params", "num_parameters", "", str(self.num_parameters), "params")]

    def tensors(self, step, x_shape):
        return {"weight": Constant((self.num_parameters,), value=self.init, layout="[num_parameters]")}

    def float_gain(self, step, arrays):
        weight = arrays.get("weight")
        steepest = float(abs(weight).max()) if weight is not None and weight.size else abs(self.init)
        return max(1.0, steepest)

    def pytorch(self, step):
        return PyTorchCode("nn.PReLU(" + py_arguments(num_parameters=unless(self.num_parameters, 1),
                                                       init=unless(self.init, 0.25)) + ")")

    def onnx(self, step, graph):
        """PRelu, its slopes [C, 1, ..., 1] (one per channel, broadcast over the spatial axes) or [1]."""
        slopes = graph.arrays()["weight"]
        shape = (self.num_parameters, *(1 for _ in step.input_shape[1:])) if self.num_parameters > 1 else (1,)
        return graph.node("PRelu", [graph.x, graph.parameter("weight", shape, slopes)])

    def autocast(self, step, device):
        return "half"  # on autocast's lower-precision list

    def saved(self, step, grad):
        return [Saved.input(), Saved.weight(self.num_parameters)]

    def forward(self, ops, xs, params, step):
        return ops.prelu(xs[0], params["weight"])


STOCHASTIC_DEPTH = '''\
# Stochastic depth (torchvision.ops.StochasticDepth), defined here so the file needs PyTorch alone:
# in training it drops the residual branch for whole samples ("row") or the whole batch ("batch")
# and rescales the rest; at inference (model.eval()) it is the identity.
class StochasticDepth(nn.Module):
    def __init__(self, p, mode):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        size = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        keep = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)
'''
