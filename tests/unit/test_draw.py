"""A box's odds: exact decimals that sum to exactly 1 (the draw is lootbox.domain.fairness)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lootbox.domain.draw import validate_odds


def odds(*values: str) -> list[Decimal]:
    return [Decimal(v) for v in values]


@pytest.mark.parametrize(
    "values",
    [("1",), ("0.5", "0.5"), ("0.7", "0.2", "0.1"), ("0.001", "0.999"), ("0.3333", "0.6667")],
)
def test_odds_summing_exactly_to_one_are_valid(values: tuple[str, ...]) -> None:
    validate_odds(odds(*values))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ((), "at least one prize"),
        (("0.5", "0.4"), "sum to 1"),
        (("0.5", "0.6"), "sum to 1"),
        (("0.3333", "0.3333", "0.3333"), "sum to 1"),
        (("1", "0"), "greater than 0"),
        (("1.5", "-0.5"), "greater than 0"),
        (("NaN",), "greater than 0"),
        (("Infinity",), "greater than 0"),
    ],
)
def test_invalid_odds_are_rejected_with_a_reason(values: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_odds(odds(*values))


def test_odds_that_miss_one_beyond_28_digits_are_rejected() -> None:
    with pytest.raises(ValueError):
        validate_odds(odds("0.5", "0.5000000000000000000000000000001"))
