"""The interfaces use cases talk to. Adapters implement them; tests use fakes.

Each docstring is the contract an implementation must keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from lootbox.domain.records import WalletSettings

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
class DurableClaim:
    """The outcome of claiming a key in the database."""

    outcome: Literal["claimed", "completed", "in_progress", "mismatch"]
    record: IdempotencyRecord | None = None
    lease_token: int = 0


class Clock(Protocol):
    def now(self) -> datetime: ...


class UnitOfWork(Protocol):
    """A database transaction with repositories. Rolls back unless ``commit()`` is called.

    ``with uow:`` begins; leaving the block without ``commit()`` rolls back.
    """

    operators: Any
    catalog: Any
    rounds: Any
    items: Any
    ledger: Any
    idempotency: Any
    listings: Any

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...
