"""Pure arithmetic of CNN layers on integers: sizes (as exact fractions), counts, fit checks.

Each formula states itself the way the lecture writes it. Callers decide what a size that is
not whole means (strict / floor / ceil); nothing here knows about specs or rendering.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

AXIS_NOUNS = {1: ("position",), 2: ("row", "column"), 3: ("slice", "row", "column")}


@dataclass(frozen=True)
class Window:
    """One spatial axis of a sliding window (conv or pool): everything its size depends on."""

    size: int  # input size W1 along this axis
    kernel: int  # F
    stride: int  # S
    pad: tuple[int, int]  # (before, after); the lecture's P on both sides
    dilation: int = 1  # D

    @property
    def extent(self) -> int:
        """Dilated kernel extent D*(F-1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    def exact(self) -> int | Fraction:
        """An int when the size comes out whole (the common, fast case), else the exact Fraction."""
        # (W1 + 2P - D*(F-1) - 1)/S + 1; lecture: (W1 - F + 2P)/S + 1
        span = self.size + self.pad[0] + self.pad[1] - self.extent
        if span % self.stride == 0:
            return span // self.stride + 1
        return Fraction(span, self.stride) + 1

    def floor(self) -> int:
        return math.floor(self.exact())

    def ceil(self) -> int:
        """PyTorch's ceil_mode: round up, but drop a last window that starts in the right padding."""
        out = math.ceil(self.exact())
        if (out - 1) * self.stride >= self.size + self.pad[0]:
            out -= 1
        return out

    def unused(self) -> int:
        """Input positions (incl. padding) after the last window that floor rounding keeps."""
        covered = (self.floor() - 1) * self.stride + self.extent
        return max(self.size + sum(self.pad) - covered, 0)

    def formula(self) -> str:
        """The output-size formula with the numbers plugged in, in the lecture's order
        (W1 - F + 2P)/S + 1; dilation and asymmetric padding are written out."""
        before, after = self.pad
        text = f"{self.size}"
        text += f" - {self.kernel}" if self.dilation == 1 else f" - {self.dilation}*({self.kernel} - 1) - 1"
        if before == after and before:
            text += f" + 2*{before}"
        elif before or after:
            text += f" + {before} + {after}"
        return f"({text})/{self.stride} + 1"


def half(value: int) -> int | Fraction:
    """value/2, kept an int when whole: receptive-field offsets stay fast integer arithmetic."""
    return value // 2 if value % 2 == 0 else Fraction(value, 2)


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Padding that gives ceil(W1/S) outputs; extra goes after (TF/Keras "same", PyTorch at S=1)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def transposed_size(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int, output_padding: int) -> int:
    # (W1 - 1)*S - 2P + D*(F - 1) + OP + 1; lecture: (W1 - 1)*S - 2P + (F - 1) + 1 + OP
    return (size - 1) * stride - sum(pad) + dilation * (kernel - 1) + output_padding + 1


def transposed_formula(size: int, kernel: int, stride: int, pad: tuple[int, int], dilation: int, output_padding: int) -> str:
    before, after = pad
    text = f"({size} - 1)*{stride}"
    if before == after and before:
        text += f" - 2*{before}"
    elif before or after:
        text += f" - {before} - {after}"
    text += f" + ({kernel} - 1)" if dilation == 1 else f" + {dilation}*({kernel} - 1)"
    if output_padding:
        text += f" + {output_padding}"
    return text + " + 1"


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins: [floor(i*W/n), ceil((i+1)*W/n))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def prod(values) -> int:
    return math.prod(values)


def article(number_text: str) -> str:
    """'an' before numbers said with a vowel sound (8, 11, 18, 80...), else 'a'."""
    digits = number_text.split("x")[0]
    spoken_vowel = digits.startswith("8") or digits in ("11", "18") or (len(digits) in (5, 6) and digits[:2] in ("11", "18"))
    return "an" if spoken_vowel else "a"


def misfit_message(windows: list[Window], what: str) -> str:
    """e.g. `(7 - 3)/3 + 1 = 2.33 is not whole: a 3x3 filter at stride 3 does not fit a 7x7 input
    (1 row and 1 column unused)`. Only the axes that do not fit are shown in the formula; axes whose
    formulas differ are joined: `(...) = 40.88 and (...) = 40.83 are not whole`."""
    bad = [(axis, w) for axis, w in enumerate(windows) if w.exact().denominator != 1]
    formulas = []
    for _, w in bad:
        part = f"{w.formula()} = {float(w.exact()):.2f}"
        if part not in formulas:
            formulas.append(part)
    kernel = "x".join(str(w.kernel) for w in windows)
    strides = {w.stride for w in windows}
    stride = str(strides.pop()) if len(strides) == 1 else "x".join(str(w.stride) for w in windows)
    size = "x".join(str(w.size) for w in windows)
    nouns = AXIS_NOUNS.get(len(windows), ("position",) * len(windows))
    unused = []
    for axis, w in bad:
        count = w.unused()
        noun = nouns[axis] if axis < len(nouns) else "position"
        unused.append(f"{count} {noun}{'' if count == 1 else 's'}")
    padded = " padded" if any(sum(w.pad) for w in windows) else ""
    verb = "is" if len(formulas) == 1 else "are"
    return (
        f"{' and '.join(formulas)} {verb} not whole: {article(kernel)} {kernel} {what} at stride {stride} does not fit "
        f"{article(size)} {size}{padded} input ({' and '.join(unused)} unused)"
    )
