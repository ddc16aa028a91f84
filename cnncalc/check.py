"""Marking answers: a student's (or a spec's `expect`) values against the computed ones.

Data flows one way: a spec is analysed into *blocks* (every layer instance the user can name:
a leaf's row, or a composite's rows), answers are read (answers file or `expect` entries),
each answer is judged against its block into a ``Result``. Rendering lives in
``cnncalc.commands.check``; nothing here prints.

A name means what the user wrote it for: a leaf layer is its own row; a composite (residual,
branches, repeat, depthwise_separable) is the whole block: its output is its last row's output
and its counts (params, MACs, ...) are the sums over its rows, as GoogLeNet's table counts an
inception module.
"""
from __future__ import annotations

import csv
import difflib
import io
import math
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

from .engine import PartialAnalysis, analyze_spec
from .errors import CnnCalcError, Location, SpecError
from .report import LayerRow, Report, plain_number
from .spec.build import Spec
from .kinds import Layer
from .plan import Step
from .spec.loader import SourceMap, format_path, load_file
from .notation import LAYOUTS, NotationError, read_shape, readings, shape_text, split_sizes

DEFAULT_TOLERANCE = Fraction(1, 200)  # 0.5%: enough for "138M" (0.26% off), strict enough for typos


# ----------------------------------------------------------------------------- quantities
@dataclass(frozen=True)
class Quantity:
    key: str
    label: str  # column header on sheets and in tables
    kind: str  # "shape", "count", "bytes" or "rf"
    help: str


QUANTITIES: dict[str, Quantity] = {q.key: q for q in [
    Quantity("output", "output", "shape", "output shape in any notation (6x28x28, 28x28x6, 6@28x28, [6, 28, 28]); "
                                          "the verdict names the reading"),
    Quantity("input", "input", "shape", "input shape, read like output"),
    Quantity("params", "params", "count", "trainable + non-trainable parameters"),
    Quantity("trainable_params", "trainable", "count", "weights + biases"),
    Quantity("weights", "weights", "count", "weights (no biases)"),
    Quantity("biases", "biases", "count", "biases"),
    Quantity("macs", "MACs", "count", "weight multiply-accumulates, bias excluded"),
    Quantity("muls", "MULs", "count", "MACs, or MACs + bias with --muls-with-bias"),
    Quantity("muls_with_bias", "MULs+bias", "count", "MACs + one multiplication per output for the bias"),
    Quantity("flops", "FLOPs", "count", "2 x MACs"),
    Quantity("connections", "connections", "count", "LeCun's links from inputs and the bias to outputs"),
    Quantity("activations", "activations", "count", "output values (for the batch)"),
    Quantity("memory", "memory", "bytes", "activation bytes of the output at --dtype"),
    Quantity("rf", "RF", "rf", "receptive field size in input pixels (7 or 7x7)"),
]}
ALIASES = {
    "activation_bytes": "memory", "bytes": "memory", "shape": "output", "output_shape": "output",
    "input_shape": "input", "receptive_field": "rf", "ops": "macs",
    "parameters": "params", "trainable": "trainable_params", "mults": "muls",
}
SHEET_COLUMNS = ("output", "params", "muls")


def canonical_quantity(key: Any, loc: Location) -> str:
    """`activation_bytes` -> `memory`; an unknown key is an error with a close match."""
    text = str(key).strip().lower()
    text = ALIASES.get(text, text)
    if text in QUANTITIES:
        return text
    known = list(QUANTITIES) + list(ALIASES)
    hint = difflib.get_close_matches(text, known, n=1)
    suggestion = f"; did you mean `{hint[0]}`?" if hint else f"; known: {', '.join(QUANTITIES)}"
    raise SpecError(f"unknown quantity `{key}`{suggestion}", loc)


# ----------------------------------------------------------------------------- conventions
@dataclass(frozen=True)
class Conventions:
    """How a course writes its answers."""

    layout: str = "chw"  # how output shapes like 28x28x6 are read and shown
    muls_with_bias: bool = False  # `muls` answers mean MACs + bias (the lecture's +1)
    tolerance: Fraction | None = None  # for rounded answers (138M, 1.2e6); None: DEFAULT_TOLERANCE
    k: int = 1000  # what K means; M, G, T stay decimal (GoogLeNet's table: 159K params = 159*1024, 128M ops)

    @property
    def rounded_tolerance(self) -> Fraction:
        return DEFAULT_TOLERANCE if self.tolerance is None else self.tolerance

    def to_dict(self) -> dict:
        return {
            "layout": self.layout,
            "muls": "muls_with_bias" if self.muls_with_bias else "macs",
            "k": self.k,
            "tolerance": float(self.rounded_tolerance),
            "tolerance_applies_to": "answers written with a unit suffix, a decimal point or an exponent "
                                    "(138M, 117.6K, 1.2e6); whole numbers written out are compared exactly",
        }


def parse_tolerance(text: str) -> Fraction:
    """'2%' -> 1/50, '0.02' -> 1/50, '0' -> 0."""
    raw = str(text).strip()
    percent = raw.endswith("%")
    try:
        value = Fraction(Decimal(raw.rstrip("%").strip()))
    except (InvalidOperation, ValueError):
        raise ValueError(f"cannot read the tolerance {text!r}; write it like 2% or 0.02") from None
    value = value / 100 if percent else value
    if not 0 <= value < 1:
        raise ValueError(f"the tolerance {text!r} must be at least 0 and below 100%")
    return value


