"""`cnncalc validate`: every problem of every spec file, located, for CI and pre-commit.

A problem has a kind:
  parse   the file cannot be read as a spec (syntax, unknown kinds or keys, bad values, names)
  fit     a layer cannot be applied: a size that is not whole (under strict rounding) or a
          shape that does not work (channels, empty outputs, mismatched adds)
  expect  a layer's `expect` value differs from the computed one
  budget  the network exceeds max_params, max_macs or max_memory
Two more kinds of finding are not problems (they never fail a run; the CI formats show them
as warnings and notes):
  rounded a size that is not whole, accepted because --rounding floor|ceil said so although the
          spec does not declare that rounding itself
  reading how an input string was read, where that needs saying (a spec's notes)

All problems of a file are collected: sizes that are not whole are reported one per layer
(the analysis goes on with the floored size, as PyTorch would), and a hard error stops only
that file. Nothing here prints; ``cnncalc.commands.validate`` renders.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CnnCalcError, Location, ShapeError, SpecError

SPEC_SUFFIXES = (".yaml", ".yml", ".json", ".toml")
SKIPPED_DIRS = ("__pycache__", "node_modules")  # and every folder whose name starts with a dot
GLOB_CHARS = re.compile(r"[*?\[]")

@dataclass(frozen=True)
class FindingKind:
    """What a kind of finding is, for the formats that describe their rules (SARIF)."""

    id: str
    level: str  # "error" (a problem: exit 1), "warning" or "note" (never change the exit code)
    name: str  # SARIF's rule name
    short: str
    full: str


FINDING_KINDS = {kind.id: kind for kind in (
    FindingKind("parse", "error", "SpecNotReadable", "The file is not a valid spec.",
                "The file is not a valid spec: syntax, unknown kinds or keys, bad values, duplicate or dangling "
                "names, an unknown `expect` quantity or an unreadable budget."),
    FindingKind("fit", "error", "LayerDoesNotFit", "A layer cannot be applied to its input.",
                "A layer cannot be applied: a size that is not whole under strict rounding, or a shape that does "
                "not work (groups, empty outputs, shapes that cannot be added)."),
    FindingKind("expect", "error", "ExpectationFailed", "An `expect` value differs from the computed one.",
                "A layer's `expect` value differs from the computed one (read as `cnncalc check` reads answers)."),
    FindingKind("budget", "error", "BudgetExceeded", "The network exceeds a budget.",
                "The network exceeds max_params, max_macs or max_memory (the spec's `budgets:` or the options; "
                "the stricter limit counts)."),
    FindingKind("rounded", "warning", "SizeRounded", "A size that is not whole was rounded.",
                "A size that is not whole was accepted because --rounding floor|ceil says so, though the spec does "
                "not declare that rounding; declare `rounding:` in the spec if it is intended."),
    FindingKind("misaligned", "warning", "ReceptiveFieldsMisaligned",
                "A merge mixes inputs whose receptive fields are not aligned.",
                "A merge (add, concat, mul, residual, branches) mixes inputs whose receptive-field centres or jumps "
                "differ, so each output pixel mixes features centred at different input pixels (Araujo et al., "
                "Distill 2019)."),
    FindingKind("misaligned_required", "error", "ReceptiveFieldsMustAlign",
                "A merge mixes inputs whose receptive fields are not aligned (--require-aligned).",
                "A merge mixes inputs whose receptive-field centres or jumps differ, which --require-aligned "
                "makes a problem."),
    FindingKind("reading", "note", "InputReading", "How an input shape was read.",
                "How an input shape string was read, where that needs saying (e.g. read channels last)."),
)}


@dataclass(frozen=True)
class Budget:
    key: str  # as in the spec's `budgets:` mapping
    option: str  # the CLI option that sets it too (the stricter limit counts)
    noun: str


BUDGETS = (
    Budget("max_params", "--max-params", "params"),
    Budget("max_macs", "--max-macs", "MACs"),
    Budget("max_memory", "--max-memory", "inference memory"),
)


@dataclass(frozen=True)
class Problem:
    kind: str  # a key of FINDING_KINDS: its level says whether it is a problem
    loc: Location
    message: str

    @property
    def level(self) -> str:
        return FINDING_KINDS[self.kind].level

    def __str__(self) -> str:
        return f"{self.loc}: {self.message}"

    def to_dict(self) -> dict:
        return {**self.loc.to_dict(), "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class Options:
    rounding: str | None = None  # None: each spec's own `rounding`, else strict
    budgets: dict = field(default_factory=dict)  # from the CLI: key -> (limit, as written); the stricter of it
    # and the spec's own budget counts
    batch: int = 1
    dtype: str = "float32"
    require_aligned: bool = False  # a merge of misaligned receptive fields is a problem, not only a warning


@dataclass
class Run:
    files: list[Path]
    findings: list[Problem]  # every file's, in file order; problems, warnings and notes
    rounding: str = "strict"

    @property
    def problems(self) -> list[Problem]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def notes(self) -> list[Problem]:
        return [f for f in self.findings if f.level == "note"]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"files": len(self.files), "problems": [p.to_dict() for p in self.problems], "ok": self.ok,
                "checked": [str(f) for f in self.files]}


# ----------------------------------------------------------------------------- which files
def spec_files(arguments: list[str]) -> list[Path]:
    """Files as given, directories searched recursively for spec files, globs expanded.
    A path that does not exist, or a glob that matches nothing, is unusable input."""
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.exists():
            files += _expand(path)
        elif GLOB_CHARS.search(argument):
            from glob import glob

            matches = sorted(glob(argument, recursive=True))
            if not matches:
                raise SpecError("matches no file", Location(argument))
            for match in matches:
                files += _expand(Path(match))
        else:
            raise SpecError("no such file or directory", Location(argument))
    unique = list(dict.fromkeys(files))
    if not unique:
        raise SpecError(f"no spec files ({', '.join('*' + s for s in SPEC_SUFFIXES)}) found",
                        Location(" ".join(arguments)))
    return unique


def _expand(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    found = []
    for folder, subfolders, names in os.walk(path):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d not in SKIPPED_DIRS)
        found += [Path(folder) / name for name in sorted(names) if name.lower().endswith(SPEC_SUFFIXES)]
    return found


# ----------------------------------------------------------------------------- one file
def validate_paths(arguments: list[str], options: Options) -> Run:
    files = spec_files(arguments)
    findings = [finding for path in files for finding in validate_file(path, options)]
    return Run(files, findings, options.rounding or "strict")


def validate_file(path: Path, options: Options) -> list[Problem]:
    """Every finding of one file in line order: its problems, and the warnings and notes that are none."""
    from .api import load_spec
    from .check import analyze_blocks

    try:
        spec = load_spec(path)
    except CnnCalcError as exc:
        return [Problem("parse", exc.loc, exc.message)]
    rounding = options.rounding or spec.rounding or "strict"
    strict = rounding == "strict"
    # Strict: go on with floor, so every misfit is found, not only the first; `report.rounded`
    # lists each size floor rounded, whether it was warned or noted.
    analysis = analyze_blocks(spec, "floor" if strict else rounding, options.batch, options.dtype)
    problems = [Problem("fit", r.loc, r.message) for r in analysis.report.rounded] if strict else []
    problems += [Problem("reading", note.loc, note.message) for note in spec.notes]
    if not strict and rounding != spec.rounding:  # the command line chose a rounding the spec does not declare
        accepted = f"; accepted by --rounding {rounding}, which the spec does not declare"
        problems += [Problem("rounded", r.loc, r.message + accepted) for r in analysis.report.rounded]
    if analysis.error:
        problems.append(Problem(_error_kind(analysis.error), analysis.error.loc, analysis.error.message))
    problems += expectation_problems(spec, analysis)
    aligned_kind = "misaligned_required" if options.require_aligned else "misaligned"
    problems += [Problem(aligned_kind, m.loc, m.message) for m in analysis.report.misaligned]
    if not analysis.error:  # totals of a half-analysed network say nothing about the budget
        problems += budget_problems(spec, analysis.report, options)
    return _in_file_order(problems)


def _error_kind(error: CnnCalcError) -> str:
    return "parse" if isinstance(error, SpecError) and not isinstance(error, ShapeError) else "fit"


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.loc.line is None, p.loc.line or 0))


# ----------------------------------------------------------------------------- expectations
def expectation_problems(spec, analysis) -> list[Problem]:
    from .check import Conventions, answers_from_spec, judge

    errors: list[SpecError] = []
    answers = answers_from_spec(spec, analysis.blocks, errors)
    problems = [Problem("parse", e.loc, e.message) for e in errors]
    conventions = Conventions(layout=spec.layout)
    blocks = analysis.by_name()
    for answer in answers:
        try:
            result = judge(answer, blocks[answer.layer], conventions)
        except SpecError as exc:
            problems.append(Problem("parse", exc.loc, f"`expect` {exc.message}"))
            continue
        if not result.correct:
            message = (f"expected {answer.quantity} {answer.written}, but it is {result.expected_text}"
                       f" ({result.formula})")
            problems.append(Problem("expect", answer.loc, message))
    return problems


# ----------------------------------------------------------------------------- budgets
def budget_problems(spec, report, options: Options) -> list[Problem]:
    """The spec's `budgets:` and the command line's options both hold: the stricter limit counts
    (a looser option cannot lift the spec's own budget), and the problem says which one it is."""
    from .units import parse_quantity

    problems = []
    for budget in BUDGETS:
        limits = []  # (limit, as written, location, source); the spec's first, so it wins a tie
        if budget.key in spec.budgets:
            written = spec.budgets[budget.key]
            loc = spec.source.locate(("budgets", budget.key))
            try:
                limits.append((parse_quantity(written), written, loc, "the budget"))
            except ValueError as exc:
                problems.append(Problem("parse", loc, f"`budgets.{budget.key}`: {exc}"))
        if budget.key in options.budgets:
            limit, written = options.budgets[budget.key]
            limits.append((limit, written, Location(spec.file), budget.option))
        if not limits:
            continue
        limit, written, loc, source = min(limits, key=lambda item: item[0])
        actual = budget_value(budget.key, report)
        if actual > limit:
            message = budget_message(budget, report, actual, limit, written, source)
            looser = [item for item in limits if item[3] != source]
            if looser:
                other_limit, other_written, _, other_source = looser[0]
                other = "the spec's budget" if other_source == "the budget" else other_source
                relation = "stricter than" if other_limit > limit else "the same as"
                shown = _limit_text(budget, other_limit, other_written).split(" (")[0]  # no nested brackets
                message += f" ({relation} {other} of {shown})"
            problems.append(Problem("budget", loc, message))
    return problems


def budget_value(key: str, report) -> int:
    totals = report.totals
    return {"max_params": totals.params, "max_macs": totals.macs, "max_memory": totals.inference_bytes}[key]


def budget_message(budget: Budget, report, actual: int, limit: int, written, source: str) -> str:
    from .units import human_bytes

    limit_text = _limit_text(budget, limit, written)
    if budget.key == "max_memory":
        return (f"inference memory {actual:,} B ({human_bytes(actual)}: params + peak live activations, "
                f"{report.dtype}, batch {report.batch}) exceeds {source} of {limit_text}")
    return f"{actual:,} {budget.noun} exceed {source} of {limit_text}"


def _limit_text(budget: Budget, limit: int, written) -> str:
    """`25M (25,000,000)` as written and in full; `1,000` when they are the same."""
    unit = " B" if budget.key == "max_memory" else ""
    return f"{written} ({limit:,}{unit})" if str(written) != str(limit) else f"{limit:,}{unit}"
