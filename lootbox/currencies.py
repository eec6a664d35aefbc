"""ISO 4217 minor-unit exponents (JPY 0, EUR 2, KWD 3, ...), from the ``iso4217`` package."""

from __future__ import annotations

from functools import cache

from iso4217 import Currency


@cache
def exponent(currency: str) -> int:
    """Minor-unit exponent; raises ``ValueError`` for a code ISO 4217 does not define or
    that has no minor unit (XAU and friends)."""
    value = Currency(currency).exponent
    if value is None:
        raise ValueError(f"{currency} has no minor unit")
    return int(value)


def is_known(currency: str) -> bool:
    try:
        exponent(currency)
    except ValueError:
        return False
    return True
