"""ptflops 0.7.5: `get_model_complexity_info(model, input_res, as_strings=False)`, which returns
(MACs, params), with its two backends.

**pytorch** (the default): a forward hook for each module class in `MODULES_MAPPING` (exact
classes: a subclass counts 0), and `torch.nn.functional` functions patched for the forward pass
(`patch_functional`, `patch_tensor_ops`). Both count, so a module whose forward calls a patched
function is counted twice: nn.ReLU (its hook, then F.relu), the pools, GELU, ELU, PReLU, nn.Upsample
(F.interpolate). Convolutions and linear layers add the bias; batch, instance and group norm count
their input elements, twice with an affine scale and shift (nn.LayerNorm once: it has no `affine`
attribute). Modules neither mapped nor calling a patched function count 0 (sigmoid, tanh,
hardswish, LeNet-5's connection table, layer norm over channels); element-wise products and sums
count only as `torch.mul` / `Tensor.add`, not written as `x * y` or `x + y`.

**aten**: a dispatch-mode counter over aten.convolution, mm, matmul, addmm and bmm only: weight
MACs plus the bias of convolutions and of linear layers (addmm).
"""
from __future__ import annotations

import math

from . import Convention, Count
from .exported import Call, Row, family_of

ACTIVATION_HOOKED = {"ReLU", "PReLU", "ELU", "LeakyReLU", "ReLU6", "GELU"}  # counted: output elements
POOLS = {"MaxPool", "AvgPool", "AdaptiveMaxPool", "AdaptiveAvgPool"}  # counted: input elements (the 1-D to 3-D ones)
NORMS = {"BatchNorm", "InstanceNorm", "GroupNorm", "LayerNorm"}  # input elements, x2 with `affine`
MAPPED = {"Conv", "ConvTranspose", "Linear", "Upsample", *ACTIVATION_HOOKED, *POOLS, *NORMS}
# Modules whose forward calls a patched function, and what that call adds.
PATCHED_CALLS = {"ReLU": "F.relu", "PReLU": "F.prelu", "ELU": "F.elu", "GELU": "F.gelu", "SiLU": "F.silu",
                 "Softmax": "F.softmax", "Upsample": "F.interpolate", "LocalResponseNorm": "F.local_response_norm",
                 "Subsample": "F.avg_pool", "MaxPool": "F.max_pool", "AvgPool": "F.avg_pool",
                 "AdaptiveMaxPool": "F.adaptive_max_pool", "AdaptiveAvgPool": "F.adaptive_avg_pool"}


class PtflopsPytorch(Convention):
    name = "ptflops"
    tool = "ptflops"
    version = "0.7.5"
    ops_unit = "macs"
    ops_label = "MACs"
    summary = ("module hooks plus patched torch functions (backend pytorch): weight MACs plus the bias, 1 per element "
               "for activations, pools and norms; modules calling a patched function are counted twice")

    def ops(self, row: Row) -> Count:
        if row.module is None:
            return Count(row.macs)  # x + y, torch.cat, reshaping: not patched, 0 as cnncalc
        inside_mapped = any(mapped(holder) for holder in row.under)
        hooked = 0 if inside_mapped else sum(_hooked(row, call) for call in row.calls)
        value = hooked + sum(_patched(row, call) for call in row.calls)
        if value == row.macs:
            return Count(value)
        if inside_mapped:
            return Count(value, f"ptflops adds up a module it maps without the modules inside it: this {row.module} "
                                "counts only its patched function calls", miscount=bool(row.macs))
        return Count(value, *_reason(row))


def mapped(module: str) -> bool:
    """Whether ptflops has a hook for this exact class (it then never adds up the modules below it)."""
    return family_of(module) in MAPPED


def _hooked(row: Row, call: Call) -> int:
    """What ptflops's forward hook for the module's exact class adds (0 for a class it does not map)."""
    family = row.family
    if family in ("Conv", "ConvTranspose"):
        positions = math.prod(call.x[2:] if family == "ConvTranspose" else call.y[2:])
        per_position = math.prod(row.hyper["kernel"]) * call.x[1] * (call.y[1] // row.layer.groups)
        return per_position * positions + (call.y_numel if row.biases else 0)
    if family in ACTIVATION_HOOKED or family == "Upsample":
        return call.y_numel
    if family in POOLS:
        return call.x_numel
    if family in NORMS:
        return call.x_numel * (2 if getattr(row.layer, "affine", False) else 1)
    if family == "Linear":
        return (call.x[-1] * call.y[-1] + (call.y[-1] if row.biases else 0)) * math.prod(call.x[:-1])
    return 0


def _patched(row: Row, call: Call) -> int:
    """What the patched functions the module's forward calls add."""
    function = PATCHED_CALLS.get(row.family)
    if function is None:
        return 0
    if function == "F.interpolate":
        size = row.hyper.get("size")
        if size is not None:
            return math.prod(size) * math.prod(call.x[:2])
        return call.x_numel * int(math.prod(row.hyper["scale"]))  # ptflops: int(np.prod(scale_factor))
    if function == "F.local_response_norm":
        return lrn_elementwise(row, call)
    return call.x_numel


def lrn_elementwise(row: Row, call: Call) -> int:
    """F.local_response_norm's patched calls: input.mul(input), an average pool over the squares
    padded along the channels (C + size - 1 of them), then .mul(alpha) and .add(k)."""
    padded_channels = call.x[1] + row.layer.size - 1
    return 3 * call.x_numel + call.x[0] * padded_channels * math.prod(call.x[2:])


def _reason(row: Row) -> tuple[str, bool]:
    family = row.family
    twice = family in PATCHED_CALLS and (family in ACTIVATION_HOOKED or family in POOLS or family == "Upsample")
    if family in ("Conv", "ConvTranspose", "Linear"):
        return "counts the bias: one MAC per output", False
    if row.macs:
        return f"{row.module} is no class ptflops maps: only its patched function calls count", True
    if twice:
        return (f"counts {row.module} twice: its hook and the patched {_function(row)} it calls, each an element "
                "count"), True
    if family in NORMS:
        return "counts 1 per input element, 2 with an affine scale and shift (nn.LayerNorm: 1)", False
    if family == "LocalResponseNorm":
        return "counts the element-wise calls inside F.local_response_norm (mul, avg_pool, mul, add)", False
    return f"counts {_function(row) if family in PATCHED_CALLS else row.module}: 1 per element", False


def _function(row: Row) -> str:
    """The patched function the module calls, with its rank for the pools (F.max_pool2d)."""
    function = PATCHED_CALLS[row.family]
    return f"{function}{max(1, row.rank)}d" if "pool" in function else function


class PtflopsAten(Convention):
    name = "ptflops-aten"
    tool = "ptflops"
    version = "0.7.5"
    ops_unit = "macs"
    ops_label = "MACs"
    summary = ("dispatch counter over aten.convolution, mm, matmul, addmm and bmm (backend aten): weight MACs plus "
               "the bias of convolutions and linear layers (addmm); nothing else")

    def ops(self, row: Row) -> Count:
        value = row.macs + self._bias(row)
        return Count(value, "counts the bias: one MAC per output") if value != row.macs else Count(value)

    @staticmethod
    def _bias(row: Row) -> int:
        if not row.biases or row.module == "ConnectionTableConv":  # its bias is added with +, not the conv
            return 0
        if row.family == "ConvTranspose":
            return row.calls[0].y_numel  # the convolution's own output, before the export crops it
        return row.bias_muls
