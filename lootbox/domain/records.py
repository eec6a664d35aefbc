"""Plain snapshots of what the service stores, as the use cases see them.

Repositories return these and change state only through explicit conditional updates,
so no use case can mutate a row behind the database's back.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus

# An operator slug: lowercase letters, digits and "-", nothing that could pass for a
# separator in a log line, a metric label or a key built from it (docs/security.md).
OPERATOR_SLUG = r"[a-z0-9][a-z0-9-]{0,62}"


def is_loopback_host(host: str) -> bool:
    """``localhost`` or an address of 127.0.0.0/8 or ``::1``: nothing sent there leaves
    the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class WalletSettings:
    url: str
    secret: str
    connect_timeout_seconds: float | None = None  # None: the service default
    read_timeout_seconds: float | None = None

    def timeouts(self, default_connect: float, default_read: float) -> tuple[float, float]:
        """The (connect, read) timeouts a call to this wallet gets: the operator's own
        where set, else the service's. A value that is not a positive finite number (the
        CLI refuses them; a hand-edited row might not) falls back to the default too, so
        a money call is never unbounded."""
        return (
            _timeout_or(self.connect_timeout_seconds, default_connect),
            _timeout_or(self.read_timeout_seconds, default_read),
        )


def is_valid_timeout(value: object) -> bool:
    """A positive finite number of seconds (not a bool): anything else would leave a wallet
    call unbounded or make it fail at once."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _timeout_or(value: float | None, default: float) -> float:
    return float(value) if value is not None and is_valid_timeout(value) else default


@dataclass(frozen=True)
class Operator:
    id: int
    slug: str
    currency: str
    wallet: WalletSettings
    refunds_enabled: bool
    cashback_enabled: bool
    cashback_bps: int | None
    rates: dict[str, Decimal] = field(default_factory=dict)  # wallet currency -> rate


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    operator_id: int
    secret: str
    revoked: bool


class PrizeType(StrEnum):
    PHYSICAL = "physical"
    DIGITAL = "digital"
    BONUS = "bonus"


@dataclass(frozen=True)
class Prize:
    id: int
    name: str
    value_minor: int
    odds: Decimal  # exactly the digits the catalog published
    cashback_bps: int | None
    type: PrizeType = PrizeType.DIGITAL
    image_url: str | None = None
    shippable: bool = False


@dataclass(frozen=True)
class BoxVersion:
    id: int
    box_id: int
    box_slug: str
    name: str
    version: int
    price_minor: int
    refundable: bool
    cashback_enabled: bool
    cashback_bps: int | None
    active: bool
    prizes: tuple[Prize, ...]


@dataclass(frozen=True)
class Reel:
    reel_index: int
    box_version_id: int
    price_minor: int  # operator currency
    prize_id: int | None


@dataclass(frozen=True)
class Round:
    id: int
    public_id: str
    operator_id: int
    player_external_id: str
    mode: PurchaseMode
    status: RoundStatus
    client_action_id: str
    currency: str  # the player's wallet currency the round was bought in
    bet_minor: int  # in ``currency``
    operator_amount_minor: int  # the same price in the operator currency
    rate: Decimal  # operator currency -> ``currency`` (1 when equal)
    open_idempotency_key: str | None
    reels: tuple[Reel, ...]
    created_at: datetime


@dataclass(frozen=True)
class InventoryItem:
    id: int
    operator_id: int
    player_external_id: str
    round_id: int
    reel_index: int
    prize_id: int
    box_version_id: int
    name: str
    value_minor: int  # operator currency
    state: ItemState
    created_at: datetime


class MovementKind(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


class MovementReason(StrEnum):
    OPEN = "open"
    PREPAY = "prepay"
    CASHBACK = "cashback"
    REFUND = "refund"


class MovementStatus(StrEnum):
    PENDING = "pending"  # recorded; the wallet call may or may not have been applied
    ACCEPTED = "accepted"
    REFUSED = "refused"


class MovementPhase(StrEnum):
    """Where a money movement stands, as far as the ledger row can tell after any crash.

    The row is written (``recorded``) and leased in one transaction *before* the wallet is
    called; the wallet's answer and the subject's new state are written together in one
    later transaction, so an answer is never known without being final.
    """

    RECORDED = "recorded"  # pending and never leased: not sent yet
    IN_FLIGHT = "in_flight"  # pending under an unexpired lease: a call may be on the wire
    OUTCOME_UNKNOWN = "outcome_unknown"  # pending, lease expired: sent or not, re-drive it
    ACCEPTED = "accepted"  # final: the wallet applied it
    REFUSED = "refused"  # final: the wallet refused it; its key is not consumed


@dataclass(frozen=True)
class MoneyMovement:
    """One ledger row: one wallet operation, identified by its idempotency key."""

    id: int
    operator_id: int
    idempotency_key: str
    kind: MovementKind
    reason: MovementReason
    status: MovementStatus
    player_external_id: str
    amount_minor: int
    currency: str
    operator_amount_minor: int
    operator_currency: str
    rate: Decimal
    round_id: int | None
    round_public_id: str | None
    inventory_item_id: int | None
    lease_token: int
    lease_expires_at: datetime | None
    balance_after_minor: int | None
    provider_txn_ref: str | None
    refusal_code: str | None
    attempts: int
    created_at: datetime
    last_error: str | None = None  # why the last attempt's outcome is unknown

    def phase(self, now: datetime) -> MovementPhase:
        if self.status is MovementStatus.ACCEPTED:
            return MovementPhase.ACCEPTED
        if self.status is MovementStatus.REFUSED:
            return MovementPhase.REFUSED
        if self.lease_expires_at is not None and self.lease_expires_at > now:
            return MovementPhase.IN_FLIGHT
        return MovementPhase.OUTCOME_UNKNOWN if self.attempts else MovementPhase.RECORDED


# --- what a credit decides on, read with its subject's lock -----------------------------------


@dataclass(frozen=True)
class CashoutCandidate:
    """An inventory item as a cashout decides on it: locked, with its live credit (pending
    or accepted, at most one) and the catalog's cashback rules of its box and prize."""

    item: InventoryItem
    live_credit: MoneyMovement | None
    box_cashback_enabled: bool
    box_cashback_bps: int | None
    prize_cashback_bps: int | None


