"""torchinfo 1.8.0: `summary(model, input_size)`'s "Total mult-adds" and "Total params".

For every call of a leaf module it multiplies the module's parameter count by the batch, and for
a class whose name contains "Conv" also by the output's positions (`LayerInfo.calculate_macs`).
So a convolution's bias counts one mult-add per output, a transposed convolution is counted by its
output positions instead of its input positions (stride 2 in 2-D: about 4x), batch norm and the
other layers with parameters count their parameters once per sample, and a linear layer applied
to the last axis of a feature map is counted once instead of once per position. Layers without
parameters count 0, and so does code outside modules (a layer scale's product).
"""
from __future__ import annotations

import math

from . import Convention, Count
from .exported import Row


class Torchinfo(Convention):
    name = "torchinfo"
    tool = "torchinfo"
    version = "1.8.0"
    ops_unit = "mult-adds"
    ops_label = "Mult-Adds"
    params_label = "Param #"
    summary = ("per module call: its parameters x batch, x output positions for classes named *Conv*; "
               "Total params is parameters()")

    def ops(self, row: Row) -> Count:
        if row.module is None or not row.trainable:
            return Count(row.macs)  # 0 either way: torchinfo counts only modules with parameters
        if not row.leaf:
            return Count(0, f"{row.module} holds child modules, and torchinfo counts leaf modules only",
                         miscount=bool(row.macs)) if row.macs else Count(0)
        value = sum(self._call(row, call) for call in row.calls)
        return Count(value, *self._reason(row, value)) if value != row.macs else Count(value)

    @staticmethod
    def _call(row: Row, call) -> int:
        """LayerInfo.calculate_macs: the parameters x the batch, and x the output positions for a class
        named *Conv* (the weight and bias both: the class's parameters are named `weight` and `bias`)."""
        if "Conv" not in row.module:
            return call.y[0] * row.trainable
        return math.prod(call.y[:1] + call.y[2:]) * row.trainable

    @staticmethod
    def _reason(row: Row, value: int) -> tuple[str, bool]:
        """(why the value is not cnncalc's MACs, whether torchinfo gets the arithmetic wrong)."""
        if row.family == "ConvTranspose":
            return ("torchinfo counts ConvTranspose by output positions: (weights + bias) x output positions "
                    "instead of weights x input positions", True)
        if row.family == "Linear" and len(row.output_shape) > 1:
            return ("torchinfo counts nn.Linear once per sample ((weights + bias) x batch), not once per position "
                    "of the feature map it is applied to", True)
        if "Conv" in row.module or row.family == "Linear":
            return "counts the bias: one mult-add per output", False
        return f"counts {row.module}'s parameters once per sample (parameters x batch)", False
