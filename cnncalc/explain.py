"""Worked formulas as data (``Formula``): each written symbolically, with the numbers plugged in,
and its value, e.g. `W2 = (W1 - F + 2P)/S + 1 = (32 - 5 + 2*2)/1 + 1 = 32`.

Rendered, every formula reads `NAME = symbols = arithmetic = value`; the arithmetic is plain
Python syntax, so tests can evaluate it and compare with the value. A size that nothing computes
leaves out the arithmetic, `W2 = output = 7`, or the symbols too, `W2 = 1 (...)`; words after
the value sit in parentheses.
"""
from __future__ import annotations

from fractions import Fraction

from .formulas import Window, adaptive_bins
from .kinds.base import Formula

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


def size_lines(windows: list[Window], out_sizes) -> list[Formula]:
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
        lines.append(Formula(" = ".join(a + "2" for a in axes), symbols, formula, value))
    return lines


def axis_lines(items: list[tuple[str, str, str]]) -> list[Formula]:
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
        lines.append(Formula(" = ".join(a + "2" for a in axes), symbols, arithmetic, value))
    return lines


def unpool_lines(sizes, factors) -> list[Formula]:
    return axis_lines([("{a}1*factor", f"{i}*{f}", str(i * f)) for i, f in zip(sizes, factors)])


def upsample_lines(sizes, scales, out_sizes, size_given: bool) -> list[Formula]:
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


def adaptive_lines(sizes, written, out_sizes) -> list[Formula]:
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


def global_lines(sizes) -> list[Formula]:
    whole = "x".join(map(str, sizes))
    return axis_lines([("", "", f"1 (one window covers the whole {whole} input)")] * len(sizes))


def kernel_symbols(kernel) -> tuple[str, str]:
    """('F*F', '5*5') for a square kernel, ('F1*F2', '3*5') otherwise."""
    kernel = tuple(kernel)
    symbols = "*".join(["F"] * len(kernel)) if len(set(kernel)) == 1 else "*".join(f"F{i + 1}" for i in range(len(kernel)))
    return symbols, "*".join(map(str, kernel))


def conv_lines(kernel, depth: int, groups: int, filters: int, bias: bool, out_sizes) -> list[Formula]:
    f_sym, f_num = kernel_symbols(kernel)
    d_sym = "D1" if groups == 1 else "D1/G"
    d_num = str(depth * groups) if groups == 1 else f"{depth * groups}//{groups}"
    per_filter = f"{f_sym}*{d_sym}"
    per_filter_num = f"{f_num}*{d_num}"
    weights = _product(kernel) * depth * filters
    lines = []
    if bias:
        lines.append(Formula("params", f"({per_filter} + 1)*K", f"({per_filter_num} + 1)*{filters}",
                             str(weights + filters), "params"))
    else:
        lines.append(Formula("params", f"{per_filter}*K", f"{per_filter_num}*{filters}", str(weights), "params"))
    positions = _product(out_sizes)
    o_sym = "*".join(f"{a}2" for a in reversed(axis_names(len(out_sizes))))
    o_num = "*".join(map(str, reversed(out_sizes)))
    lines.append(Formula("MACs", f"{per_filter}*K*{o_sym}", f"{per_filter_num}*{filters}*{o_num}",
                         str(weights * positions), "macs"))
    if bias:
        lines.append(Formula("MULs with bias", f"({per_filter} + 1)*K*{o_sym}",
                             f"({per_filter_num} + 1)*{filters}*{o_num}", str((weights + filters) * positions),
                             "muls_with_bias"))
    return lines


def transposed_lines(kernel, c_in: int, groups: int, filters: int, bias: bool, input_elements: int) -> list[Formula]:
    f_sym, f_num = kernel_symbols(kernel)
    weights = _product(kernel) * c_in * (filters // groups)
    per_group = "K" if groups == 1 else "(K/G)"
    per_group_num = str(filters) if groups == 1 else f"({filters}//{groups})"
    return [Formula("params", f"{f_sym}*C_in*{per_group}{' + K' if bias else ''}",
                    f"{f_num}*{c_in}*{per_group_num}{f' + {filters}' if bias else ''}",
                    str(weights + (filters if bias else 0)), "params"),
            Formula("MACs", f"input_elements*{f_sym}*{per_group}", f"{input_elements}*{f_num}*{per_group_num}",
                    str(input_elements * _product(kernel) * (filters // groups)), "macs")]


def transposed_size_lines(args, out_sizes) -> list[Formula]:
    """Per axis (W1 - 1)*S - 2P + D*(F - 1) + OP + 1, from (size, kernel, stride, pad, dilation, OP)."""
    from .formulas import transposed_formula

    return [Formula(f"{axis}2", f"({axis}1 - 1)*S - 2P + D*(F - 1) + OP + 1", transposed_formula(*a), str(o))
            for axis, a, o in zip(axis_names(len(out_sizes)), args, out_sizes)]


def table_lines(kernel, inputs_per_filter: list[int], bias: bool, positions: int) -> list[Formula]:
    """A conv whose filters see chosen input channels (LeNet-5's C3 connection table)."""
    f_sym, f_num = kernel_symbols(kernel)
    seen = sum(inputs_per_filter)
    weights = _product(kernel) * seen
    filters = len(inputs_per_filter)
    plus, plus_num = (" + K", f" + {filters}") if bias else ("", "")
    return [Formula("params", f"{f_sym}*sum(inputs per filter){plus}", f"{f_num}*{seen}{plus_num}",
                    str(weights + (filters if bias else 0)), "params"),
            Formula("MACs", f"{f_sym}*sum(inputs per filter)*positions", f"{f_num}*{seen}*{positions}",
                    str(weights * positions), "macs")]


def linear_lines(n_in: int, features: int, bias: bool) -> list[Formula]:
    macs = Formula("MACs", "N_in*N_out", f"{n_in}*{features}", str(n_in * features), "macs")
    if bias:
        with_bias = ("(N_in + 1)*N_out", f"({n_in} + 1)*{features}", str((n_in + 1) * features))
        return [Formula("params", *with_bias, "params"), macs, Formula("MULs with bias", *with_bias, "muls_with_bias")]
    return [Formula("params", "N_in*N_out", f"{n_in}*{features}", str(n_in * features), "params"), macs]


def subsample_lines(channels: int, kernel, out_shape) -> list[Formula]:
    """LeNet-5's S2/S4: one coefficient and one bias per map; each output sums its window plus the bias."""
    outputs = _product(out_shape)
    return [Formula("params", "2*C", f"2*{channels}", str(2 * channels), "params"),
            Formula("connections", "", f"({'*'.join(map(str, kernel))} + 1)*{'*'.join(map(str, reversed(out_shape)))}",
                    str((_product(kernel) + 1) * outputs), "connections")]


def _product(values) -> int:
    result = 1
    for v in values:
        result *= v
    return result