# ----------------------------------------------------------------------------- reading values
@dataclass(frozen=True)
class Number:
    """A count as written: its value and whether it was rounded (138M, 117.6K, 1.2e6)."""

    value: Fraction
    rounded: bool
    unit: str = ""  # the suffix as written, upper-case ("M", "KI"), for showing the expected value
    factor: int = 1
    last_place: Fraction = Fraction(1)  # the place of the last digit written: 73M -> 10^6, 117.6K -> 100

    def matches(self, actual: int, tolerance: Fraction) -> bool:
        """Exact for whole numbers written out; a rounded answer is right when the true value,
        rounded or truncated to the digits written, gives it (1M for 1,024,000; 73M for 73.6M,
        not 70M), or when it is within the tolerance."""
        if not self.rounded:
            return self.value == actual
        steps = Fraction(actual) / self.last_place
        nearest = math.floor(steps + Fraction(1, 2))
        return (self.value in (nearest * self.last_place, math.floor(steps) * self.last_place)
                or abs(self.value - actual) <= tolerance * actual)


def parse_count(written: Any, k: int, allow_bytes: bool) -> Number:
    """A count answer: an int or float from YAML/JSON, or text read by ``units.read_quantity``, the
    one reader budgets and the JSON Schema share (156, 122,304, 1_000, 117.6K, 1E6, 2GiB)."""
    from .units import read_quantity

    if isinstance(written, bool) or not isinstance(written, (int, float, str)):
        raise ValueError(f"{written!r} is not a number")
    if isinstance(written, int):
        if written < 0:
            raise ValueError(f"{written} is negative")
        return Number(Fraction(written), rounded=False)
    if isinstance(written, float):
        if not math.isfinite(written) or written < 0:
            raise ValueError(f"{written} is not a count")
        text = repr(written)
        if "e" in text or "E" in text:
            return parse_count(text, k, allow_bytes)
        return Number(Fraction(Decimal(text)), True, last_place=Fraction(10) ** -len(text.partition(".")[2]))
    try:
        quantity = read_quantity(written, k)
    except ValueError:
        quantity = None
    if quantity is None or (quantity.bytes and not allow_bytes):
        raise ValueError(f"cannot read {written!r} as a number like 156, 122,304, 117.6K or 138M")
    return Number(quantity.value, quantity.rounded, quantity.unit, quantity.factor, quantity.last_place)


def written_sizes(written: Any) -> list[int]:
    """The numbers of a shape answer as written: '28x28x6', '28X28X6', [28, 28, 6], 84."""
    if isinstance(written, bool):
        raise ValueError(f"{written!r} is not a shape")
    if isinstance(written, int):
        return [written]
    if isinstance(written, list) and written and all(type(v) is int for v in written):
        return list(written)
    sizes = split_sizes(written.strip().strip("[]()")) if isinstance(written, str) else None
    if sizes is None:
        raise ValueError(f"cannot read {written!r} as a shape like 6x28x28, 28x28x6 or 6@28x28")
    return sizes


def parse_shape(written: Any, layout: str) -> tuple[int, ...]:
    """A shape answer read in ``layout``: '28x28x6', '6@28x28' (channels first), a list [C, *spatial], 84."""
    try:
        return read_shape(written.strip().strip("[]()") if isinstance(written, str) else written, layout).shape
    except NotationError:
        raise ValueError(f"cannot read {written!r} as a shape like 6x28x28, 28x28x6 or 6@28x28") from None


def parse_rf(written: Any, rank: int) -> tuple:
    """7 (every axis), '7x7' or [7, 7] -> per-axis sizes."""
    if isinstance(written, int) and not isinstance(written, bool):
        return (written,) * max(rank, 1)
    if isinstance(written, list) and all(isinstance(v, (int, float)) for v in written):
        return tuple(written)
    sizes = split_sizes(written) if isinstance(written, str) else None
    if sizes is not None:
        return tuple(sizes * rank if len(sizes) == 1 else sizes)
    raise ValueError(f"cannot read {written!r} as a receptive field like 7 or 7x7")


# ----------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Block:
    """One layer instance the user can name: a leaf's row, or all rows of a composite."""

    name: str
    layer: Layer
    depth: int  # how many composites enclose it
    rows: tuple[LayerRow, ...]
    steps: tuple[Step, ...] = ()  # the plan's steps of those rows: their worked formulas

    @property
    def path(self) -> str:
        return format_path(self.layer.path)

    def total(self, attr: str) -> int:
        return sum(getattr(row, attr) for row in self.rows)


@dataclass
class Analysis:
    report: Report
    blocks: list[Block]
    error: CnnCalcError | None = None  # the layer that stopped the analysis, if any

    def by_name(self) -> dict[str, Block]:
        return {block.name: block for block in self.blocks}


def analyze_blocks(spec: Spec, rounding: str = "strict", batch: int = 1, dtype: str = "float32") -> Analysis:
    """Analyse ``spec``; every layer instance (leaf or composite) the engine walked is a block.

    A failing layer does not raise: ``Analysis.error`` holds it, with the rows before it."""
    try:
        walked, error = analyze_spec(spec, rounding, batch, dtype), None
    except PartialAnalysis as exc:
        walked, error = exc.analysis, CnnCalcError(exc.message, exc.loc)
    report, steps = walked.report, walked.plan.steps
    written = layers_by_key(spec.layers)
    blocks = [Block(b.name, written[b.key] if b.composite else steps[b.first].layer, b.level,
                    tuple(report.layers[b.first:b.end]), tuple(steps[b.first:b.end]))
              for b in report.blocks if b.end > b.first]
    return Analysis(report, blocks, error)


