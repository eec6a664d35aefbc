"""Typed results: frozen dataclasses built from the service's JSON.

Every result of a call keeps the whole decoded answer in ``raw`` (fields this SDK version
does not know yet included), the answer's ``X-Request-Id`` in ``request_id`` and, for the
money calls, ``replayed``: ``True`` when the service answered a retry with the stored
answer of an earlier attempt (``Idempotent-Replayed: true``), so nothing moved this time.

Money is always ``int`` minor units with its ISO 4217 ``currency``; FX rates are
``Decimal``; times are timezone-aware UTC ``datetime``. Never a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class ShapeError(ValueError):
    """An answer that does not have the contract's shape."""


# --- reading JSON strictly ----------------------------------------------------------------


def _maybe(doc: Mapping[str, Any], name: str) -> Any:
    """The value of an optional field (``None`` when absent or null)."""
    if not isinstance(doc, Mapping):
        raise ShapeError(f"expected an object holding {name!r}, got {type(doc).__name__}")
    return doc.get(name)


def _get(doc: Mapping[str, Any], name: str) -> Any:
    value = _maybe(doc, name)
    if name not in doc:
        raise ShapeError(f"{name!r} is missing")
    return value


def _int(doc: Mapping[str, Any], name: str) -> int:
    value = _get(doc, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"{name!r} must be an integer, got {value!r}")
    return value


def _opt_int(doc: Mapping[str, Any], name: str) -> int | None:
    return None if _maybe(doc, name) is None else _int(doc, name)


def _str(doc: Mapping[str, Any], name: str) -> str:
    value = _get(doc, name)
    if not isinstance(value, str):
        raise ShapeError(f"{name!r} must be a string, got {value!r}")
    return value


def _opt_str(doc: Mapping[str, Any], name: str) -> str | None:
    return None if _maybe(doc, name) is None else _str(doc, name)


