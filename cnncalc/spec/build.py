"""Plain spec data (from any file format) -> a validated ``Spec`` with located errors.

A layer entry has three forms: a bare string (`relu`, `conv 64 k3 p1`, `conv3-64`), a mapping
with a scalar (`linear: 10`) or a mapping with arguments (`conv: {filters: 6, kernel: 5}`).
`name`, `from` and `expect` may sit beside the kind key or inside its arguments.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from ..errors import SpecError
from ..notation import DEFAULT_LAYOUT, LAYOUT_KEYS, NotationError, implausible, read_shape
from ..report import Finding
from ..kinds import KINDS, Composite, Layer
from .assignment import KEYS as ASSIGNMENT_KEYS, Assignment, check_assignment, read_marks
from .loader import DataPath, SourceMap, format_path
from .shorthand import canonical_kind, parse_one_line, parse_vgg

META_KEYS = ("name", "from", "expect")
ENTRY_KEYS = META_KEYS + ASSIGNMENT_KEYS  # beside the kind key; `ask`, `points`: spec/assignment.py
TOP_KEYS = ("name", "description", "input", "inputs", "layout", "rounding", "layers", "budgets", "input_values",
            *ASSIGNMENT_KEYS)
ROUNDINGS = ("floor", "ceil", "strict")
BUDGET_KEYS = ("max_params", "max_macs", "max_memory")
MAX_NESTING = 32  # composites inside composites
MAX_LAYERS = 1_000_000  # entries in the file, before repeat


@dataclass
class Spec:
    """A validated network description. Shapes are [C, *spatial]."""

    name: str
    input: tuple[int, ...]  # the first input: what the first layer reads
    layers: list[Layer]
    layout: str = DEFAULT_LAYOUT  # how shapes are shown: the chosen layout, else the input string's reading
    rounding: str | None = None  # the convention the network is written for; commands' options win
    description: str | None = None
    budgets: dict[str, Any] = field(default_factory=dict)
    input_values: Any = None
    source: SourceMap = field(default_factory=SourceMap)
    notes: list[Finding] = field(default_factory=list)  # how an input string was read, when that needs saying
    chosen_layout: str | None = None  # the layout the spec or the command line chose; None: nobody did
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # every named input, the first first
    assignment: Assignment | None = None  # `ask`/`points`: the questions `cnncalc check` gives points for

    def __post_init__(self):
        self.inputs = self.inputs or {"input": self.input}

    def with_input(self, shape: tuple[int, ...], **changes) -> "Spec":
        """The spec with its first input replaced (the command line's `--input`)."""
        first = next(iter(self.inputs))
        return replace(self, input=shape, inputs={**self.inputs, first: shape}, **changes)

    @property
    def file(self) -> str | None:
        return self.source.file


def build_spec(data: Any, source: SourceMap | None = None, default_name: str = "network",
               layout: str | None = None) -> Spec:
    """``layout``: the command line's choice; it shows the shapes, and reads the spec's strings
    where the spec declares no `layout` of its own."""
    source = source or SourceMap()
    if not isinstance(data, dict):
        raise SpecError(
            f"the top level must be a mapping with `input` and `layers`, not {_type_name(data)}", source.locate(())
        )
    unknown = [key for key in data if key not in TOP_KEYS]
    if unknown:
        raise SpecError(_unknown_key_message("the spec", unknown[0], TOP_KEYS), source.locate((unknown[0],)))
    if "input" in data and "inputs" in data:
        raise SpecError("give `input` (one network input) or `inputs` (several, by name), not both",
                        source.locate(("inputs",)))
    for key in ("input", "layers"):
        if key not in data and not (key == "input" and "inputs" in data):
            raise SpecError(f"the spec has no `{key}`", source.locate(()))
    declared = data.get("layout")
    if declared is not None and declared not in LAYOUT_KEYS:
        raise SpecError(f"`layout` must be one of {', '.join(LAYOUT_KEYS)}, not {declared!r}",
                        source.locate(("layout",)))
    rounding = data.get("rounding")
    if rounding is not None and rounding not in ROUNDINGS:
        raise SpecError(f"`rounding` must be one of {', '.join(ROUNDINGS)}, not {rounding!r}",
                        source.locate(("rounding",)))
    name = data.get("name", default_name)
    if not isinstance(name, (str, int, float)):
        raise SpecError("`name` must be text", source.locate(("name",)))
    builder = _Builder(source)
    layers = builder.layer_list(data["layers"], ("layers",), depth=0)
    if not layers:
        raise SpecError("`layers` is empty; list at least one layer", source.locate(("layers",)))
    readings = _inputs(data, declared or layout, source)
    reading = next(iter(readings.values()))
    notes = [Finding(source.locate(key), r.note) for key, r in readings.items() if r.note]
    assignment = builder.assignment(data)
    return Spec(
        name=str(name),
        description=_optional_text(data, "description", source),
        input=reading.shape,
        inputs={key[-1]: r.shape for key, r in readings.items()},
        layers=layers,
        layout=layout or declared or reading.layout,
        chosen_layout=layout or declared,
        notes=notes,
        rounding=rounding,
        budgets=_budgets(data.get("budgets"), source),
        input_values=data.get("input_values"),
        source=source,
        assignment=assignment,
    )


def _inputs(data: dict, layout: str | None, source: SourceMap) -> dict:
    """data path -> ``Reading`` of every network input: `input`, or each entry of `inputs`."""
    if "input" in data:
        return {("input",): read_input(data["input"], layout, source.locate(("input",)))}
    named = data["inputs"]
    if not isinstance(named, dict) or not named:
        raise SpecError("`inputs` must map names to shapes, e.g. {image: 3x224x224, mask: 1x224x224}",
                        source.locate(("inputs",)))
    readings = {}
    for name, value in named.items():
        if not isinstance(name, str) or not name or name in ("input",):
            raise SpecError(f"an input's name must be text other than `input`, not {name!r}", source.locate(("inputs",)))
        readings[("inputs", name)] = read_input(value, layout, source.locate(("inputs", name)))
    return readings


def read_input(value: Any, layout: str | None, loc):
    """The network input as a ``Reading``: lists are [C, *spatial]; strings per ``cnncalc.notation``."""
    if not isinstance(value, (str, list)) or isinstance(value, list) and not all(type(v) is int for v in value):
        raise SpecError(f"`input` must be a shape like [3, 224, 224] or '3x224x224', not {value!r}", loc)
    try:
        reading = read_shape(value, layout)
    except NotationError as exc:
        raise SpecError(str(exc), loc) from None
    sizes = reading.shape
    if len(sizes) > 4:
        raise SpecError(f"`input` {value!r} has {len(sizes) - 1} spatial axes; at most 3 are supported", loc)
    if any(size <= 0 for size in sizes):
        raise SpecError(f"`input` sizes must be positive, got {value!r}", loc)
    if isinstance(value, list) and len(value) > 2 and implausible(value[0], value[1:]) \
            and not implausible(value[-1], value[:-1]):
        note = (f"lists are always [C, *spatial], so {value} is {value[0]} channels of "
                f"{'x'.join(map(str, value[1:]))}; if you meant channels last, write "
                f"{[value[-1], *value[:-1]]} or the string '{'x'.join(map(str, value))}'")
        reading = replace(reading, note=note)
    return reading


def _optional_text(data: dict, key: str, source: SourceMap) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise SpecError(f"`{key}` must be text", source.locate((key,)))
    return value


def _budgets(value: Any, source: SourceMap) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError("`budgets` must be a mapping like {max_params: 25M}", source.locate(("budgets",)))
    for key in value:
        if key not in BUDGET_KEYS:
            raise SpecError(_unknown_key_message("`budgets`", key, BUDGET_KEYS), source.locate(("budgets", key)))
    return dict(value)


class _Builder:
    def __init__(self, source: SourceMap):
        self.source = source
        self.count = 0
        self.read_strings: dict[str, tuple[str, dict]] = {}  # a spec repeats its one-line layers: read each once
        self.marks: dict[DataPath, Any] = {}  # layer path -> its `ask`/`points` (spec/assignment.py)
        self.composites: set[DataPath] = set()

    def fail(self, message: str, path: DataPath) -> SpecError:
        return SpecError(message, self.source.locate(path))

    def layer_list(self, raw: Any, path: DataPath, depth: int) -> list[Layer]:
        if not isinstance(raw, list):
            raise self.fail(f"`{format_path(path)}` must be a list of layers, not {_type_name(raw)}", path)
        return [self.layer(entry, path + (index,), depth) for index, entry in enumerate(raw)]

    def layer(self, raw: Any, path: DataPath, depth: int) -> Layer:
        self.count += 1
        if self.count > MAX_LAYERS:
            raise self.fail(f"the spec has more than {MAX_LAYERS:,} layer entries", path)
        if depth > MAX_NESTING:
            raise self.fail(f"composites are nested more than {MAX_NESTING} levels deep", path)
        kind, args, arg_paths = self.entry(raw, path)
        cls = KINDS.get(kind)
        if cls is None:
            raise self.fail(_unknown_kind_message(kind), path)
        self.read_marks(args, arg_paths, path, issubclass(cls, Composite))
        if issubclass(cls, Composite):
            args = self.children(cls, args, arg_paths, depth)
        layer = self.validate(cls, args, arg_paths, path)
        layer._path = path
        return layer

    def entry(self, raw: Any, path: DataPath) -> tuple[str, dict, dict]:
        """-> (kind, arguments, data path of each argument's value)."""
        if isinstance(raw, str):
            return self.string_entry(raw, path)
        if not isinstance(raw, dict):
            raise self.fail(
                f"a layer must be a name like `relu` or a mapping like `conv: {{filters: 8, kernel: 3}}`, "
                f"not {_type_name(raw)} {raw!r}", path)
        if "kind" in raw:
            return self.flat_entry(raw, path)
        kinds = [key for key in raw if key not in ENTRY_KEYS]
        if len(kinds) != 1:
            if not kinds:
                raise self.fail("this layer names no kind (e.g. `conv:`, `relu`)", path)
            raise self.fail(f"one layer entry has several kinds ({', '.join(map(str, kinds))}); "
                            "put each in its own list item", path)
        written = kinds[0]
        kind = canonical_kind(str(written))
        value = raw[written]
        value_path = path + (written,)
        cls = KINDS.get(kind)
        if cls is None and value is None and isinstance(written, str) and len(written.split()) > 1:
            kind, args, arg_paths = self.string_entry(written, value_path)  # `{conv 32 k1, name: a}`
        elif cls is None:
            raise self.fail(_unknown_kind_message(str(written)), value_path)
        elif isinstance(value, dict):
            args, arg_paths = dict(value), {key: value_path + (key,) for key in value}
        elif value is None:
            args, arg_paths = {}, {}
        elif cls.primary is None:
            raise self.fail(f"`{kind}` takes no value; write `- {kind}` or `- {kind}: {{...}}`", value_path)
        else:
            args, arg_paths = {cls.primary: value}, {cls.primary: value_path}
        for key in ENTRY_KEYS:
            if key in raw:
                if key in args:
                    raise self.fail(f"`{key}` is given twice, beside and inside `{kind}`", path + (key,))
                args[key], arg_paths[key] = raw[key], path + (key,)
        return kind, args, arg_paths

    def flat_entry(self, raw: dict, path: DataPath) -> tuple[str, dict, dict]:
        """`{kind: conv, filters: 8, kernel: 3, name: c1}`: the kind as a value beside its arguments,
        as JSON writers and other tools write layers."""
        written = raw["kind"]
        if not isinstance(written, str) or KINDS.get(canonical_kind(written)) is None:
            raise self.fail(_unknown_kind_message(str(written)), path + ("kind",))
        kind = canonical_kind(written)
        args = {key: value for key, value in raw.items() if key != "kind"}
        return kind, args, {key: path + (key,) for key in args}

    def read_marks(self, args: dict, arg_paths: dict, path: DataPath, composite: bool) -> None:
        """Takes `ask` and `points` out of a layer's arguments (the kind's model does not know them)."""
        if composite:
            self.composites.add(path)
        if any(key in args for key in ASSIGNMENT_KEYS):
            self.marks[path] = read_marks(args, arg_paths, self.source.locate)
            for key in ASSIGNMENT_KEYS:
                args.pop(key, None)

    def assignment(self, data: dict) -> Assignment | None:
        """The spec's questions, when it asks any (top-level or per-layer `ask`/`points`)."""
        if not self.marks and not any(key in data for key in ASSIGNMENT_KEYS):
            return None
        top = read_marks(data, {key: (key,) for key in ASSIGNMENT_KEYS}, self.source.locate)
        assignment = Assignment(top, self.marks, frozenset(self.composites))
        check_assignment(assignment, self.source.locate)
        return assignment

    def string_entry(self, text: str, path: DataPath) -> tuple[str, dict, dict]:
        text = text.strip()
        if not text:
            raise self.fail("a layer entry is empty", path)
        if text not in self.read_strings:
            self.read_strings[text] = self.read_string(text, path)
        kind, args = self.read_strings[text]
        return kind, dict(args), {key: path for key in args}

    def read_string(self, text: str, path: DataPath) -> tuple[str, dict]:
        vgg = parse_vgg(text)
        if vgg:
            return vgg
        head = canonical_kind(text.split()[0])
        cls = KINDS.get(head)
        if cls is None:
            raise self.fail(_unknown_kind_message(text.split()[0]), path)
        try:
            return parse_one_line(text, cls.primary)
        except SpecError as exc:
            raise self.fail(exc.message, path) from None

    def children(self, cls: type[Composite], args: dict, arg_paths: dict, depth: int) -> dict:
        args = dict(args)
        for key in ("layers", "shortcut", "after"):
            if key in args:
                args[key] = self.layer_list(args[key], arg_paths[key], depth + 1)
        if "paths" in args:
            raw_paths, base = args["paths"], arg_paths["paths"]
            if not isinstance(raw_paths, list):
                raise self.fail("`branches` must be a list of layer lists, one per branch", base)
            args["paths"] = [self.layer_list(branch, base + (index,), depth + 1)
                             for index, branch in enumerate(raw_paths)]
        return args

    def validate(self, cls: type[Layer], args: dict, arg_paths: dict, path: DataPath) -> Layer:
        try:
            return cls.model_validate(args)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            error = min(errors, key=lambda e: e["type"] != "extra_forbidden")  # a typo explains a "missing"
            key = str(error["loc"][0]) if error["loc"] else None
            where = arg_paths.get(key, path) if key else path
            raise self.fail(_validation_message(cls, error, args), where) from None


def _validation_message(cls: type[Layer], error: dict, args: dict) -> str:
    loc = error["loc"]
    key = str(loc[0]) if loc else None
    if error["type"] == "extra_forbidden":
        return _unknown_key_message(f"`{cls.kind}`", key, [*_keys_of(cls), *ASSIGNMENT_KEYS])
    if error["type"] == "missing":
        return f"`{cls.kind}` needs `{key}`" + _describe(cls, key)
    if key is None:
        return f"`{cls.kind}`: {error['msg']}"
    got = args.get(key, error.get("input"))
    return f"`{cls.kind}.{key}` = {got!r} is not valid: {_pydantic_reason(error)}{_describe(cls, key)}"


def _pydantic_reason(error: dict) -> str:
    message = str(error["msg"])
    message = message.replace("Input should be", "it should be").replace("Value error, ", "")
    return message[0].lower() + message[1:] if message else "invalid value"


def _describe(cls: type[Layer], key: str) -> str:
    info = cls.model_fields.get("from_" if key == "from" else key)
    return f" ({info.description})" if info and info.description else ""


def _keys_of(cls: type[Layer]) -> list[str]:
    return [info.alias or name for name, info in cls.model_fields.items()]


def _unknown_key_message(owner: str, key: str, known) -> str:
    hint = difflib.get_close_matches(str(key), list(known), n=1)
    suggestion = f"; did you mean `{hint[0]}`?" if hint else f"; known keys: {', '.join(known)}"
    return f"{owner} has no key `{key}`{suggestion}"


def _unknown_kind_message(kind: str) -> str:
    hint = difflib.get_close_matches(str(kind).lower(), list(KINDS), n=1)
    suggestion = f"; did you mean `{hint[0]}`?" if hint else f"; known kinds: {', '.join(KINDS)}"
    return f"unknown layer kind `{kind}`{suggestion}"


def _type_name(value: Any) -> str:
    return {list: "a list", dict: "a mapping", str: "text", int: "a number", float: "a number",
            bool: "true/false", type(None): "empty"}.get(type(value), type(value).__name__)
