"""Worked-solution lines: each formula written symbolically, with the numbers plugged in, and
its value, e.g. `W2 = (W1 - F + 2P)/S + 1 = (32 - 5 + 2*2)/1 + 1 = 32`.

Every line has the shape `NAME = symbols = arithmetic = value`; the arithmetic is plain Python
syntax, so tests can evaluate it and compare with the value. A size that nothing computes
leaves out the arithmetic, `W2 = output = 7`, or the symbols too, `W2 = 1 (...)`; words after
the value sit in parentheses.
"""
from __future__ import annotations

from fractions import Fraction

from .formulas import Window, adaptive_bins

AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def axis_names(rank: int) -> tuple[str, ...]:
    return AXIS_NAMES.get(rank, tuple(f"X{i}" for i in range(rank)))


def _value(exact: Fraction, rounded: int) -> str:
    if exact.denominator == 1:
        return str(exact)
    return f"{float(exact):.2f} -> {rounded}"


def window_symbols(w: Window, axis: str) -> str:
    kernel = "F" if w.dilation == 1 else "D*(F - 1) - 1"
    padding = ""
    if w.pad[0] == w.pad[1] and w.pad[0]:
        padding = " + 2P"
    elif any(w.pad):
        padding = " + P_before + P_after"
    return f"({axis}1 - {kernel}{padding})/S + 1"


def size_lines(windows: list[Window], out_sizes) -> list[str]:
    """One line per distinct axis; equal axes share a line (`W2 = H2 = ...`)."""
    names = axis_names(len(windows))
    grouped: dict[tuple, list[str]] = {}
    for name, w, out in zip(names, windows, out_sizes):
        key = (w.formula(), _value(w.exact(), out))
        grouped.setdefault(key, []).append(name)
    lines = []
    for (formula, value), axes in grouped.items():
        axes = list(reversed(axes))  # the lecture writes W before H
        symbols = window_symbols(next(w for n, w in zip(names, windows) if n == axes[0]), "W" if len(axes) > 1 else axes[0])
        lines.append(f"{' = '.join(a + '2' for a in axes)} = {symbols} = {formula} = {value}")
    return lines


def axis_lines(items: list[tuple[str, str, str]]) -> list[str]:
    """Per-axis lines from (symbols, arithmetic, value) in axis order, `{a}` in the symbols
    standing for the axis name; equal axes share a line (`W2 = H2 = W1*factor = 4*2 = 8`).
    Empty symbols or arithmetic are left out: `W2 = output = 7` (nothing to compute)."""
    names = axis_names(len(items))
    grouped: dict[tuple, list[str]] = {}
    for name, (symbols, arithmetic, value) in zip(names, items):
        grouped.setdefault((symbols, arithmetic, value), []).append(name)
    lines = []
    for (symbols, arithmetic, value), axes in grouped.items():
        axes = list(reversed(axes))  # the lecture writes W before H
        symbols = symbols.format(a="W" if len(axes) > 1 else axes[0])
        parts = [" = ".join(a + "2" for a in axes), symbols, arithmetic, value]
        lines.append(" = ".join(part for part in parts if part))
    return lines


def unpool_lines(sizes, factors) -> list[str]:
    return axis_lines([("{a}1*factor", f"{i}*{f}", str(i * f)) for i, f in zip(sizes, factors)])


def upsample_lines(sizes, scales, out_sizes, size_given: bool) -> list[str]:
    """scale_factor: floor(W1*scale) (PyTorch's rule), written with // when the scale is not whole."""
    items = []
    for i, scale, out in zip(sizes, scales, out_sizes):
        scale = Fraction(scale)
        if size_given:
            items.append(("size", "", f"{out} (scale {scale})"))
        elif scale.denominator == 1:
            items.append(("{a}1*scale", f"{i}*{scale}", str(out)))
        else:
            items.append(("floor({a}1*scale)", f"{i}*{scale.numerator}//{scale.denominator}", str(out)))
    return axis_lines(items)


def adaptive_lines(sizes, written, out_sizes) -> list[str]:
    """Adaptive pooling: the output is what `output` says; null keeps the input's size."""
    items = []
    for i, asked, out in zip(sizes, written, out_sizes):
        if asked is None:
            items.append(("{a}1", "", f"{out} (null keeps the input size)"))
        else:
            widths = sorted({end - start for start, end in adaptive_bins(i, out)})
            across = f"{widths[0]}" if len(widths) == 1 else f"{widths[0]} to {widths[-1]}"
            items.append(("output", "", f"{out} (bins {across} wide over {i})"))
    return axis_lines(items)


