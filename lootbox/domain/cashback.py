"""Cashback rules: which basis points apply to a prize, and what that is worth."""

from __future__ import annotations

from dataclasses import dataclass

BPS_DENOMINATOR = 10_000
# Cashback pays back at most the item's whole value: 10,000 bps is 100 %.
MAX_CASHBACK_BPS = BPS_DENOMINATOR


def is_cashback_bps(bps: int) -> bool:
    return 0 <= bps <= MAX_CASHBACK_BPS


@dataclass(frozen=True)
class CashbackPolicy:
    """Everything the rule needs, gathered from operator, box version and prize."""

    operator_enabled: bool
    operator_bps: int | None
    box_enabled: bool
    box_bps: int | None
    prize_bps: int | None

    def effective_bps(self) -> int | None:
        """The most specific rule (prize, then box, then operator), or ``None``.

        ``None`` means cashback is not available: disabled, or no rule anywhere.
        """
        if not (self.operator_enabled and self.box_enabled):
            return None
        for bps in (self.prize_bps, self.box_bps, self.operator_bps):
            if bps is not None:
                return bps
        return None


def cashback_minor(value_minor: int, bps: int) -> int:
    """``floor(value × bps / 10000)`` in the operator currency (integers, so exact)."""
    if value_minor < 0 or bps < 0:
        raise ValueError("value and bps must be non-negative")
    return value_minor * bps // BPS_DENOMINATOR
