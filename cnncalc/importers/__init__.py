"""Importers: other descriptions of a network turned into cnncalc spec data (`cnncalc import`).

``onnx_import`` reads an ONNX file (also what `load_spec` does with a `.onnx` path);
``torch_import`` maps a PyTorch module. Both give plain spec data (``name``, ``input``,
``layers``, ...), which ``spec_yaml`` writes as a readable YAML spec: the top-level keys block
style, one layer per line as a flow mapping (``- conv: {name: conv1, filters: 64, kernel: 7}``),
composites (layer lists inside a layer) block style with their layers again one per line.

Only the standard library here: this module is imported by `cnncalc import` before it knows
which importer it needs.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

TOP_ORDER = ("name", "description", "input", "inputs", "layout", "rounding", "budgets", "input_values", "layers")
LAYER_LISTS = ("layers", "shortcut", "after", "paths", "branches")  # keys whose values are layer lists
META_FIRST = ("name", "from")  # shown first inside a layer's arguments

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/@]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def spec_yaml(data: dict, source_comment: str) -> str:
    """``data`` (spec data as `load_spec` takes it) as YAML text headed by ``# Source: ...``.

    Top-level keys come in the README's order, block style; each layer is one line, a flow
    mapping ``- KIND: {name: ..., from: ..., key: value}`` (``- KIND: {}`` without arguments), or
    block style when it holds layer lists (composites). The text reads back to ``data``."""
    lines = [f"# Source: {line}" if number == 0 else f"#         {line}"
             for number, line in enumerate(str(source_comment).splitlines() or [""])]
    keys = [key for key in TOP_ORDER if key in data] + [key for key in data if key not in TOP_ORDER]
    for key in keys:
        value = data[key]
        if key == "layers" and isinstance(value, list):
            lines.append("layers:")
            lines += _layer_list(value, 2)
        else:
            lines.append(f"{_scalar_key(key)}: {_flow(value)}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- layers
def _layer_list(layers: list, indent: int) -> list[str]:
    pad = " " * indent
    if not layers:
        return [f"{pad}[]"]
    lines = []
    for entry in layers:
        lines += _layer(entry, indent)
    return lines


def _layer(entry: Any, indent: int) -> list[str]:
    pad = " " * indent
    if not isinstance(entry, dict):
        return [f"{pad}- {_flow(entry)}"]
    ordered = _kind_first(entry)
    if not _holds_layer_lists(ordered):
        body = ", ".join(_pair(key, value, top=True) for key, value in ordered.items())
        return [f"{pad}- {{{body}}}" if len(ordered) > 1 else f"{pad}- {body}"]
    # a composite: block style, its layer lists one layer per line
    lines, first = [], True
    for key, value in ordered.items():
        lead = f"{pad}- " if first else f"{pad}  "
        first = False
        if isinstance(value, dict) and _holds_layer_lists(value):
            lines.append(f"{lead}{_scalar_key(key)}:")
            lines += _block_mapping(value, indent + 4)
        elif key in LAYER_LISTS and _is_layer_list(value):
            lines.append(f"{lead}{_scalar_key(key)}:")
            lines += _nested_lists(key, value, indent + 4)
        else:
            lines.append(f"{lead}{_scalar_key(key)}: {_flow(value)}")
    return lines


def _block_mapping(mapping: dict, indent: int) -> list[str]:
    pad = " " * indent
    lines = []
    for key in _meta_first(mapping):
        value = mapping[key]
        if key in LAYER_LISTS and _is_layer_list(value):
            lines.append(f"{pad}{_scalar_key(key)}:")
            lines += _nested_lists(key, value, indent + 2)
        else:
            lines.append(f"{pad}{_scalar_key(key)}: {_flow(value)}")
    return lines


def _nested_lists(key: str, value: list, indent: int) -> list[str]:
    """A layer list, or (`paths`, `branches`) a list of layer lists."""
    if key in ("paths", "branches") and value and all(isinstance(item, list) for item in value):
        pad = " " * indent
        lines = []
        for branch in value:
            if not branch:
                lines.append(f"{pad}- []")
                continue
            inner = _layer_list(branch, indent + 2)  # "  - layer" lines; the first also opens the branch
            inner[0] = f"{pad}- {inner[0].lstrip()}"
            lines += inner
        return lines
    return _layer_list(value, indent)


def _kind_first(entry: dict) -> dict:
    """The kind key first (a layer entry has one key besides name/from/expect), then the rest."""
    kinds = [key for key in entry if key not in ("name", "from", "expect")]
    return {**{key: entry[key] for key in kinds}, **{key: entry[key] for key in entry if key not in kinds}}


def _meta_first(mapping: dict) -> list:
    return [key for key in META_FIRST if key in mapping] + [key for key in mapping if key not in META_FIRST]


def _holds_layer_lists(mapping: dict) -> bool:
    for key, value in mapping.items():
        if key in LAYER_LISTS and _is_layer_list(value):
            return True
        if isinstance(value, dict) and _holds_layer_lists(value):
            return True
    return False


def _is_layer_list(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value)


def _pair(key: Any, value: Any, top: bool = False) -> str:
    if top and isinstance(value, dict):  # a layer's arguments: name and from first
        inner = ", ".join(f"{_scalar_key(k)}: {_flow(value[k])}" for k in _meta_first(value))
        return f"{_scalar_key(key)}: {{{inner}}}"
    return f"{_scalar_key(key)}: {_flow(value)}"


# ----------------------------------------------------------------------------- values
def _flow(value: Any) -> str:
    """One YAML flow value that reads back as ``value``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar_key(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    return _scalar(value)


def _scalar_key(key: Any) -> str:
    return _scalar(key) if not isinstance(key, str) else _string(key)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    return _string(str(value))


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text or "E" in text:  # YAML 1.1 (PyYAML) reads 1e-05 as text: it wants 1.0e-05
        mantissa, exponent = text.lower().split("e")
        if "." not in mantissa:
            mantissa += ".0"
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').zfill(2)}"
    return text


def _string(text: str) -> str:
    """Plain when YAML reads it back as this text, else double-quoted (JSON's escapes are YAML's)."""
    if _PLAIN.match(text) and text.lower() not in _RESERVED and not _looks_numeric(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace("_", ""))
        return True
    except ValueError:
        return text.startswith(("0x", "0o", "0b", ".")) or bool(re.match(r"^[-+]?\d", text))
