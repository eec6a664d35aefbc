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

from sqlalchemy import Table, bindparam, delete, func, select, text, update
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
    SeedPairRow,
)

ITEMS: Table = InventoryItemRow.__table__  # type: ignore[assignment]
MOVEMENTS: Table = MoneyMovementRow.__table__  # type: ignore[assignment]
IDEMPOTENCY: Table = IdempotencyRecordRow.__table__  # type: ignore[assignment]
BOXES: Table = BoxRow.__table__  # type: ignore[assignment]
BOX_VERSIONS: Table = BoxVersionRow.__table__  # type: ignore[assignment]
PRIZES: Table = PrizeRow.__table__  # type: ignore[assignment]
ROUNDS: Table = RoundRow.__table__  # type: ignore[assignment]
REELS: Table = ReelRow.__table__  # type: ignore[assignment]
SEED_PAIRS: Table = SeedPairRow.__table__  # type: ignore[assignment]

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

# The live refund of a round: the predicate of the partial unique index that guarantees
# there is at most one (models.py), written as literal SQL. As bound
# parameters, PostgreSQL's generic plan of the prepared statement (psycopg prepares a
# statement run five times) could not prove the index usable, and with a large ledger
# would scan by status instead.
LIVE_REFUND = select(MOVEMENTS).where(
    MOVEMENTS.c.round_id == bindparam("subject_id"),
    text(f"reason = '{MovementReason.REFUND}' AND status IN ('{PENDING}', '{ACCEPTED}')"),
)


# --- what a credit decides on, read with the subject's lock (one round trip) --------------
#
# The lock order of every money transaction is idempotency row, then subject (item or
# round), then movement: the claim comes first, this read locks the subject (``FOR UPDATE
# OF`` the subject only), and the movement is written or leased after it.


LIVE = MOVEMENTS.alias("live")


def _live_credit(subject_column: Any, reason: MovementReason) -> Any:
    """Join the subject's live credit (the partial unique index allows one), as literal
    SQL for the same reason as ``LIVE_REFUND``."""
    return (
        subject_column == LIVE.c.inventory_item_id
        if reason is MovementReason.CASHBACK
        else subject_column == LIVE.c.round_id
    ) & text(f"live.reason = '{reason}' AND live.status IN ('{PENDING}', '{ACCEPTED}')")


_LIVE_COLUMNS = tuple(c.label(f"live_{c.name}") for c in LIVE.c)

ITEM_FOR_CASHOUT = (
    select(
        ITEMS,
        BOX_VERSIONS.c.cashback_enabled.label("box_cashback_enabled"),
        BOX_VERSIONS.c.cashback_bps.label("box_cashback_bps"),
        PRIZES.c.cashback_bps.label("prize_cashback_bps"),
        *_LIVE_COLUMNS,
    )
    .join(BOX_VERSIONS, BOX_VERSIONS.c.id == ITEMS.c.box_version_id)
    .outerjoin(PRIZES, PRIZES.c.id == ITEMS.c.prize_id)
    .outerjoin(LIVE, _live_credit(ITEMS.c.id, MovementReason.CASHBACK))
    .where(ITEMS.c.id == bindparam("item_id"), ITEMS.c.operator_id == bindparam("operator_id"))
    .with_for_update(of=ITEMS)
)

