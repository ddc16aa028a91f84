"""Composites: structure only. Each walks the engine through the layers written inside it
(``walk``); the engine owns names, shapes, memory and the rows."""
from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar

from annotated_types import Len
from pydantic import Field

from ..errors import ShapeError
from .base import (AXES_HELP, KINDS, Axes, Composite, Elementwise, NonNegInt, Outcome, Padding, PosInt, PyTorchCode,
                   product_saved)
from .conv import Conv
from .merge import add_shapes, broadcast_shapes, concat_shapes


class Repeat(Composite):
    kind: ClassVar[str] = "repeat"
    family: ClassVar[str] = "repeat"
    times: PosInt = Field(description="how many times to repeat the layers")
    layers: list[Any] = Field(description="the layers to repeat")
    start: NonNegInt = Field(0, description="number of the first repetition in names (R.start.*)")
    label: str = Field("", description="text before each repetition's number in names: `denselayer` gives "
                                       "R.denselayer1, R.denselayer2 (torchvision's DenseNet)")

    def row_count(self) -> int:
        return self.times * sum(layer.row_count() for layer in self.layers)

    def children(self):
        return list(self.layers)

    def walk(self, engine, x, scope, name):
        body = self.layers
        single_composite = len(body) == 1 and body[0].is_composite and body[0].name is None
        for i in range(self.start, self.start + self.times):
            each = f"{name}.{self.label}{i}"
            if single_composite:  # `repeat: {name: layer3, layers: [residual: ...]}` -> layer3.1, layer3.2
                x = engine.step(body[0], x, scope, name=each)
            else:
                x = engine.sequence(body, x, scope.child(each, self.kind))
        return x


class Residual(Composite):
    kind: ClassVar[str] = "residual"
    family: ClassVar[str] = "residual"
    layers: list[Any] = Field(description="the main path F(x)")
    shortcut: list[Any] = Field(default_factory=list, description="the shortcut path; empty = identity")
    after: list[Any] = Field(default_factory=list, description="layers applied after the add, e.g. [relu]")

    def row_count(self) -> int:
        return 1 + sum(layer.row_count() for layer in self.children())

    def children(self):
        return [*self.layers, *self.shortcut, *self.after]

    def walk(self, engine, x, scope, name):
        inner = scope.child(name, self.kind)
        engine.pin(x)
        main = engine.sequence(self.layers, x, inner)
        engine.pin(main)
        shortcut = engine.sequence(self.shortcut, x, inner) if self.shortcut else x
        engine.unpin(x, main)
        merged = engine.merge(self, [main, shortcut], add_shapes([main.shape, shortcut.shape]), scope, name)
        return engine.sequence(self.after, merged, inner)

    sums_inputs: ClassVar[bool] = True  # its own row adds the main path and the shortcut

    def reduction_length(self, step):
        return 2

    def pytorch(self, step):  # the block's own row: the add
        return PyTorchCode(None, "{x0} + {x1}")

    def onnx(self, step, graph):  # the block's own row: the add
        return graph.node("Add", list(graph.inputs))

    def saved(self, step, grad):  # the block's own row: the add keeps nothing
        return []

    def memory_order(self, step, order):
        return order  # element-wise: laid out as the main path

    def forward(self, ops, xs, params, step):  # the block's own row: the add
        return ops.add(xs[0], xs[1])


class Branches(Composite):
    kind: ClassVar[str] = "branches"
    family: ClassVar[str] = "branches"
    primary: ClassVar[str] = "paths"
    paths: Annotated[list[list[Any]], Len(1, None)] = Field(description="parallel paths, concatenated on channels")
    merge_name: str | None = Field(None, description="the concat row's own name inside the block (NAME.merge_name; "
                                                     "default: the block's name)")

    def row_count(self) -> int:
        return 1 + sum(layer.row_count() for layer in self.children())

    def children(self):
        return [layer for path in self.paths for layer in path]

    def walk(self, engine, x, scope, name):
        inner = scope.child(name, self.kind)
        engine.pin(x)
        outputs = []
        for path in self.paths:
            out = engine.sequence(path, x, inner) if path else x
            engine.pin(out)
            outputs.append(out)
        engine.unpin(x, *outputs)
        if self.merge_name is None:
            return engine.merge(self, outputs, concat_shapes([t.shape for t in outputs]), scope, name)
        row = f"{name}.{self.merge_name}"  # DenseNet: the layer's module is its new features, the concat is not
        out = engine.merge(self, outputs, concat_shapes([t.shape for t in outputs]), scope, row)
        engine.remember(row, out)
        return out

    def pytorch(self, step):  # the block's own row: the concat
        return PyTorchCode(None, "torch.cat([{xs}], dim=1)")

    def onnx(self, step, graph):  # the block's own row: the concat
        return graph.node("Concat", list(graph.inputs), axis=1)

    def saved(self, step, grad):  # the block's own row: the concat keeps nothing
        return []

    def forward(self, ops, xs, params, step):  # the block's own row: the concat
        return ops.concat(xs)