def global_lines(sizes) -> list[str]:
    whole = "x".join(map(str, sizes))
    return axis_lines([("", "", f"1 (one window covers the whole {whole} input)")] * len(sizes))


def kernel_symbols(kernel) -> tuple[str, str]:
    """('F*F', '5*5') for a square kernel, ('F1*F2', '3*5') otherwise."""
    kernel = tuple(kernel)
    symbols = "*".join(["F"] * len(kernel)) if len(set(kernel)) == 1 else "*".join(f"F{i + 1}" for i in range(len(kernel)))
    return symbols, "*".join(map(str, kernel))


def conv_lines(kernel, depth: int, groups: int, filters: int, bias: bool, out_sizes) -> list[str]:
    f_sym, f_num = kernel_symbols(kernel)
    d_sym = "D1" if groups == 1 else "D1/G"
    d_num = str(depth * groups) if groups == 1 else f"{depth * groups}//{groups}"
    per_filter = f"{f_sym}*{d_sym}"
    per_filter_num = f"{f_num}*{d_num}"
    weights = _product(kernel) * depth * filters
    lines = []
    if bias:
        lines.append(f"params = ({per_filter} + 1)*K = ({per_filter_num} + 1)*{filters} = {weights + filters}")
    else:
        lines.append(f"params = {per_filter}*K = {per_filter_num}*{filters} = {weights}")
    positions = _product(out_sizes)
    o_sym = "*".join(f"{a}2" for a in reversed(axis_names(len(out_sizes))))
    o_num = "*".join(map(str, reversed(out_sizes)))
    lines.append(f"MACs = {per_filter}*K*{o_sym} = {per_filter_num}*{filters}*{o_num} = {weights * positions}")
    if bias:
        lines.append(f"MULs with bias = ({per_filter} + 1)*K*{o_sym} = ({per_filter_num} + 1)*{filters}*{o_num} = "
                     f"{(weights + filters) * positions}")
    return lines


def transposed_lines(kernel, c_in: int, groups: int, filters: int, bias: bool, input_elements: int) -> list[str]:
    f_sym, f_num = kernel_symbols(kernel)
    weights = _product(kernel) * c_in * (filters // groups)
    per_group = "K" if groups == 1 else "(K/G)"
    per_group_num = str(filters) if groups == 1 else f"({filters}//{groups})"
    lines = [f"params = {f_sym}*C_in*{per_group}{' + K' if bias else ''} = "
             f"{f_num}*{c_in}*{per_group_num}{f' + {filters}' if bias else ''} = {weights + (filters if bias else 0)}"]
    lines.append(f"MACs = input_elements*{f_sym}*{per_group} = {input_elements}*{f_num}*{per_group_num} = "
                 f"{input_elements * _product(kernel) * (filters // groups)}")
    return lines


def table_lines(kernel, inputs_per_filter: list[int], bias: bool, positions: int) -> list[str]:
    """A conv whose filters see chosen input channels (LeNet-5's C3 connection table)."""
    f_sym, f_num = kernel_symbols(kernel)
    seen = sum(inputs_per_filter)
    weights = _product(kernel) * seen
    filters = len(inputs_per_filter)
    plus, plus_num = (" + K", f" + {filters}") if bias else ("", "")
    return [f"params = {f_sym}*sum(inputs per filter){plus} = {f_num}*{seen}{plus_num} = "
            f"{weights + (filters if bias else 0)}",
            f"MACs = {f_sym}*sum(inputs per filter)*positions = {f_num}*{seen}*{positions} = {weights * positions}"]


def linear_lines(n_in: int, features: int, bias: bool) -> list[str]:
    if bias:
        return [f"params = (N_in + 1)*N_out = ({n_in} + 1)*{features} = {(n_in + 1) * features}",
                f"MACs = N_in*N_out = {n_in}*{features} = {n_in * features}",
                f"MULs with bias = (N_in + 1)*N_out = ({n_in} + 1)*{features} = {(n_in + 1) * features}"]
    return [f"params = N_in*N_out = {n_in}*{features} = {n_in * features}",
            f"MACs = N_in*N_out = {n_in}*{features} = {n_in * features}"]


def _product(values) -> int:
    result = 1
    for v in values:
        result *= v
    return result