def layers_by_key(layers: list[Layer]) -> dict[tuple, Layer]:
    """Every layer written in the spec (composites' insides too) by its path in the data."""
    found, stack = {}, list(layers)
    while stack:
        layer = stack.pop()
        found[layer.path] = layer
        stack.extend(layer.children())
    return found


# ----------------------------------------------------------------------------- answers
@dataclass(frozen=True)
class Answer:
    layer: str
    quantity: str  # canonical key
    written: Any  # as the user wrote it
    loc: Location


def read_answers(path: str | Path) -> list[Answer]:
    """An answers file: CSV (`layer,output,params,...`) or YAML/JSON/TOML (`name: {params: 156}`)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return _read_csv_answers(path)
    data, source = load_file(path)
    if not isinstance(data, dict):
        raise SpecError("an answers file must be a mapping: layer name -> {output: ..., params: ...}",
                        source.locate(()))
    answers = []
    for layer, values in data.items():
        answers += answers_of_layer(str(layer), values, source, (layer,))
    return answers


def answers_of_layer(layer: str, values: Any, source: SourceMap, path: tuple) -> list[Answer]:
    if not isinstance(values, dict):
        raise SpecError(f"the answers for `{layer}` must be a mapping like {{output: 28x28x6, params: 156}}",
                        source.locate(path))
    answers = []
    for key, written in values.items():
        if written is None:  # `params:` left empty: no answer, as an empty CSV cell
            continue
        loc = Location(source.file, source.line_of(path + (key,)), None, layer)
        answers.append(Answer(layer, canonical_quantity(key, loc), written, loc))
    return answers


def _read_csv_answers(path: Path) -> list[Answer]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SpecError("no such file", Location(str(path))) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot be read ({exc})", Location(str(path))) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0].strip().lower() not in ("layer", "name"):
        raise SpecError("a CSV answers file starts with a header `layer,output,params,...`", Location(str(path), 1))
    keys = [canonical_quantity(key, Location(str(path), 1)) if key.strip() else None for key in header[1:]]
    answers = []
    for cells in reader:
        if not cells or not cells[0].strip():
            continue
        loc = Location(str(path), reader.line_num, None, cells[0].strip())
        for key, cell in zip(keys, cells[1:]):
            if key and cell.strip():
                answers.append(Answer(cells[0].strip(), key, cell.strip(), loc))
    return answers


def answers_from_spec(spec: Spec, blocks: list[Block], errors: list[SpecError] | None = None) -> list[Answer]:
    """The spec's `expect` entries, one answer per quantity and layer instance (a layer inside
    a repeat is expected to give the value in every repetition). An unknown quantity raises,
    or is collected in ``errors`` when given (validate lists every problem)."""
    lines = _expect_lines(spec.source)
    answers = []
    for block in blocks:
        for key, written in (block.layer.expect or {}).items():
            line = lines.get((tuple(block.layer.path), key)) or spec.source.line_of(block.layer.path)
            loc = Location(spec.file, line, block.path or None, block.name)
            try:
                answers.append(Answer(block.name, canonical_quantity(key, loc), written, loc))
            except SpecError as exc:
                if errors is None:
                    raise
                errors.append(exc)
    return answers


def _expect_lines(source: SourceMap) -> dict[tuple, int]:
    """(layer entry path, quantity) -> line, for `expect` beside or inside the kind key."""
    lines = {}
    for path, line in source.lines.items():
        if len(path) < 3 or path[-2] != "expect":
            continue
        entry = path[:-2]
        if isinstance(entry[-1], str) and len(entry) > 1 and isinstance(entry[-2], int):
            entry = entry[:-1]  # inside: layers[0].conv.expect.params
        lines[(entry, path[-1])] = line
    return lines


# ----------------------------------------------------------------------------- judging
@dataclass(frozen=True)
class Verdict:
    """How one answer compares: right or wrong, the true value, and what to add in words."""

    correct: bool
    expected: Any
    expected_text: str
    note: str | None = None  # the reading of a right answer; the convention a wrong one is right in


@dataclass(frozen=True)
class Result:
    answer: Answer
    expected: Any  # exact, as plain data: int, [C, *spatial], per-axis list; None for an unknown layer
    expected_text: str
    correct: bool
    formula: str | None
    message: str  # the verdict in words
    note: str | None = None  # how a right answer was read; the other convention a wrong answer is right in

    @property
    def quantity(self) -> str | None:
        return self.answer.quantity

    def to_dict(self) -> dict:
        return {
            "layer": self.answer.layer,
            "quantity": self.answer.quantity,
            "answer": self.answer.written,
            "expected": self.expected,
            "expected_text": self.expected_text,
            "correct": self.correct,
            "formula": self.formula,
            "message": self.message,
            "note": self.note,
            "file": self.answer.loc.file,
            "line": self.answer.loc.line,
        }


def judge_all(answers: list[Answer], blocks: list[Block], conventions: Conventions,
              unreadable_is_wrong: bool = False) -> list[Result]:
    """One result per answer; answers for a layer that does not exist give one result per name.
    An answer that cannot be read raises, or with ``unreadable_is_wrong`` (a gradebook: one bad
    cell must not cost a student the rest) is a wrong result that says why."""
    by_name = {block.name: block for block in blocks}
    results, unknown = [], set()
    for answer in answers:
        block = by_name.get(answer.layer)
        if block is not None:
            results.append(judge_leniently(answer, block, conventions) if unreadable_is_wrong
                           else judge(answer, block, conventions))
        elif answer.layer not in unknown:
            unknown.add(answer.layer)
            results.append(unknown_layer(answer, list(by_name)))
    return results


def unknown_layer(answer: Answer, names: list[str]) -> Result:
    hint = difflib.get_close_matches(answer.layer, names, n=1, cutoff=0.5)
    suggestion = f"; did you mean `{hint[0]}`?" if hint else ""
    unnamed = Answer(answer.layer, None, None, answer.loc)
    return Result(unnamed, None, "", False, None, f"no layer is called `{answer.layer}`{suggestion}")


def judge(answer: Answer, block: Block, conventions: Conventions) -> Result:
    """Right or wrong, with the correct value and the formula that gives it.
    An answer that cannot be read raises SpecError (located at the answer)."""
    quantity = QUANTITIES[answer.quantity]
    try:
        verdict = COMPARE[quantity.kind](answer, block, conventions)
    except ValueError as exc:
        raise SpecError(f"{answer.quantity}: {exc}", answer.loc) from None
    formula = explain(block, answer.quantity, conventions)
    message = "right" if verdict.correct else f"wrong: {answer.quantity} = {verdict.expected_text}"
    if verdict.note:
        message += f" ({verdict.note})" if verdict.correct else f"; {verdict.note}"
    return Result(answer, verdict.expected, verdict.expected_text, verdict.correct, formula, message, verdict.note)


def judge_leniently(answer: Answer, block: Block, conventions: Conventions) -> Result:
    """``judge``, but an answer that cannot be read is wrong, with the reason and the right value."""
    try:
        return judge(answer, block, conventions)
    except SpecError as exc:
        expected = value_of(block, answer.quantity, conventions)
        reason = f"cannot be read: {exc.message}"
        return Result(answer, expected, value_text(block, answer.quantity, conventions), False,
                      explain(block, answer.quantity, conventions), f"wrong: {reason}", reason)


def _compare_shape(answer: Answer, block: Block, conventions: Conventions):
    actual = shape_of(block, answer.quantity)
    correct, note = judge_shape(answer.written, actual, conventions.layout)
    return Verdict(correct, list(actual), shape_text(actual, conventions.layout), note)


def judge_shape(written: Any, actual: tuple[int, ...], layout: str) -> tuple[bool, str | None]:
    """(right, what to say): a shape is right in any notation whose reading is unambiguous."""
    sizes = written_sizes(written) if not (isinstance(written, str) and "@" in written) else None
    if sizes is not None and _flat_match(sizes, actual):
        return True, None if len(sizes) == len(actual) else f"read as {prod_text(actual)} values"
    if sizes is None or len(sizes) == 1:
        return parse_shape(written, layout) == actual, None
    in_force = parse_shape(written, layout) if isinstance(written, str) else tuple(sizes)
    if in_force == actual:
        return True, None
    try:
        plain = read_shape("x".join(map(str, sizes)))  # the reading the numbers themselves suggest
    except NotationError:
        plain = None
    if plain is not None and plain.shape == actual:
        return True, f"read as {LAYOUTS[plain.layout].axes(len(actual) - 1)}"
    others = [key for key, shape in readings("x".join(map(str, sizes))).items() if shape == actual]
    if others:
        flags = " or ".join(f"--layout {key}" for key in others)
        return False, (f"as {LAYOUTS[others[0]].axes(len(actual) - 1)} it would be right, but it reads "
                       f"ambiguously here; choose the notation with {flags} (`layout:` in the spec)")
    return False, None


def _flat_match(sizes: list[int], actual: tuple[int, ...]) -> bool:
    """A flat output may be written 1000, 1x1x1000 or 84x1 (and [C, 1, 1] as C)."""
    if len(actual) != 1 and any(size != 1 for size in actual[1:]):
        return False
    if len(sizes) == len(actual) == 1:
        return sizes == list(actual)
    if len(actual) > 1 and len(sizes) > 1:
        return False  # [C, 1, 1] written with its axes is judged as a shape
    return sorted(sizes)[:-1] == [1] * (len(sizes) - 1) and max(sizes) == actual[0]


def prod_text(shape) -> str:
    return f"{math.prod(shape):,}"


def _compare_count(answer: Answer, block: Block, conventions: Conventions):
    actual = count_of(block, answer.quantity, conventions)
    allow_bytes = QUANTITIES[answer.quantity].kind == "bytes"
    number = parse_count(answer.written, conventions.k, allow_bytes)
    shown = f"{actual:,}"
    if number.unit:
        shown += f" = {float(Fraction(actual, number.factor)):.4g}{number.unit}"
    if number.matches(actual, conventions.rounded_tolerance):
        return Verdict(True, actual, shown)
    return Verdict(False, actual, shown, other_convention(answer, block, conventions))


# Other documented conventions a wrong count may have been written in: (quantity, how to say it).
OTHER_COUNTS: dict[str, tuple[tuple[str, str], ...]] = {
    "params": (("weights", "counting weights only, without biases (as GoogLeNet's table does): ask for `weights`"),
               ("trainable_params", "counting trainable parameters only: ask for `trainable_params`")),
    "muls": (("muls_with_bias", "counting the bias as a multiplication: --muls-with-bias"),
             ("macs", "without the bias (MACs): leave out --muls-with-bias")),
    "macs": (("muls_with_bias", "counting the bias as a multiplication: ask for `muls_with_bias` (or `muls` "
                                "with --muls-with-bias)"),),
    "muls_with_bias": (("macs", "without the bias: ask for `macs`"),),
    "flops": (("macs", "as MACs (fvcore calls MACs flops): FLOPs are 2 x MACs here"),),
    "connections": (("macs", "as MACs without the bias: ask for `macs`"),),
}


def other_convention(answer: Answer, block: Block, conventions: Conventions) -> str | None:
    """When a wrong count is right under another documented convention, say which and how to ask."""
    allow_bytes = QUANTITIES[answer.quantity].kind == "bytes"
    uses_k = isinstance(answer.written, str) and re.search(r"\d\s*[kK](?!i)", answer.written) is not None
    other_k = 1024 if conventions.k == 1000 else 1000
    keys = [(answer.quantity, "")] + [
        (key, words) for key, words in OTHER_COUNTS.get(answer.quantity, ())
        if not (answer.quantity == "muls" and (key == "muls_with_bias") == conventions.muls_with_bias)]
    for k in [conventions.k, other_k] if uses_k else [conventions.k]:
        number = parse_count(answer.written, k, allow_bytes)
        for key, words in keys:
            if (key, k) == (answer.quantity, conventions.k):
                continue  # the conventions in force: already wrong
            if number.matches(count_of(block, key, conventions), conventions.rounded_tolerance):
                return "right " + " and ".join(filter(None, [words, f"with K = {k} (--k {k})" if k != conventions.k else ""]))
    return None


def _compare_rf(answer: Answer, block: Block, conventions: Conventions):
    actual = tuple(plain_number(s) for s in block.rows[-1].receptive_field.size)
    shown = LAYOUTS[conventions.layout].spatial_order(actual)  # written in the layout's order: W x H in whd
    written = parse_rf(answer.written, len(actual))
    return Verdict(tuple(written) == tuple(shown), list(actual), "x".join(map(str, shown)))


COMPARE: dict[str, Callable] = {"shape": _compare_shape, "count": _compare_count, "bytes": _compare_count,
                                "rf": _compare_rf}


def shape_of(block: Block, key: str) -> tuple[int, ...]:
    return block.rows[0].input_shape if key == "input" else block.rows[-1].output_shape


COUNT_ATTRS = {"params": "params", "trainable_params": "trainable_params", "weights": "weights",
               "biases": "biases", "macs": "macs", "muls_with_bias": "muls_with_bias", "connections": "connections",
               "activations": "activations", "memory": "activation_bytes"}


def count_of(block: Block, key: str, conventions: Conventions) -> int:
    if key == "muls":
        key = "muls_with_bias" if conventions.muls_with_bias else "macs"
    if key == "flops":
        return 2 * block.total("macs")
    return block.total(COUNT_ATTRS[key])


def value_of(block: Block, key: str, conventions: Conventions):
    """The exact value of a quantity, as plain data (for sheets)."""
    kind = QUANTITIES[key].kind
    if kind == "shape":
        return list(shape_of(block, key))
    if kind == "rf":
        return [plain_number(s) for s in block.rows[-1].receptive_field.size]
    return count_of(block, key, conventions)


def value_text(block: Block, key: str, conventions: Conventions) -> str:
    value = value_of(block, key, conventions)
    kind = QUANTITIES[key].kind
    if kind == "shape":
        return shape_text(value, conventions.layout)
    if kind == "rf":
        return "x".join(map(str, value))
    return f"{value:,}"


# ----------------------------------------------------------------------------- formulas
def explain(block: Block, key: str, conventions: Conventions) -> str:
    """The formula that gives a value, with the numbers plugged in."""
    if key == "muls":
        key = "muls_with_bias" if conventions.muls_with_bias else "macs"
    if len(block.rows) == 1:
        return ROW_FORMULAS[key](block.rows[0], block.steps[0], conventions)
    if QUANTITIES[key].kind in ("shape", "rf"):
        at = 0 if key == "input" else -1
        which = "first" if key == "input" else "last"
        row = block.rows[at]
        return f"{which} layer of the block, {row.name}: {ROW_FORMULAS[key](row, block.steps[at], conventions)}"
    values = [count_of(Block(r.name, block.layer, 0, (r,)), key, conventions) for r in block.rows]
    nonzero = [v for v in values if v]
    terms = " + ".join(f"{v:,}" for v in nonzero) if 1 < len(nonzero) <= 6 else ""
    total = sum(values)
    summed = f"{terms} = {total:,}" if terms else f"{total:,}"
    return f"sum over the block's {len(block.rows)} layers: {summed}"


def _explained(step: Step, quantity: str) -> str | None:
    """The row's own worked formula for ``quantity`` (`params = (F*F*D1 + 1)*K = ... = 156`), if it has one."""
    return next((f.text() for f in step.formulas() if f.quantity == quantity), None)


