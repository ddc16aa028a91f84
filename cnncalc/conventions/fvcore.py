"""fvcore 0.1.5: `FlopCountAnalysis(model, inputs).total()` and `parameter_count(model)[""]`.

It traces the model with torch.jit and counts the aten ops it has a handle for
(`_DEFAULT_SUPPORTED_OPS`). Its "flops" are MACs: one fused multiply-add is one flop (its own
docstring says so). Convolutions and linear layers count their weight MACs, bias excluded (cnncalc's
MACs); batch norm in eval mode counts 1 per input element, 2 with affine; group, layer and instance
norm 4 per element, 5 with affine; nearest and bilinear 2-D upsampling 1 and 4 per output; 2-D
adaptive average pooling 1 per input element. Every other op counts 0 (activations, max and average
pools, adds, LRN; 1-D and 3-D adaptive pools and upsampling are unsupported ops it warns about).
"""
from __future__ import annotations

from . import Convention, Count
from .exported import Row


def norm_ops(family: str, layer, elements: int) -> int | None:
    """fvcore's count for a norm layer (calflops counts norms the same way): batch norm 1 per
    element (2 with its affine scale and shift), group/instance/layer norm 4 (5 with affine);
    None for any other family."""
    if family == "BatchNorm":
        return elements * (2 if layer.affine else 1)
    if family in ("GroupNorm", "InstanceNorm"):
        return elements * (5 if layer.affine else 4)
    if family in ("LayerNorm", "ChannelLayerNorm"):
        return elements * (5 if layer.elementwise_affine else 4)
    return None


class Fvcore(Convention):
    name = "fvcore"
    tool = "fvcore"
    version = "0.1.5.post20221221"
    ops_unit = "macs"
    ops_label = "flops"
    summary = ("MACs, which it calls flops: conv and linear weight MACs (bias excluded), plus batch norm (1 or 2 per "
               "element), group/layer/instance norm (4 or 5), 2-D upsampling and 2-D adaptive average pooling")

    def ops(self, row: Row) -> Count:
        extra = sum(self._elementwise(row, call) for call in row.calls)
        if not extra:
            return Count(row.macs)
        return Count(row.macs + extra, REASONS[row.family])

    @staticmethod
    def _elementwise(row: Row, call) -> int:
        family, layer = row.family, row.layer
        norm = norm_ops(family, layer, call.x_numel)
        if norm is not None:
            return norm
        if row.module == "Upsample" and len(call.x) == 4:
            return call.y_numel * {"nearest": 1, "bilinear": 4}.get(layer.mode, 0)
        if row.module == "AdaptiveAvgPool2d":
            return call.x_numel
        return 0


REASONS = {
    "BatchNorm": "counts batch norm (eval): 1 per input element, 2 with affine scale and shift",
    "GroupNorm": "counts 4 per input element, 5 with affine scale and shift",
    "InstanceNorm": "counts 4 per input element, 5 with affine scale and shift",
    "LayerNorm": "counts 4 per input element, 5 with affine scale and shift",
    "ChannelLayerNorm": "counts 4 per input element, 5 with affine scale and shift",
    "Upsample": "counts 2-D upsampling: 1 per output (nearest), 4 (bilinear)",
    "AdaptiveAvgPool": "counts 2-D adaptive average pooling: 1 per input element",
}
