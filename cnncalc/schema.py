"""A JSON Schema (draft 2020-12) of the spec file format, generated from the layer models.

Each kind's arguments come from its pydantic model (``model_json_schema``, validation mode, by
alias), so a new kind or key shows up here without edits. Around them sits the user-facing
structure the builder accepts: a layer entry is a bare kind or one-line string (`relu`,
`conv 64 k3 p1`, `conv3-64`) or a one-key mapping `{kind: args}` whose value may also be the
kind's primary scalar (`linear: 10`) or empty, with `name`, `from` and `expect` allowed beside
the kind key; composites refer back to the layer entry.

The schema checks structure, not arithmetic: `cnncalc validate` is the full check.
"""
from __future__ import annotations

import re
from typing import Any

from . import units
from .notation import LAYOUT_KEYS, SHAPE_PATTERN

DRAFT = "https://json-schema.org/draft/2020-12/schema"
LAYER = {"$ref": "#/$defs/layer"}
LAYERS = {"type": "array", "items": LAYER}
META_KEYS = ("name", "from", "expect", "ask", "points")  # allowed beside the kind key
ASK = {"$ref": "#/$defs/ask"}
POINTS = {"$ref": "#/$defs/points"}
# pydantic writes annotated-types bounds on unions with its own names; these are JSON Schema's
BOUND_KEYWORDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}
SCHEMA_MAPS = ("properties", "$defs", "patternProperties")  # keywords whose values map names to schemas
QUANTITY_PATTERN = units.QUANTITY_PATTERN  # budgets: the pattern of the one quantity reader


def spec_schema() -> dict:
    from .kinds import KINDS

    defs: dict[str, Any] = {"layer": _layer_entry(), "layer_string": _layer_string(KINDS),
                            "layer_mapping": _layer_mapping(KINDS), "expect": _expect(), "ask": _ask(),
                            "points": _points()}
    defs.update({f"{kind}.args": _arguments(cls) for kind, cls in KINDS.items()})
    defs["layer_flat"] = _layer_flat(KINDS)
    defs.update({f"{kind}.flat": _flat_arguments(defs[f"{kind}.args"]) for kind in KINDS})
    return {
        "$schema": DRAFT,
        "title": "cnncalc spec",
        "description": "A CNN as a declarative layer list (YAML, JSON or TOML); see the README's `Spec format`.",
        "type": "object",
        "properties": _top_level(),
        "required": ["layers"],
        "oneOf": [{"required": ["input"]}, {"required": ["inputs"]}],  # one input, or several by name
        "additionalProperties": False,
        "$defs": defs,
    }


# ----------------------------------------------------------------------------- top level
SHAPE_LIST = {"type": "array", "items": {"type": "integer", "exclusiveMinimum": 0}, "minItems": 1, "maxItems": 4}


def _top_level() -> dict:
    from .spec.build import TOP_KEYS

    known = {
        "name": {"type": ["string", "number"], "description": "the network's name (default: the file name)"},
        "description": {"type": "string", "description": "one line for `cnncalc models`"},
        "input": {
            "description": "[C, *spatial] (1 to 3 spatial axes; lists are always channels first), or a string "
                           "like 3x32x32 read in `layout` order (default chw; 32x32x3 is read channels last, "
                           "with a note), or 3@32x32",
            "anyOf": [SHAPE_LIST, {"type": "string", "pattern": SHAPE_PATTERN}],
        },
        "inputs": {
            "description": "instead of `input`: several named inputs, e.g. {image: 3x224x224, meta: [10]}; the "
                           "first layer reads the first, later layers take the others with `from`",
            "type": "object", "minProperties": 1, "propertyNames": {"not": {"const": "input"}},
            "additionalProperties": {"anyOf": [SHAPE_LIST, {"type": "string", "pattern": SHAPE_PATTERN}]},
        },
        "layout": {"enum": list(LAYOUT_KEYS), "default": "chw",
                   "description": "how `input` strings are read and shapes shown: chw (C x H x W, PyTorch), "
                                  "hwc (H x W x C, Keras) or whd (W x H x D, the lecture's, width first)"},
        "rounding": {"enum": ["floor", "ceil", "strict"],
                     "description": "the rounding the network is written for; a command's --rounding wins"},
        "layers": {**LAYERS, "minItems": 1, "description": "the layer list"},
        "budgets": _budgets(),
        "input_values": {"description": "explicit input numbers for `cnncalc run` (nested lists, [C, *spatial])"},
        "ask": {**ASK, "description": "the quantities `cnncalc check` asks of every leaf layer (an assignment)"},
        "points": {**POINTS, "description": "what a right answer is worth, per quantity or one number for all "
                                            "(default 1)"},
    }
    return {key: known.get(key, {}) for key in TOP_KEYS}  # a key added later is allowed until described