_ALL_BOXES_REFUNDABLE = (
    select(func.bool_and(BOX_VERSIONS.c.refundable))
    .select_from(REELS.join(BOX_VERSIONS, BOX_VERSIONS.c.id == REELS.c.box_version_id))
    .where(REELS.c.round_id == ROUNDS.c.id)
    .scalar_subquery()
)
ROUND_FOR_CANCEL = (
    select(
        ROUNDS,
        _ALL_BOXES_REFUNDABLE.label("all_boxes_refundable"),
        *_LIVE_COLUMNS,
    )
    .outerjoin(LIVE, _live_credit(ROUNDS.c.id, MovementReason.REFUND))
    .where(
        ROUNDS.c.operator_id == bindparam("operator_id"),
        ROUNDS.c.public_id == bindparam("public_id"),
    )
    .with_for_update(of=ROUNDS)
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

# Completed and past its expiry: what the purge deletes (services/retention.py). An
# in-progress record (a request running, or suspended after a 503 because money may have
# moved) has no expiry and is never matched. The state is literal SQL, the predicate of the
# partial index ix_idempotency_records_expired: as a bound parameter, the generic plan of a
# prepared statement (DATABASE_PREPARED_STATEMENTS=on) could not use the index.
_EXPIRED = (
    text("idempotency_records.state = 'completed'"),
    IDEMPOTENCY.c.expires_at < bindparam("now"),
)
# At most ``limit`` rows, oldest first; FOR UPDATE SKIP LOCKED lets two purgers (two
# workers, or the worker and on-call's command) take different rows instead of queueing.
DELETE_EXPIRED_BATCH = delete(IDEMPOTENCY).where(
    IDEMPOTENCY.c.id.in_(
        select(IDEMPOTENCY.c.id)
        .where(*_EXPIRED)
        .order_by(IDEMPOTENCY.c.expires_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
)
COUNT_EXPIRED = select(func.count()).select_from(IDEMPOTENCY).where(*_EXPIRED)

# --- inserts that yield to a conflict -------------------------------------------------------


def _insert_or_nothing(table: Table, *returning: Any) -> Any:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING …``; the values are the parameters it
    runs with (their names are the columns)."""
    return postgresql.insert(table).on_conflict_do_nothing().returning(*returning)


# The whole row: the movement is what the database wrote, not a copy built beside it.
NEW_MOVEMENT = _insert_or_nothing(MOVEMENTS, *MOVEMENTS.c)
NEW_IDEMPOTENCY_RECORD = _insert_or_nothing(IDEMPOTENCY, IDEMPOTENCY.c.id)

# --- a credit and its subject move together (one round trip each way) -----------------------
#
# A cashout's item or a refund's round changes state exactly when its credit is written and
# when the credit is settled. Each pair is one statement: the movement's write is a
# data-modifying CTE and the subject's conditional UPDATE joins it, so the subject moves
# only for the movement this caller wrote or settled (the fencing token still decides).

_NEW_MOVEMENT_COLUMNS = (
    "operator_id", "idempotency_key", "kind", "reason", "status", "player_external_id",
    "amount_minor", "currency", "operator_amount_minor", "operator_currency", "rate",
    "round_id", "round_public_id", "inventory_item_id", "lease_token", "lease_expires_at",
    "attempts", "created_at", "updated_at",
)  # fmt: skip


def _subject(table: Table) -> tuple[Any, Any, str]:
    """(the subject's table, the movement column naming it, its state column)."""
    if table is ITEMS:
        return ITEMS, MOVEMENTS.c.inventory_item_id, "state"
    return ROUNDS, MOVEMENTS.c.round_id, "status"


def _record_and_move(table: Table) -> Any:
    """Write the pending, leased movement (``NEW_MOVEMENT``'s parameters, prefixed
    ``new_``: a column's own name is reserved in an INSERT's values) and move its
    subject ``from_state`` → ``to_state``; the row written, or none when the key or the
    subject's live credit was already taken (nothing moves then)."""
    subject, names_subject, state = _subject(table)
    recorded = (
        postgresql.insert(MOVEMENTS)
        .values({name: bindparam(f"new_{name}") for name in _NEW_MOVEMENT_COLUMNS})
        .on_conflict_do_nothing()
        .returning(*MOVEMENTS.c)
        .cte("recorded")
    )
    return (
        update(subject)
        .where(
            subject.c.id == recorded.c[names_subject.name],
            subject.c[state] == bindparam("from_state"),
        )
        .values({state: bindparam("to_state"), "updated_at": bindparam("now")})
        .returning(*recorded.c)
    )


def _settle_and_move(settle: Any, table: Table) -> Any:
    """Settle the movement (a fenced ``_final`` update) and move its subject ``from_state``
    → ``to_state``: one row, ``settled`` and ``moved`` counting what changed."""
    subject, names_subject, state = _subject(table)
    settled = settle.returning(names_subject.label("subject_id")).cte("settled")
    moved = (
        update(subject)
        .where(subject.c.id == settled.c.subject_id, subject.c[state] == bindparam("from_state"))
        .values({state: bindparam("to_state"), "updated_at": bindparam("now")})
        .returning(subject.c.id)
        .cte("moved")
    )
    return select(
        select(func.count()).select_from(settled).scalar_subquery().label("settled"),
        select(func.count()).select_from(moved).scalar_subquery().label("moved"),
    )


RECORD_CASHBACK = _record_and_move(ITEMS)
RECORD_REFUND = _record_and_move(ROUNDS)
SETTLE_CASHBACK = {
    "accepted": _settle_and_move(MOVEMENT_ACCEPTED, ITEMS),
    "refused": _settle_and_move(MOVEMENT_REFUSED, ITEMS),
}
SETTLE_REFUND = {
    "accepted": _settle_and_move(MOVEMENT_ACCEPTED, ROUNDS),
    "refused": _settle_and_move(MOVEMENT_REFUSED, ROUNDS),
}


# --- provably fair draws ----------------------------------------------------------------------

# The current pair's next nonce, taken and recorded on the round in one statement: the
# pair's row lock queues concurrent draws and a rotation, so a nonce is never taken twice
# and a round never mixes two pairs.
_NONCE_TAKEN = (
    update(SEED_PAIRS)
    .where(
        SEED_PAIRS.c.operator_id == bindparam("owner_id"),
        SEED_PAIRS.c.player_external_id == bindparam("player"),
        SEED_PAIRS.c.state == "current",
    )
    .values(next_nonce=SEED_PAIRS.c.next_nonce + 1)
    .returning(
        SEED_PAIRS.c.id,
        SEED_PAIRS.c.operator_id,
        SEED_PAIRS.c.player_external_id,
        SEED_PAIRS.c.server_seed,
        SEED_PAIRS.c.server_seed_hash,
        SEED_PAIRS.c.client_seed,
        (SEED_PAIRS.c.next_nonce - 1).label("nonce"),
    )
    .cte("taken")
)
DRAW_WITH_CURRENT_PAIR = (
    update(ROUNDS)
    .where(
        ROUNDS.c.id == bindparam("round_id"),
        # The round is the pair's player's: a join condition, and a check.
        ROUNDS.c.operator_id == _NONCE_TAKEN.c.operator_id,
        ROUNDS.c.player_external_id == _NONCE_TAKEN.c.player_external_id,
    )
    .values(seed_pair_id=_NONCE_TAKEN.c.id, nonce=_NONCE_TAKEN.c.nonce)
    .returning(*_NONCE_TAKEN.c)
)
# A player's next pair (parameters prefixed ``new_``, as in ``_record_and_move``); a
# concurrent first draw may have added it already.
ADD_CURRENT_SEED_PAIR = (
    postgresql.insert(SEED_PAIRS)
    .values(
        {
            name: bindparam(f"new_{name}")
            for name in (
                "operator_id",
                "player_external_id",
                "server_seed",
                "server_seed_hash",
                "client_seed",
                "next_nonce",
                "state",
                "created_at",
            )
        }
    )
    .on_conflict_do_nothing(
        index_elements=["operator_id", "player_external_id"],
        index_where=SEED_PAIRS.c.state == "current",
    )
)
