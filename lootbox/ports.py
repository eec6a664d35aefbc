"""The interfaces use cases talk to. Adapters implement them; tests use fakes.

Each docstring is the contract an implementation must keep.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from lootbox.domain.catalog import BoxFilters, BoxOrder, CatalogEntry, PublishedVersion
from lootbox.domain.listings import HistoryEntry, HistoryPosition, ItemListing
from lootbox.domain.records import (
    ApiKey,
    BoxSpec,
    BoxVersion,
    CashoutCandidate,
    InventoryItem,
    MoneyMovement,
    MovementReason,
    NewMovement,
    Operator,
    Reel,
    RefundCandidate,
    Round,
    RoundDraw,
    SeedPair,
    WalletSettings,
)
from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus

# --- wallet ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WalletMoneyCall:
    """A ``wallet.debit`` or ``wallet.credit`` exactly as the contract (section 6) sends it."""

    type: Literal["wallet.debit", "wallet.credit"]
    idempotency_key: str
    player_external_id: str
    amount_minor: int
    currency: str
    reason: str
    round_public_id: str | None = None
    inventory_item_id: int | None = None
    reference: dict[str, Any] | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "idempotencyKey": self.idempotency_key,
            "playerExternalId": self.player_external_id,
            "amountMinor": self.amount_minor,
            "currency": self.currency,
            "reason": self.reason,
        }
        if self.inventory_item_id is not None:
            body["inventoryItemId"] = self.inventory_item_id
        if self.round_public_id is not None:
            body["roundPublicId"] = self.round_public_id
        if self.reference is not None:
            body["reference"] = self.reference
        return body


@dataclass(frozen=True)
class WalletAccepted:
    balance_after_minor: int | None
    provider_txn_ref: str | None


@dataclass(frozen=True)
class WalletRefusal:
    code: str  # already sanitised to [A-Z0-9_]{1,64}, else WALLET_REFUSED
    message: str


@dataclass(frozen=True)
class WalletOutcomeUnknown:
    """Connect failure, timeout, 5xx, non-JSON, no ``accepted``: it may have been applied."""

    reason: str


WalletOutcome = WalletAccepted | WalletRefusal | WalletOutcomeUnknown


class Wallet(Protocol):
    def send(self, settings: WalletSettings, call: WalletMoneyCall) -> WalletOutcome:
        """Send one signed money call and classify the answer. Never raises for transport
        or protocol failures: those are ``WalletOutcomeUnknown``. Bounded by timeouts."""
        ...


# --- idempotency (fast path) ---------------------------------------------------------------


@dataclass
class IdempotencyRecord:
    """What is known about one ``(operator, idempotencyKey)``. Readable by a human."""

    state: Literal["in_progress", "completed"]
    endpoint: str
    fingerprint: str
    # The request that holds or answered the key; "" for a completed answer read from
    # Redis, which does not keep it (the database record does).
    request_id: str
    created_at: str  # ISO 8601 UTC
    status: int | None = None
    body: str | None = None  # the exact response body, for byte-for-byte replays
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The self-describing shape on-call reads (the Redis value's core fields)."""
        return {
            "state": self.state,
            "endpoint": self.endpoint,
            "fingerprint": self.fingerprint,
            "requestId": self.request_id,
            "createdAt": self.created_at,
            "status": self.status,
            "body": self.body,
        }


@dataclass(frozen=True)
class DurableKey:
    """The database's record of one key, with what on-call needs beyond the answer."""

    key: str
    record: IdempotencyRecord
    lease_token: int
    lease_expires_at: datetime
    completed_at: datetime | None
    expires_at: datetime | None  # when a completed answer may be purged