def _budgets() -> dict:
    from .spec.build import BUDGET_KEYS

    amount = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": QUANTITY_PATTERN}]}
    return {
        "type": "object",
        "description": "limits for `cnncalc validate` (25M, 5G, 2GiB); max_memory is inference bytes",
        "properties": {key: amount for key in BUDGET_KEYS},
        "additionalProperties": False,
    }


def _expect() -> dict:
    from .check import ALIASES, QUANTITIES

    value = {"type": ["string", "number", "array"]}
    keys = {key: {**value, "description": q.help} for key, q in QUANTITIES.items()}
    keys.update({alias: {**value, "description": f"= {target}"} for alias, target in ALIASES.items()})
    return {"type": "object", "description": "expected values for `cnncalc check` and `cnncalc validate`",
            "properties": keys, "additionalProperties": False}


def _quantities() -> list[str]:
    from .check import ALIASES, QUANTITIES

    return [*QUANTITIES, *ALIASES]


def _ask() -> dict:
    return {"type": ["array", "null"], "items": {"enum": _quantities()}, "uniqueItems": True,
            "description": "quantities asked of this layer (`[]`: none), e.g. [output, params]"}


def _points() -> dict:
    weight = {"type": "number", "minimum": 0}
    return {"anyOf": [weight, {"type": "object", "propertyNames": {"enum": _quantities()},
                               "additionalProperties": weight}],
            "description": "points for a right answer: one number for every asked quantity, or per quantity"}


# ----------------------------------------------------------------------------- layer entries
def _layer_entry() -> dict:
    return {
        "description": "a layer: a kind or one-line string (`relu`, `conv 64 k3 p1`, `conv3-64`), a one-key "
                       "mapping {kind: args}, with name/from/expect beside the kind key or inside its args, or a "
                       "flat mapping {kind: conv, filters: 8, kernel: 3, name: c1}",
        "anyOf": [{"$ref": "#/$defs/layer_string"}, {"$ref": "#/$defs/layer_mapping"},
                  {"$ref": "#/$defs/layer_flat"}],
    }


def _layer_string(kinds: dict) -> dict:
    """The first word names a kind or alias; VGG notation (conv3-64, FC-4096, LRN) too."""
    from .spec.shorthand import ALIASES

    any_case = set(ALIASES) | set(ALIASES.values())  # the builder lower-cases these
    words = sorted(set(kinds) | set(ALIASES), key=lambda w: (-len(w), w))
    heads = "|".join(_any_case(w) if w in any_case else w for w in words)
    vgg = f"{_any_case('conv')}[0-9]+-[0-9]+|{_any_case('fc')}-[0-9]+|{_any_case('lrn')}"
    return {"type": "string", "pattern": rf"^\s*(({heads})(\s.*)?|{vgg})\s*$"}


