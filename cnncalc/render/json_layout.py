"""The JSON layout every command prints: indented for reading and diffing, written by the C encoder."""
from __future__ import annotations

import json


def json_text(data) -> str:
    """JSON laid out for reading and diffing, written mostly by the C encoder: mappings are indented
    two spaces to the second level, a list of mappings or lists has one item per line, and anything
    deeper (a layer row), or a list of plain values (a shape), is one line. ``json.dumps(indent=2)``
    runs its pure-Python encoder instead: seconds for a 100,000-row report."""
    return _layout(data, 0, "") + "\n"


_ONE_LINE = json.JSONEncoder(separators=(", ", ": "))  # no indent: the C encoder


def _layout(value, depth: int, pad: str) -> str:
    inner = pad + "  "
    if isinstance(value, dict) and value and depth < 2:
        items = (f"{inner}{_ONE_LINE.encode(_key(key))}: {_layout(item, depth + 1, inner)}" for key, item in value.items())
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(item, (dict, list, tuple)) for item in value):
        items = (inner + _layout(item, depth + 1, inner) for item in value)
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _ONE_LINE.encode(value)


def _key(key) -> str:
    """JSON object keys are text; json writes True, None and numbers as their JSON spelling."""
    if isinstance(key, str):
        return key
    return _ONE_LINE.encode(key)