def _per_batch(row: LayerRow, line: str, total: int) -> str:
    """Explain lines are per sample; counts in the report are for the whole batch."""
    batch = _batch(row)
    return f"{line}; x batch {batch} = {total:,}" if batch > 1 else line


def _batch(row: LayerRow) -> int:
    return row.activations // math.prod(row.output_shape) if row.output_shape else 1


MERGE_WORDS = {"concat": "concatenated on channels", "add": "added element by element"}


def _output_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    lines = [f.text() for f in step.formulas() if f.quantity == "output"]
    shown = shape_text(row.output_shape, conventions.layout)
    if lines:
        return "; ".join(lines) + f" -> {shown}"
    if row.kind in MERGE_WORDS:
        return f"{row.kind}: the inputs {MERGE_WORDS[row.kind]} -> {shown}"
    if row.kind == "linear":
        return f"{row.output_shape[0]} features -> {shown}"
    if len(row.output_shape) == 1 and len(row.input_shape) > 1:
        return f"flatten: {'*'.join(map(str, row.input_shape))} = {row.output_shape[0]:,}"
    if row.output_shape == row.input_shape:
        return f"{row.kind} keeps the shape: {shown}"
    return f"{row.kind}: {shape_text(row.input_shape, conventions.layout)} -> {shown}"


