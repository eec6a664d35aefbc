"""Keyset pages for the read endpoints: the inventory and the history.

Every query is one indexed range scan that stops after ``limit`` rows: the position to
continue from is a ``WHERE (time, id) < (…)`` bound (``>`` read backwards), never an
``OFFSET``, so page 1,000 costs what page 1 costs (see ``models``:
``ix_inventory_items_owner``, ``ix_money_movements_*_history``, ``ix_rounds_*_openings``).
What a row needs from elsewhere (its round's status, the value its round drew) is joined
or summed by primary key or unique index in the same statement, never fetched per row.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Select, and_, case, cast, func, select, text, tuple_

from lootbox.domain.cashback import CashbackPolicy
from lootbox.domain.listings import (
    REASON_TYPES,
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
from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus
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

# The mode of the round a debit paid for; other calls have none.
_MODES = {
    MovementReason.OPEN: str(PurchaseMode.OPEN),
    MovementReason.PREPAY: str(PurchaseMode.PREPAY),
}


class ListingRepository(_Repository):
    def inventory_page(
        self,
        operator_id: int,
        player_external_id: str,
        states: Collection[ItemState] | None,
        *,
        older_than: int | None,
        newer_than: int | None,
        limit: int,
    ) -> list[ItemListing]:
        """A player's items newest first, or oldest first from ``newer_than``;
        ``states=None`` means every state."""
        item, operator = InventoryItemRow, OperatorRow
        stmt = (
            # The operator's columns the listing needs, not the row: it holds the wallet
            # secret, which would be decrypted for every item listed.
            select(
                item,
                RoundRow.public_id,
                PrizeRow,
                BoxVersionRow,
                operator.currency,
                operator.cashback_enabled,
                operator.cashback_bps,
            )
            .join(RoundRow, RoundRow.id == item.round_id)
            .join(PrizeRow, PrizeRow.id == item.prize_id)
            .join(BoxVersionRow, BoxVersionRow.id == item.box_version_id)
            .join(operator, operator.id == item.operator_id)
            .where(item.operator_id == operator_id, item.player_external_id == player_external_id)
            .order_by(item.id.asc() if newer_than is not None else item.id.desc())
            .limit(limit)
        )
        if states is not None:
            stmt = stmt.where(item.state.in_([str(s) for s in states]))
        if older_than is not None:
            stmt = stmt.where(item.id < older_than)
        if newer_than is not None:
            stmt = stmt.where(item.id > newer_than)
        return [
            ItemListing(
                inventory_item_id=row.id,
                prize_id=row.prize_id,
                name=row.name,
                type=PrizeType(prize.type),
                image_url=prize.image_url,
                shippable=prize.shippable,
                value_minor=row.value_minor,
                currency=currency,
                state=ItemState(row.state),
                round_public_id=public_id,
                reel_index=row.reel_index,
                box_version_id=row.box_version_id,
                cashback=CashbackPolicy(
                    operator_enabled=cashback_enabled,
                    operator_bps=cashback_bps,
                    box_enabled=version.cashback_enabled,
                    box_bps=version.cashback_bps,
                    prize_bps=prize.cashback_bps,
                ),
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for (
                row,
                public_id,
                prize,
                version,
                currency,
                cashback_enabled,
                cashback_bps,
            ) in self.session.execute(stmt)
        ]

    def movements_page(
        self,
        operator_id: int,
        player_external_id: str | None,
        reasons: Collection[MovementReason],
        *,
        since: datetime | None,
        until: datetime | None,
        older_than: HistoryPosition | None,
        newer_than: HistoryPosition | None,
        limit: int,
    ) -> list[HistoryEntry]:
        """Wallet calls recorded at or between ``since`` and ``until``, newest first (or
        oldest first from ``newer_than``), each with its round's status and, for an atomic
        open that was drawn, the value of its prizes."""
        m = MoneyMovementRow
        r = RoundRow
        won = case(
            (
                and_(m.reason == str(MovementReason.OPEN), r.status == str(RoundStatus.SETTLED)),
                _won_value(m.round_id),
            ),
            else_=None,
        )
        stmt = _window(
            select(m, r.status, won)
            .outerjoin(r, r.id == m.round_id)
            .where(m.reason.in_([str(reason) for reason in reasons])),
            m,
            m.created_at,
            operator_id,
            player_external_id,
            since,
            until,
            _keyset(m.created_at, m.id, HistorySource.MOVEMENT, older_than, newer_than),
            newer_than is not None,
            limit,
        )
        return [
            _movement_entry(row, round_status, won_value)
            for row, round_status, won_value in self.session.execute(stmt)
        ]

    def openings_page(
        self,
        operator_id: int,
        player_external_id: str | None,
        *,
        since: datetime | None,
        until: datetime | None,
        older_than: HistoryPosition | None,
        newer_than: HistoryPosition | None,
        limit: int,
    ) -> list[HistoryEntry]:
        """Prepaid rounds that were opened, newest first (or oldest first from
        ``newer_than``). ``settled`` is terminal, so a prepaid round's ``updated_at`` is
        the moment it was opened, for good."""
        r = RoundRow
        stmt = _window(
            # The partial index's own predicate, as literals: a bound parameter would not
            # let PostgreSQL's generic plan of a prepared statement prove the index usable.
            select(r, OperatorRow.currency, _won_value(r.id))
            .join(OperatorRow, OperatorRow.id == r.operator_id)
            .where(text(OPENED_PREPAID)),
            r,
            r.updated_at,
            operator_id,
            player_external_id,
            since,
            until,
            _keyset(r.updated_at, r.id, HistorySource.OPENING, older_than, newer_than),
            newer_than is not None,
            limit,
        )
        return [
            _opening_entry(row, operator_currency, won_value)
            for row, operator_currency, won_value in self.session.execute(stmt)
        ]


def _won_value(round_id: Any) -> Any:
    """The operator-currency value of the items a round drew (``uq_inventory_items_round_reel``
    leads with ``round_id``)."""
    item = InventoryItemRow
    # sum(bigint) is a numeric in PostgreSQL: cast back, so that money stays an int.
    total = cast(func.sum(item.value_minor), BigInteger)
    return select(total).where(item.round_id == round_id).scalar_subquery()


def _window(
    stmt: Select[Any],
    table: Any,
    occurred_at: Any,
    operator_id: int,
    player_external_id: str | None,
    since: datetime | None,
    until: datetime | None,
    keyset: Any,
    oldest_first: bool,
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
    if oldest_first:
        return stmt.order_by(occurred_at.asc(), table.id.asc()).limit(limit)
    return stmt.order_by(occurred_at.desc(), table.id.desc()).limit(limit)


def _keyset(
    occurred_at: Any,
    row_id: Any,
    source: HistorySource,
    older_than: HistoryPosition | None,
    newer_than: HistoryPosition | None,
) -> Any:
    """Rows of one source on one side of a position in the order (time, source, id). At
    equal times a movement is newer than an opening."""
    if older_than is not None:
        bound = older_than
        if bound.source is source:
            return tuple_(occurred_at, row_id) < tuple_(bound.occurred_at, bound.row_id)
        if bound.source > source:  # a movement: openings at its time are older
            return occurred_at <= bound.occurred_at
        return occurred_at < bound.occurred_at
    if newer_than is not None:
        bound = newer_than
        if bound.source is source:
            return tuple_(occurred_at, row_id) > tuple_(bound.occurred_at, bound.row_id)
        if bound.source < source:  # an opening: movements at its time are newer
            return occurred_at >= bound.occurred_at
        return occurred_at > bound.occurred_at
    return None


def _movement_entry(
    row: MoneyMovementRow, round_status: str | None, won_value: int | None
) -> HistoryEntry:
    reason = MovementReason(row.reason)
    type_ = REASON_TYPES[reason]
    return HistoryEntry(
        position=HistoryPosition(row.created_at, HistorySource.MOVEMENT, row.id),
        type=type_,
        status=movement_status(
            reason,
            MovementStatus(row.status),
            None if round_status is None else RoundStatus(round_status),
        ),
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
        mode=_MODES.get(reason),
        refusal_code=row.refusal_code,
        completed_at=row.completed_at,
        # The debit's own rate is the round's: both were fixed at purchase.
        winnings=None
        if won_value is None
        else Winnings(won_value, row.operator_currency, Decimal(row.rate)),
    )


def _opening_entry(row: RoundRow, operator_currency: str, won_value: int | None) -> HistoryEntry:
    return HistoryEntry(
        position=HistoryPosition(row.updated_at, HistorySource.OPENING, row.id),
        type=HistoryType.OPEN,
        status=HistoryStatus.SETTLED,
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
        winnings=None
        if won_value is None
        else Winnings(won_value, operator_currency, Decimal(row.rate)),
    )
