"""Keyset pages for the read endpoints: the inventory and the history.

Every query is one indexed range scan that stops after ``limit`` rows: the position after
which to continue is a ``WHERE (time, id) < (…)`` bound, never an ``OFFSET``, so page 1,000
costs what page 1 costs (see ``models``: ``ix_inventory_items_owner``,
``ix_money_movements_*_history``, ``ix_rounds_*_openings``).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, text, tuple_

from lootbox.domain.cashback import CashbackPolicy
from lootbox.domain.listings import (
    REASON_TYPES,
    HistoryEntry,
    HistoryPosition,
    HistorySource,
    HistoryType,
    ItemListing,
)
from lootbox.domain.records import MovementKind, MovementReason
from lootbox.domain.states import ItemState, PurchaseMode
from lootbox.persistence.models import (
    OPENED_PREPAID,
    BoxVersionRow,
    InventoryItemRow,
    MoneyMovementRow,
    OperatorRow,
    PrizeRow,
    RoundRow,
)
from lootbox.persistence.repositories import _Repository


class ListingRepository(_Repository):
    def inventory_page(
        self,
        operator_id: int,
        player_external_id: str,
        states: Collection[ItemState] | None,
        *,
        before_id: int | None,
        limit: int,
    ) -> list[ItemListing]:
        """A player's items, newest first; ``states=None`` means every state."""
        item = InventoryItemRow
        stmt = (
            select(item, RoundRow.public_id, PrizeRow, BoxVersionRow, OperatorRow)
            .join(RoundRow, RoundRow.id == item.round_id)
            .join(PrizeRow, PrizeRow.id == item.prize_id)
            .join(BoxVersionRow, BoxVersionRow.id == item.box_version_id)
            .join(OperatorRow, OperatorRow.id == item.operator_id)
            .where(item.operator_id == operator_id, item.player_external_id == player_external_id)
            .order_by(item.id.desc())
            .limit(limit)
        )
        if states is not None:
            stmt = stmt.where(item.state.in_([str(s) for s in states]))
        if before_id is not None:
            stmt = stmt.where(item.id < before_id)
        return [
            ItemListing(
                inventory_item_id=row.id,
                prize_id=row.prize_id,
                name=row.name,
                value_minor=row.value_minor,
                currency=operator.currency,
                state=ItemState(row.state),
                round_public_id=public_id,
                reel_index=row.reel_index,
                box_version_id=row.box_version_id,
                cashback=CashbackPolicy(
                    operator_enabled=operator.cashback_enabled,
                    operator_bps=operator.cashback_bps,
                    box_enabled=version.cashback_enabled,
                    box_bps=version.cashback_bps,
                    prize_bps=prize.cashback_bps,
                ),
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for row, public_id, prize, version, operator in self.session.execute(stmt)
        ]

    def movements_page(
        self,
        operator_id: int,
        player_external_id: str | None,
        reasons: Collection[MovementReason],
        *,
        since: datetime | None,
        until: datetime | None,
        after: HistoryPosition | None,
        limit: int,
    ) -> list[HistoryEntry]:
        """Wallet calls, newest first, recorded at or between ``since`` and ``until``."""
        m = MoneyMovementRow
        stmt = _window(
            select(m).where(m.reason.in_([str(r) for r in reasons])),
            m,
            m.created_at,
            operator_id,
            player_external_id,
            since,
            until,
            _keyset(m.created_at, m.id, HistorySource.MOVEMENT, after),
            limit,
        )
        return [_movement_entry(row) for row in self.session.scalars(stmt)]

    def openings_page(
        self,
        operator_id: int,
        player_external_id: str | None,
        *,
        since: datetime | None,
        until: datetime | None,
        after: HistoryPosition | None,
        limit: int,
    ) -> list[HistoryEntry]:
        """Prepaid rounds that were opened, newest first. ``settled`` is terminal, so a
        prepaid round's ``updated_at`` is the moment it was opened, for good."""
        r = RoundRow
        stmt = _window(
            # The partial index's own predicate, as literals: a bound parameter would not
            # let PostgreSQL's generic plan of a prepared statement prove the index usable.
            select(r).where(text(OPENED_PREPAID)),
            r,
            r.updated_at,
            operator_id,
            player_external_id,
            since,
            until,
            _keyset(r.updated_at, r.id, HistorySource.OPENING, after),
            limit,
        )
        return [_opening_entry(row) for row in self.session.scalars(stmt)]


def _window(
    stmt: Select[Any],
    table: Any,
    occurred_at: Any,
    operator_id: int,
    player_external_id: str | None,
    since: datetime | None,
    until: datetime | None,
    keyset: Any,
    limit: int,
) -> Select[Any]:
    stmt = stmt.where(table.operator_id == operator_id)
    if player_external_id is not None:
        stmt = stmt.where(table.player_external_id == player_external_id)
    if since is not None:
        stmt = stmt.where(occurred_at >= since)
    if until is not None:
        stmt = stmt.where(occurred_at <= until)
    if keyset is not None:
        stmt = stmt.where(keyset)
    return stmt.order_by(occurred_at.desc(), table.id.desc()).limit(limit)


def _keyset(
    occurred_at: Any, row_id: Any, source: HistorySource, after: HistoryPosition | None
) -> Any:
    """Rows of one source that come after ``after`` in the order (time, source, id),
    descending. At equal times movements come before openings."""
    if after is None:
        return None
    if after.source is source:
        return tuple_(occurred_at, row_id) < tuple_(after.occurred_at, after.row_id)
    if after.source > source:  # ``after`` is a movement; openings at its time come later
        return occurred_at <= after.occurred_at
    return occurred_at < after.occurred_at


def _movement_entry(row: MoneyMovementRow) -> HistoryEntry:
    reason = MovementReason(row.reason)
    return HistoryEntry(
        position=HistoryPosition(row.created_at, HistorySource.MOVEMENT, row.id),
        type=REASON_TYPES[reason],
        status=row.status,
        player_external_id=row.player_external_id,
        kind=MovementKind(row.kind),
        amount_minor=row.amount_minor,
        currency=row.currency,
        operator_amount_minor=row.operator_amount_minor,
        operator_currency=row.operator_currency,
        rate=row.rate,
        idempotency_key=row.idempotency_key,
        provider_txn_ref=row.provider_txn_ref,
        balance_after_minor=row.balance_after_minor,
        round_public_id=row.round_public_id,
        inventory_item_id=row.inventory_item_id,
        mode=(
            str(PurchaseMode.PREPAY if reason is MovementReason.PREPAY else PurchaseMode.OPEN)
            if REASON_TYPES[reason] is HistoryType.PURCHASE
            else None
        ),
        refusal_code=row.refusal_code,
        completed_at=row.completed_at,
    )


def _opening_entry(row: RoundRow) -> HistoryEntry:
    return HistoryEntry(
        position=HistoryPosition(row.updated_at, HistorySource.OPENING, row.id),
        type=HistoryType.OPEN,
        status="completed",
        player_external_id=row.player_external_id,
        kind=None,
        amount_minor=0,
        currency=row.currency,
        operator_amount_minor=0,
        operator_currency=None,
        rate=None,
        idempotency_key=None,
        provider_txn_ref=None,
        balance_after_minor=None,
        round_public_id=row.public_id,
        inventory_item_id=None,
        mode=str(PurchaseMode.PREPAY),
        refusal_code=None,
        completed_at=row.updated_at,
    )
