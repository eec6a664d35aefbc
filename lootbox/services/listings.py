"""Read use cases: a player's inventory and the money history, one keyset page at a time.

A page reads ``limit + 1`` rows from its cursor's position in the cursor's direction: the
extra row only says whether there is more that way. The other way is where the caller
came from, so a page reached with a cursor always offers a cursor back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
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
from lootbox.services.cursors import (
    Cursor,
    Direction,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)
from lootbox.services.fx import from_operator_currency

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

# The item states a caller lists by, and what each means internally: an item whose
# cashback is in flight still reads as ``unresolved`` (contract section 4).
ITEM_STATES: dict[str, tuple[ItemState, ...]] = {
    "unresolved": (ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING),
    "cashed_back": (ItemState.CASHED_BACK,),
    "ship_requested": (ItemState.SHIP_REQUESTED,),
    "fulfilled": (ItemState.FULFILLED,),
    "expired": (ItemState.EXPIRED,),
}
ALL_STATES = "all"  # our extension: every state
DEFAULT_STATES = ("unresolved",)

T = TypeVar("T")


@dataclass(frozen=True)
class PageCursors:
    next: str | None  # None: nothing older
    prev: str | None  # None: the first page, nothing newer


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursor: PageCursors


@dataclass(frozen=True)
class InventoryQuery:
    player_external_id: str
    states: Sequence[str] = ()  # as the caller named them; see ``listed_states``
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None


@dataclass(frozen=True)
class HistoryQuery:
    player_external_id: str | None = None  # None: every player of the operator
    types: Collection[HistoryType] = ()  # empty: every type
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # inclusive
    limit: int = DEFAULT_PAGE_SIZE
    cursor: str | None = None


def listed_states(names: Sequence[str]) -> tuple[str, ...] | None:
    """The states an inventory lists (sorted), or ``None`` for every state.

    Unknown names are ignored, as the LootBox documentation says; a list with no known
    name left (``state=`` or ``state=bogus``) lists the default, ``unresolved``, as if
    ``state`` had been omitted. ``all`` anywhere in the list means every state.
    """
    known = {name for name in names if name in ITEM_STATES or name == ALL_STATES}
    if ALL_STATES in known:
        return None
    return tuple(sorted(known)) if known else DEFAULT_STATES


def list_inventory(
    ctx: ServiceContext, operator_id: int, query: InventoryQuery
) -> Page[ItemListing]:
    """A player's items, newest first."""
    states = listed_states(query.states)
    filters = inventory_filters(query.player_external_id, states)
    cursor = None if query.cursor is None else decode_cursor(query.cursor, filters)
    bound = _bound(cursor, _inventory_position)
    internal = None if states is None else [s for name in states for s in ITEM_STATES[name]]
    with ctx.uow_factory() as uow:
        rows: list[ItemListing] = uow.listings.inventory_page(
            operator_id, query.player_external_id, internal, **bound, limit=query.limit + 1
        )
    return _page(rows, query.limit, cursor, filters, lambda item: [item.inventory_item_id])


def list_history(ctx: ServiceContext, operator_id: int, query: HistoryQuery) -> Page[HistoryEntry]:
    """The operator's money ledger (optionally one player's), newest first: every wallet
    call with its key, its status and the wallet's reference, and every opening of a
    prepaid box. Two indexed scans (wallet calls, openings) merged by position."""
    types = frozenset(query.types) or frozenset(HistoryType)
    filters = history_filters(query.player_external_id, types, query.since, query.until)
    cursor = None if query.cursor is None else decode_cursor(query.cursor, filters)
    reasons = [reason for reason, type_ in REASON_TYPES.items() if type_ in types]
    window: dict[str, Any] = {
        "since": query.since,
        "until": query.until,
        **_bound(cursor, _history_position),
        "limit": query.limit + 1,
    }
    entries: list[HistoryEntry] = []
    with ctx.uow_factory() as uow:
        if reasons:
            entries += uow.listings.movements_page(
                operator_id, query.player_external_id, reasons, **window
            )
        if HistoryType.OPEN in types:
            entries += uow.listings.openings_page(operator_id, query.player_external_id, **window)
    # Each scan is in reading order already; the merge keeps the ``limit + 1`` nearest.
    newer = cursor is not None and cursor.direction is Direction.PREV
    entries.sort(key=lambda entry: entry.position.key(), reverse=not newer)
    shown = [_with_payout(entry) for entry in entries[: query.limit + 1]]
    return _page(
        shown, query.limit, cursor, filters, lambda entry: _cursor_position(entry.position)
    )


def inventory_filters(player_external_id: str, states: Sequence[str] | None) -> dict[str, Any]:
    """What an inventory cursor is bound to (``lootbox.services.cursors``); ``states``
    as ``listed_states`` answers them, so that equivalent lists share their cursors."""
    return {
        "list": "inventory",
        "player": player_external_id,
        "states": ALL_STATES if states is None else sorted(states),
    }


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


def _with_payout(entry: HistoryEntry) -> HistoryEntry:
    """The prizes' value in the row's currency, converted the way the round's own answer
    converts it (``lootbox.services.rounds``)."""
    won = entry.winnings
    if won is None:
        return entry
    payout = from_operator_currency(
        won.value_minor, won.operator_currency, entry.currency, won.rate
    )
    return replace(entry, payout_minor=payout)


# --- keyset pages -----------------------------------------------------------------------------


def _bound(cursor: Cursor | None, position: Callable[[list[Any]], Any]) -> dict[str, Any]:
    """The repository's keyset bound: rows older than the cursor's position (``next``), or
    newer (``prev``, read oldest first). ``position`` reads the list's own keyset out of
    the cursor: 400 if it does not fit, before any query runs."""
    if cursor is None:
        return {"older_than": None, "newer_than": None}
    at = position(cursor.position)
    if cursor.direction is Direction.NEXT:
        return {"older_than": at, "newer_than": None}
    return {"older_than": None, "newer_than": at}


def _page(
    fetched: list[T],
    limit: int,
    came_with: Cursor | None,
    filters: dict[str, Any],
    position: Callable[[T], list[Any]],
) -> Page[T]:
    """``fetched``: up to ``limit + 1`` rows in reading order (oldest first when reading
    ``prev``); the page shows ``limit`` of them newest first."""
    more = len(fetched) > limit
    rows = fetched[:limit]
    backwards = came_with is not None and came_with.direction is Direction.PREV
    if backwards:
        rows.reverse()
    more_older = backwards or more
    more_newer = more if backwards else came_with is not None

    def cursor(direction: Direction, at: list[Any]) -> str:
        return encode_cursor(filters, Cursor(direction, at))

    if rows:
        return Page(
            rows,
            PageCursors(
                next=cursor(Direction.NEXT, position(rows[-1])) if more_older else None,
                prev=cursor(Direction.PREV, position(rows[0])) if more_newer else None,
            ),
        )
    if came_with is None:
        return Page(rows, PageCursors(None, None))
    # Nothing left on this side of the cursor (rows left the filter since it was issued):
    # the way back starts with the cursor's own row. Positions end with an integer row
    # id, so "including row n" is "beyond row n ± 1".
    *head, row_id = came_with.position
    if backwards:
        return Page(rows, PageCursors(next=cursor(Direction.NEXT, [*head, row_id + 1]), prev=None))
    return Page(rows, PageCursors(next=None, prev=cursor(Direction.PREV, [*head, row_id - 1])))


def _inventory_position(position: list[Any]) -> int:
    if len(position) != 1:
        raise invalid_cursor()
    return _int(position[0])


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
