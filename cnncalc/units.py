"""Numbers for humans (138,357,544 -> "138.4M", bytes -> "77.07 MB") and back ("25M" -> 25000000)."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

SI = [(10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")]
UNIT_FACTORS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40}
QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([kKmMgGtT]i?)?\s*(b|B|bytes?)?\s*$")


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
    """'25M' -> 25_000_000, '5G' -> 5e9, '159K' -> 159_000, '2GiB' -> 2**31, '1.5 MB' -> 1_500_000."""
    if isinstance(text, bool):
        raise ValueError(f"not a quantity: {text!r}")
    if isinstance(text, (int, float)):
        return int(text)
    match = QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"cannot read {text!r} as a number like 25M, 5G or 2GiB")
    try:
        number = Decimal(match[1])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"cannot read {text!r} as a number") from None
    factor = UNIT_FACTORS[(match[2] or "").upper()]
    return int(number * factor)
