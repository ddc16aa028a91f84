"""Small builders shared by the tests: one-layer and stacked specs as python mappings."""
from __future__ import annotations

import cnncalc


def run(input_shape, *layers, **options):
    """Analyse a spec given inline; returns the report."""
    spec = {"name": "t", "input": input_shape, "layers": list(layers)}
    if isinstance(input_shape, str):
        spec["layout"] = "hwc"
    return cnncalc.analyze(cnncalc.load_spec(spec), **options)


def last(input_shape, *layers, **options):
    """The last row of the report, as the JSON contract has it."""
    return run(input_shape, *layers, **options).to_dict()["layers"][-1]
