"""Composites: structure only. Each walks the engine through the layers written inside it
(``walk``); the engine owns names, shapes, memory and the rows."""
from __future__ import annotations

from typing import Annotated, Any, ClassVar

from annotated_types import Len
from pydantic import Field

from ..errors import ShapeError
from .base import AXES_HELP, Axes, Composite, NonNegInt, Padding, PosInt
from .conv import Conv
from .merge import add_shapes, concat_shapes


class Repeat(Composite):
    kind: ClassVar[str] = "repeat"
    family: ClassVar[str] = "repeat"
    times: PosInt = Field(description="how many times to repeat the layers")
    layers: list[Any] = Field(description="the layers to repeat")
    start: NonNegInt = Field(0, description="number of the first repetition in names (R.start.*)")

    def row_count(self) -> int:
        return self.times * sum(layer.row_count() for layer in self.layers)

    def children(self):
        return list(self.layers)

    def walk(self, engine, x, scope, name):
        body = self.layers
        single_composite = len(body) == 1 and body[0].is_composite and body[0].name is None
        for i in range(self.start, self.start + self.times):
            if single_composite:  # `repeat: {name: layer3, layers: [residual: ...]}` -> layer3.1, layer3.2
                x = engine.step(body[0], x, scope, name=f"{name}.{i}")
            else:
                x = engine.sequence(body, x, scope.child(f"{name}.{i}", self.kind))
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

    def forward(self, ops, xs, params, step):  # the block's own row: the add
        return ops.add(xs[0], xs[1])


class Branches(Composite):
    kind: ClassVar[str] = "branches"
    family: ClassVar[str] = "branches"
    primary: ClassVar[str] = "paths"
    paths: Annotated[list[list[Any]], Len(1, None)] = Field(description="parallel paths, concatenated on channels")

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
        return engine.merge(self, outputs, concat_shapes([t.shape for t in outputs]), scope, name)

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
