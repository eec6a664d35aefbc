"""The house edge a box discloses: 10000 × (1 − Σ odds × value / price), rounded half-up."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from lootbox.domain.catalog import house_edge_bps, round_half_up
from lootbox.domain.fairness import canonical_json, snapshot_hash


def table(*prizes: tuple[str, int]) -> list[tuple[Decimal, int]]:
    return [(Decimal(odds), value) for odds, value in prizes]


def test_a_known_table() -> None:
    # 0.05 × 5000 + 0.25 × 1000 + 0.7 × 400 = 780 of 1000: the player keeps 78 %.
    assert house_edge_bps(1000, table(("0.05", 5000), ("0.25", 1000), ("0.7", 400))) == 2200


def test_prizes_worth_more_than_the_price_give_a_negative_edge() -> None:
    assert house_edge_bps(100, table(("0.7", 50), ("0.3", 500))) == -8500


def test_a_box_that_returns_its_price_has_no_edge_and_one_that_returns_nothing_all() -> None:
    assert house_edge_bps(500, table(("1", 500))) == 0
    assert house_edge_bps(500, table(("0.5", 0), ("0.5", 0))) == 10_000


def test_a_half_rounds_up() -> None:
    # 10000 × (1 − 0.5 / 400) = 9987.5 exactly.
    assert house_edge_bps(400, table(("0.5", 1), ("0.5", 0))) == 9988


def test_a_negative_half_rounds_away_from_zero() -> None:
    # 0.5 × 2000 + 0.5 × 2001 = 2000.5 of 2000: 10000 × (1 − 2000.5 / 2000) = −2.5 exactly.
    assert house_edge_bps(2000, table(("0.5", 2000), ("0.5", 2001))) == -3


def test_a_division_that_does_not_terminate_is_rounded_once() -> None:
    # 10000 × (1 − 1/3) = 6666.66…
    assert house_edge_bps(3, table(("1", 1))) == 6667


def test_odds_with_more_digits_than_a_float_holds_are_exact() -> None:
    odds = table(("0.1234567890123456789", 100), ("0.8765432109876543211", 1))
    assert house_edge_bps(300, odds) == 9559


def test_just_below_a_half_rounds_down() -> None:
    # 9987.4999… must not become 9988 through an intermediate rounding.
    assert (
        house_edge_bps(
            400,
            table(
                ("0.5000000000000000000000000000001", 1), ("0.4999999999999999999999999999999", 0)
            ),
        )
        == 9987
    )


@pytest.mark.parametrize(
    ("value", "rounded"),
    [
        (Fraction(5, 2), 3),
        (Fraction(-5, 2), -3),
        (Fraction(249, 100), 2),
        (Fraction(-249, 100), -2),
        (Fraction(0), 0),
        (Fraction(7), 7),
    ],
)
def test_round_half_up(value: Fraction, rounded: int) -> None:
    assert round_half_up(value) == rounded


def test_a_price_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        house_edge_bps(0, table(("1", 1)))


def test_canonical_json_keeps_decimal_digits_sorts_keys_and_escapes() -> None:
    document = {"b": [Decimal("0.70"), 1], "a": "Drachen\u00e4"}

    assert canonical_json(document) == '{"a":"Drachen\\u00e4","b":[0.70,1]}'
    assert snapshot_hash(document) == snapshot_hash(
        {"a": "Drachen\u00e4", "b": [Decimal("0.70"), 1]}
    )
    assert snapshot_hash(document) != snapshot_hash({**document, "b": [Decimal("0.7"), 1]})
