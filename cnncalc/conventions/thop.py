"""ultralytics-thop 2.2.3: `thop.profile(model, inputs)`, which returns (MACs, params).

A rule per module class (`thop.profile.register_hooks`), found through the class's MRO, applied
to every call in eval mode. Convolutions and linear layers count their weight multiply-accumulates
without the bias (cnncalc's MACs); normalisations, softmax, average pools and interpolating
upsampling add their own element-wise estimates; ReLU-like activations, max pools, padding and
reshaping count 0. A module class without a rule counts 0 ("Cannot find rule ... Treat it as
zero Macs", shown only with `report_missing=True`): sigmoid, tanh, GELU, SiLU, LRN, and the
classes cnncalc's export writes (LeNet-5's subsampling and connection table). Code outside
modules counts 0 except matrix products.
"""
from __future__ import annotations

import math

from ..kinds.base import is_symmetric
from . import Convention, Count
from .exported import Call, Row

UPSAMPLE = {"nearest": 0, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}  # ops per output


class Thop(Convention):
    name = "thop"
    tool = "ultralytics-thop"
    version = "2.2.3"
    ops_unit = "macs"
    ops_label = "MACs"
    summary = ("a rule per module class: conv and linear weight MACs (bias excluded), element-wise estimates for "
               "norms, softmax, average pools and upsampling; modules without a rule count 0; params is parameters()")

    def ops(self, row: Row) -> Count:
        if row.module is None:
            return Count(row.macs)  # code in forward: 0, as cnncalc
        rule = RULES.get(row.family)
        if rule is None:  # a zero rule, or none (thop then treats the module as zero MACs)
            if not row.macs:
                return Count(0)
            return Count(0, f"has no rule for {row.module} and counts it as 0", miscount=True)
        value = sum(rule(row, call) for call in row.calls)
        return Count(value) if value == row.macs else Count(value, REASONS[row.family])


def _conv(row: Row, call: Call) -> int:
    return call.y_numel * (call.x[1] // row.layer.groups) * math.prod(row.hyper["kernel"])


def _conv_transpose(row: Row, call: Call) -> int:
    return call.x_numel * (call.y[1] // row.layer.groups) * math.prod(row.hyper["kernel"])


def _norm(row: Row, call: Call) -> int:
    affine = getattr(row.layer, "affine", False) or getattr(row.layer, "elementwise_affine", False)
    return 2 * call.x_numel * (2 if affine else 1)


def _softmax(row: Row, call: Call) -> int:
    features = call.x[1]  # the export's dim=1
    rows = call.x_numel // features
    return rows * (3 * features - 1) + (rows if row.kind == "log_softmax" else 0)


def _avgpool(row: Row, call: Call) -> int:
    """thop sums the window sizes (positions each output adds, padding counted or not as the
    module says), plus one division per output. A module the export pads beforehand pads nothing
    itself and counts the padding (nn.AvgPool's default)."""
    h, rank = row.hyper, len(call.x) - 2
    padded_by_module = is_symmetric(h["padding"])
    include = row.layer.count_include_pad or not padded_by_module
    windows = 1
    for size, out, k, s, (before, _) in zip(call.x[2:], call.y[2:], h["kernel"], h["stride"], h["padding"]):
        p = before if padded_by_module else 0
        lower, upper = (-p, size + p) if include else (0, size)
        windows *= sum(max(min(i * s - p + k, upper) - max(i * s - p, lower), 0) for i in range(out))
    return math.prod(call.x[:-rank]) * windows + call.y_numel


def _adaptive_avgpool(row: Row, call: Call) -> int:
    def summed(i: int, o: int) -> int:  # the sizes of the o adaptive windows over i inputs
        return o if i == o else sum(-(-(j + 1) * i // o) - j * i // o for j in range(o))

    return math.prod(summed(i, o) for i, o in zip(call.x, call.y)) + call.y_numel


RULES = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "BatchNorm": _norm, "InstanceNorm": _norm, "LayerNorm": _norm, "ChannelLayerNorm": _norm, "GroupNorm": _norm,
    "PReLU": lambda row, call: call.x_numel,
    "Softmax": _softmax, "LogSoftmax": _softmax,
    "AvgPool": _avgpool,
    "AdaptiveAvgPool": _adaptive_avgpool,
    "Linear": lambda row, call: call.x[-1] * call.y_numel,
    "Upsample": lambda row, call: UPSAMPLE[row.layer.mode] * call.y_numel,
}

REASONS = {
    "Conv": "counted otherwise",
    "ConvTranspose": "counted otherwise",
    "BatchNorm": "counts 2 per input element, doubled with affine scale and shift",
    "InstanceNorm": "counts 2 per input element, doubled with affine scale and shift",
    "LayerNorm": "counts 2 per input element, doubled with affine scale and shift",
    "ChannelLayerNorm": "counts 2 per input element, doubled with affine scale and shift",
    "GroupNorm": "counts 2 per input element, doubled with affine scale and shift",
    "PReLU": "counts 1 per input element",
    "Softmax": "counts exp, add and divide per element (3n - 1 per softmax of n values)",
    "LogSoftmax": "counts exp, add and divide per element, plus one log per softmax",
    "AvgPool": "counts one add per pooled input and one divide per output",
    "AdaptiveAvgPool": "counts one add per pooled input and one divide per output",
    "Linear": "counted otherwise",
    "Upsample": "counts interpolation per output (linear 5, bilinear 11, bicubic 259, trilinear 31)",
}
