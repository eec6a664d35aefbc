"""Operator currency → a player's wallet currency, at the operator's configured rate."""

from __future__ import annotations

from decimal import Decimal

from lootbox import currencies
from lootbox.domain.money import convert_minor
from lootbox.domain.records import Operator


def rate_for(operator: Operator, currency: str) -> Decimal | None:
    """1 for the operator currency itself, else the configured rate; ``None`` if there is
    none (each caller names that condition its own way)."""
    return Decimal(1) if currency == operator.currency else operator.rates.get(currency)


def from_operator_currency(
    amount_minor: int, operator_currency: str, currency: str, rate: Decimal
) -> int:
    """Convert with ISO 4217 exponents, half-up, once (the identity for rate 1 and the
    same currency)."""
    return convert_minor(
        amount_minor, currencies.exponent(operator_currency), currencies.exponent(currency), rate
    )
