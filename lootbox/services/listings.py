"""Read use cases: a player's inventory and the money history, one keyset page at a time."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from lootbox.domain.listings import (
    REASON_TYPES,
    HistoryEntry,
    HistoryPosition,
    HistorySource,
    HistoryType,
    ItemListing,
)
from lootbox.domain.states import ItemState
from lootbox.services.context import ServiceContext
from lootbox.services.cursors import decode_cursor, encode_cursor, invalid_cursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

# What a caller's ``state`` filter means internally: an item whose cashback is in flight
# still reads as ``unresolved`` (contract section 4), so it is listed as one.
INVENTORY_STATES: dict[str, tuple[ItemState, ...] | None] = {
    "unresolved": (ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING),
    "cashed_back": (ItemState.CASHED_BACK,),
    "ship_requested": (ItemState.SHIP_REQUESTED,),
    "fulfilled": (ItemState.FULFILLED,),
    "expired": (ItemState.EXPIRED,),
    "all": None,
}

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    next_cursor: str | None  # None: this was the last page


@dataclass(frozen=True)
class InventoryQuery:
    operator_id: int
    player_external_id: str
    state: str = "unresolved"  # a key of INVENTORY_STATES
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None


@dataclass(frozen=True)
class HistoryQuery:
    operator_id: int
    player_external_id: str | None = None  # None: every player of the operator
    types: Collection[HistoryType] = ()  # empty: every type
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # inclusive
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None


def list_inventory(ctx: ServiceContext, query: InventoryQuery) -> Page[ItemListing]:
    """A player's items, newest first."""
    filters = inventory_filters(query.player_external_id, query.state)
    before_id = None
    if query.cursor is not None:
        position = decode_cursor(query.cursor, filters)
        before_id = _int(position[0] if len(position) == 1 else None)
    with ctx.uow_factory() as uow:
        rows: list[ItemListing] = uow.listings.inventory_page(
            query.operator_id,
            query.player_external_id,
            INVENTORY_STATES[query.state],
            before_id=before_id,
            limit=query.limit + 1,
        )
    return _page(rows, query.limit, filters, lambda item: [item.inventory_item_id])


def list_history(ctx: ServiceContext, query: HistoryQuery) -> Page[HistoryEntry]:
    """The operator's money ledger (optionally one player's), newest first: every wallet
    call with its key, its status and the wallet's reference, and every opening of a
    prepaid box. Two indexed scans (wallet calls, openings) merged by position."""
    types = frozenset(query.types) or frozenset(HistoryType)
    filters = history_filters(query.player_external_id, types, query.since, query.until)
    after = _history_position(decode_cursor(query.cursor, filters)) if query.cursor else None
    reasons = [reason for reason, type_ in REASON_TYPES.items() if type_ in types]
    window: dict[str, Any] = {
        "since": query.since,
        "until": query.until,
        "after": after,
        "limit": query.limit + 1,
    }
    entries: list[HistoryEntry] = []
    with ctx.uow_factory() as uow:
        if reasons:
            entries += uow.listings.movements_page(
                query.operator_id, query.player_external_id, reasons, **window
            )
        if HistoryType.OPEN in types:
            entries += uow.listings.openings_page(
                query.operator_id, query.player_external_id, **window
            )
    entries.sort(key=lambda entry: _sort_key(entry.position), reverse=True)
    return _page(entries, query.limit, filters, lambda entry: _cursor_position(entry.position))


def inventory_filters(player_external_id: str, state: str) -> dict[str, Any]:
    """What an inventory cursor is bound to (``lootbox.services.cursors``)."""
    return {"list": "inventory", "player": player_external_id, "state": state}


def history_filters(
    player_external_id: str | None,
    types: Collection[HistoryType],
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    """What a history cursor is bound to; ``types`` after defaults (empty means all)."""
    return {
        "list": "history",
        "player": player_external_id,
        "types": sorted(types),
        "from": since.isoformat() if since else None,
        "to": until.isoformat() if until else None,
    }


def _page(rows: list[T], limit: int, filters: dict[str, Any], position: Any) -> Page[T]:
    """``rows`` holds up to ``limit + 1``: the extra one only says another page exists."""
    if len(rows) <= limit:
        return Page(rows, None)
    shown = rows[:limit]
    return Page(shown, encode_cursor(filters, position(shown[-1])))


def _sort_key(position: HistoryPosition) -> tuple[datetime, int, int]:
    return (position.occurred_at, int(position.source), position.row_id)


def _cursor_position(position: HistoryPosition) -> list[Any]:
    return [position.occurred_at.isoformat(), int(position.source), position.row_id]


def _history_position(position: list[Any]) -> HistoryPosition:
    if len(position) != 3 or not isinstance(position[0], str):
        raise invalid_cursor()
    try:
        occurred_at = datetime.fromisoformat(position[0])
        source = HistorySource(_int(position[1]))
    except ValueError:
        raise invalid_cursor() from None
    if occurred_at.tzinfo is None:
        raise invalid_cursor()
    return HistoryPosition(occurred_at, source, _int(position[2]))


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise invalid_cursor()
    return value
