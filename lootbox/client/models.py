"""Typed results: frozen dataclasses built from the service's JSON.

Every result of a call keeps the whole decoded answer in ``raw`` (fields this SDK version
does not know yet included), the answer's ``X-Request-Id`` in ``request_id`` and, for the
money calls, ``replayed``: ``True`` when the service answered a retry with the stored
answer of an earlier attempt (``Idempotent-Replayed: true``), so nothing moved this time.

Money is always ``int`` minor units with its ISO 4217 ``currency``; FX rates and odds
are ``Decimal``; times are timezone-aware UTC ``datetime``. Never a float: answers are
decoded with JSON numbers that have a fraction read as ``Decimal``.

Lists (inventory, history) come in LootBox's envelope: ``items`` and a ``cursor`` with
``next`` and ``prev``. Fields the LootBox documentation defines are required; fields this
service adds beyond them are optional (``None`` when a server does not send them).
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


def _bool(doc: Mapping[str, Any], name: str) -> bool:
    value = _get(doc, name)
    if not isinstance(value, bool):
        raise ShapeError(f"{name!r} must be a boolean, got {value!r}")
    return value


def _opt_bool(doc: Mapping[str, Any], name: str) -> bool | None:
    return None if _maybe(doc, name) is None else _bool(doc, name)


def _number(doc: Mapping[str, Any], name: str) -> Decimal:
    """A JSON number, exactly as written (decoded as ``Decimal``, never a float)."""
    value = _get(doc, name)
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ShapeError(f"{name!r} must be a number, got {value!r}")
    return Decimal(value)


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


def _opt_object(doc: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return None if _maybe(doc, name) is None else _object(doc, name)


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
class Fairness:
    """What a round was drawn with (provably fair draws, algorithm ``hmac_sha256_v1``):
    reel ``r`` drew from its box version's snapshot with
    ``HMAC-SHA256(serverSeed, "{client_seed}:{nonce}:{r}")``. Once the pair whose hash is
    ``server_seed_hash`` is revealed (``LootboxClient.rotate_seeds``), ``verify_draw``
    redoes the draw."""

    server_seed_hash: str
    client_seed: str
    nonce: int
    algorithm_key: str

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Fairness:
        return cls(
            server_seed_hash=_str(doc, "serverSeedHash"),
            client_seed=_str(doc, "clientSeed"),
            nonce=_int(doc, "nonce"),
            algorithm_key=_str(doc, "algorithmKey"),
        )


@dataclass(frozen=True)
class Round:
    """A round: ``held`` (pre-paid, unopened), ``settled``, ``refunded`` or ``voided``.
    ``fairness`` says what it was drawn with; ``None`` until it is drawn (``held``,
    ``voided``)."""

    public_id: str
    status: str
    mode: str
    bet_minor: int
    payout_minor: int | None
    currency: str
    created_at: datetime
    reels: tuple[Reel, ...]
    fairness: Fairness | None = None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Round:
        fairness = _opt_object(doc, "fairness")
        return cls(
            public_id=_str(doc, "publicId"),
            status=_str(doc, "status"),
            mode=_str(doc, "mode"),
            bet_minor=_int(doc, "betMinor"),
            payout_minor=_opt_int(doc, "payoutMinor"),
            currency=_str(doc, "currency"),
            created_at=_time(doc, "createdAt"),
            reels=tuple(Reel.from_json(reel) for reel in _list(doc, "reels")),
            fairness=None if fairness is None else Fairness.from_json(fairness),
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


# --- provably fair draws ----------------------------------------------------------------------


@dataclass(frozen=True)
class Seeds:
    """A player's current seed pair (``GET /fairness``): show ``server_seed_hash`` to the
    player before they play; their next drawn round takes ``next_nonce``."""

    server_seed_hash: str
    client_seed: str
    next_nonce: int
    algorithm_key: str | None  # "hmac_sha256_v1"; None if the answer does not say
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> Seeds:
        return cls(
            server_seed_hash=_str(doc, "serverSeedHash"),
            client_seed=_str(doc, "clientSeed"),
            next_nonce=_int(doc, "nextNonce"),
            # Optional: the contract's rotation answer does not name the new pair's.
            algorithm_key=_opt_str(doc, "algorithmKey"),
            raw=doc,
            request_id=request_id,
        )


@dataclass(frozen=True)
class RevealedSeed:
    """A revealed pair: its ``server_seed`` (whose SHA-256 is ``server_seed_hash``), its
    client seed, and the nonce of the last round drawn with it (``None`` if none was)."""

    server_seed: str
    server_seed_hash: str
    client_seed: str
    last_nonce: int | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RevealedSeed:
        _get(doc, "lastNonce")  # required, null when no round was drawn
        return cls(
            server_seed=_str(doc, "serverSeed"),
            server_seed_hash=_str(doc, "serverSeedHash"),
            client_seed=_str(doc, "clientSeed"),
            last_nonce=_opt_int(doc, "lastNonce"),
        )


@dataclass(frozen=True)
class SeedRotation:
    """``POST /fairness/rotate``: the pair ``revealed`` (verify its rounds with it) and the
    pair ``current`` now. A retry for a pair already revealed answers the same
    ``revealed`` and the pair current then."""

    revealed: RevealedSeed
    current: Seeds
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> SeedRotation:
        return cls(
            revealed=RevealedSeed.from_json(_object(doc, "revealed")),
            current=Seeds.from_json(_object(doc, "current")),
            raw=doc,
            request_id=request_id,
        )


# --- health --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """``GET /health``: the key, the secret and the clock are right. ``time`` is the
    server's clock (``None`` from a server that does not send it)."""

    status: str
    time: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> Health:
        return cls(
            status=_str(doc, "status"),
            time=_opt_time(doc, "time"),
            raw=doc,
            request_id=request_id,
        )