def _input_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    return f"the output of the layer before: {shape_text(row.input_shape, conventions.layout)}"


def _params_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    line = _explained(step, "params")
    if line and not row.buffers:
        return line
    if not row.params:
        return f"0: {row.kind} has no parameters"
    extra = f" + {row.buffers:,} non-trainable (running mean and variance)" if row.buffers else ""
    return f"{row.weights:,} weights + {row.biases:,} biases{extra} = {row.params:,}"


def _trainable_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    return f"{row.weights:,} weights + {row.biases:,} biases = {row.trainable_params:,}"


def _weights_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    line = _explained(step, "params")
    if line and not row.biases:
        return line.replace("params", "weights", 1)
    if not row.weights:
        return f"0: {row.kind} has no weights"
    return f"weights = trainable params - biases = {row.trainable_params:,} - {row.biases:,} = {row.weights:,}"


def _biases_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    if not row.biases:
        return f"0: {row.kind} has no biases"
    return f"one per output channel: {row.biases:,}"


def _macs_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    if not row.macs:
        return f"0: {row.kind} multiplies by no weights"
    line = _explained(step, "macs")
    return _per_batch(row, line, row.macs) if line else f"MACs = {row.macs:,}"


def _muls_with_bias_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    if not row.bias_muls:
        return _macs_formula(row, step, conventions) + " (no bias)"
    line = _explained(step, "muls_with_bias")
    if line:
        return _per_batch(row, line, row.muls_with_bias)
    return f"MACs + one per output = {row.macs:,} + {row.bias_muls:,} = {row.muls_with_bias:,}"