class DepthwiseSeparable(Composite):
    """Sugar: a depthwise conv (groups = input channels) then a 1x1 pointwise conv."""

    kind: ClassVar[str] = "depthwise_separable"
    family: ClassVar[str] = "dwsep"
    primary: ClassVar[str] = "filters"
    filters: PosInt = Field(description="output channels of the pointwise conv")
    kernel: Axes = Field(3, description="depthwise kernel: " + AXES_HELP)
    stride: Axes = Field(1, description="depthwise stride: " + AXES_HELP)
    padding: Padding = Field(0, description="depthwise padding P, as `conv` takes it (default 0: no padding)")
    dilation: Axes = Field(1, description="depthwise dilation: " + AXES_HELP)
    multiplier: PosInt = Field(1, description="depthwise filters per input channel")
    bias: bool = Field(True, description="whether both convs have biases")

    def row_count(self) -> int:
        return 2

    def expand(self, channels: int) -> list[Conv]:
        depthwise = Conv(name="depthwise", filters=channels * self.multiplier, kernel=self.kernel, stride=self.stride,
                         padding=self.padding, dilation=self.dilation, groups=channels, bias=self.bias)
        pointwise = Conv(name="pointwise", filters=self.filters, kernel=1, bias=self.bias)
        return [depthwise, pointwise]

    def walk(self, engine, x, scope, name):
        inner = scope.child(name, self.kind)
        for conv in self.expand(x.shape[0]):
            conv._path = self.path
            x = engine.step(conv, x, inner)
        return x


class Sequence(Composite):
    """A plain named group (a fire module, an inverted residual): one name for its layers, one
    `--depth 0` row, one `check` answer, and no repetition number in the names."""

    kind: ClassVar[str] = "sequence"
    family: ClassVar[str] = "block"
    primary: ClassVar[str] = "layers"
    layers: list[Any] = Field(description="the layers, in order")

    def row_count(self) -> int:
        return sum(layer.row_count() for layer in self.layers)

    def children(self):
        return list(self.layers)

    def walk(self, engine, x, scope, name):
        return engine.sequence(self.layers, x, scope.child(name, self.kind))