# --- lists -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageCursor:
    """Opaque cursors of a page: pass one back as ``cursor`` for the page after it
    (``next``, older rows; ``None`` on the last page) or before it (``prev``, newer rows;
    ``None`` on the first page)."""

    next: str | None
    prev: str | None

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PageCursor:
        cursor = _object(doc, "cursor")
        return cls(next=_opt_str(cursor, "next"), prev=_opt_str(cursor, "prev"))


# --- inventory -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryItem:
    """One of a player's items (``GET /inventory``). ``id`` is what ``cashout`` takes;
    ``item_id`` is the catalog prize. ``value_minor``, ``cashback_minor`` (what a cashout
    would credit now; ``None`` if nothing) and ``currency`` are in the operator currency.
    ``reel_index``, ``box_version_id`` and ``updated_at`` are this service's additions."""

    id: int
    item_id: int
    name: str
    type: str  # physical | digital | bonus
    image_url: str | None
    value_minor: int
    currency: str
    state: str
    cashback_minor: int | None
    shippable: bool
    won_at_round_public_id: str
    created_at: datetime
    reel_index: int | None
    box_version_id: int | None
    updated_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> InventoryItem:
        return cls(
            id=_int(doc, "id"),
            item_id=_int(doc, "itemId"),
            name=_str(doc, "name"),
            type=_str(doc, "type"),
            image_url=_opt_str(doc, "imageUrl"),
            value_minor=_int(doc, "valueMinor"),
            currency=_str(doc, "currency"),
            state=_str(doc, "state"),
            cashback_minor=_opt_int(doc, "cashbackMinor"),
            shippable=_bool(doc, "shippable"),
            won_at_round_public_id=_str(doc, "wonAtRoundPublicId"),
            created_at=_time(doc, "createdAt"),
            reel_index=_opt_int(doc, "reelIndex"),
            box_version_id=_opt_int(doc, "boxVersionId"),
            updated_at=_opt_time(doc, "updatedAt"),
            raw=doc,
        )


