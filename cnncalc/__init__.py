"""cnncalc: exact CNN shapes, parameters, MACs, memory and receptive fields.

Public API::

    spec = cnncalc.load_spec("specs/lenet5.yaml")   # a path, a zoo name, or a mapping
    report = cnncalc.analyze(spec, rounding="floor", batch=1, dtype="float32", optimizer="sgd")
    report.to_dict()                                 # what `cnncalc table --format json` prints
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load_spec", "analyze", "CnnCalcError", "__version__"]

from .errors import CnnCalcError


def load_spec(source, layout: str | None = None):
    """A validated spec from a file path, a zoo model name (``vgg16``) or a python mapping.

    layout: "chw", "hwc" or "whd", to show shapes in (and to read the spec's shape strings in,
    where the spec has no `layout` key); None = the spec's own."""
    from .api import load_spec as _load_spec

    return _load_spec(source, layout)


def analyze(spec, rounding: str | None = None, batch: int = 1, dtype: str = "float32", optimizer: str = "sgd",
            amp: str | None = None, checkpoint: bool = False, optimizer_dtype: str | None = None,
            train_on: str = "cuda"):
    """Infer every layer; returns a Report (``to_dict()`` is the JSON contract).

    rounding: "floor" (PyTorch), "ceil" or "strict" (the lecture); None = the spec's `rounding`
    key, else floor. optimizer ("sgd", "momentum", "adam", "adamw"), amp (None, "fp16", "bf16"),
    checkpoint, optimizer_dtype (None: the weights' dtype) and train_on ("cuda", "cpu"): how the
    training memory is counted."""
    from .api import analyze as _analyze

    return _analyze(spec, rounding=rounding, batch=batch, dtype=dtype, optimizer=optimizer, amp=amp,
                    checkpoint=checkpoint, optimizer_dtype=optimizer_dtype, train_on=train_on)
