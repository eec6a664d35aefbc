"""What the read endpoints list: a player's inventory and the money ledger as history.

Both are listed newest first and paged by *position* (keyset), never by offset: a page
boundary is the position of the last row shown, so rows written while a caller pages
never shift, duplicate or hide the rows after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum

from lootbox.domain.cashback import CashbackPolicy, cashback_minor
from lootbox.domain.records import MovementKind, MovementReason
from lootbox.domain.states import ItemState, external_item_state

# --- inventory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemListing:
    inventory_item_id: int
    prize_id: int
    name: str
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
    PURCHASE = "purchase"  # a debit: atomic open or prepay
    OPEN = "open"  # a held box opened: no money moves
    REFUND = "refund"  # a held box returned: a credit
    CASHBACK = "cashback"  # an item cashed out: a credit


REASON_TYPES = {
    MovementReason.OPEN: HistoryType.PURCHASE,
    MovementReason.PREPAY: HistoryType.PURCHASE,
    MovementReason.REFUND: HistoryType.REFUND,
    MovementReason.CASHBACK: HistoryType.CASHBACK,
}


class HistorySource(IntEnum):
    """Where a history row comes from; also its tie-break at equal times."""

    OPENING = 0  # a prepaid round's opening (rounds)
    MOVEMENT = 1  # a wallet call (money_movements)


@dataclass(frozen=True)
class HistoryPosition:
    """The keyset order of history: newest first by time, then source, then row id."""

    occurred_at: datetime
    source: HistorySource
    row_id: int


@dataclass(frozen=True)
class HistoryEntry:
    position: HistoryPosition
    type: HistoryType
    status: str  # accepted | pending | refused for a wallet call; completed for an opening
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
    mode: str | None  # a purchase's mode: open | prepay
    refusal_code: str | None
    completed_at: datetime | None

    @property
    def entry_id(self) -> str:
        prefix = "mm" if self.position.source is HistorySource.MOVEMENT else "op"
        return f"{prefix}_{self.position.row_id}"

    def _signed(self, amount: int) -> int:
        return -amount if self.kind is MovementKind.DEBIT else amount

    @property
    def signed_amount_minor(self) -> int:
        """From the player's side: a debit is negative, a credit positive."""
        return self._signed(self.amount_minor)

    @property
    def signed_operator_amount_minor(self) -> int:
        return self._signed(self.operator_amount_minor)
