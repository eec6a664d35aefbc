"""A box's odds: exact decimals that sum to exactly 1. The draw over them is
``lootbox.domain.fairness``."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext

from lootbox.domain.money import EXACT_PRECISION


def validate_odds(odds: Sequence[Decimal]) -> None:
    """Odds of one box are positive and sum to exactly 1; raises ``ValueError``."""
    if not odds:
        raise ValueError("a box needs at least one prize")
    if any(not o.is_finite() or o <= 0 for o in odds):
        raise ValueError("every prize needs odds greater than 0")
    with localcontext() as context:
        context.prec = EXACT_PRECISION  # sum exactly: 0.5 + 0.50…01 must not round to 1
        total = sum(odds, Decimal(0))
    if total != 1:
        raise ValueError(f"odds must sum to 1, they sum to {total}")
