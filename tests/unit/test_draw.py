"""Weighted prize draws over exact decimal odds."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal

import pytest

from lootbox.domain.draw import draw, validate_odds


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


def test_a_single_prize_box_always_wins_its_prize() -> None:
    rng = random.Random(7)
    assert {draw([("only", Decimal("1"))], rng) for _ in range(200)} == {"only"}


def test_draws_follow_the_odds_over_many_draws() -> None:
    rng = random.Random(7)
    candidates = [("common", Decimal("0.7")), ("rare", Decimal("0.25")), ("epic", Decimal("0.05"))]
    draws = 20_000
    counts = Counter(draw(candidates, rng) for _ in range(draws))
    # Binomial standard deviations are at most ~65 draws here; allow about 5 of them.
    for name, probability in candidates:
        assert abs(counts[name] - draws * float(probability)) < 350, counts


def test_draw_uses_integer_weights_from_the_finest_decimal_place() -> None:
    class Scripted:
        """Returns a chosen ticket, and remembers the range it was asked for."""

        def __init__(self, ticket: int) -> None:
            self.ticket = ticket
            self.stops: list[int] = []

        def randrange(self, stop: int) -> int:
            self.stops.append(stop)
            return self.ticket

    candidates = [("a", Decimal("0.25")), ("b", Decimal("0.5")), ("c", Decimal("0.25"))]
    assert draw(candidates, Scripted(24)) == "a"
    assert draw(candidates, Scripted(25)) == "b"
    assert draw(candidates, Scripted(74)) == "b"
    last = Scripted(75)
    assert draw(candidates, last) == "c"
    assert last.stops == [100]  # 0.25 has two places: weights 25/50/25 out of 100


def test_a_one_in_a_million_prize_is_reachable_and_exact() -> None:
    class Ticket:
        def __init__(self, ticket: int) -> None:
            self.ticket = ticket

        def randrange(self, stop: int) -> int:
            assert stop == 1_000_000
            return self.ticket

    candidates = [("jackpot", Decimal("0.000001")), ("dust", Decimal("0.999999"))]
    assert draw(candidates, Ticket(0)) == "jackpot"
    assert draw(candidates, Ticket(1)) == "dust"