def _any_case(word: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", word):
        raise ValueError(f"cannot put the kind name {word!r} into a pattern")
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _layer_mapping(kinds: dict) -> dict:
    """{kind: args | scalar | null, name?, from?, expect?}. Each key is checked by its own schema
    (no trying every kind in turn: fast, and an unknown kind is named in the error)."""
    from .spec.shorthand import ALIASES

    kind_keys = {**{kind: kind for kind in kinds}, **{a: t for a, t in ALIASES.items() if t in kinds}}
    properties = {key: {"anyOf": _value_forms(kind, kinds[kind])} for key, kind in kind_keys.items()}
    properties.update({
        "name": {"type": "string", "description": "the layer's name"},
        "from": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                 "description": "input from an earlier named output (a list for add/concat)"},
        "expect": {"anyOf": [{"$ref": "#/$defs/expect"}, {"type": "null"}]},
        "ask": ASK,
        "points": POINTS,
    })
    return {
        "type": "object",
        "propertyNames": {"enum": [*kind_keys, *META_KEYS]},
        "properties": properties,
        "not": {"propertyNames": {"enum": list(META_KEYS)}},  # at least one kind key ...
        "dependentSchemas": {key: {"propertyNames": {"enum": [key, *META_KEYS]}}  # ... and at most one
                             for key in kind_keys},
    }


def _layer_flat(kinds: dict) -> dict:
    """{kind: NAME, ...its arguments}: each name (or alias, in any case) checks its own arguments."""
    from .spec.shorthand import ALIASES

    names = {**{kind: kind for kind in kinds}, **{a: t for a, t in ALIASES.items() if t in kinds}}
    return {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"type": "string", "pattern": f"^({'|'.join(_any_case(n) for n in names)})$"}},
        "allOf": [{"if": {"properties": {"kind": {"pattern": f"^{_any_case(name)}$"}}},
                   "then": {"$ref": f"#/$defs/{kind}.flat"}} for name, kind in names.items()],
    }


def _flat_arguments(args: dict) -> dict:
    """A kind's arguments with `kind` itself among them (the flat form)."""
    return {**args, "properties": {"kind": {"type": "string"}, **args.get("properties", {})}}


def _value_forms(kind: str, cls) -> list[dict]:
    """The arguments mapping; the primary scalar and an empty value where they leave nothing out
    (`from` may sit beside the kind key, so it does not count as left out)."""
    args = _arguments(cls)
    forms = [{"$ref": f"#/$defs/{kind}.args"}]
    required = set(args.get("required", [])) - {"from"}
    primary = cls.primary
    if primary and required <= {primary}:
        forms.append(args["properties"][primary])
    if not required:
        forms.append({"type": "null"})
    return forms


def _arguments(cls) -> dict:
    from .kinds import Composite

    schema = _standard(cls.model_json_schema(mode="validation", by_alias=True))
    schema["properties"]["expect"] = {"anyOf": [{"$ref": "#/$defs/expect"}, {"type": "null"}]}
    schema["properties"].update(ask=ASK, points=POINTS)
    if "from" in schema.get("required", []):
        schema["required"] = [key for key in schema["required"] if key != "from"]  # may sit beside the kind key
        if not schema["required"]:
            del schema["required"]
    if issubclass(cls, Composite):
        schema = _point_lists_at_layers(schema)
    return schema


def _point_lists_at_layers(schema):
    """In a composite, every list of anything (`layers`, `shortcut`, a branch) is a list of layers."""
    if isinstance(schema, dict):
        if schema.get("type") == "array" and schema.get("items") == {}:
            return {**schema, "items": LAYER}
        return {key: _point_lists_at_layers(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_point_lists_at_layers(value) for value in schema]
    return schema


def _standard(schema, in_map: bool = False):
    """pydantic's `gt`/`ge`/... bounds as JSON Schema keywords; names inside maps left alone."""
    if isinstance(schema, list):
        return [_standard(value) for value in schema]
    if not isinstance(schema, dict):
        return schema
    if in_map:
        return {name: _standard(value) for name, value in schema.items()}
    return {BOUND_KEYWORDS.get(key, key): _standard(value, in_map=key in SCHEMA_MAPS)
            for key, value in schema.items()}
