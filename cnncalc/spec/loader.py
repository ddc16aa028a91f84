"""Read a spec file (YAML, JSON or TOML) into plain python data plus a source map.

The source map takes a data path such as ``("layers", 3, "conv", "kernel")`` to the line it
came from, so every later error can point at ``file:line``. YAML is loaded node by node
with PyYAML's safe composer: no object tags, and alias expansion is bounded (no
"billion laughs").
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError

MAX_NODES = 2_000_000  # scalars + collections after alias expansion
MAX_DEPTH = 200  # nesting of YAML/JSON collections
MAX_FILE_BYTES = 64 * 1024 * 1024

DataPath = tuple  # of str keys and int indices


@dataclass
class SourceMap:
    """Data path -> 1-based line number, best effort for JSON and TOML."""

    file: str | None = None
    lines: dict[DataPath, int] = field(default_factory=dict)

    def line_of(self, path: DataPath) -> int | None:
        """The line of the deepest known prefix of ``path``."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def locate(self, path: DataPath, name: str | None = None) -> Location:
        return Location(self.file, self.line_of(path), format_path(path) or None, name)


def format_path(path: DataPath) -> str:
    """("layers", 3, "branches", 1, 0) -> "layers[3].branches[1][0]"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def load_file(path: str | Path) -> tuple[Any, SourceMap]:
    path = Path(path)
    if path.suffix.lower() == ".onnx":  # a binary model with its weights: read by the ONNX importer, not as text
        from ..importers.onnx_import import load_onnx_file

        return load_onnx_file(path)
    with file_errors(path, "a spec file") as where:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SpecError(f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB; refusing to read it", where)
        raw = path.read_bytes()
    return load_bytes(raw, str(path), _format_of(path))


@contextmanager
def file_errors(path: Path, what: str):
    """Turns the OS's errors while reading ``path`` into one located SpecError; yields its Location."""
    where = Location(file=str(path))
    try:
        yield where
    except IsADirectoryError:
        raise SpecError(f"is a directory, not {what}", where) from None
    except FileNotFoundError:
        raise SpecError("no such file", where) from None
    except OSError as exc:
        raise SpecError(f"cannot be read ({exc.strerror or exc})", where) from None


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".json": "json", ".toml": "toml"}.get(suffix, "yaml")


def load_bytes(raw: bytes, file: str | None, fmt: str = "yaml") -> tuple[Any, SourceMap]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})", Location(file, line)
        ) from None
    if "\x00" in text:
        raise SpecError("contains NUL characters; is this a binary file?", Location(file))
    if not text.strip():
        raise SpecError("is empty; a spec needs at least `input` and `layers`", Location(file))
    loaders = {"json": _load_json, "toml": _load_toml, "yaml": _load_yaml}
    return loaders[fmt](text, file)


# --------------------------------------------------------------------------- YAML
def _load_yaml(text: str, file: str | None) -> tuple[Any, SourceMap]:
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(text, Loader=loader_cls)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "malformed YAML"
        tab = _tab_at(text, mark)
        if tab:
            problem = (f"a tab at line {tab[0]}, column {tab[1]}: YAML forbids tabs for indentation; "
                       "indent with spaces")
            line = tab[0]
        raise SpecError(f"is not valid YAML: {problem}", Location(file, line)) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"is not valid YAML: {exc}", Location(file)) from None
    source = SourceMap(file)
    if node is None:
        raise SpecError("is empty; a spec needs at least `input` and `layers`", Location(file))
    return _NodeReader(source, yaml).read(node), source


def _tab_at(text: str, mark) -> tuple[int, int] | None:
    """(line, column), 1-based, of the tab that PyYAML stopped at ("found character that cannot
    start any token" does not say it is a tab), or None when it stopped at something else."""
    if mark is None:
        return None
    lines = re.split("\r\n|[\r\n\x85\u2028\u2029]", text)  # YAML's line breaks, not str.splitlines()'s
    if mark.line >= len(lines):
        return None
    row = lines[mark.line]
    if mark.column < len(row) and row[mark.column] == "\t":
        return mark.line + 1, mark.column + 1
    return None


