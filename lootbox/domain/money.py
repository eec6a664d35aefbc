"""Money arithmetic: integer minor units and exact ``Decimal`` rates, never floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, Inexact, InvalidOperation, Rounded, localcontext

# Decimal's default context keeps 28 digits and would round a long product silently.
EXACT_PRECISION = 200


def parse_rate(text: str) -> Decimal:
    """An FX rate as an exact positive decimal; raises ``ValueError`` otherwise."""
    try:
        rate = Decimal(text)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"rate {text!r} is not a decimal number") from exc
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate {text!r} must be a positive finite number")
    return rate


def convert_minor(amount_minor: int, from_exponent: int, to_exponent: int, rate: Decimal) -> int:
    """``round_half_up(amount / 10^from × rate × 10^to)``, computed exactly, rounded once.

    ``scaleb`` shifts the decimal point without rounding, so the only rounding is the
    final quantize.
    """
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise TypeError("amount_minor must be an int")
    if not isinstance(rate, Decimal):
        raise TypeError("rate must be a Decimal")
    with localcontext() as context:
        # Wide enough for any int64 amount times any stored rate; the traps prove that
        # nothing was rounded before the one rounding the contract allows.
        context.prec = EXACT_PRECISION
        context.traps[Inexact] = context.traps[Rounded] = True
        exact = (Decimal(amount_minor) * rate).scaleb(to_exponent - from_exponent)
        context.traps[Inexact] = context.traps[Rounded] = False
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_rate(rate: Decimal) -> str:
    """A rate as the plain decimal string sent in wallet references (never ``1E-7``)."""
    return format(rate, "f")