def _time(doc: Mapping[str, Any], name: str) -> datetime:
    text = _str(doc, name)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ShapeError(f"{name!r} is not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        raise ShapeError(f"{name!r} has no time zone: {text!r}")
    return value


def _opt_time(doc: Mapping[str, Any], name: str) -> datetime | None:
    return None if _maybe(doc, name) is None else _time(doc, name)


def _opt_decimal(doc: Mapping[str, Any], name: str) -> Decimal | None:
    value = _maybe(doc, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ShapeError(f"{name!r} must be a decimal string, got {value!r}")
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ShapeError(f"{name!r} is not a decimal: {value!r}") from exc


def _list(doc: Mapping[str, Any], name: str) -> list[Any]:
    value = _get(doc, name)
    if not isinstance(value, list):
        raise ShapeError(f"{name!r} must be a list")
    return value


def _object(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = _get(doc, name)
    if not isinstance(value, Mapping):
        raise ShapeError(f"{name!r} must be an object")
    return value


# --- requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReelPick:
    """One reel of a purchase: which box version is played on reel ``reel_index``."""

    # The same two fields as lootbox.services.purchase.ReelPick, written again because the
    # SDK must stay vendorable (it imports nothing of the service).

    reel_index: int
    box_version_id: int


# --- cashout and cancel ----------------------------------------------------------------------


@dataclass(frozen=True)
class CashoutResult:
    """``POST /cashout``: the item is ``cashed_back``; ``cashback_minor`` of ``currency``
    was credited. ``balance_after_minor`` is the wallet's figure (``None`` if it gave none).
    """

    inventory_item_id: int
    state: str
    cashback_minor: int
    currency: str
    balance_after_minor: int | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)
    replayed: bool = field(default=False, compare=False)

    @classmethod
    def from_json(
        cls, doc: Mapping[str, Any], request_id: str | None = None, replayed: bool = False
    ) -> CashoutResult:
        item = _object(doc, "item")
        return cls(
            inventory_item_id=_int(item, "inventoryItemId"),
            state=_str(item, "state"),
            cashback_minor=_int(item, "cashbackMinor"),
            currency=_str(item, "currency"),
            balance_after_minor=_opt_int(doc, "balanceAfterMinor"),
            raw=doc,
            request_id=request_id,
            replayed=replayed,
        )


@dataclass(frozen=True)
class CancelResult:
    """``POST /cancel``: the round is ``refunded``; ``refunded_minor`` of ``currency``
    (the purchase's own amount and currency) was credited back."""

    round_public_id: str
    status: str
    refunded_minor: int
    currency: str
    balance_after_minor: int | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)
    replayed: bool = field(default=False, compare=False)

    @classmethod
    def from_json(
        cls, doc: Mapping[str, Any], request_id: str | None = None, replayed: bool = False
    ) -> CancelResult:
        round_ = _object(doc, "round")
        return cls(
            round_public_id=_str(round_, "publicId"),
            status=_str(round_, "status"),
            refunded_minor=_int(round_, "refundedMinor"),
            currency=_str(round_, "currency"),
            balance_after_minor=_opt_int(doc, "balanceAfterMinor"),
            raw=doc,
            request_id=request_id,
            replayed=replayed,
        )


# --- purchase and open -------------------------------------------------------------------------


@dataclass(frozen=True)
class Prize:
    item_id: int
    name: str
    value_minor: int
    currency: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Prize:
        return cls(
            item_id=_int(doc, "itemId"),
            name=_str(doc, "name"),
            value_minor=_int(doc, "valueMinor"),
            currency=_str(doc, "currency"),
        )


@dataclass(frozen=True)
class Reel:
    reel_index: int
    box_version_id: int
    price_minor: int
    prize: Prize | None  # None while the round is held (not drawn yet)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Reel:
        prize = _maybe(doc, "prize")
        return cls(
            reel_index=_int(doc, "reelIndex"),
            box_version_id=_int(doc, "boxVersionId"),
            price_minor=_int(doc, "priceMinor"),
            prize=None if prize is None else Prize.from_json(prize),
        )


@dataclass(frozen=True)
class Round:
    """A round: ``held`` (pre-paid, unopened), ``settled``, ``refunded`` or ``voided``."""

    public_id: str
    status: str
    mode: str
    bet_minor: int
    payout_minor: int | None
    currency: str
    created_at: datetime
    reels: tuple[Reel, ...]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Round:
        return cls(
            public_id=_str(doc, "publicId"),
            status=_str(doc, "status"),
            mode=_str(doc, "mode"),
            bet_minor=_int(doc, "betMinor"),
            payout_minor=_opt_int(doc, "payoutMinor"),
            currency=_str(doc, "currency"),
            created_at=_time(doc, "createdAt"),
            reels=tuple(Reel.from_json(reel) for reel in _list(doc, "reels")),
        )


@dataclass(frozen=True)
class WonItem:
    """An inventory item a draw produced (``unresolved``: cash it out, or keep it)."""

    inventory_item_id: int
    item_id: int
    reel_index: int
    name: str
    value_minor: int
    currency: str
    cashback_minor: int | None  # what a cashout would credit now, in operator currency
    state: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> WonItem:
        return cls(
            inventory_item_id=_int(doc, "inventoryItemId"),
            item_id=_int(doc, "itemId"),
            reel_index=_int(doc, "reelIndex"),
            name=_str(doc, "name"),
            value_minor=_int(doc, "valueMinor"),
            currency=_str(doc, "currency"),
            cashback_minor=_opt_int(doc, "cashbackMinor"),
            state=_str(doc, "state"),
        )


@dataclass(frozen=True)
class RoundResult:
    """``POST /purchase`` and ``POST /open``: the round and the items it produced."""

    round: Round
    won_items: tuple[WonItem, ...]
    balance_after_minor: int | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)
    replayed: bool = field(default=False, compare=False)

    @classmethod
    def from_json(
        cls, doc: Mapping[str, Any], request_id: str | None = None, replayed: bool = False
    ) -> RoundResult:
        return cls(
            round=Round.from_json(_object(doc, "round")),
            won_items=tuple(WonItem.from_json(item) for item in _list(doc, "wonItems")),
            balance_after_minor=_opt_int(doc, "balanceAfterMinor"),
            raw=doc,
            request_id=request_id,
            replayed=replayed,
        )


# --- health --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """``GET /health``: the key, the secret and the clock are right."""

    status: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> Health:
        return cls(status=_str(doc, "status"), raw=doc, request_id=request_id)