class IdempotencyStore(Protocol):
    """The Redis fast path. It may lose anything at any time; the database is the
    guarantee, so callers treat ``StoreUnavailable`` as "no fast path", never as an answer."""

    def claim(
        self, operator_id: int, key: str, record: IdempotencyRecord, lease_seconds: float
    ) -> IdempotencyRecord | None:
        """Atomically create the in-progress record if absent (``SET NX`` with a lease).
        Returns ``None`` when this caller now owns the key, else the existing record."""
        ...

    def get(self, operator_id: int, key: str) -> IdempotencyRecord | None:
        """The operator's record of ``key``; never another operator's."""
        ...

    def redis_key(self, operator_id: int, key: str) -> str:
        """Where the record lives, for a human to look at."""
        ...

    def complete(
        self, operator_id: int, key: str, record: IdempotencyRecord, ttl_seconds: int
    ) -> None:
        """Store the final answer, replacing the in-progress record."""
        ...

    def release(self, operator_id: int, key: str, request_id: str) -> None:
        """Delete the record only if ``request_id`` still owns it (compare-and-delete), so
        a retry re-evaluates a non-final answer."""
        ...


class StoreUnavailable(Exception):
    """The fast path could not be reached; callers fall back to the database."""


# --- durable idempotency records -------------------------------------------------------------


@dataclass(frozen=True)
class KeyedRequest:
    """One request under its idempotency key: what the database claims for it. The same
    key with another ``fingerprint`` (endpoint and normalised body) is another request."""

    operator_id: int
    key: str
    endpoint: str
    fingerprint: str
    request_id: str


@dataclass(frozen=True)
class Answer:
    """A money request's answer as sent (``body`` exactly), and whether it is the stored
    answer of an earlier attempt."""

    status: int
    body: str
    replayed: bool


@dataclass(frozen=True)
class DurableClaim:
    """The outcome of claiming a key in the database."""

    outcome: Literal["claimed", "completed", "in_progress", "mismatch"]
    record: IdempotencyRecord | None = None
    lease_token: int = 0


class Clock(Protocol):
    def now(self) -> datetime: ...


# --- the repositories a unit of work holds ------------------------------------------------------
#
# Every state change is conditional: a ``bool`` (or a returned row) says whether this
# caller made it, so two racing requests can never both believe they did.


class Operators(Protocol):
    def get(self, operator_id: int) -> Operator | None: ...

    def get_by_slug(self, slug: str) -> Operator | None: ...

    def add(
        self,
        *,
        slug: str,
        currency: str,
        wallet_url: str,
        wallet_secret: str,
        refunds_enabled: bool,
        cashback_enabled: bool,
        cashback_bps: int | None,
        now: datetime,
    ) -> Operator | None:
        """``None`` if the slug is taken (by a racing call too)."""
        ...

    def update_policies(self, operator_id: int, **changes: Any) -> None: ...

    def set_rate(self, operator_id: int, currency: str, rate: Decimal, now: datetime) -> None: ...

    def get_by_active_key(self, key_id: str) -> tuple[str, Operator] | None:
        """``(secret, operator)`` of an unrevoked API key."""
        ...

    def get_api_key(self, key_id: str) -> ApiKey | None: ...

    def add_api_key(self, operator_id: int, key_id: str, secret: str, now: datetime) -> None: ...

    def reseal_secrets(self) -> int: ...

    def revoke_api_key(self, key_id: str, now: datetime) -> bool: ...


class Catalog(Protocol):
    def get_box_version(self, operator_id: int, box_version_id: int) -> BoxVersion | None: ...

    def publish(
        self, operator_id: int, spec: BoxSpec, content_hash: str, now: datetime
    ) -> tuple[int, int, bool]:
        """``(box_id, version_id, created)``: an unchanged box (same ``content_hash``)
        keeps its current version, whose status follows ``spec.is_active`` in place; a
        changed one gets a new version and the old one is superseded. The box's image and
        custom attributes are replaced either way."""
        ...


