"""What the read endpoints say of a row: an item's cashback, the state list, a history
row's status, id and signed amounts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lootbox.domain.cashback import CashbackPolicy
from lootbox.domain.listings import (
    HistoryEntry,
    HistoryPosition,
    HistorySource,
    HistoryStatus,
    HistoryType,
    ItemListing,
    Winnings,
    movement_status,
)
from lootbox.domain.records import MovementKind, MovementReason, MovementStatus, PrizeType
from lootbox.domain.states import ItemState, RoundStatus
from lootbox.services.listings import listed_states

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def listing(value_minor: int, state: ItemState, operator_bps: int | None) -> ItemListing:
    return ItemListing(
        inventory_item_id=1,
        prize_id=2,
        name="Gold Coin",
        type=PrizeType.DIGITAL,
        image_url=None,
        shippable=False,
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


@pytest.mark.parametrize(
    ("names", "listed"),
    [
        ((), ("unresolved",)),
        (("cashed_back", "unresolved"), ("cashed_back", "unresolved")),
        (("unresolved", "cashed_back", "unresolved"), ("cashed_back", "unresolved")),
        (("expired", "shipped", "Expired"), ("expired",)),  # unknown names are ignored
        (("shipped",), ("unresolved",)),  # none known: the default
        (("",), ("unresolved",)),
        (("cashback_pending",), ("unresolved",)),  # internal, not a caller's word
        (("fulfilled", "all"), None),  # every state
    ],
)
def test_the_state_list_keeps_known_names_and_falls_back_to_the_default(
    names: tuple[str, ...], listed: tuple[str, ...] | None
) -> None:
    assert listed_states(names) == listed


A, P, R = MovementStatus.ACCEPTED, MovementStatus.PENDING, MovementStatus.REFUSED
OPEN, PREPAY = MovementReason.OPEN, MovementReason.PREPAY
REFUND, CASHBACK = MovementReason.REFUND, MovementReason.CASHBACK


@pytest.mark.parametrize(
    ("reason", "status", "round_status", "expected"),
    [
        # A debit that went through reads as its round reads now.
        (OPEN, A, RoundStatus.SETTLED, HistoryStatus.SETTLED),
        (PREPAY, A, RoundStatus.HELD, HistoryStatus.HELD),
        (PREPAY, A, RoundStatus.REFUND_PENDING, HistoryStatus.HELD),  # refund in flight
        (PREPAY, A, RoundStatus.SETTLED, HistoryStatus.SETTLED),  # opened since
        (PREPAY, A, RoundStatus.REFUNDED, HistoryStatus.REFUNDED),  # cancelled since
        # Refused: no money moved, whatever the call was.
        (OPEN, R, RoundStatus.VOIDED, HistoryStatus.VOIDED),
        (PREPAY, R, RoundStatus.VOIDED, HistoryStatus.VOIDED),
        (REFUND, R, RoundStatus.HELD, HistoryStatus.VOIDED),
        (CASHBACK, R, None, HistoryStatus.VOIDED),
        # No answer yet.
        (OPEN, P, RoundStatus.DEBIT_PENDING, HistoryStatus.PENDING),
        (PREPAY, P, RoundStatus.DEBIT_PENDING, HistoryStatus.PENDING),
        (REFUND, P, RoundStatus.REFUND_PENDING, HistoryStatus.PENDING),
        (CASHBACK, P, None, HistoryStatus.PENDING),
        # Credits that went through.
        (REFUND, A, RoundStatus.REFUNDED, HistoryStatus.REFUNDED),
        (CASHBACK, A, None, HistoryStatus.COMPLETED),
    ],
)
def test_every_kind_of_wallet_call_has_its_status(
    reason: MovementReason,
    status: MovementStatus,
    round_status: RoundStatus | None,
    expected: HistoryStatus,
) -> None:
    assert movement_status(reason, status, round_status) is expected


def entry(source: HistorySource, row_id: int, kind: MovementKind | None) -> HistoryEntry:
    return HistoryEntry(
        position=HistoryPosition(NOW, source, row_id),
        type=HistoryType.OPEN,
        status=HistoryStatus.SETTLED,
        player_external_id="u_1",
        kind=kind,
        amount_minor=500 if kind else 0,
        currency="USD",
        operator_amount_minor=461 if kind else 0,
        operator_currency="EUR" if kind else None,
        rate="1.0842" if kind else None,
        idempotency_key="round:r_1" if kind else None,
        provider_txn_ref=None,
        balance_after_minor=None,
        round_public_id="r_1",
        inventory_item_id=None,
        mode="open",
        refusal_code=None,
        completed_at=NOW,
        winnings=Winnings(400, "EUR", Decimal("1.0842")),
    )


def test_row_ids_are_unique_across_wallet_calls_and_openings() -> None:
    call = entry(HistorySource.MOVEMENT, 7, MovementKind.DEBIT)
    opening = entry(HistorySource.OPENING, 7, None)

    assert (call.id, opening.id) == ("txn_mm_7", "txn_op_7")
    assert call.occurred_at == NOW


def test_amounts_are_signed_from_the_players_side() -> None:
    debit = entry(HistorySource.MOVEMENT, 1, MovementKind.DEBIT)
    credit = replace(debit, kind=MovementKind.CREDIT)
    opening = entry(HistorySource.OPENING, 1, None)

    assert (debit.signed_amount_minor, debit.signed_operator_amount_minor) == (-500, -461)
    assert (credit.signed_amount_minor, credit.signed_operator_amount_minor) == (500, 461)
    assert opening.signed_amount_minor == 0
