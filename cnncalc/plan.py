"""The execution plan: what a forward pass needs for each row of a report, typed, apart from the
report (which is plain data for renderers and JSON).

A ``Step`` is one row's computation: the layer kind's model (whose ``tensors`` and ``forward`` the
backends call), the normalised hyper-parameters, the rows it reads and the shapes the engine
inferred, which the forward pass then checks. ``Step.formulas()`` gives the row's worked formulas.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    index: int  # the report row it computes
    name: str
    kind: str  # the row's kind: `add`/`concat` for the merge of a residual/branches block
    path: str  # where the layer is written, e.g. layers[3].branches[1][0]
    line: int | None
    layer: Any  # the layer kind's model (cnncalc.kinds): tensors(), forward(), explain()
    hyper: dict[str, Any]
    inputs: tuple[int, ...]  # rows whose outputs feed this one (-1 = the network input)
    input_shape: tuple[int, ...]  # per sample, [C, *spatial]
    output_shape: tuple[int, ...]

    def formulas(self) -> list:
        """The row's worked formulas (``cnncalc.kinds.Formula``), made when asked."""
        return self.layer.explain(self)


@dataclass
class Plan:
    name: str
    file: str | None
    input_shape: tuple[int, ...]  # the first input's
    steps: list[Step] = field(default_factory=list)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every named input; node -1, -2, ... in order

    def __post_init__(self):
        self.inputs = self.inputs or {"input": self.input_shape}
