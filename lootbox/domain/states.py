"""Round and inventory item states, and what callers see of them.

Internal ``*_pending`` states mark a money operation whose wallet outcome is not yet
known. They exist so that the database, not a Python ``if``, stops a second transition
(opening a box whose refund is in flight, say). Callers see the state before the
operation: the round stays ``held``, the item stays ``unresolved``.
"""

from __future__ import annotations

from enum import StrEnum


class RoundStatus(StrEnum):
    DEBIT_PENDING = "debit_pending"  # internal: debit sent, outcome unknown
    HELD = "held"
    REFUND_PENDING = "refund_pending"  # internal: refund credit sent, outcome unknown
    SETTLED = "settled"
    REFUNDED = "refunded"
    VOIDED = "voided"


class ItemState(StrEnum):
    UNRESOLVED = "unresolved"
    CASHBACK_PENDING = "cashback_pending"  # internal: cashback credit sent, outcome unknown
    CASHED_BACK = "cashed_back"
    SHIP_REQUESTED = "ship_requested"
    FULFILLED = "fulfilled"
    EXPIRED = "expired"


class PurchaseMode(StrEnum):
    OPEN = "open"
    PREPAY = "prepay"


_EXTERNAL_ROUND = {
    RoundStatus.REFUND_PENDING: RoundStatus.HELD,
    # A purchase whose debit is unresolved has no public round yet; the caller was told
    # WALLET_UNAVAILABLE. Should it surface anyway (a later read), it is not yet held.
    RoundStatus.DEBIT_PENDING: RoundStatus.DEBIT_PENDING,
}


def external_round_status(status: RoundStatus | str) -> str:
    status = RoundStatus(status)
    return str(_EXTERNAL_ROUND.get(status, status))


def external_item_state(state: ItemState | str) -> str:
    state = ItemState(state)
    return str(ItemState.UNRESOLVED if state is ItemState.CASHBACK_PENDING else state)
