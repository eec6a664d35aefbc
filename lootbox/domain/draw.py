"""Weighted prize draws over exact decimal odds."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Protocol, TypeVar

from lootbox.domain.money import EXACT_PRECISION

T = TypeVar("T")


class RandomSource(Protocol):
    def randrange(self, stop: int, /) -> int: ...


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


def draw(candidates: Sequence[tuple[T, Decimal]], rng: RandomSource) -> T:
    """Pick one candidate with probability equal to its odds.

    Odds are scaled to integers (by the largest number of decimal places), so the draw is
    exact: no float weights, no rounding drift.
    """
    places = max(max(-o.as_tuple().exponent, 0) for _, o in candidates)  # type: ignore[operator]
    scale = Decimal(10) ** places
    weights = [int(o * scale) for _, o in candidates]
    ticket = rng.randrange(sum(weights))
    for (candidate, _), weight in zip(candidates, weights, strict=True):
        if ticket < weight:
            return candidate
        ticket -= weight
    raise AssertionError("unreachable: ticket beyond total weight")