class CatalogReads(Protocol):
    """The catalog as operators' backends read it. A box's current version is its one
    version that is not superseded; the prizes of every version returned are in their
    published order."""

    def boxes_page(
        self,
        operator_id: int,
        filters: BoxFilters,
        order: BoxOrder,
        *,
        descending: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[CatalogEntry], int]:
        """The page (ordered by ``order``, ties by box id ascending) and the total number
        of boxes that match ``filters``. Only boxes with a current version are listed."""
        ...

    def box(self, operator_id: int, box_id: int) -> CatalogEntry | None:
        """``None`` if the operator has no such box (another operator's box included)."""
        ...

    def published_version(self, box_version_id: int) -> PublishedVersion | None:
        """Any operator's version, superseded or not."""
        ...


class Rounds(Protocol):
    def get(self, round_id: int) -> Round | None: ...

    def get_by_public_id(
        self, operator_id: int, public_id: str, *, for_update: bool = False
    ) -> Round | None: ...

    def lock_for_refund(self, operator_id: int, public_id: str) -> RefundCandidate | None:
        """The round locked, with what a cancel decides on, in one round trip."""
        ...

    def get_by_client_action(
        self, operator_id: int, player_external_id: str, client_action_id: str
    ) -> Round | None: ...

    def add(
        self,
        *,
        public_id: str,
        operator_id: int,
        player_external_id: str,
        mode: PurchaseMode,
        client_action_id: str,
        currency: str,
        bet_minor: int,
        operator_amount_minor: int,
        rate: Decimal,
        reels: Sequence[Reel],
        now: datetime,
    ) -> Round | None:
        """A ``debit_pending`` round; ``None`` if the action already has one."""
        ...

    def transition(
        self,
        round_id: int,
        from_status: RoundStatus,
        to_status: RoundStatus,
        now: datetime,
        **values: Any,
    ) -> bool: ...

    def set_prize(self, round_id: int, reel_index: int, prize_id: int) -> None: ...


class Items(Protocol):
    def get(
        self, operator_id: int, item_id: int, *, for_update: bool = False
    ) -> InventoryItem | None: ...

    def lock_for_cashout(self, operator_id: int, item_id: int) -> CashoutCandidate | None:
        """The item locked, with what a cashout decides on, in one round trip."""
        ...

    def for_round(self, round_id: int) -> list[InventoryItem]: ...

    def add_many(self, items: Iterable[dict[str, Any]], now: datetime) -> None: ...

    def transition(
        self, item_id: int, from_state: ItemState, to_state: ItemState, now: datetime
    ) -> bool: ...


class Ledger(Protocol):
    def get(self, movement_id: int) -> MoneyMovement | None: ...

    def get_by_key(self, operator_id: int, key: str) -> MoneyMovement | None: ...

    def live_refund(self, round_id: int) -> MoneyMovement | None: ...

    def debit_for_round(self, round_id: int) -> MoneyMovement | None: ...

    def due_for_redrive(
        self, now: datetime, *, after_id: int = 0, limit: int = 100
    ) -> list[MoneyMovement]: ...

    def pending(self, *, limit: int) -> list[MoneyMovement]: ...

    def count_due_for_redrive(self, now: datetime) -> int: ...

    def record(
        self, new: NewMovement, now: datetime, *, leased_until: datetime | None = None
    ) -> MoneyMovement | None:
        """A pending movement; ``None`` if its key or subject is taken."""
        ...

    def record_credit(
        self, new: NewMovement, now: datetime, *, leased_until: datetime
    ) -> MoneyMovement | None:
        """A pending credit, leased, its subject moved to pending in the same write."""
        ...

    def settle_credit(
        self,
        movement: MoneyMovement,
        token: int,
        outcome: WalletAccepted | WalletRefusal,
        now: datetime,
    ) -> tuple[bool, bool]:
        """``(settled, subject moved)``, under the fencing ``token``."""
        ...

    def rearm(self, movement_id: int, new: NewMovement, now: datetime) -> bool: ...

    def claim(self, movement_id: int, now: datetime, lease_until: datetime) -> int | None:
        """The new fencing token, or ``None`` while another caller's lease runs."""
        ...

    def mark_accepted(
        self,
        movement_id: int,
        token: int,
        balance_after_minor: int | None,
        provider_txn_ref: str | None,
        now: datetime,
    ) -> bool: ...

    def mark_refused(
        self, movement_id: int, token: int, code: str, message: str, now: datetime
    ) -> bool: ...

    def release(self, movement_id: int, token: int, error: str, now: datetime) -> bool: ...


