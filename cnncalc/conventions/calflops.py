"""calflops 0.3.2: `calculate_flops(model, input_shape, output_as_string=False)`, which returns
(FLOPs, MACs, params).

It patches `torch.nn.functional` and a few tensor methods for the forward pass
(`pytorch_ops._patch_functionals`, `_patch_tensor_methods`) and adds up what each call costs, inside
modules or not. FLOPs are 2 per weight multiply-accumulate plus the bias of convolutions (not of
linear layers), 1 per element for ReLU-like activations, pools, softmax and batch norm (2 with
affine), 5 per element for layer, group and instance norm (4 without affine); MACs are the weight
multiply-accumulates alone. Functions it does not patch count 0 (sigmoid, tanh, hardswish, ReLU6,
which nn.ReLU6 computes with F.hardtanh; `x + y`).

Its transposed convolution is wrong for groups: it takes the output channels per group from the
weight (C_out / G) and divides them by G again, so a grouped transposed convolution gets 1/G of
its MACs (floored) and a depthwise one 0; and it sizes the bias by the formula of a forward
convolution. An upsample to a given size counts the size's positions alone, without batch and
channels.
"""
from __future__ import annotations

import math

from . import Convention, Count
from .exported import Call, Row
from .fvcore import norm_ops
from .ptflops import lrn_elementwise

ELEMENT = {"ReLU", "PReLU", "ELU", "LeakyReLU", "SiLU", "GELU", "MaxPool", "AvgPool", "AdaptiveMaxPool",
           "AdaptiveAvgPool", "Softmax"}  # modules calling a patched function that counts 1 per input element


class CalflopsFlops(Convention):
    name = "calflops"
    tool = "calflops"
    version = "0.3.2"
    ops_unit = "flops"
    ops_label = "FLOPs"
    summary = ("patched torch functions: 2 FLOPs per weight MAC plus the conv bias, 1 per element for activations, "
               "pools, softmax and batch norm, 5 per element for layer/group/instance norm")

    def ops(self, row: Row) -> Count:
        value = sum(self._flops(row, call) for call in row.calls) if row.module else 0
        if raises(row):
            return Count(value, CRASH, miscount=True, fails=True)
        if value == row.macs:
            return Count(value)
        return Count(value, *self._reason(row, value))

    @staticmethod
    def _flops(row: Row, call: Call) -> int:
        family, layer = row.family, row.layer
        if family in ("Conv", "ConnectionTableConv"):
            return 2 * row.macs + (row.bias_muls if family == "Conv" else 0)
        if family == "Subsample":  # F.avg_pool (1 per input element), then a depthwise 1x1 F.conv with bias
            return call.x_numel + 3 * row.macs
        if family == "ConvTranspose":
            macs = transposed_macs(row, call)
            return 2 * macs + (call.y[1] // layer.groups * call.y[0] * _forward_positions(row, call)
                               if row.biases else 0)
        if family == "Linear":
            return 2 * row.macs
        if family in ELEMENT:
            return call.x_numel
        norm = norm_ops(family, layer, call.x_numel)
        if norm is not None:
            return norm
        if family == "Upsample":
            size = row.hyper.get("size")
            return math.prod(size) if size is not None else call.x_numel
        if family == "LocalResponseNorm":
            return lrn_elementwise(row, call)
        return 0

    @staticmethod
    def _reason(row: Row, value: int) -> tuple[str, bool]:
        if row.family == "ConvTranspose" and row.layer.groups > 1:
            return (f"calflops divides a grouped transposed convolution's MACs by its groups again "
                    f"((C_out/G)//G = {row.calls[0].y[1] // row.layer.groups // row.layer.groups} outputs per "
                    "group and input), and sizes its bias as a forward convolution's: FLOPs = 2 x those MACs "
                    "+ that bias", True)
        if row.family == "ConvTranspose" and row.biases:
            return "FLOPs = 2 x MACs, plus a bias sized by a forward convolution's output formula", True
        if row.family == "Upsample" and row.hyper.get("size") is not None:
            return "counts an upsample to a size as the size's positions alone (no batch, no channels)", True
        if row.macs:
            bias = " plus the bias" if row.family in ("Conv", "Subsample", "ConvTranspose") and row.biases else ""
            return "FLOPs = 2 x MACs" + bias + (" plus the average pool's inputs" if row.family == "Subsample" else ""), False
        return FLOP_REASONS.get(row.family, "counts the patched functions it calls: 1 per element"), False


FLOP_REASONS = {
    "BatchNorm": "counts batch norm (eval): 1 per input element, 2 with affine scale and shift",
    "GroupNorm": "counts 4 per input element, 5 with affine scale and shift",
    "InstanceNorm": "counts 4 per input element, 5 with affine scale and shift",
    "LayerNorm": "counts 4 per input element, 5 with affine scale and shift",
    "ChannelLayerNorm": "counts 4 per input element, 5 with affine scale and shift",
    "LocalResponseNorm": "counts the element-wise calls inside F.local_response_norm (mul, avg_pool, mul, add)",
    "Upsample": "counts F.interpolate: 1 per input element",
}


CRASH = ("calflops raises TypeError (unsupported operand type(s) for ** or pow(): 'tuple' and 'int') on nn.Upsample "
         "with one scale factor per axis, unless there are as many axes as samples in the batch; with one number "
         "it would count 1 per input element")


def raises(row: Row) -> bool:
    """calflops's F.interpolate rule compares len(scale_factor) with len(input), the batch, and raises
    on a mismatch; the export writes one scale factor per spatial axis."""
    return row.family == "Upsample" and row.hyper.get("size") is None and row.rank != 1


def transposed_macs(row: Row, call: Call) -> int:
    """calflops's MACs of a transposed convolution: out_channels is taken from the weight, which
    holds C_out / G per group, and divided by G again."""
    per_group = call.y[1] // row.layer.groups // row.layer.groups
    return math.prod(row.hyper["kernel"]) * call.x[1] * per_group * call.x[0] * math.prod(call.x[2:])


def _forward_positions(row: Row, call: Call) -> int:
    """The output positions calflops gives a transposed convolution's bias: a forward
    convolution's, (size + 2P - D*(F - 1) - 1) // S + 1 per axis, with the module's padding."""
    h = row.hyper
    pads = [before for before, _ in h["padding"]] if all(b == a for b, a in h["padding"]) else [0] * len(h["padding"])
    return math.prod((size + 2 * p - (d * (k - 1) + 1)) // s + 1
                     for size, p, d, k, s in zip(call.x[2:], pads, h["dilation"], h["kernel"], h["stride"]))


class CalflopsMacs(CalflopsFlops):
    name = "calflops-macs"
    ops_unit = "macs"
    ops_label = "MACs"
    summary = "the MACs calflops returns beside its FLOPs: weight multiply-accumulates of conv and linear layers"

    def ops(self, row: Row) -> Count:
        if raises(row):
            return Count(row.macs, CRASH, miscount=True, fails=True)
        if row.family == "ConvTranspose":
            value = transposed_macs(row, row.calls[0])
            if value != row.macs:
                return Count(value, f"calflops divides a grouped transposed convolution's MACs by its groups again "
                                    f"(G = {row.layer.groups}): 1/G of them, floored (0 when depthwise)", True)
        return Count(row.macs)