# --- inventory -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryItem:
    """One of a player's items (``GET /inventory``)."""

    inventory_item_id: int
    item_id: int
    name: str
    value_minor: int
    currency: str
    cashback_minor: int | None
    state: str
    round_public_id: str
    reel_index: int
    box_version_id: int
    created_at: datetime
    updated_at: datetime
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InventoryItem:
        return cls(
            inventory_item_id=_int(doc, "inventoryItemId"),
            item_id=_int(doc, "itemId"),
            name=_str(doc, "name"),
            value_minor=_int(doc, "valueMinor"),
            currency=_str(doc, "currency"),
            cashback_minor=_opt_int(doc, "cashbackMinor"),
            state=_str(doc, "state"),
            round_public_id=_str(doc, "roundPublicId"),
            reel_index=_int(doc, "reelIndex"),
            box_version_id=_int(doc, "boxVersionId"),
            created_at=_time(doc, "createdAt"),
            updated_at=_time(doc, "updatedAt"),
            raw=doc,
        )


@dataclass(frozen=True)
class InventoryPage:
    """One page of ``GET /inventory``; ``next_cursor`` is ``None`` on the last page."""

    items: tuple[InventoryItem, ...]
    next_cursor: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> InventoryPage:
        return cls(
            items=tuple(InventoryItem.from_json(item) for item in _list(doc, "items")),
            next_cursor=_opt_str(doc, "nextCursor"),
            raw=doc,
            request_id=request_id,
        )


# --- history -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One row of the money ledger (``GET /history``): a wallet call (``entry_id``
    ``mm_<n>``) or the opening of a prepaid box (``op_<n>``, amount 0, no wallet call).

    ``amount_minor`` is signed from the player's side (negative: a debit from the player)
    in the wallet ``currency``; ``operator_amount_minor`` is the same amount in the
    operator currency and ``rate`` the rate between them. ``status`` is ``accepted``,
    ``pending`` (outcome not known yet, being re-driven), ``refused`` (``refusal_code``
    says why) or, for an opening, ``completed``. ``idempotency_key`` is the key the wallet
    call carried.
    """

    entry_id: str
    type: str
    status: str
    occurred_at: datetime
    completed_at: datetime | None
    player_external_id: str
    amount_minor: int
    currency: str
    operator_amount_minor: int | None
    operator_currency: str | None
    rate: Decimal | None
    idempotency_key: str | None
    provider_txn_ref: str | None
    round_public_id: str | None
    inventory_item_id: int | None
    refusal_code: str | None
    balance_after_minor: int | None
    mode: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            entry_id=_str(doc, "entryId"),
            type=_str(doc, "type"),
            status=_str(doc, "status"),
            occurred_at=_time(doc, "occurredAt"),
            completed_at=_opt_time(doc, "completedAt"),
            player_external_id=_str(doc, "playerExternalId"),
            amount_minor=_int(doc, "amountMinor"),
            currency=_str(doc, "currency"),
            operator_amount_minor=_opt_int(doc, "operatorAmountMinor"),
            operator_currency=_opt_str(doc, "operatorCurrency"),
            rate=_opt_decimal(doc, "rate"),
            idempotency_key=_opt_str(doc, "idempotencyKey"),
            provider_txn_ref=_opt_str(doc, "providerTxnRef"),
            round_public_id=_opt_str(doc, "roundPublicId"),
            inventory_item_id=_opt_int(doc, "inventoryItemId"),
            refusal_code=_opt_str(doc, "refusalCode"),
            balance_after_minor=_opt_int(doc, "balanceAfterMinor"),
            mode=_opt_str(doc, "mode"),
            raw=doc,
        )


@dataclass(frozen=True)
class HistoryPage:
    """One page of ``GET /history``, newest first; ``next_cursor`` ``None`` on the last."""

    entries: tuple[HistoryEntry, ...]
    next_cursor: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> HistoryPage:
        return cls(
            entries=tuple(HistoryEntry.from_json(entry) for entry in _list(doc, "entries")),
            next_cursor=_opt_str(doc, "nextCursor"),
            raw=doc,
            request_id=request_id,
        )