def _connections_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    line = _explained(step, "connections")
    if line:
        return _per_batch(row, line, row.connections)
    if row.connections == row.muls_with_bias and row.connections:
        return _muls_with_bias_formula(row, step, conventions) + " (each multiplication is one connection)"
    return f"connections = {row.connections:,}"


def _flops_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    return f"FLOPs = 2 x MACs = 2 x {row.macs:,} = {2 * row.macs:,}"


def _activations_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    batch = _batch(row)
    elements = "*".join(map(str, row.output_shape)) + (f"*{batch}" if batch > 1 else "")
    return f"{elements} = {row.activations:,} values"


def _memory_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    per = row.activation_bytes // row.activations if row.activations else 0
    return f"{row.activations:,} values x {per} B = {row.activation_bytes:,} B"


def _rf_formula(row: LayerRow, step: Step, conventions: Conventions) -> str:
    rf = row.receptive_field
    size = "x".join(str(plain_number(s)) for s in rf.size)
    jump = "x".join(str(plain_number(j)) for j in rf.jump)
    return f"r_out = r_in + D*(F-1)*j_in = {size} (jump {jump})"


ROW_FORMULAS: dict[str, Callable[[LayerRow, Step, Conventions], str]] = {
    "output": _output_formula, "input": _input_formula, "params": _params_formula,
    "trainable_params": _trainable_formula, "weights": _weights_formula, "biases": _biases_formula,
    "macs": _macs_formula, "muls_with_bias": _muls_with_bias_formula, "flops": _flops_formula,
    "connections": _connections_formula,
    "activations": _activations_formula, "memory": _memory_formula, "rf": _rf_formula,
}


# ----------------------------------------------------------------------------- sheets
@dataclass
class Sheet:
    """An answer sheet: blank (cells to fill in) or the solution."""

    name: str
    layout: str
    solution: bool
    columns: tuple[str, ...]
    rows: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)  # name, values, texts

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "sheet": "solution" if self.solution else "blank",
            "layout": self.layout,
            "columns": list(self.columns),
            "rows": [{"layer": name, **{key: values.get(key) for key in self.columns}}
                     for name, values, _ in self.rows],
        }


NOT_ASKED = "—"  # a sheet cell the assignment does not ask


def make_sheet(analysis: Analysis, conventions: Conventions, solution: bool,
               columns: tuple[str, ...] = SHEET_COLUMNS, depth: int | None = None,
               questions: list["Question"] | None = None) -> Sheet:
    """With ``questions`` (an assignment), only the layers asked, and a cell only where asked."""
    asked: dict[str, set[str]] = {}
    for question in questions or ():
        asked.setdefault(question.layer, set()).add(question.quantity)
    sheet = Sheet(analysis.report.name, conventions.layout, solution, columns)
    for block in analysis.blocks:
        if depth is not None and block.depth > depth or questions and block.name not in asked:
            continue
        keys = [key for key in columns if not questions or key in asked[block.name]]
        values = {key: value_of(block, key, conventions) for key in keys} if solution else {}
        texts = {key: NOT_ASKED for key in columns}
        texts.update({key: value_text(block, key, conventions) if solution else "" for key in keys})
        sheet.rows.append((block.name, values, texts))
    return sheet


