"""What the inventory says an item would cash out for: the same as a purchase's won items."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lootbox.domain.cashback import CashbackPolicy
from lootbox.domain.listings import ItemListing
from lootbox.domain.states import ItemState

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def listing(value_minor: int, state: ItemState, operator_bps: int | None) -> ItemListing:
    return ItemListing(
        inventory_item_id=1,
        prize_id=2,
        name="Gold Coin",
        value_minor=value_minor,
        currency="EUR",
        state=state,
        round_public_id="r_1",
        reel_index=0,
        box_version_id=3,
        cashback=CashbackPolicy(True, operator_bps, True, None, None),
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("value", "state", "bps", "expected"),
    [
        (400, ItemState.UNRESOLVED, 8000, 320),
        (400, ItemState.CASHBACK_PENDING, 8000, 320),  # reads as unresolved
        (400, ItemState.CASHED_BACK, 8000, None),
        (400, ItemState.UNRESOLVED, None, None),  # no rule anywhere
        (1, ItemState.UNRESOLVED, 5000, None),  # floors to nothing: never a zero credit
    ],
)
def test_cashback_is_what_a_cashout_would_credit_or_none(
    value: int, state: ItemState, bps: int | None, expected: int | None
) -> None:
    assert listing(value, state, bps).cashback_minor == expected
