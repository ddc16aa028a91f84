"""Size formulas run backwards: every whole value of one hyper-parameter that gives a wanted output.

Students ask "32 input, kernel 5, stride 2: what padding gives 16?". Rather than inverting each
formula by hand (and drifting from what `table` computes), every candidate in a bounded range is
pushed through the same formulas the table uses (``formulas.Window`` for conv and pooling,
``formulas.transposed_size`` for transposed conv) and kept when it gives the wanted size.
One spatial axis; pure functions, no click or rich.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Union

from .errors import CnnCalcError
from .formulas import Window, transposed_formula, transposed_size

UNKNOWNS = ("padding", "stride", "kernel", "dilation", "output_padding", "input")
ROUNDINGS = ("strict", "floor")
ALIASES = {"pool": "maxpool", "deconv": "conv_transpose", "upconv": "conv_transpose"}
REQUIRED = ("input", "kernel")  # no default; stride, padding, dilation and output_padding have one
DEFAULTS = {"stride": 1, "padding": 0, "dilation": 1, "output_padding": 0}
MAX_CANDIDATES = 200_000  # a plain loop: about 2 s at the limit

Value = Union[int, tuple[int, int]]  # a padding with uneven sides is (before, after)


class SolveError(CnnCalcError):
    """The question cannot be asked as given: unknown kind, a known value missing, ..."""


# ----------------------------------------------------------------------------- one layer, one axis
@dataclass(frozen=True)
class Hyper:
    """Every number one axis of the layer's output size depends on."""

    input: int
    kernel: int
    stride: int
    pad: tuple[int, int]
    dilation: int = 1
    output_padding: int = 0

    @property
    def extent(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    def window(self) -> Window:
        return Window(self.input, self.kernel, self.stride, self.pad, self.dilation)

    def transposed_args(self) -> tuple:
        return self.input, self.kernel, self.stride, self.pad, self.dilation, self.output_padding


def pool_padding_rule(h: Hyper) -> str | None:
    if max(h.pad) > h.kernel // 2:
        return f"PyTorch allows a pooling padding of at most half the kernel ({h.kernel // 2})"
    return None


def output_padding_rule(h: Hyper) -> str | None:
    if h.output_padding >= h.stride and h.output_padding >= h.dilation:
        return f"PyTorch needs output_padding smaller than the stride ({h.stride}) or the dilation ({h.dilation})"
    return None


@dataclass(frozen=True)
class Rule:
    """What one layer kind computes, and what PyTorch refuses to build."""

    keys: tuple[str, ...]  # the hyper-parameters the kind takes
    exact: Callable[[Hyper], Fraction]  # output size before rounding
    formula: Callable[[Hyper], str]  # the formula with the numbers plugged in
    same: Callable[[int, int], int]  # "same" output size for (input, stride)
    broken: Callable[[Hyper], str | None] = lambda h: None  # why PyTorch rejects the layer
    stride_follows_kernel: bool = False  # pooling's default stride is the kernel


WINDOW_KEYS = ("input", "kernel", "stride", "padding", "dilation")
window_size = dict(exact=lambda h: h.window().exact(), formula=lambda h: h.window().formula(),
                   same=lambda size, stride: -(-size // stride))  # TF/Keras "same": ceil(W1/S)
RULES: dict[str, Rule] = {
    "conv": Rule(WINDOW_KEYS, **window_size),
    "maxpool": Rule(WINDOW_KEYS, **window_size, broken=pool_padding_rule, stride_follows_kernel=True),
    "avgpool": Rule(WINDOW_KEYS[:-1], **window_size, broken=pool_padding_rule, stride_follows_kernel=True),
    "conv_transpose": Rule(
        (*WINDOW_KEYS, "output_padding"),
        exact=lambda h: Fraction(transposed_size(*h.transposed_args())),
        formula=lambda h: transposed_formula(*h.transposed_args()),
        same=lambda size, stride: size * stride,  # TF/Keras Conv2DTranspose "same": W1*S
        broken=output_padding_rule,
    ),
}
KINDS = (*RULES, *ALIASES)


# ----------------------------------------------------------------------------- the answer
@dataclass(frozen=True)
class Solution:
    value: Value
    formula: str  # e.g. "(32 - 5 + 2*2)/2 + 1 = 16"

    @property
    def asymmetric(self) -> bool:
        return isinstance(self.value, tuple)

    def shown(self) -> str:
        return f"[{self.value[0]}, {self.value[1]}]" if self.asymmetric else str(self.value)


@dataclass(frozen=True)
class Answer:
    kind: str
    find: str
    known: dict  # the values the solver used, defaults filled in; stride None = follows the kernel
    output: int  # the wanted output size (resolved when `same`)
    same: bool
    rounding: str
    searched: tuple[int, int]  # the candidate range of the unknown, both ends included
    found: tuple[Solution, ...]  # whole values first, then asymmetric padding pairs
    rejected: tuple[tuple[Value, str], ...] = ()  # sizes that fit but PyTorch refuses the layer
    floor_found: tuple[Solution, ...] = ()  # under floor rounding, when strict found nothing

    @property
    def solutions(self) -> list[int]:
        return [s.value for s in self.found if not s.asymmetric]

    @property
    def asymmetric(self) -> list[list[int]]:
        return [list(s.value) for s in self.found if s.asymmetric]

    @property
    def open_ended(self) -> bool:
        """The last value searched fits and larger ones may too: a stride past the padded input
        (output 1), any stride on a 1-wide transposed input, any dilation of a 1-wide kernel."""
        return self.find in ("stride", "dilation") and any(s.value == self.searched[1] for s in self.found)

    @property
    def message(self) -> str:
        if not self.found:
            return self._none_message()
        pairs = ", ".join(s.shown() for s in self.found if s.asymmetric)
        if not self.solutions:
            return (f"asymmetric padding only: {pairs} (the total is odd, so the extra pixel goes after, as TF/Keras "
                    "do; in a spec write [before, after] pairs, in PyTorch pad with F.pad first)")
        text = f"{self.find} = {', '.join(map(str, self.solutions))}"
        if pairs:
            text += f" (or asymmetric {pairs})"
        if len(self.found) > 1:
            text += f": each gives output {self.output} under {self.rounding} rounding"
        if self.open_ended:
            text += f"; the search stopped at {self.searched[1]}, larger values work too"
        return text

    def _none_message(self) -> str:
        lo, hi = self.searched
        text = (f"no {self.find} in {lo}..{hi} gives output {self.output} for {self.kind} "
                f"({describe(self.known)}) under {self.rounding} rounding")
        if self.rejected:
            values = ", ".join(Solution(v, "").shown() for v, _ in self.rejected)
            text += f"; {values} would give it, but {self.rejected[0][1]}"
        if self.floor_found:
            values = ", ".join(s.shown() for s in self.floor_found)
            text += f"; with --rounding floor (as PyTorch, leftover rows dropped) {self.find} = {values} works"
        return text

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "find": self.find,
            "known": self.known,
            "same": self.same,
            "rounding": self.rounding,
            "solutions": self.solutions,
            "asymmetric": self.asymmetric,
            "formulas": [s.formula for s in self.found],
            "searched": list(self.searched),
            "open_ended": self.open_ended,
            "message": self.message,
        }


def describe(known: dict) -> str:
    """`input 32, kernel 5, stride 2`: the known values a reader needs, output excluded."""
    parts = [f"{key.replace('_', ' ')} {'= kernel' if value is None else value}"
             for key, value in known.items() if key != "output"]
    return ", ".join(parts)


# ----------------------------------------------------------------------------- solving
def solve(kind: str, find: str, *, output: int | str | None, rounding: str = "strict", **given) -> Answer:
    """Every whole value of `find` that makes a `kind` layer give `output` ("same" allowed).

    `given` holds the known values: input, kernel, stride, padding (int or (before, after)),
    dilation, output_padding; leave out the ones that keep their default.
    """
    kind = ALIASES.get(kind, kind)
    rule = check_question(kind, find, output, rounding, given)
    known = with_defaults(rule, find, given)
    wanted = wanted_output(rule, known, output)
    lo, hi, candidates = candidate_values(find, known, wanted)
    found, rejected = search(rule, known, find, candidates, wanted, rounding)
    floor_found = ()
    if not found and rounding == "strict":  # say what PyTorch's flooring would accept
        floor_found = solve(kind, find, output=output, rounding="floor", **given).found
    known_shown = {"output": wanted, **{k: shown_padding(v) if k == "padding" else v for k, v in known.items()}}
    return Answer(kind, find, known_shown, wanted, output == "same", rounding, (lo, hi), found, rejected, floor_found)


def search(rule: Rule, known: dict, find: str, candidates, wanted: int, rounding: str):
    """(solutions, whole values first; (value, reason) for sizes that fit a layer PyTorch refuses)."""
    found, rejected = [], []
    for value in candidates:
        hyper = layer_with(known, find, value)
        exact = rule.exact(hyper)
        if not fits(exact, wanted, rounding):
            continue
        reason = rule.broken(hyper)
        if reason:
            rejected.append((value, reason))
        else:
            found.append(Solution(value, f"{rule.formula(hyper)} = {shown_size(exact)}"))
    found.sort(key=lambda s: s.asymmetric)  # stable: each group stays in increasing order
    return tuple(found), tuple(rejected)


def check_question(kind: str, find: str, output, rounding: str, given: dict) -> Rule:
    if kind not in RULES:
        raise SolveError(f"unknown layer kind `{kind}`; choose from {', '.join(KINDS)}")
    if rounding not in ROUNDINGS:
        raise SolveError(f"unknown rounding `{rounding}`; choose from {', '.join(ROUNDINGS)}")
    rule = RULES[kind]
    if find not in rule.keys:
        raise SolveError(f"cannot find `{find}`: {kind} takes {', '.join(rule.keys)}")
    for key, value in given.items():
        if value is not None and key not in rule.keys:
            raise SolveError(f"{kind} takes no `{key}`; it takes {', '.join(rule.keys)}")
        if value is not None and key == find:
            raise SolveError(f"`{find}` is both given ({value}) and the value to find; leave one out")
    for key in ("output", *REQUIRED):
        value = output if key == "output" else given.get(key)
        if value is None and key != find:
            raise SolveError(f"`{key}` is missing: solving for `{find}` needs every other value")
    check_ranges(given, output)
    if output == "same" and find in ("stride", "input"):
        raise SolveError(f"`same` sets the output from the input and the stride, so it cannot solve for `{find}`")
    return rule


def check_ranges(given: dict, output) -> None:
    """Whole numbers in range; padding may be a (before, after) pair."""
    numbers = {**given, "output": None if output == "same" else output}
    for key, value in numbers.items():
        if value is None:
            continue
        parts = value if key == "padding" and isinstance(value, (tuple, list)) and len(value) == 2 else (value,)
        least = 0 if key in ("padding", "output_padding") else 1
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= least for v in parts):
            what = "`same`, or " if key == "output" else ""
            raise SolveError(f"`{key}` = {value!r} must be {what}a whole number >= {least}")


def with_defaults(rule: Rule, find: str, given: dict) -> dict:
    """Known values with the layer's defaults; a pool's stride stays None (= kernel) while finding the kernel."""
    known = {}
    for key in rule.keys:
        if key == find:
            continue
        value = given.get(key)
        if value is None and key == "stride" and rule.stride_follows_kernel:
            value = None if find == "kernel" else given["kernel"]
        elif value is None:
            value = DEFAULTS.get(key)
        known[key] = pad_pair(value) if key == "padding" else value
    return known


def pad_pair(padding) -> tuple[int, int]:
    return (padding, padding) if isinstance(padding, int) else (padding[0], padding[1])


def shown_padding(pad: tuple[int, int]) -> int | list[int]:
    return pad[0] if pad[0] == pad[1] else list(pad)


def wanted_output(rule: Rule, known: dict, output) -> int:
    if output != "same":
        return output
    if known["stride"] is None:
        raise SolveError("`same` needs the stride: give it (a pool's default stride is the kernel being solved for)")
    return rule.same(known["input"], known["stride"])


def layer_with(known: dict, find: str, value: Value) -> Hyper:
    values = {**known, find: pad_pair(value) if find == "padding" else value}
    if values.get("stride") is None:
        values["stride"] = values["kernel"]
    return Hyper(values["input"], values["kernel"], values["stride"], values["padding"],
                 values.get("dilation", 1), values.get("output_padding", 0))


def fits(exact: Fraction, wanted: int, rounding: str) -> bool:
    """strict: the formula itself comes out as `wanted` (the lecture); floor: PyTorch's rounding."""
    if rounding == "strict":
        return exact == wanted
    return math.floor(exact) == wanted


def shown_size(exact: Fraction) -> str:
    return str(exact) if exact.denominator == 1 else f"{float(exact):.2f} -> {math.floor(exact)}"


def candidate_values(find: str, known: dict, wanted: int) -> tuple[int, int, list[Value]]:
    """The range searched (lo, hi) and its candidates. The bounds come from the formulas: past
    them the size only moves away from `wanted` (except stride/dilation that stop mattering)."""
    size = known.get("input", 0)
    pad = sum(known.get("padding", (0, 0)))
    extent = known.get("dilation", 1) * (known.get("kernel", 1) - 1) + 1 if "kernel" in known else 1
    stride = known.get("stride") or 1
    widest = max(size, wanted) + pad  # conv: extent <= input + padding; transposed: at most output + padding
    if find == "padding":
        top = (size + wanted) * stride + extent + known.get("output_padding", 0)
        hi = top // 2 + 1
        too_wide(find, hi)
        # symmetric P, then (P, P + 1) between: the odd pixel after, as TF/Keras do
        return 0, hi, ((t // 2, t - t // 2) if t % 2 else t // 2 for t in range(2 * hi + 1))
    lo, hi = {
        "stride": (1, widest),
        "kernel": (1, widest),
        "dilation": (1, widest),
        "output_padding": (0, max(stride, known.get("dilation", 1)) - 1),  # PyTorch's rule
        "input": (1, wanted * stride + extent + pad),
    }[find]
    too_wide(find, hi)
    return lo, hi, range(lo, hi + 1)


def too_wide(find: str, hi: int) -> None:
    """Guard against sizes no CNN has: the search is a loop, so its length is bounded."""
    if hi > MAX_CANDIDATES:
        raise SolveError(f"searching {find} up to {hi} is more than cnncalc solves for (at most {MAX_CANDIDATES})")

