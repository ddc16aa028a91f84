"""What each report row runs in cnncalc's PyTorch export (`cnncalc export --to pytorch`), as the
counting tools see it.

The tools count PyTorch modules (forward hooks) or the functions and operators a forward pass
calls, so their count for a row depends on how the row is written in PyTorch: which module class
carries it (``nn.Conv2d``, ``nn.ReLU``; a class written into the file, ``Subsample``), how often
that module is called and on what shapes (an input padded by ``F.pad`` first, an output cropped
after), or whether the row is plain code in ``forward`` (``x + y``, ``torch.cat``). A ``Row`` holds
exactly that, taken from the kind's own export code (``layer.pytorch(step)``) and the engine's
shapes, so the conventions never guess what the export writes.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One call of a row's module: the shapes it sees, with the batch axis (batch 1)."""

    x: tuple[int, ...]
    y: tuple[int, ...]

    @property
    def x_numel(self) -> int:
        return math.prod(self.x)

    @property
    def y_numel(self) -> int:
        return math.prod(self.y)


@dataclass(frozen=True)
class Row:
    """One report row with what its PyTorch export runs."""

    index: int
    name: str
    kind: str
    layer: Any  # the kind's model: its fields (bias, affine, mode, ...)
    hyper: dict
    input_shape: tuple[int, ...]  # per sample, [C, *spatial]; the first input of a merge
    output_shape: tuple[int, ...]
    weights: int
    biases: int
    buffers: int
    macs: int
    bias_muls: int
    module: str | None  # the module class the export writes ("Conv2d", "Subsample"); None: code in forward
    calls: tuple[Call, ...]  # each call of that module
    leaf: bool  # whether the module has no child modules (tools that count leaves only skip the others)
    under: tuple[str, ...]  # the module classes of the rows whose modules hold this row's module, outermost first

    @property
    def known(self) -> bool:
        """Whether the tools' rules know what this row runs: its module class, or, for a row written
        as code in forward, its kind. A kind added later with another module is not guessed at."""
        if self.module is None:
            return self.kind in CODE_KINDS
        return self.module in KNOWN_MODULES

    @property
    def trainable(self) -> int:
        return self.weights + self.biases

    @property
    def params(self) -> int:
        return self.trainable + self.buffers

    @property
    def family(self) -> str | None:
        return None if self.module is None else family_of(self.module)

    @property
    def rank(self) -> int:
        """Spatial axes of the module's input (0 for a flat [N, C] input)."""
        return len(self.calls[0].x) - 2 if self.calls else len(self.input_shape) - 1


def family_of(module: str) -> str:
    """A module class without its rank: Conv2d -> Conv, AdaptiveAvgPool3d -> AdaptiveAvgPool."""
    return re.sub(r"[123]d$", "", module)


# What the export writes today, and the tools' rules know (every one is run through every tool by
# tests/test_compare.py): the module classes, and the kinds written as code in forward.
KNOWN_MODULES = {
    *(f"{name}{rank}d" for rank in (1, 2, 3) for name in (
        "Conv", "ConvTranspose", "MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "BatchNorm",
        "InstanceNorm", "ZeroPad", "ReflectionPad", "ReplicationPad", "CircularPad")),
    "ConnectionTableConv", "Subsample", "Linear", "LayerNorm", "ChannelLayerNorm", "GroupNorm", "LocalResponseNorm",
    "Dropout", "ReLU", "ReLU6", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish", "Hardsigmoid", "Mish", "SELU", "ELU",
    "LeakyReLU", "Softmax", "LogSoftmax", "PReLU", "StochasticDepth", "Upsample", "Unpool", "Identity",
    "PixelShuffle", "PixelUnshuffle",
}
CODE_KINDS = {"add", "mul", "concat", "flatten", "permute", "reshape", "squeeze", "unsqueeze", "split",
              "channel_shuffle", "layer_scale"}

