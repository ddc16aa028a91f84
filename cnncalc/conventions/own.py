"""Conventions that need no tool run: cnncalc's own three counts, the lecture's, Keras's parameter
count and the "GFLOPS" column of torchvision's model documentation."""
from __future__ import annotations

from . import Convention, Count
from .exported import Row


class Cnncalc(Convention):
    name = "cnncalc"
    counts_modules = False
    ops_unit = "macs"
    ops_label = "MACs"
    summary = ("weight multiply-accumulates of conv, conv_transpose and linear layers, bias excluded; params are "
               "trainable + non-trainable (batch-norm running statistics, as Keras counts them)")

    def params(self, row: Row) -> Count:
        return Count(row.params)

    def ops(self, row: Row) -> Count:
        return Count(row.macs)


class CnncalcFlops(Cnncalc):
    name = "cnncalc-flops"
    ops_unit = "flops"
    ops_label = "FLOPs"
    summary = "2 x MACs: a multiply-accumulate is a multiplication and an addition"

    def ops(self, row: Row) -> Count:
        return Count(2 * row.macs, "FLOPs = 2 x MACs") if row.macs else Count(0)


class Lecture(Cnncalc):
    name = "lecture"
    ops_unit = "muls"
    ops_label = "MULs"
    summary = ("the lecture's multiplications (cnncalc's muls_with_bias): (F*F*D1 + 1)*K*W2*H2 for a conv, "
               "(N_in + 1)*N_out for a fully connected layer: the bias counted as one more multiplication")

    def ops(self, row: Row) -> Count:
        if row.bias_muls:
            return Count(row.macs + row.bias_muls, "counts the bias as one multiplication per output (the +1)")
        return Count(row.macs)


class Keras(Convention):
    name = "keras"
    counts_modules = False
    tool = "keras"
    version = "3.15.1"
    ops_unit = None
    ops_label = None
    params_label = "Total params"
    summary = ("model.summary()'s Total params: trainable + non-trainable weights; batch norm's moving mean and "
               "variance are non-trainable weights, so Keras's total is cnncalc's params (Keras prints no operations)")

    def params(self, row: Row) -> Count:
        return Count(row.params)


class TorchvisionDocs(Convention):
    name = "torchvision-docs"
    counts_modules = False
    tool = "torchvision"
    version = "0.28.0"
    ops_unit = "macs"
    ops_label = "GFLOPS"
    params_label = "Params"
    summary = ("the GFLOPS column of torchvision's model tables (`_ops` in each weights' meta): a dispatch counter "
               "over conv, mm, addmm and bmm counting one per multiply-accumulate, bias excluded, so MACs / 10^9 "
               "rounded to 3 decimals, at the weights' preprocessing size; Params is parameters()")

    def ops(self, row: Row) -> Count:
        return Count(row.macs)

    def shown(self, ops: int) -> str:
        """As `_ops` holds it: round(count / 1e9, 3) (torchvision's test/common_extended_utils.py)."""
        return repr(round(ops / 1e9, 3))


OWN = (Cnncalc, CnncalcFlops, Lecture)
DOCUMENTS = (Keras, TorchvisionDocs)
