"""Cashback rules: the most specific rule wins, disabled means not available (contract §5)."""

from __future__ import annotations

import pytest

from lootbox.domain.cashback import CashbackPolicy, cashback_minor


def policy(
    *,
    operator_enabled: bool = True,
    operator_bps: int | None = 1000,
    box_enabled: bool = True,
    box_bps: int | None = 1500,
    prize_bps: int | None = 2000,
) -> CashbackPolicy:
    return CashbackPolicy(operator_enabled, operator_bps, box_enabled, box_bps, prize_bps)


def test_the_prize_rule_beats_box_and_operator() -> None:
    assert policy().effective_bps() == 2000


def test_the_box_rule_applies_when_the_prize_has_none() -> None:
    assert policy(prize_bps=None).effective_bps() == 1500


def test_the_operator_default_applies_when_prize_and_box_have_none() -> None:
    assert policy(prize_bps=None, box_bps=None).effective_bps() == 1000


def test_a_zero_rule_is_a_rule_not_an_absence() -> None:
    assert policy(prize_bps=0).effective_bps() == 0
    assert policy(prize_bps=None, box_bps=0).effective_bps() == 0


def test_no_rule_anywhere_means_not_available() -> None:
    assert policy(prize_bps=None, box_bps=None, operator_bps=None).effective_bps() is None


@pytest.mark.parametrize(
    "disabled", [{"operator_enabled": False}, {"box_enabled": False}], ids=["operator", "box"]
)
def test_disabled_cashback_is_not_available_whatever_the_rules(disabled: dict[str, bool]) -> None:
    assert policy(**disabled).effective_bps() is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "bps", "expected"),
    [
        (3200, 1000, 320),
        (3205, 1000, 320),  # 320.5 floors to 320
        (3209, 1000, 320),  # 320.9 floors to 320, never rounds up
        (1, 9999, 0),
        (10_000, 1, 1),
        (0, 1000, 0),
        (9_223_372_036_854_775_807, 10_000, 9_223_372_036_854_775_807),
    ],
)
def test_cashback_value_is_floored_in_integer_minor_units(
    value: int, bps: int, expected: int
) -> None:
    result = cashback_minor(value, bps)
    assert result == expected
    assert isinstance(result, int)


@pytest.mark.parametrize(("value", "bps"), [(-1, 1000), (1000, -1)])
def test_negative_values_or_rules_are_rejected(value: int, bps: int) -> None:
    with pytest.raises(ValueError):
        cashback_minor(value, bps)
