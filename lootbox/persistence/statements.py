"""The statements every money request runs, built once.

A repository method that builds an ORM statement per call pays for it on every request:
constructing the expression, generating its cache key, and the ORM's bulk-update
bookkeeping cost about two thirds of a statement's CPU on the cashout path, more than
psycopg's own work (docs/benchmarks.md, "What each change bought"). These are Core
statements over the mapped tables with named parameters: built at import, their cache
keys are computed once, and they run on the session's connection without the ORM layer.
They return plain rows whose attributes carry the column names, which is what the
``_item``/``_movement``/``_record`` mappers read.

Anything off the hot path stays ORM, where it reads better.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam, delete, select, text, update
from sqlalchemy.dialects import postgresql

from lootbox.domain.records import MovementReason, MovementStatus
from lootbox.persistence.models import (
    BoxRow,
    BoxVersionRow,
    IdempotencyRecordRow,
    InventoryItemRow,
    MoneyMovementRow,
    PrizeRow,
    ReelRow,
    RoundRow,
)

ITEMS: Table = InventoryItemRow.__table__  # type: ignore[assignment]
MOVEMENTS: Table = MoneyMovementRow.__table__  # type: ignore[assignment]
IDEMPOTENCY: Table = IdempotencyRecordRow.__table__  # type: ignore[assignment]
BOXES: Table = BoxRow.__table__  # type: ignore[assignment]
BOX_VERSIONS: Table = BoxVersionRow.__table__  # type: ignore[assignment]
PRIZES: Table = PrizeRow.__table__  # type: ignore[assignment]
ROUNDS: Table = RoundRow.__table__  # type: ignore[assignment]
REELS: Table = ReelRow.__table__  # type: ignore[assignment]

PENDING = str(MovementStatus.PENDING)
ACCEPTED = str(MovementStatus.ACCEPTED)

# --- inventory items ----------------------------------------------------------------------

_ITEM = select(ITEMS).where(
    ITEMS.c.id == bindparam("item_id"), ITEMS.c.operator_id == bindparam("operator_id")
)
ITEM = _ITEM
ITEM_FOR_UPDATE = _ITEM.with_for_update()

ITEM_TRANSITION = (
    update(ITEMS)
    .where(ITEMS.c.id == bindparam("item_id"), ITEMS.c.state == bindparam("from_state"))
    .values(state=bindparam("to_state"), updated_at=bindparam("now"))
)

# --- rounds (a cancel or an open finds, locks and moves one) -----------------------------

ROUND_BY_ID = select(ROUNDS).where(ROUNDS.c.id == bindparam("round_id"))
ROUND = select(ROUNDS).where(
    ROUNDS.c.operator_id == bindparam("operator_id"),
    ROUNDS.c.public_id == bindparam("public_id"),
)
ROUND_FOR_UPDATE = ROUND.with_for_update()
REELS_OF_ROUND = (
    select(REELS).where(REELS.c.round_id == bindparam("round_id")).order_by(REELS.c.reel_index)
)
# No SET clause of its own: SQLAlchemy sets the columns named by the parameters (the new
# status, updated_at, and whatever else a move writes, such as the open's key).
ROUND_TRANSITION = update(ROUNDS).where(
    ROUNDS.c.id == bindparam("round_id"), ROUNDS.c.status == bindparam("from_status")
)

# --- the catalog (a cashout prices its item, a cancel checks its boxes) -------------------

BOX_VERSION = (
    select(BOX_VERSIONS, BOXES.c.slug.label("box_slug"))
    .join(BOXES, BOXES.c.id == BOX_VERSIONS.c.box_id)
    .where(
        BOX_VERSIONS.c.id == bindparam("version_id"),
        BOXES.c.operator_id == bindparam("operator_id"),
    )
)
PRIZES_OF_VERSION = (
    select(PRIZES)
    .where(PRIZES.c.box_version_id == bindparam("version_id"))
    .order_by(PRIZES.c.position)
)

# --- the ledger ---------------------------------------------------------------------------

# The live credit of an item or a round: the predicate of the partial unique index that
# guarantees there is at most one (models.py), written as literal SQL. As bound
# parameters, PostgreSQL's generic plan of the prepared statement (psycopg prepares a
# statement run five times) could not prove the index usable, and with a large ledger
# would scan by status instead.
LIVE_CASHBACK = select(MOVEMENTS).where(
    MOVEMENTS.c.inventory_item_id == bindparam("subject_id"),
    text(f"reason = '{MovementReason.CASHBACK}' AND status IN ('{PENDING}', '{ACCEPTED}')"),
)
LIVE_REFUND = select(MOVEMENTS).where(
    MOVEMENTS.c.round_id == bindparam("subject_id"),
    text(f"reason = '{MovementReason.REFUND}' AND status IN ('{PENDING}', '{ACCEPTED}')"),
)


def _fenced_update(**values: Any) -> Any:
    """Settle a pending movement only under the caller's fencing token: a late finisher
    whose lease was taken over changes nothing."""
    return (
        update(MOVEMENTS)
        .where(
            MOVEMENTS.c.id == bindparam("movement_id"),
            MOVEMENTS.c.status == PENDING,
            MOVEMENTS.c.lease_token == bindparam("token"),
        )
        .values(updated_at=bindparam("now"), **values)
    )


def _final(status: MovementStatus, **values: Any) -> Any:
    """The wallet's definite answer: the movement is done and holds no lease."""
    return _fenced_update(
        status=str(status), completed_at=bindparam("now"), lease_expires_at=None, **values
    )


MOVEMENT_ACCEPTED = _final(
    MovementStatus.ACCEPTED,
    balance_after_minor=bindparam("balance_after"),
    provider_txn_ref=bindparam("txn_ref"),
)
MOVEMENT_REFUSED = _final(
    MovementStatus.REFUSED, refusal_code=bindparam("code"), refusal_message=bindparam("message")
)
MOVEMENT_RELEASED = _fenced_update(lease_expires_at=bindparam("now"), last_error=bindparam("error"))

# --- the durable idempotency records --------------------------------------------------------

# The record is still in progress under the caller's lease (fencing token): a writer whose
# lease was taken over (its worker stalled past it) changes nothing.
_HELD = (
    IDEMPOTENCY.c.operator_id == bindparam("of_operator"),
    IDEMPOTENCY.c.idempotency_key == bindparam("key"),
    IDEMPOTENCY.c.state == "in_progress",
    IDEMPOTENCY.c.lease_token == bindparam("token"),
)
IDEMPOTENCY_COMPLETE = (
    update(IDEMPOTENCY)
    .where(*_HELD)
    .values(
        state="completed",
        status_code=bindparam("status"),
        response_body=bindparam("body"),
        completed_at=bindparam("now"),
        expires_at=bindparam("expires"),
    )
)
IDEMPOTENCY_SUSPEND = update(IDEMPOTENCY).where(*_HELD).values(lease_expires_at=bindparam("now"))
IDEMPOTENCY_RELEASE = delete(IDEMPOTENCY).where(*_HELD)

# --- inserts that yield to a conflict -------------------------------------------------------


def _insert_or_nothing(table: Table, *returning: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING …``; the values are the parameters it
    runs with (their names are the columns)."""
    return postgresql.insert(table).on_conflict_do_nothing().returning(*returning)


# The whole row: the movement is what the database wrote, not a copy built beside it.
NEW_MOVEMENT = _insert_or_nothing(MOVEMENTS, *MOVEMENTS.c)
NEW_IDEMPOTENCY_RECORD = _insert_or_nothing(IDEMPOTENCY, IDEMPOTENCY.c.id)