@dataclass(frozen=True)
class RefundCandidate:
    """A round as a cancel decides on it: locked (read without its reels, which a refund
    does not need), with its live refund and whether every reel's box is refundable."""

    round: Round
    live_refund: MoneyMovement | None
    all_boxes_refundable: bool


# --- what the use cases ask the repositories to write -------------------------------------


@dataclass(frozen=True)
class PrizeSpec:
    name: str
    value_minor: int
    odds: Decimal
    cashback_bps: int | None
    type: PrizeType = PrizeType.DIGITAL
    image_url: str | None = None
    shippable: bool = False


@dataclass(frozen=True)
class BoxSpec:
    """A box as the catalog document states it. ``is_active``, ``image`` and
    ``custom_attributes`` are not part of the offer: changing them never makes a new
    version (``lootbox.services.catalog.content_hash`` leaves them out)."""

    slug: str
    name: str
    price_minor: int
    refundable: bool
    cashback_enabled: bool
    cashback_bps: int | None
    prizes: tuple[PrizeSpec, ...]
    is_active: bool = True
    image: dict[str, Any] | None = None
    custom_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewMovement:
    operator_id: int
    idempotency_key: str
    kind: MovementKind
    reason: MovementReason
    player_external_id: str
    amount_minor: int
    currency: str
    operator_amount_minor: int
    operator_currency: str
    rate: Decimal
    round_id: int | None = None
    round_public_id: str | None = None
    inventory_item_id: int | None = None


# --- provably fair draws ---------------------------------------------------------------------


@dataclass(frozen=True)
class SeedPair:
    """A player's seeds (lootbox.domain.fairness). ``server_seed`` is a secret until the
    pair is revealed: only ``server_seed_hash`` may be shown before."""

    id: int
    server_seed: str
    server_seed_hash: str
    client_seed: str
    next_nonce: int
    revealed_at: datetime | None

    @property
    def last_nonce(self) -> int | None:
        """The nonce of the last round drawn with this pair; ``None`` if none was."""
        return self.next_nonce - 1 if self.next_nonce else None


@dataclass(frozen=True)
class RoundDraw:
    """The seeds and the nonce one round is drawn with; its reels are drawn by index."""

    seed_pair_id: int
    server_seed: str
    server_seed_hash: str
    client_seed: str
    nonce: int
