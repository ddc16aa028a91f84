"""Numbers for humans (138,357,544 -> "138.4M", bytes -> "77.07 MB") and back ("25M" -> 25000000).

One reader of written quantities serves every place a user writes one: budgets (the spec's
`budgets:`, `validate --max-*`, `verify --max-memory`), answers and `expect` values (`cnncalc
check`), and the JSON Schema's pattern, which is built from the same pieces. `1E6`, `1e6`,
`1,000`, `1_000`, `25M`, `1.5G`, `2GiB` mean the same everywhere.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

SI = [(10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")]
UNIT_POWERS = {"K": 1, "M": 2, "G": 3, "T": 4}

# The pieces of a written quantity. [0-9], not \d: Python's \d also matches other scripts' digits,
# the JSON Schema's (ECMA 262) does not.
DIGITS = r"(?:[0-9]{1,3}(?:[,_][0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+"  # 156, 122,304, 1_000, 117.6, .5
EXPONENT = r"[+-]?[0-9]{1,3}"  # after e or E: 1e6, 1.2E-3 (at most 3 digits: 1e999999999 is no count)
UNIT = r"[kKmMgGtT]"  # K (1000, or --k 1024 in answers), M, G, T
BINARY = r"i"  # Ki, Mi, Gi, Ti: powers of 1024
BYTES = r"[bB]|bytes?"  # 2GiB, 18.8 kB, 3 bytes


def _quantity_pattern(group) -> str:
    """The whole pattern, each piece wrapped by ``group(name, piece)``."""
    return (rf"^\s*{group('number', DIGITS)}(?:[eE]{group('exp', EXPONENT)})?"
            rf"\s*(?:{group('unit', UNIT)}{group('binary', BINARY)}?)?\s*{group('bytes', BYTES)}?\s*$")


QUANTITY = re.compile(_quantity_pattern(lambda name, piece: f"(?P<{name}>{piece})"))
# For the JSON Schema: the same pattern with plain groups (ECMA 262 has no (?P<name>...)).
QUANTITY_PATTERN = _quantity_pattern(lambda name, piece: f"({piece})")
EXAMPLES = "25M, 5G or 2GiB"


@dataclass(frozen=True)
class Quantity:
    """A number as written: its exact value, and how it was written."""

    value: Fraction
    rounded: bool  # written with a unit, a decimal point or an exponent (138M, 117.6K, 1.2e6)
    unit: str = ""  # the suffix, upper-case, then "i" if binary ("M", "Ki"), for showing a value back in it
    factor: int = 1  # what the unit multiplies by
    last_place: Fraction = Fraction(1)  # the place of the last digit written: 73M -> 10^6, 117.6K -> 100
    bytes: bool = False  # ended in B, byte or bytes


def read_quantity(text: str, k: int = 1000) -> Quantity:
    """'25M' -> 25e6, '1E6', '1,000', '1_000', '1.5G', '2GiB' -> 2**31, '18.8 kB'; ``k`` is what
    K means (1000, or 1024 for GoogLeNet's table); M, G, T are always powers of 1000."""
    match = QUANTITY.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"cannot read {text!r} as a number like {EXAMPLES}")
    value = Fraction(Decimal(match["number"].replace(",", "").replace("_", "")))
    exponent = int(match["exp"] or 0)
    unit = (match["unit"] or "").upper()
    binary = bool(match["binary"])
    factor = _unit_factor(unit, binary, k)
    decimals = len(match["number"].partition(".")[2])
    return Quantity(value=value * Fraction(10) ** exponent * factor,
                    rounded=bool(unit) or "." in match["number"] or match["exp"] is not None,
                    unit=unit + ("i" if binary else ""), factor=factor,
                    last_place=Fraction(10) ** (exponent - decimals) * factor, bytes=bool(match["bytes"]))


def _unit_factor(unit: str, binary: bool, k: int) -> int:
    """Ki, Mi, Gi, Ti are powers of 1024; K is ``k``; M, G, T are powers of 1000."""
    if not unit:
        return 1
    power = UNIT_POWERS[unit]
    if binary:
        return 1024**power
    return k if unit == "K" else 1000**power


def thousands(value: int) -> str:
    return f"{value:,}"


def compact(value: int | float, digits: int = 1) -> str:
    """138357544 -> 138.4M; numbers below 10,000 are shown whole."""
    if abs(value) < 10_000:
        return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    for factor, suffix in SI:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}f}{suffix}"
    return str(value)


def human_bytes(count: int) -> str:
    """77070336 -> '77.07 MB (73.5 MiB)'; always decimal MB first, binary in brackets."""
    if count < 1000:
        return f"{count} B"
    for factor, suffix in SI:
        if count >= factor:
            decimal = f"{count / factor:.2f} {suffix.replace('K', 'k')}B"
            break
    for power, suffix in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if count >= 2 ** (10 * power):
            return f"{decimal} ({count / 2 ** (10 * power):.1f} {suffix})"
    return decimal


def short_bytes(count: int) -> str:
    """Decimal units only, for narrow table columns."""
    if count < 1000:
        return f"{count} B"
    for factor, suffix in SI:
        if count >= factor:
            return f"{count / factor:.1f} {suffix.replace('K', 'k')}B"
    return f"{count} B"


def parse_quantity(text: str | int | float) -> int:
    """A budget or limit as a whole number: '25M' -> 25_000_000, '1E6', '1,000', '2GiB' -> 2**31,
    '1.5 MB' -> 1_500_000 (read by read_quantity; a fraction left over is dropped)."""
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    if isinstance(text, (int, float)):
        return int(text)
    return int(read_quantity(str(text)).value)