class _NodeReader:
    """Turns composed YAML nodes into python data, recording the line of every path."""

    def __init__(self, source: SourceMap, yaml_module):
        self.source = source
        self.yaml = yaml_module
        self.constructor = yaml_module.constructor.SafeConstructor()
        self.visited = 0

    def read(self, node, path: DataPath = ()):
        # An explicit stack, not recursion: deep nesting must give an error, not a RecursionError.
        root: list = [None]
        stack = [(node, path, root, 0, ())]
        while stack:
            node, path, parent, slot, active = stack.pop()
            self.visited += 1
            if self.visited > MAX_NODES:
                raise SpecError(  # located at the top-level key: the expanded path means nothing to a user
                    f"expands to more than {MAX_NODES:,} values (alias bomb?); refusing to load it",
                    self.source.locate(path[:1]),
                )
            if len(path) > MAX_DEPTH:
                raise SpecError(f"is nested more than {MAX_DEPTH} levels deep", self.source.locate(path))
            if id(node) in active:
                raise SpecError("contains an alias that refers to itself", self.source.locate(path))
            self.source.lines.setdefault(path, node.start_mark.line + 1)
            parent[slot] = self._value(node, path, active, stack)
        return root[0]

    def _value(self, node, path, active, stack):
        yaml = self.yaml
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        active = active + (id(node),) if len(active) < MAX_DEPTH else active
        if node.tag not in ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"):
            raise SpecError(f"uses the YAML tag {node.tag!r}, which cnncalc does not accept", self.source.locate(path))
        if isinstance(node, yaml.SequenceNode):
            items = [None] * len(node.value)
            for index in range(len(node.value) - 1, -1, -1):
                stack.append((node.value[index], path + (index,), items, index, active))
            return items
        mapping: dict = {}
        pending = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError("has a mapping key that is not a plain value", self.source.locate(path))
            key = self._scalar(key_node, path)
            if isinstance(key, (list, dict)) or key is None:
                raise SpecError("has an empty or complex mapping key", self.source.locate(path))
            key = str(key) if not isinstance(key, str) else key
            if key in mapping:
                line = key_node.start_mark.line + 1
                raise SpecError(f"repeats the key {key!r}", Location(self.source.file, line, format_path(path) or None))
            self.source.lines[path + (key,)] = key_node.start_mark.line + 1
            mapping[key] = None
            pending.append((value_node, path + (key,), mapping, key, active))
        stack.extend(reversed(pending))
        return mapping

    def _scalar(self, node, path):
        if not node.tag.startswith("tag:yaml.org,2002:"):
            raise SpecError(f"uses the YAML tag {node.tag!r}, which cnncalc does not accept", self.source.locate(path))
        try:
            return self.constructor.construct_object(node, deep=True)
        except (self.yaml.YAMLError, ValueError, OverflowError) as exc:
            raise SpecError(f"has a value that cannot be read: {exc}", self.source.locate(path)) from None


# --------------------------------------------------------------------------- JSON
def _load_json(text: str, file: str | None) -> tuple[Any, SourceMap]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"is not valid JSON: {exc.msg} (column {exc.colno})", Location(file, exc.lineno)) from None
    except RecursionError:
        raise SpecError(f"is nested more than {MAX_DEPTH} levels deep", Location(file)) from None
    return data, _lines_via_yaml(text, file)


def _lines_via_yaml(text: str, file: str | None) -> SourceMap:
    """JSON is (almost always) YAML, so YAML's node marks give us its lines for free."""
    try:
        _, source = _load_yaml(text, file)
    except SpecError:
        source = SourceMap(file)
    return source


# --------------------------------------------------------------------------- TOML
def _load_toml(text: str, file: str | None) -> tuple[Any, SourceMap]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        if line is None:  # Python < 3.14 keeps the position only in the message
            found = re.search(r"at line (\d+)", str(exc))
            line = int(found[1]) if found else text.count("\n") + 1
        raise SpecError(f"is not valid TOML: {exc}", Location(file, line)) from None
    except RecursionError:
        raise SpecError(f"is nested more than {MAX_DEPTH} levels deep", Location(file)) from None
    source = SourceMap(file)
    # tomllib keeps no positions; [[layers]] tables are the common form, so map those.
    index = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("[[layers]]"):
            source.lines[("layers", index)] = number
            index += 1
    return data, source