class SqueezeExcitation(Composite):
    """Squeeze-and-excitation as torchvision's SqueezeExcitation: avgpool (to 1) -> fc1 (1x1 conv,
    C -> S) -> activation -> fc2 (1x1 conv, S -> C) -> scale_activation, then the block's own row
    multiplies the input by that gate. Equal to writing those layers and a `mul` out."""

    kind: ClassVar[str] = "se"
    family: ClassVar[str] = "se"
    squeeze_channels: PosInt | None = Field(None, description="S, the channels of the squeeze (fc1's output)")
    reduction: PosInt | None = Field(None, description="S = C // reduction, at least 1 (give this or squeeze_channels)")
    activation: str = Field("relu", description="the activation between fc1 and fc2 (an element-wise kind: relu, silu, ...)")
    gate: str = Field("sigmoid", description="scale_activation: sigmoid, or hardsigmoid (MobileNetV3)")
    multiplies_inputs: ClassVar[bool] = True  # its own row: input x gate

    def row_count(self) -> int:
        return 6

    def squeeze(self, channels: int) -> int:
        if (self.squeeze_channels is None) == (self.reduction is None):
            raise ShapeError("`se` needs exactly one of `squeeze_channels` and `reduction`")
        return self.squeeze_channels or max(1, channels // self.reduction)

    def expand(self, channels: int) -> list:
        activation, gate = _elementwise(self.activation, "activation"), _elementwise(self.gate, "gate")
        pool = KINDS["adaptive_avgpool"](name="avgpool", output=1)
        squeezed = self.squeeze(channels)
        return [pool, Conv(name="fc1", filters=squeezed, kernel=1), activation(name="activation"),
                Conv(name="fc2", filters=channels, kernel=1), gate(name="scale_activation")]

    def walk(self, engine, x, scope, name):
        inner = scope.child(name, self.kind)
        engine.pin(x)
        scale = x
        for layer in self.expand(x.shape[0]):
            layer._path = self.path
            scale = engine.step(layer, scale, inner)
        engine.unpin(x)
        return engine.merge(self, [x, scale], broadcast_shapes([x.shape, scale.shape], "multiply", " x "), scope, name)

    def reduction_length(self, step):
        return 2

    def pytorch(self, step):  # the block's own row: input x gate
        return PyTorchCode(None, "{x0} * {x1}")

    def onnx(self, step, graph):  # the block's own row: input x gate
        return graph.node("Mul", list(graph.inputs))

    def saved(self, step, grad):  # the block's own row: the product keeps each factor for the other
        return product_saved(grad)

    def memory_order(self, step, order):
        return order  # element-wise: laid out as its input

    def forward(self, ops, xs, params, step):  # the block's own row: input x gate
        return ops.mul(xs[0], xs[1])


def _elementwise(kind: str, key: str):
    cls = KINDS.get(kind)
    if cls is None or not issubclass(cls, Elementwise) or any(f.is_required() for f in cls.model_fields.values()):
        raise ShapeError(f"`se.{key}` must name an element-wise kind without required keys (relu, silu, "
                         f"sigmoid, hardsigmoid, ...), not `{kind}`")
    return cls


class Split(Composite):
    """torch.split / torch.chunk on channels: one row per piece, named by `names`, so later layers
    take a piece with `from` (ShuffleNetV2's x1, x2). The chain goes on from the last piece."""

    kind: ClassVar[str] = "split"
    family: ClassVar[str] = "split"
    names: Annotated[list[str], Len(1, None)] = Field(description="the names of the pieces, in channel order")
    sizes: Annotated[list[PosInt], Len(1, None)] | None = Field(None, description="channels of each piece (torch.split)")
    chunks: PosInt | None = Field(None, description="number of pieces as torch.chunk cuts them: ceil(C / chunks) "
                                                    "channels each, the last smaller")

    def row_count(self) -> int:
        return len(self.names)

    def pieces(self, channels: int) -> list[int]:
        if (self.sizes is None) == (self.chunks is None):
            raise ShapeError("`split` needs exactly one of `sizes` and `chunks`")
        if self.sizes is not None:
            if sum(self.sizes) != channels:
                raise ShapeError(f"`sizes` {self.sizes} add up to {sum(self.sizes)}, but the input has {channels} channels")
            pieces = list(self.sizes)
        else:
            size = math.ceil(channels / self.chunks)
            pieces = [size] * (channels // size) + ([channels % size] if channels % size else [])
        if len(pieces) != len(self.names):
            raise ShapeError(f"{channels} channels split into {len(pieces)} pieces ({pieces}), "
                             f"but `names` gives {len(self.names)}")
        return pieces

    def walk(self, engine, x, scope, name):
        start, out = 0, x
        for piece, written in zip(self.pieces(x.shape[0]), self.names):
            shape = (piece, *x.shape[1:])
            outcome = Outcome(shape=shape, hyper={"channels": (start, start + piece)})
            out = engine.emit(self, [x], outcome, scope, f"{scope.prefix}{written}", kind="split")
            engine.remember(f"{scope.prefix}{written}", out)
            start += piece
        return out

    def pytorch(self, step):  # one row: its piece of the channels
        start, stop = step.hyper["channels"]
        return PyTorchCode(None, f"{{x}}[:, {start}:{stop}]")

    def onnx(self, step, graph):  # one row: a Slice of the channels (axis 1), as PyTorch exports a split
        start, stop = step.hyper["channels"]
        return graph.node("Slice", [graph.x, graph.constant([start], label="starts"),
                                    graph.constant([stop], label="ends"), graph.constant([1], label="axes")])

    def output_storage(self, step):  # one row: a slice of the input
        return "view"

    def saved(self, step, grad):
        return []

    def forward(self, ops, xs, params, step):  # one row: its piece of the channels
        start, stop = step.hyper["channels"]
        return xs[0][:, start:stop]
