"""Explicit numbers in a spec (weights, biases, input_values): nested lists or a .npy / .json file.

Problems are ValueError sentences; the caller knows the location and wraps them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy

SUFFIXES = (".npy", ".json")


def load_array(value, base_dir: Path) -> numpy.ndarray:
    """Nested lists of numbers, or a path (relative to ``base_dir``) -> a float32 array."""
    if isinstance(value, str):
        value = _read_file(base_dir / value)
    if isinstance(value, numpy.ndarray):
        return _numeric(value)
    if not isinstance(value, list):
        raise ValueError(f"must be nested lists of numbers or a path to a .npy / .json file, not {value!r}")
    try:
        array = numpy.array(value, dtype=numpy.float32)
    except (ValueError, TypeError):
        raise ValueError("must be nested lists of numbers with the same length at each level "
                         "(a ragged list or a non-number was found)") from None
    return array


def _read_file(path: Path):
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"`{path}` must be a .npy or .json file")
    try:
        if path.suffix.lower() == ".npy":
            return numpy.load(path, allow_pickle=False)  # never unpickle: a spec may come from anyone
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"`{path}` does not exist (paths are relative to the spec file)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"`{path}` cannot be read ({exc})") from None


def _numeric(array: numpy.ndarray) -> numpy.ndarray:
    if array.dtype.kind not in "biuf":
        raise ValueError(f"holds {array.dtype} values, not numbers")
    return numpy.ascontiguousarray(array, dtype=numpy.float32)


def shape_text(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"
