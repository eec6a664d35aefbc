"""What the read endpoints list: a player's inventory and the money ledger as history.

Both are listed newest first and paged by *position* (keyset), never by offset: a page
boundary is the position of a row shown, so rows written while a caller pages never
shift, duplicate or hide the rows on the other side of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum

from lootbox.domain.cashback import CashbackPolicy, cashback_minor
from lootbox.domain.records import MovementKind, MovementReason, MovementStatus, PrizeType
from lootbox.domain.states import ItemState, RoundStatus, external_item_state

# --- inventory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemListing:
    inventory_item_id: int
    prize_id: int
    name: str
    type: PrizeType
    image_url: str | None
    shippable: bool
    value_minor: int  # operator currency
    currency: str  # the operator currency
    state: ItemState
    round_public_id: str
    reel_index: int
    box_version_id: int
    cashback: CashbackPolicy
    created_at: datetime
    updated_at: datetime

    @property
    def external_state(self) -> str:
        return external_item_state(self.state)

    @property
    def cashback_minor(self) -> int | None:
        """What cashing it out would credit right now, in the operator currency; ``None``
        where a cashout would answer CASHBACK_NOT_AVAILABLE: no longer ``unresolved``, no
        rule, or worth nothing (as a purchase's won items say)."""
        if self.external_state != ItemState.UNRESOLVED:
            return None
        bps = self.cashback.effective_bps()
        worth = 0 if bps is None else cashback_minor(self.value_minor, bps)
        return worth or None


# --- history --------------------------------------------------------------------------------


class HistoryType(StrEnum):
    PURCHASE = "purchase"  # a prepay debit: the box is held until opened or cancelled
    OPEN = "open"  # an atomic open's debit, or the opening of a held box (no money)
    REFUND = "refund"  # a held box returned: a credit
    CASHBACK = "cashback"  # an item cashed out: a credit


REASON_TYPES = {
    MovementReason.OPEN: HistoryType.OPEN,
    MovementReason.PREPAY: HistoryType.PURCHASE,
    MovementReason.REFUND: HistoryType.REFUND,
    MovementReason.CASHBACK: HistoryType.CASHBACK,
}


class HistoryStatus(StrEnum):
    """The LootBox documentation's words for a row, plus ``pending`` (ours)."""

    SETTLED = "settled"
    HELD = "held"
    VOIDED = "voided"
    REFUNDED = "refunded"
    COMPLETED = "completed"
    PENDING = "pending"  # the wallet's answer is not known yet


# A debit's row reads as the round it paid for reads now. A round can only be
# ``debit_pending`` while its debit is, so that entry is never reached through an
# accepted debit; it is here so that every round status has a row status.
_DEBIT_STATUS = {
    RoundStatus.DEBIT_PENDING: HistoryStatus.PENDING,
    RoundStatus.HELD: HistoryStatus.HELD,
    RoundStatus.REFUND_PENDING: HistoryStatus.HELD,  # the refund is the pending row
    RoundStatus.SETTLED: HistoryStatus.SETTLED,
    RoundStatus.REFUNDED: HistoryStatus.REFUNDED,
    RoundStatus.VOIDED: HistoryStatus.VOIDED,
}


def movement_status(
    reason: MovementReason, status: MovementStatus, round_status: RoundStatus | None
) -> HistoryStatus:
    """The status of a wallet call's row (docs/reconciling.md has the table).

    Not yet answered: ``pending``. Refused: ``voided``, whatever the call was, because no
    money moved. Accepted: a cashback ``completed``, a refund ``refunded``, a debit what
    its round is now (``held``, ``settled`` once opened, ``refunded`` once cancelled).
    """
    if status is MovementStatus.PENDING:
        return HistoryStatus.PENDING
    if status is MovementStatus.REFUSED:
        return HistoryStatus.VOIDED
    if reason is MovementReason.CASHBACK:
        return HistoryStatus.COMPLETED
    if reason is MovementReason.REFUND:
        return HistoryStatus.REFUNDED
    if round_status is None:
        raise ValueError("a debit always pays for a round")
    return _DEBIT_STATUS[round_status]


class HistorySource(IntEnum):
    """Where a history row comes from; also its tie-break at equal times."""

    OPENING = 0  # a prepaid round's opening (rounds)
    MOVEMENT = 1  # a wallet call (money_movements)


# Row ids per source. An operator who stored the ``entryId`` of earlier versions of this
# API (``mm_<n>``, ``op_<n>``) finds the same row under ``txn_`` + that id.
_ID_PREFIXES = {HistorySource.MOVEMENT: "txn_mm_", HistorySource.OPENING: "txn_op_"}


@dataclass(frozen=True)
class HistoryPosition:
    """The keyset order of history: newest first by time, then source, then row id."""

    occurred_at: datetime
    source: HistorySource
    row_id: int

    def key(self) -> tuple[datetime, int, int]:
        return (self.occurred_at, int(self.source), self.row_id)


@dataclass(frozen=True)
class Winnings:
    """What a drawn round won: its prizes' value in the operator currency, and the rate
    from the operator currency to the currency the round was paid in."""

    value_minor: int
    operator_currency: str
    rate: Decimal


@dataclass(frozen=True)
class HistoryEntry:
    position: HistoryPosition
    type: HistoryType
    status: HistoryStatus
    player_external_id: str
    kind: MovementKind | None  # None: no money moved
    amount_minor: int  # unsigned; ``signed_amount_minor`` is the player's view
    currency: str
    operator_amount_minor: int
    operator_currency: str | None  # None: no money moved
    rate: str | None
    idempotency_key: str | None  # the key the wallet call carried
    provider_txn_ref: str | None
    balance_after_minor: int | None
    round_public_id: str | None
    inventory_item_id: int | None
    mode: str | None  # the round's mode, for purchase and open rows: open | prepay
    refusal_code: str | None
    completed_at: datetime | None
    winnings: Winnings | None  # open rows of a round that was drawn
    payout_minor: int | None = None  # ``winnings`` in ``currency``, filled in by the use case

    @property
    def id(self) -> str:
        return f"{_ID_PREFIXES[self.position.source]}{self.position.row_id}"

    @property
    def occurred_at(self) -> datetime:
        return self.position.occurred_at

    def _signed(self, amount: int) -> int:
        return -amount if self.kind is MovementKind.DEBIT else amount

    @property
    def signed_amount_minor(self) -> int:
        """From the player's side: a debit is negative, a credit positive."""
        return self._signed(self.amount_minor)

    @property
    def signed_operator_amount_minor(self) -> int:
        return self._signed(self.operator_amount_minor)
