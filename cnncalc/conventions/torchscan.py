"""torchscan 0.2.0: `crawl_module(model, input_shape)`'s totals "macs" (printed by `summary` as
Multiply-Accumulations) and "module_flops" (Module-formula forward FLOPs).

A formula per module class (`torchscan.modules.macs`, `.flops`) for every call of a module without
children. Convolutions count per output: C_in/G x kernel MACs, and 2 x that - 1 + bias FLOPs, so a
transposed convolution is counted by its output positions, as a forward one (plus 4 per kernel
axis); linear layers in x out MACs (FLOPs 2 in - 1, plus the bias); batch norm 1 per element
(2 with affine) MACs; pools the window size - 1 per output. FLOPs add 1 to 6 per element for the
activations it knows. A module class it does not know counts 0 (it warns: "Module type not
supported"), as do modules with children (LeNet-5's connection table holds a ParameterList).
"""
from __future__ import annotations

import math

from . import Convention, Count
from .exported import Call, Row

ACTIVATION_FLOPS = {"ReLU": 1, "ELU": 6, "LeakyReLU": 4, "ReLU6": 2, "Tanh": 6, "Sigmoid": 4}  # per element


def _window(row: Row) -> int:
    return math.prod(row.hyper["kernel"])


def _adaptive_window(call: Call) -> tuple[int, ...]:
    """torchscan's kernel of an adaptive pool: i // o where it divides, else i % o + 1."""
    return tuple(i // o if i % o == 0 else i % o + 1 for i, o in zip(call.x[2:], call.y[2:]))


def _pool(row: Row, call: Call) -> int | None:
    """The pools' count, the same in MACs and FLOPs (None: not a pool)."""
    family = row.family
    if family == "MaxPool":
        return call.y_numel * (_window(row) - 1)
    if family == "AvgPool":
        return call.y_numel * (_window(row) - 1 + len(call.x) - 2)
    if family in ("AdaptiveMaxPool", "AdaptiveAvgPool"):
        kernel = _adaptive_window(call)
        return call.y_numel * (math.prod(kernel) - 1 + (len(kernel) if family == "AdaptiveAvgPool" else 0))
    return None


def _conv_terms(row: Row, call: Call) -> int:
    return _window(row) * (call.x[1] // row.layer.groups)


class TorchscanMacs(Convention):
    name = "torchscan"
    tool = "torchscan"
    version = "0.2.0"
    ops_unit = "macs"
    ops_label = "MACs"
    summary = ("a MAC formula per module class: convolutions per output position (transposed ones too), linear, "
               "batch norm and pools; unknown modules count 0")

    def ops(self, row: Row) -> Count:
        value = sum(self._macs(row, call) for call in row.calls)
        if value == row.macs:
            return Count(value)
        return Count(value, *_reason(row, self._known(row)))

    @staticmethod
    def _known(row: Row) -> bool:
        return row.family in MACS_FAMILIES and row.leaf

    @staticmethod
    def _macs(row: Row, call: Call) -> int:
        family = row.family
        if not row.leaf:
            return 0
        if family == "Linear":
            return call.x[-1] * call.y_numel
        if family in ("Conv", "ConvTranspose"):
            return call.y_numel * _conv_terms(row, call) + (4 * len(row.hyper["kernel"]) if family == "ConvTranspose" else 0)
        if family == "BatchNorm":
            return call.x_numel * (2 if row.layer.affine else 1)
        pool = _pool(row, call)
        return 0 if pool is None else pool


MACS_FAMILIES = {"Linear", "Conv", "ConvTranspose", "BatchNorm", "MaxPool", "AvgPool", "AdaptiveMaxPool",
                 "AdaptiveAvgPool", "Identity", "ReLU", "ELU", "LeakyReLU", "ReLU6", "Tanh", "Sigmoid", "Flatten",
                 "Dropout"}
FLOPS_FAMILIES = MACS_FAMILIES | {"LayerNorm", "ChannelLayerNorm"}


class TorchscanFlops(Convention):
    name = "torchscan-flops"
    tool = "torchscan"
    version = "0.2.0"
    ops_unit = "flops"
    ops_label = "FLOPs"
    summary = ("a FLOP formula per module class: 2 x MACs - 1 + bias per output for convolutions and linear layers, "
               "1 to 6 per element for activations, norms and pools; unknown modules count 0")

    def ops(self, row: Row) -> Count:
        value = sum(self._flops(row, call) for call in row.calls)
        if value == row.macs:
            return Count(value)
        return Count(value, *_reason(row, row.family in FLOPS_FAMILIES and row.leaf, flops=True))

    @staticmethod
    def _flops(row: Row, call: Call) -> int:
        family, layer = row.family, row.layer
        if not row.leaf:
            return 0
        if family == "Linear":
            outputs = call.y[-1] * math.prod(call.x[:-1])
            return outputs * (2 * call.x[-1] - 1) + (outputs if row.biases else 0)
        if family in ("Conv", "ConvTranspose"):
            per_output = 2 * _conv_terms(row, call) - 1 + (1 if row.biases else 0)
            return call.y_numel * per_output + (8 * len(row.hyper["kernel"]) if family == "ConvTranspose" else 0)
        if family in ACTIVATION_FLOPS:
            return ACTIVATION_FLOPS[family] * call.x_numel
        if family == "Dropout":
            return call.x_numel if layer.p > 0 else 0
        if family == "BatchNorm":
            return 2 * call.x[1] + 2 * call.x_numel + (2 * call.x_numel if layer.affine else 0)
        if family in ("LayerNorm", "ChannelLayerNorm"):
            rows = call.x_numel // (call.x[1] if family == "ChannelLayerNorm" else math.prod(layer_shape(row)))
            affine = call.x_numel * (row.weights > 0) + call.x_numel * (row.biases > 0)
            return 6 * call.x_numel + 2 * rows + affine
        pool = _pool(row, call)
        return 0 if pool is None else pool


def layer_shape(row: Row) -> tuple[int, ...]:
    """nn.LayerNorm's normalized_shape: as the spec writes it, or the channels of a flat input."""
    shape = row.layer.normalized_shape
    if shape is None:
        return (row.input_shape[0],)
    return tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)


def _reason(row: Row, known: bool, flops: bool = False) -> tuple[str, bool]:
    if row.module is None:
        return "counted otherwise", False
    if not known:
        what = f"{row.module} holds child modules, which torchscan never counts," if not row.leaf else \
            f"torchscan has no formula for {row.module}"
        return f"{what} and counts it as 0", bool(row.macs)
    if row.family == "ConvTranspose":
        return ("torchscan counts a transposed convolution by its output positions, as a forward one: output "
                "elements x C_in/G x kernel" + (" (2 x that - 1 + bias FLOPs)" if flops else "") + ", plus "
                + ("8" if flops else "4") + " per kernel axis"), True
    if row.family in ("Conv", "Linear"):
        return ("FLOPs: 2 x MACs - 1 per output, plus the bias" if flops else "counted otherwise"), False
    if row.family in ACTIVATION_FLOPS or row.family == "Dropout":
        return "counts the activation's arithmetic per element", False
    if row.family == "BatchNorm":
        return "counts batch norm: normalise and scale per element", False
    if row.family in ("LayerNorm", "ChannelLayerNorm"):
        return "counts layer norm: 6 per element, 2 per normalised row, plus scale and shift", False
    return "counts the window's comparisons or additions: window size - 1 per output", False