class IdempotencyRecords(Protocol):
    def claim(
        self,
        *,
        operator_id: int,
        key: str,
        endpoint: str,
        fingerprint: str,
        request_id: str,
        now: datetime,
        lease_until: datetime,
    ) -> DurableClaim: ...

    def describe(self, operator_id: int, key: str) -> DurableKey | None: ...

    def list_for_operator(
        self,
        operator_id: int,
        *,
        state: str | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
    ) -> list[DurableKey]: ...

    def release_stuck(self, operator_id: int, key: str, now: datetime) -> bool: ...

    def delete_expired(self, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` completed records whose expiry is before ``now``,
        skipping rows another purger holds; how many. Never an in-progress record."""
        ...

    def count_expired(self, now: datetime) -> int: ...

    def complete(
        self,
        *,
        operator_id: int,
        key: str,
        lease_token: int,
        status: int,
        body: str,
        now: datetime,
        expires_at: datetime,
    ) -> bool: ...

    def suspend(self, *, operator_id: int, key: str, lease_token: int, now: datetime) -> None: ...

    def release(self, *, operator_id: int, key: str, lease_token: int) -> None: ...


class Listings(Protocol):
    """Keyset reads. Without a bound, the newest ``limit`` rows, newest first; with
    ``older_than``, the ``limit`` rows just older than it, newest first; with
    ``newer_than``, the ``limit`` rows just newer than it, *oldest* first. Bounds are
    exclusive."""

    def inventory_page(
        self,
        operator_id: int,
        player_external_id: str,
        states: Collection[ItemState] | None,
        *,
        older_than: int | None,
        newer_than: int | None,
        limit: int,
    ) -> list[ItemListing]: ...

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
    ) -> list[HistoryEntry]: ...

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
    ) -> list[HistoryEntry]: ...


class SeedPairs(Protocol):
    """Players' seed pairs: at most one current pair per (operator, player), enforced by
    the database; a round's nonce is taken from it once, in the transaction that draws."""

    def current(self, operator_id: int, player_external_id: str) -> SeedPair | None: ...

    def add_current(
        self,
        operator_id: int,
        player_external_id: str,
        server_seed: str,
        client_seed: str,
        now: datetime,
    ) -> None:
        """A new current pair, unless the player already has one (then nothing)."""
        ...

    def draw_round(
        self, round_id: int, operator_id: int, player_external_id: str
    ) -> RoundDraw | None:
        """Take the current pair's next nonce for the round and record both on it; ``None``
        if the player has no current pair. Concurrent draws and a rotation of the pair
        queue on its row lock, so each nonce is taken once and a round's reels all use
        one pair."""
        ...

    def of_round(self, round_id: int) -> RoundDraw | None:
        """What a round was drawn with; ``None`` if it is not drawn."""
        ...

    def lock(
        self, operator_id: int, player_external_id: str, server_seed_hash: str
    ) -> SeedPair | None:
        """The player's pair with this hash, locked until the transaction ends."""
        ...

    def reveal(self, pair_id: int, now: datetime) -> SeedPair: ...


class UnitOfWork(Protocol):
    """A database transaction with repositories. Rolls back unless ``commit()`` is called.

    ``with uow:`` begins; leaving the block without ``commit()`` rolls back.
    """

    @property
    def operators(self) -> Operators: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def catalog_reads(self) -> CatalogReads: ...

    @property
    def rounds(self) -> Rounds: ...

    @property
    def items(self) -> Items: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def idempotency(self) -> IdempotencyRecords: ...

    @property
    def listings(self) -> Listings: ...

    @property
    def seed_pairs(self) -> SeedPairs: ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...