@dataclass(frozen=True)
class InventoryPage:
    """One page of ``GET /inventory``, newest first."""

    items: tuple[InventoryItem, ...]
    cursor: PageCursor
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> InventoryPage:
        return cls(
            items=tuple(InventoryItem.from_json(item) for item in _list(doc, "items")),
            cursor=PageCursor.from_json(doc),
            raw=doc,
            request_id=request_id,
        )


# --- history -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    """One row of the money ledger (``GET /history``): a wallet call, or the opening of a
    held box (``type`` ``open``, amount 0, no wallet call, no ``idempotency_key``).

    ``type``: ``purchase`` (a pre-pay), ``open`` (an atomic buy-and-open, or an opening),
    ``refund``, ``cashback``. ``amount_minor`` is signed from the player's side (negative:
    a debit) in ``currency``; ``payout_minor`` is what an ``open`` row won, in
    ``currency``. ``status``: ``held``, ``settled``, ``refunded`` (what a debit's round
    is now; ``refunded`` also for a refund), ``completed`` (a cashback), ``voided`` (the
    wallet refused: nothing moved) or ``pending`` (the wallet's answer is not known yet).
    ``idempotency_key`` and ``provider_txn_ref`` join the row to the wallet's own ledger.
    The fields after ``occurred_at`` are this service's additions.
    """

    id: str
    type: str
    status: str
    round_public_id: str | None
    inventory_item_id: int | None
    amount_minor: int
    payout_minor: int | None
    currency: str
    idempotency_key: str | None
    provider_txn_ref: str | None
    occurred_at: datetime
    completed_at: datetime | None
    player_external_id: str | None
    operator_amount_minor: int | None
    operator_currency: str | None
    rate: Decimal | None
    balance_after_minor: int | None
    mode: str | None
    refusal_code: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HistoryEntry:
        return cls(
            id=_str(doc, "id"),
            type=_str(doc, "type"),
            status=_str(doc, "status"),
            round_public_id=_opt_str(doc, "roundPublicId"),
            inventory_item_id=_opt_int(doc, "inventoryItemId"),
            amount_minor=_int(doc, "amountMinor"),
            payout_minor=_opt_int(doc, "payoutMinor"),
            currency=_str(doc, "currency"),
            idempotency_key=_opt_str(doc, "idempotencyKey"),
            provider_txn_ref=_opt_str(doc, "providerTxnRef"),
            occurred_at=_time(doc, "occurredAt"),
            completed_at=_opt_time(doc, "completedAt"),
            player_external_id=_opt_str(doc, "playerExternalId"),
            operator_amount_minor=_opt_int(doc, "operatorAmountMinor"),
            operator_currency=_opt_str(doc, "operatorCurrency"),
            rate=_opt_decimal(doc, "rate"),
            balance_after_minor=_opt_int(doc, "balanceAfterMinor"),
            mode=_opt_str(doc, "mode"),
            refusal_code=_opt_str(doc, "refusalCode"),
            raw=doc,
        )


@dataclass(frozen=True)
class HistoryPage:
    """One page of ``GET /history``, newest first."""

    items: tuple[HistoryEntry, ...]
    cursor: PageCursor
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> HistoryPage:
        return cls(
            items=tuple(HistoryEntry.from_json(entry) for entry in _list(doc, "items")),
            cursor=PageCursor.from_json(doc),
            raw=doc,
            request_id=request_id,
        )


# --- catalog -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxSummary:
    """A box of the catalog (``GET /boxes``). ``box_version_id`` is what a purchase's
    reel takes; ``price_minor`` is in ``currency`` (the requested one, else the
    operator's); ``house_edge_bps`` is the player's expected loss, in basis points."""

    box_id: int
    name: str
    slug: str
    is_active: bool
    is_published: bool
    version_number: int | None
    box_version_id: int | None
    price_minor: int | None
    currency: str
    house_edge_bps: int | None
    image: Mapping[str, Any] | None
    custom_attributes: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BoxSummary:
        return cls(
            box_id=_int(doc, "boxId"),
            name=_str(doc, "name"),
            slug=_str(doc, "slug"),
            is_active=_bool(doc, "isActive"),
            is_published=_bool(doc, "isPublished"),
            # A box asked for by id may have no current version: no version, no price.
            version_number=_opt_int(doc, "versionNumber"),
            box_version_id=_opt_int(doc, "boxVersionId"),
            price_minor=_opt_int(doc, "priceMinor"),
            currency=_str(doc, "currency"),
            house_edge_bps=_opt_int(doc, "houseEdgeBps"),
            image=_opt_object(doc, "image"),
            custom_attributes=_opt_object(doc, "customAttributes") or {},
            raw=doc,
        )


@dataclass(frozen=True)
class Pagination:
    page: int
    per_page: int
    total: int
    last_page: int

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Pagination:
        return cls(
            page=_int(doc, "page"),
            per_page=_int(doc, "perPage"),
            total=_int(doc, "total"),
            last_page=_int(doc, "lastPage"),
        )


@dataclass(frozen=True)
class BoxList:
    """One page of ``GET /boxes`` (page-numbered, 1-based)."""

    boxes: tuple[BoxSummary, ...]
    pagination: Pagination
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> BoxList:
        return cls(
            boxes=tuple(BoxSummary.from_json(box) for box in _list(doc, "boxes")),
            pagination=Pagination.from_json(_object(doc, "pagination")),
            raw=doc,
            request_id=request_id,
        )


@dataclass(frozen=True)
class BoxPrize:
    """A prize of a box's current version. ``odds`` is a probability, exactly as the
    catalog holds it (the odds of a version sum to exactly 1)."""

    item_id: int
    name: str
    type: str  # physical | digital | bonus
    value_minor: int
    currency: str
    image_url: str | None
    odds: Decimal
    shippable: bool | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BoxPrize:
        return cls(
            item_id=_int(doc, "itemId"),
            name=_str(doc, "name"),
            type=_str(doc, "type"),
            value_minor=_int(doc, "valueMinor"),
            currency=_str(doc, "currency"),
            image_url=_opt_str(doc, "imageUrl"),
            odds=_number(doc, "odds"),
            shippable=_opt_bool(doc, "shippable"),
            raw=doc,
        )


@dataclass(frozen=True)
class BoxDetail:
    """``GET /boxes/{boxId}``: the box's current offer and its prize table.
    ``box_version_id`` is what a purchase's reel takes to buy exactly this offer."""

    box_id: int
    box_version_id: int
    name: str
    price_minor: int
    currency: str
    house_edge_bps: int
    snapshot_url: str
    custom_attributes: Mapping[str, Any]
    prizes: tuple[BoxPrize, ...]
    version_number: int | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> BoxDetail:
        box = _object(doc, "box")
        return cls(
            box_id=_int(box, "boxId"),
            box_version_id=_int(box, "boxVersionId"),
            name=_str(box, "name"),
            price_minor=_int(box, "priceMinor"),
            currency=_str(box, "currency"),
            house_edge_bps=_int(box, "houseEdgeBps"),
            snapshot_url=_str(box, "snapshotUrl"),
            custom_attributes=_opt_object(box, "customAttributes") or {},
            prizes=tuple(BoxPrize.from_json(prize) for prize in _list(box, "prizes")),
            version_number=_opt_int(box, "versionNumber"),
            raw=doc,
            request_id=request_id,
        )


@dataclass(frozen=True)
class BoxVersionInfo:
    """``GET /boxes/{boxId}/version``: the live version to buy, without its prizes."""

    box_id: int
    box_version_id: int
    version_number: int
    price_minor: int
    currency: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    request_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], request_id: str | None = None) -> BoxVersionInfo:
        return cls(
            box_id=_int(doc, "boxId"),
            box_version_id=_int(doc, "boxVersionId"),
            version_number=_int(doc, "versionNumber"),
            price_minor=_int(doc, "priceMinor"),
            currency=_str(doc, "currency"),
            raw=doc,
            request_id=request_id,
        )