def asked_columns(questions: list["Question"]) -> tuple[str, ...]:
    """The quantities an assignment asks, in the order of the quantity table."""
    asked = {question.quantity for question in questions}
    return tuple(key for key in QUANTITIES if key in asked)


# ----------------------------------------------------------------------------- assignments: points
# A spec's `ask` and `points` (cnncalc/spec/assignment.py) make questions: one per asked quantity of
# every layer instance. A question's points are earned when every answer given to it is right (a
# student who writes two answers to one question gets the points only if both are right).
@dataclass(frozen=True)
class Question:
    block: Block
    quantity: str
    points: Fraction

    @property
    def layer(self) -> str:
        return self.block.name


def questions_of(spec: Spec, blocks: list[Block]) -> list[Question]:
    """Every (layer, quantity) the spec asks, in the sheet's order (composites before their layers)."""
    assignment = spec.assignment
    if assignment is None:
        return []
    questions = []
    for block in blocks:
        composite = block.layer.is_composite
        for quantity in assignment.asked(block.layer.path, composite):
            questions.append(Question(block, quantity, assignment.points(block.layer.path, composite, quantity)))
    return questions


@dataclass
class Marked:
    """One question as one submission answered it."""

    question: Question
    results: list[Result] = field(default_factory=list)  # every answer given to it, judged; none: unanswered

    @property
    def correct(self) -> bool:
        return bool(self.results) and all(result.correct for result in self.results)

    @property
    def points(self) -> Fraction:
        return self.question.points if self.correct else Fraction(0)

    def shown(self, conventions: Conventions) -> Result:
        """The answer that decides the question (the first wrong one), or a result saying it is unanswered."""
        wrong = [result for result in self.results if not result.correct]
        if wrong or self.results:
            return (wrong or self.results)[0]
        block, key = self.question.block, self.question.quantity
        unanswered = Answer(block.name, key, None, Location(None, None, block.path or None, block.name))
        text = value_text(block, key, conventions)
        return Result(unanswered, value_of(block, key, conventions), text, False, explain(block, key, conventions),
                      f"no answer: {key} = {text}")


@dataclass
class Submission:
    """One answers file, marked question by question. ``error``: the file could not be read (not marked)."""

    file: str
    marked: list[Marked] = field(default_factory=list)
    extra: list[Result] = field(default_factory=list)  # answers to no question: unknown layers, quantities not asked
    error: str | None = None

    @property
    def points(self) -> Fraction | None:
        return None if self.error else sum((m.points for m in self.marked), Fraction(0))

    def layer_points(self) -> dict[str, Fraction]:
        """Points per layer, in the questions' order."""
        totals: dict[str, Fraction] = {}
        for marked in self.marked:
            totals[marked.question.layer] = totals.get(marked.question.layer, Fraction(0)) + marked.points
        return totals

    def count(self, state: str) -> int:
        return sum(question_state(marked) == state for marked in self.marked)


def question_state(marked: Marked) -> str:
    return "right" if marked.correct else "wrong" if marked.results else "unanswered"


def mark_submission(file: str, answers: list[Answer], questions: list[Question], blocks: list[Block],
                    conventions: Conventions, unreadable_is_wrong: bool = False) -> Submission:
    submission = Submission(file, [Marked(question) for question in questions])
    by_key = {(m.question.layer, m.question.quantity): m for m in submission.marked}
    for result in judge_all(answers, blocks, conventions, unreadable_is_wrong):
        marked = by_key.get((result.answer.layer, result.quantity))
        if marked is None:
            submission.extra.append(result if result.quantity is None else _not_asked(result))
        else:
            marked.results.append(result)
    return submission


def _not_asked(result: Result) -> Result:
    """An answer the assignment does not ask: shown with its verdict, worth nothing."""
    return replace(result, message=f"not asked, no points: {result.message}")


def max_points(questions: list[Question]) -> Fraction:
    return sum((question.points for question in questions), Fraction(0))


def feedback(result: Result) -> str | None:
    """For a wrong or missing answer: the worked formula, then the convention it would be right in."""
    if result.correct:
        return None
    return "; ".join(filter(None, [result.formula or result.message, result.note]))


# ----------------------------------------------------------------------------- gradebooks
ANSWER_SUFFIXES = (".csv", ".yaml", ".yml", ".json", ".toml")


def submission_files(patterns: list[str], exclude: list[str | None] = ()) -> list[Path]:
    """Answers files from folders (their answers files, not recursive), globs (`'subs/*.csv'`, `**`)
    and file names, sorted within each pattern; a folder or glob that finds nothing is an error."""
    import glob

    excluded = {Path(p).resolve() for p in exclude if p}
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = sorted(p for p in path.iterdir()
                             if p.is_file() and p.suffix.lower() in ANSWER_SUFFIXES and not p.name.startswith("."))
            what = f"the folder has no answers files ({', '.join(ANSWER_SUFFIXES)})"
        elif glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            what = "the pattern matches no file"
        else:
            matches, what = [path], ""
        matches = [p for p in matches if p.resolve() not in excluded]
        if not matches:
            raise SpecError(what or "no answers file", Location(pattern))
        found += [p for p in matches if p not in found]
    return found