# Classes the export writes that hold child modules (ConnectionTableConv keeps its weights in an
# nn.ParameterList, which is a module).
WITH_CHILDREN = {"ConnectionTableConv"}


def rows(analysis) -> list[Row]:
    """Every row of an analysis (report and plan) with its PyTorch export. The tools are run at
    batch 1 (ptflops cannot be run otherwise), so the analysis must be too."""
    from ..export.pytorch import module_keys

    if analysis.report.batch != 1:
        raise ValueError("the conventions are computed at batch 1, as the tools are run")
    steps = analysis.plan.steps
    codes = [step.layer.pytorch(step) for step in steps]
    modules = [None if code.module is None else code.module.split("(")[0].removeprefix("nn.") for code in codes]
    keys = [tuple(module_keys(step.name)) for step in steps]
    holders = {key: module for key, module in zip(keys, modules) if module is not None}  # a row's module by its path
    holding = {key[:n] for key in holders for n in range(1, len(key))}  # paths that have a module below them
    found = []
    for row, step, code, module, key in zip(analysis.report.layers, steps, codes, modules, keys):
        under = tuple(holders[key[:n]] for n in range(1, len(key)) if key[:n] in holders)
        nested = key in holding
        found.append(Row(
            index=row.index, name=row.name, kind=row.kind, layer=step.layer, hyper=step.hyper,
            input_shape=tuple(step.input_shape), output_shape=tuple(step.output_shape),
            weights=row.weights, biases=row.biases, buffers=row.buffers, macs=row.macs, bias_muls=row.bias_muls,
            module=module, calls=_calls(step, code) if module is not None else (),
            leaf=module not in WITH_CHILDREN and not nested, under=under,
        ))
    return found


def _calls(step, code) -> tuple[Call, ...]:
    """The shapes each call of the row's module sees. The export pads an input by F.pad where
    the padding is uneven (the module then pads nothing), flattens the input of a lecture-style
    linear layer, lifts a flat input of LRN to [N, C, 1], and crops a transposed convolution's
    or a ceil-mode pool's output after the module; average pooling without counting the padding,
    padded unevenly, calls its module a second time on a padded tensor of ones."""
    x = (1, *step.input_shape)
    y = (1, *step.output_shape)
    template = code.call
    if "torch.flatten({x}, 1)" in template:
        x = (1, math.prod(step.input_shape))
    if ".unsqueeze(-1)" in template:
        x, y = (*x, 1), (*y, 1)
    if "F.pad(" in template:
        pads = step.hyper["padding"]
        x = (*x[:2], *(size + before + after for size, (before, after) in zip(x[2:], pads)))
    if "[:, :, " in template:  # the module's own output is cropped to the row's
        y = (*y[:2], *_uncropped(step, x))
    calls = [Call(x, y)]
    if template.count("{m}(") == 2:  # the second call divides by the window's real positions
        calls.append(Call((1, 1, *x[2:]), (1, 1, *y[2:])))
    return tuple(calls)


def _uncropped(step, x) -> tuple[int, ...]:
    """The spatial sizes the module itself produces before the export crops them: a transposed
    convolution without its padding (which the crop removes), or a pool on the padded input
    under PyTorch's rule (with ceil_mode, a last window must start inside the input)."""
    h = step.hyper
    if "output_padding" in h:
        return tuple((size - 1) * s + d * (k - 1) + op + 1 for size, k, s, d, op in
                     zip(x[2:], h["kernel"], h["stride"], h["dilation"], h["output_padding"]))
    ceil = getattr(step.layer, "ceil_mode", False)
    sizes = []
    for size, k, s, d in zip(x[2:], h["kernel"], h["stride"], h["dilation"]):
        span = size - d * (k - 1) - 1
        count = (-(-span // s) if ceil else span // s) + 1
        if ceil and (count - 1) * s >= size:
            count -= 1
        sizes.append(count)
    return tuple(sizes)
