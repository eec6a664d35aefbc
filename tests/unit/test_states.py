"""What callers see of internal pending states (contract §4)."""

from __future__ import annotations

import pytest

from lootbox.domain.states import (
    ItemState,
    RoundStatus,
    external_item_state,
    external_round_status,
)


def test_a_round_whose_refund_is_in_flight_still_looks_held() -> None:
    assert external_round_status(RoundStatus.REFUND_PENDING) == "held"
    assert external_round_status("refund_pending") == "held"


def test_an_item_whose_cashback_is_in_flight_still_looks_unresolved() -> None:
    assert external_item_state(ItemState.CASHBACK_PENDING) == "unresolved"
    assert external_item_state("cashback_pending") == "unresolved"


def test_a_round_whose_debit_is_unanswered_is_not_shown_as_held() -> None:
    # The buyer was told WALLET_UNAVAILABLE: the round must not look like a paid box.
    assert external_round_status(RoundStatus.DEBIT_PENDING) == "debit_pending"


@pytest.mark.parametrize("status", ["held", "settled", "refunded", "voided"])
def test_public_round_statuses_are_shown_as_they_are(status: str) -> None:
    assert external_round_status(status) == status


@pytest.mark.parametrize(
    "state", ["unresolved", "cashed_back", "ship_requested", "fulfilled", "expired"]
)
def test_public_item_states_are_shown_as_they_are(state: str) -> None:
    assert external_item_state(state) == state


def test_external_states_are_plain_strings() -> None:
    assert type(external_round_status(RoundStatus.SETTLED)) is str
    assert type(external_item_state(ItemState.CASHED_BACK)) is str


@pytest.mark.parametrize("bogus", ["open", "HELD", ""])
def test_unknown_states_are_rejected(bogus: str) -> None:
    with pytest.raises(ValueError):
        external_round_status(bogus)
    with pytest.raises(ValueError):
        external_item_state(bogus)