def is_many(patterns: list[str]) -> bool:
    """Several answers files, a folder or a glob: a gradebook, even when it finds one file."""
    import glob

    return len(patterns) > 1 or any(Path(p).is_dir() or glob.has_magic(p) for p in patterns)


def read_submission(path: Path, questions: list[Question], blocks: list[Block],
                    conventions: Conventions) -> Submission:
    """One student's file. A file that cannot be read is a submission with its error, never an
    abort; an empty file is a submission with no answers; a cell that cannot be read is wrong."""
    try:
        empty = path.is_file() and not path.read_bytes().strip()
        answers = [] if empty else read_answers(path)
    except (CnnCalcError, OSError) as exc:
        message = exc.message if isinstance(exc, CnnCalcError) else (exc.strerror or str(exc))
        where = getattr(exc, "loc", None)
        line = f" (line {where.line})" if where is not None and where.line else ""
        return Submission(str(path), error=f"{message}{line}")
    return mark_submission(str(path), answers, questions, blocks, conventions, unreadable_is_wrong=True)


@dataclass
class QuestionStats:
    question: Question
    right: int
    wrong: int
    unanswered: int

    @property
    def missed(self) -> int:
        return self.wrong + self.unanswered


@dataclass
class Gradebook:
    spec_file: str | None
    name: str
    questions: list[Question]
    submissions: list[Submission]
    conventions: Conventions

    @property
    def max_points(self) -> Fraction:
        return max_points(self.questions)

    @property
    def marked(self) -> list[Submission]:
        return [s for s in self.submissions if not s.error]

    def stats(self) -> list[QuestionStats]:
        """Per question, over the submissions that could be read."""
        counts = [QuestionStats(q, 0, 0, 0) for q in self.questions]
        for submission in self.marked:
            for stat, marked in zip(counts, submission.marked):
                state = question_state(marked)
                setattr(stat, state, getattr(stat, state) + 1)
        return counts

    def most_missed(self) -> list[QuestionStats]:
        """Questions missed (wrong or unanswered) by anyone, most missed first, then in sheet order."""
        return sorted((s for s in self.stats() if s.missed), key=lambda s: -s.missed)

    def layer_max_points(self) -> dict[str, Fraction]:
        totals: dict[str, Fraction] = {}
        for question in self.questions:
            totals[question.layer] = totals.get(question.layer, Fraction(0)) + question.points
        return totals

    def to_dict(self) -> dict:
        """The JSON contract: `submissions` (`file`, `points`, `max_points`, `error`, ...) and `questions`."""
        from .spec.assignment import points_value

        stats = self.stats()
        marked = self.marked
        mean = sum((s.points for s in marked), Fraction(0)) / len(marked) if marked else None
        return {
            "spec": self.spec_file,
            "name": self.name,
            "conventions": self.conventions.to_dict(),
            "max_points": points_value(self.max_points),
            "submissions": [submission_dict(s, self) for s in self.submissions],
            "questions": [{
                "layer": stat.question.layer, "quantity": stat.question.quantity,
                "max_points": points_value(stat.question.points),
                "expected": value_of(stat.question.block, stat.question.quantity, self.conventions),
                "expected_text": value_text(stat.question.block, stat.question.quantity, self.conventions),
                "formula": explain(stat.question.block, stat.question.quantity, self.conventions),
                "right": stat.right, "wrong": stat.wrong, "unanswered": stat.unanswered, "missed": stat.missed,
            } for stat in stats],
            "summary": {
                "submissions": len(self.submissions), "marked": len(marked),
                "errors": len(self.submissions) - len(marked),
                "mean_points": None if mean is None else round(float(mean), 4),
                "most_missed": [{"layer": s.question.layer, "quantity": s.question.quantity, "missed": s.missed,
                                 "of": len(marked)} for s in self.most_missed()],
            },
        }


def submission_dict(submission: Submission, book: Gradebook) -> dict:
    from .spec.assignment import points_value

    conventions = book.conventions
    got = submission.layer_points()
    points = submission.points
    return {
        "file": submission.file,
        "points": None if points is None else points_value(points),
        "max_points": points_value(book.max_points),
        "error": submission.error,
        "right": submission.count("right"), "wrong": submission.count("wrong"),
        "unanswered": submission.count("unanswered"),
        "layers": {layer: {"points": None if submission.error else points_value(got.get(layer, Fraction(0))),
                           "max_points": points_value(most)}
                   for layer, most in book.layer_max_points().items()},
        "questions": [_marked_dict(marked, conventions) for marked in submission.marked],
        "extra": [{"layer": r.answer.layer, "quantity": r.quantity, "answer": r.answer.written, "message": r.message}
                  for r in submission.extra],
    }


def _marked_dict(marked: Marked, conventions: Conventions) -> dict:
    from .spec.assignment import points_value

    shown = marked.shown(conventions)
    return {
        "layer": marked.question.layer, "quantity": marked.question.quantity,
        "answer": shown.answer.written if marked.results else None,
        "state": question_state(marked),
        "points": points_value(marked.points), "max_points": points_value(marked.question.points),
        "expected_text": shown.expected_text,
        "feedback": feedback(shown),
        "answers": len(marked.results),
    }
