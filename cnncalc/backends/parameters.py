"""The parameter arrays of every layer, in PyTorch's layouts: random from a seed, or the spec's own.

Which tensors a layer needs is its kind's own ``tensors(step, x_shape)``: shapes come from the
layer's fields and the *actual* input array reaching it, never from the engine's formulas. Random weights are He/Kaiming-uniform (variance 2 / fan_in), so activations
keep their scale through deep ReLU nets instead of overflowing float32; biases are uniform in
+-1/sqrt(fan_in) (PyTorch's default); batch norm has running mean 0 and variance 1 and a
random affine scale around 1. Each row draws from its own generator, seeded by (seed, row
index): the same row gets the same numbers on every backend and whatever else runs.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy

from ..errors import Location, SpecError
from ..kinds import Param
from .values import load_array, shape_text

EXPLICIT_KEYS = {"weight": "weights", "bias": "biases"}  # array name -> spec key


def connection_mask(table: list[list[int]], channels: int, ndim: int) -> numpy.ndarray:
    """[K, C, 1, ...] of ones where filter k is connected to input channel c."""
    mask = numpy.zeros((len(table), channels) + (1,) * (ndim - 2), numpy.float32)
    for filter_index, inputs in enumerate(table):
        mask[filter_index, inputs] = 1
    return mask


def random_array(tensor: Param, rng) -> numpy.ndarray:
    """float32 throughout (no float64 copy of a 400 MB weight matrix)."""
    if tensor.fill == "zeros":
        return numpy.zeros(tensor.shape, numpy.float32)
    if tensor.fill == "ones":
        return numpy.ones(tensor.shape, numpy.float32)
    if tensor.fill == "constant":  # PyTorch's own start value: PReLU's 0.25, a layer scale's 1e-6
        return numpy.full(tensor.shape, tensor.value, numpy.float32)
    low, high = {
        "he": (-math.sqrt(6 / tensor.fan_in), math.sqrt(6 / tensor.fan_in)),
        "bias": (-1 / math.sqrt(tensor.fan_in), 1 / math.sqrt(tensor.fan_in)),
        "scale": (0.5, 1.5),
        "shift": (-0.5, 0.5),
    }[tensor.fill]
    array = rng.random(tensor.shape, dtype=numpy.float32)
    array *= numpy.float32(high - low)
    array += numpy.float32(low)
    return array


class SeededParameters:
    """``(step, x_shape) -> {name: float32 array}``: the spec's explicit weights and biases where
    given (and ``weights_from_spec``), random ones from ``(seed, step.index)`` otherwise."""

    def __init__(self, seed: int, weights_from_spec: bool = True, base_dir: Path | None = None,
                 file: str | None = None, source=None):
        self.seed = seed
        self.weights_from_spec = weights_from_spec
        self.base_dir = base_dir or Path(".")
        self.file = file
        self.source = source  # the spec's SourceMap, for the line of a bad `weights:` key

    def __call__(self, row, x_shape: tuple[int, ...]) -> dict[str, numpy.ndarray]:
        tensors = row.layer.tensors(row, x_shape)
        if not tensors:
            return {}
        explicit = self.explicit(row, tensors)
        rng = numpy.random.default_rng((self.seed, row.index + 1))
        arrays = {name: explicit[name] if name in explicit else random_array(tensor, rng)
                  for name, tensor in tensors.items()}
        table = getattr(row.layer, "connection_table", None)
        if table is not None:  # a filter sees only its listed input channels: zero the others
            arrays["weight"] = arrays["weight"] * connection_mask(table, x_shape[1], arrays["weight"].ndim)
        return arrays

    def explicit(self, row, tensors: dict[str, Param]) -> dict[str, numpy.ndarray]:
        if not self.weights_from_spec:
            return {}
        given = {name: getattr(row.layer, key, None) for name, key in EXPLICIT_KEYS.items()}
        given = {name: value for name, value in given.items() if value is not None}
        if "bias" in given and "bias" not in tensors:
            raise SpecError("`biases` are given but the layer has `bias: false`", self.where(row, "biases"))
        arrays = {name: self.checked(row, name, value, tensors[name]) for name, value in given.items()}
        if "weight" in arrays and "bias" in tensors and "bias" not in arrays:
            arrays["bias"] = numpy.zeros(tensors["bias"].shape, numpy.float32)  # explicit weights: no random bias
        return arrays

    def checked(self, row, name: str, value, tensor: Param) -> numpy.ndarray:
        key = EXPLICIT_KEYS[name]
        try:
            array = load_array(value, self.base_dir)
        except ValueError as exc:
            raise SpecError(f"`{key}` {exc}", self.where(row, key)) from None
        if array.shape != tensor.shape:
            raise SpecError(f"`{key}` has shape {shape_text(array.shape)} but this {row.kind} needs "
                            f"{tensor.layout} = {shape_text(tensor.shape)}", self.where(row, key))
        return array

    def where(self, row, key: str) -> Location:
        """The line of the `weights:` key itself when the source map knows it, else the layer's."""
        layer_path = row.layer.path
        if self.source is not None:
            for path in self.source.lines:
                if len(path) == len(layer_path) + 2 and path[:len(layer_path)] == layer_path and path[-1] == key:
                    location = self.source.locate(path, row.name)
                    return Location(location.file, location.line, row.path or None, row.name)
        return Location(self.file, row.line, row.path or None, row.name)
