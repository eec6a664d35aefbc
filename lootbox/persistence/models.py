"""Tables. The constraints here, not Python checks, are what hold the money invariants:

* ``uq_money_movements_operator_key``: one wallet operation per (operator, key);
* ``uq_money_movements_live_item_credit`` / ``..._live_round_credit`` /
  ``..._round_debit``: at most one live (pending or accepted) credit per inventory item
  and per round, and one debit per round, whatever keys callers send;
* state CHECKs and conditional ``UPDATE … WHERE state = …`` in the repositories make every
  transition happen once;
* ``uq_inventory_items_round_reel``: one prize per reel, so a repeated draw cannot mint
  a second item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lootbox.domain.cashback import MAX_CASHBACK_BPS
from lootbox.domain.records import OPERATOR_SLUG, PrizeType
from lootbox.persistence.secrets import EncryptedText
from lootbox.persistence.types import UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger()
# The bounds onboarding and the catalog import enforce, held by the database too.
CASHBACK_BPS = f"cashback_bps IS NULL OR cashback_bps BETWEEN 0 AND {MAX_CASHBACK_BPS}"
SLUG = f"slug ~ '^{OPERATOR_SLUG}$'"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


ROUND_STATUSES = ("debit_pending", "held", "refund_pending", "settled", "refunded", "voided")
OPENED_PREPAID = "mode = 'prepay' AND status = 'settled'"
ITEM_STATES = (
    "unresolved",
    "cashback_pending",
    "cashed_back",
    "ship_requested",
    "fulfilled",
    "expired",
)


PRIZE_TYPES = tuple(str(t) for t in PrizeType)
# A box version that is not superseded is its box's current one, playable or not.
CURRENT_VERSION = "status <> 'superseded'"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OperatorRow(Base):
    __tablename__ = "operators"
    __table_args__ = (
        CheckConstraint(SLUG, name="slug"),
        CheckConstraint(CASHBACK_BPS, name="cashback_bps"),
        CheckConstraint("length(currency) = 3", name="currency"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    wallet_url: Mapped[str] = mapped_column(String(2048))
    wallet_secret: Mapped[str] = mapped_column(EncryptedText)
    wallet_connect_timeout_ms: Mapped[int | None] = mapped_column(Integer)
    wallet_read_timeout_ms: Mapped[int | None] = mapped_column(Integer)
    refunds_enabled: Mapped[bool] = mapped_column(Boolean)
    cashback_enabled: Mapped[bool] = mapped_column(Boolean)
    cashback_bps: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OperatorRateRow(Base):
    """Rates are exact decimal strings: a float column would round them."""

    __tablename__ = "operator_rates"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[str] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    secret: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class BoxRow(Base):
    __tablename__ = "boxes"
    __table_args__ = (UniqueConstraint("operator_id", "slug"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    slug: Mapped[str] = mapped_column(String(64))
    # Presentation, not part of the offer: changed in place by an import, never versioned.
    image: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BoxVersionRow(Base):
    """Immutable once written: a changed box is a new version, the old one superseded.
    Only ``status`` changes: ``active`` and ``inactive`` (deactivated, not superseded)
    toggle in place, and either becomes ``superseded`` when a new version is published."""

    __tablename__ = "box_versions"
    __table_args__ = (
        UniqueConstraint("box_id", "version"),
        CheckConstraint("price_minor > 0", name="price_positive"),
        CheckConstraint(_in("status", ("active", "superseded", "inactive")), name="status"),
        CheckConstraint(CASHBACK_BPS, name="cashback_bps"),
        Index(
            "uq_box_versions_one_current",
            "box_id",
            unique=True,
            postgresql_where=text(CURRENT_VERSION),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("boxes.id"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    refundable: Mapped[bool] = mapped_column(Boolean)
    cashback_enabled: Mapped[bool] = mapped_column(Boolean)
    cashback_bps: Mapped[int | None] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PrizeRow(Base):
    __tablename__ = "prizes"
    __table_args__ = (
        UniqueConstraint("box_version_id", "position"),
        CheckConstraint("value_minor >= 0", name="value_non_negative"),
        CheckConstraint(CASHBACK_BPS, name="cashback_bps"),
        CheckConstraint(_in("type", PRIZE_TYPES), name="type"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    box_version_id: Mapped[int] = mapped_column(ForeignKey("box_versions.id"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    value_minor: Mapped[int] = mapped_column(BigInteger)
    odds: Mapped[str] = mapped_column(String(40))
    cashback_bps: Mapped[int | None] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    image_url: Mapped[str | None] = mapped_column(String(2048))
    shippable: Mapped[bool] = mapped_column(Boolean)


class SeedPairRow(Base):
    """A player's provably fair seeds: one ``current`` pair per (operator, player), and the
    revealed ones before it. The server seed stays sealed until it is revealed; its hash is
    the commitment players see."""

    __tablename__ = "seed_pairs"
    __table_args__ = (
        UniqueConstraint("operator_id", "player_external_id", "server_seed_hash"),
        Index(
            "uq_seed_pairs_one_current",
            "operator_id",
            "player_external_id",
            unique=True,
            postgresql_where=text("state = 'current'"),
        ),
        CheckConstraint(_in("state", ("current", "revealed")), name="state"),
        CheckConstraint("next_nonce >= 0", name="next_nonce_non_negative"),
        CheckConstraint("(state = 'revealed') = (revealed_at IS NOT NULL)", name="revealed_when"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    player_external_id: Mapped[str] = mapped_column(String(190))
    server_seed: Mapped[str] = mapped_column(EncryptedText)
    server_seed_hash: Mapped[str] = mapped_column(String(64))
    client_seed: Mapped[str] = mapped_column(String(64))
    next_nonce: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revealed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RoundRow(Base):
    __tablename__ = "rounds"
    __table_args__ = (
        # One live round per player action; a voided one (refused debit) frees the action
        # id so that the player's retry is evaluated afresh.
        Index(
            "uq_rounds_client_action",
            "operator_id",
            "player_external_id",
            "client_action_id",
            unique=True,
            postgresql_where=text("status <> 'voided'"),
        ),
        # History's "open" rows: prepaid rounds that were opened, by the time they were.
        Index(
            "ix_rounds_operator_openings",
            "operator_id",
            "updated_at",
            "id",
            postgresql_where=text(OPENED_PREPAID),
        ),
        Index(
            "ix_rounds_player_openings",
            "operator_id",
            "player_external_id",
            "updated_at",
            "id",
            postgresql_where=text(OPENED_PREPAID),
        ),
        CheckConstraint(_in("status", ROUND_STATUSES), name="status"),
        CheckConstraint(_in("mode", ("open", "prepay")), name="mode"),
        CheckConstraint("bet_minor > 0 AND operator_amount_minor > 0", name="amounts_positive"),
        # Only a prepay round can ever be held or refunded.
        CheckConstraint(
            "mode = 'prepay' OR status NOT IN ('held', 'refund_pending', 'refunded')",
            name="atomic_never_held",
        ),
        # A drawn round has the pair and nonce it was drawn with; no two rounds share one.
        UniqueConstraint("seed_pair_id", "nonce"),
        CheckConstraint("(seed_pair_id IS NULL) = (nonce IS NULL)", name="drawn_with_a_pair"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    player_external_id: Mapped[str] = mapped_column(String(190))
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    client_action_id: Mapped[str] = mapped_column(String(80))
    currency: Mapped[str] = mapped_column(String(3))
    bet_minor: Mapped[int] = mapped_column(BigInteger)
    operator_amount_minor: Mapped[int] = mapped_column(BigInteger)
    rate: Mapped[str] = mapped_column(String(40))
    open_idempotency_key: Mapped[str | None] = mapped_column(String(255))
    seed_pair_id: Mapped[int | None] = mapped_column(ForeignKey("seed_pairs.id"))
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReelRow(Base):
    __tablename__ = "round_reels"
    __table_args__ = (
        UniqueConstraint("round_id", "reel_index"),
        CheckConstraint("reel_index >= 0", name="reel_index"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    reel_index: Mapped[int] = mapped_column(Integer)
    box_version_id: Mapped[int] = mapped_column(ForeignKey("box_versions.id"))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    prize_id: Mapped[int | None] = mapped_column(ForeignKey("prizes.id"))


class InventoryItemRow(Base):
    __tablename__ = "inventory_items"
    __table_args__ = (
        UniqueConstraint("round_id", "reel_index"),
        CheckConstraint(_in("state", ITEM_STATES), name="state"),
        Index("ix_inventory_items_owner", "operator_id", "player_external_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    player_external_id: Mapped[str] = mapped_column(String(190))
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    reel_index: Mapped[int] = mapped_column(Integer)
    prize_id: Mapped[int] = mapped_column(ForeignKey("prizes.id"))
    box_version_id: Mapped[int] = mapped_column(ForeignKey("box_versions.id"))
    name: Mapped[str] = mapped_column(String(200))
    value_minor: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MoneyMovementRow(Base):
    """The ledger: one row per wallet operation, written before the call is sent."""

    __tablename__ = "money_movements"
    __table_args__ = (
        UniqueConstraint("operator_id", "idempotency_key", name="uq_money_movements_operator_key"),
        CheckConstraint(_in("kind", ("debit", "credit")), name="kind"),
        CheckConstraint(_in("reason", ("open", "prepay", "cashback", "refund")), name="reason"),
        CheckConstraint(_in("status", ("pending", "accepted", "refused")), name="status"),
        CheckConstraint("amount_minor > 0 AND operator_amount_minor > 0", name="amount_positive"),
        CheckConstraint(
            "(reason = 'cashback' AND kind = 'credit' AND inventory_item_id IS NOT NULL)"
            " OR (reason = 'refund' AND kind = 'credit' AND round_id IS NOT NULL)"
            " OR (reason IN ('open', 'prepay') AND kind = 'debit' AND round_id IS NOT NULL)",
            name="reason_subject",
        ),
        Index(
            "uq_money_movements_live_item_credit",
            "inventory_item_id",
            unique=True,
            postgresql_where=text("reason = 'cashback' AND status IN ('pending', 'accepted')"),
        ),
        Index(
            "uq_money_movements_live_round_credit",
            "round_id",
            unique=True,
            postgresql_where=text("reason = 'refund' AND status IN ('pending', 'accepted')"),
        ),
        Index(
            "uq_money_movements_round_debit",
            "round_id",
            unique=True,
            postgresql_where=text("kind = 'debit'"),
        ),
        Index("ix_money_movements_pending", "status", "lease_expires_at"),
        # History pages (keyset on created_at, id): operator-wide and per player.
        Index("ix_money_movements_operator_history", "operator_id", "created_at", "id"),
        Index(
            "ix_money_movements_player_history",
            "operator_id",
            "player_external_id",
            "created_at",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    player_external_id: Mapped[str] = mapped_column(String(190))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    operator_amount_minor: Mapped[int] = mapped_column(BigInteger)
    operator_currency: Mapped[str] = mapped_column(String(3))
    rate: Mapped[str] = mapped_column(String(40))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    round_public_id: Mapped[str | None] = mapped_column(String(32))
    inventory_item_id: Mapped[int | None] = mapped_column(ForeignKey("inventory_items.id"))
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    balance_after_minor: Mapped[int | None] = mapped_column(BigInteger)
    provider_txn_ref: Mapped[str | None] = mapped_column(String(255))
    refusal_code: Mapped[str | None] = mapped_column(String(64))
    refusal_message: Mapped[str | None] = mapped_column(String(500))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class IdempotencyRecordRow(Base):
    """The durable half of the idempotency layer: survives a Redis flush or eviction."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("operator_id", "idempotency_key"),
        CheckConstraint(_in("state", ("in_progress", "completed")), name="state"),
        # The purge's way in (statements.DELETE_EXPIRED_BATCH): only completed records
        # expire, so in-progress claims add nothing to it.
        Index(
            "ix_idempotency_records_expired",
            "expires_at",
            postgresql_where=text("state = 'completed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    # Caller keys are at most 255 characters; purchase keys are derived from the player id
    # and clientActionId, so they may be longer.
    idempotency_key: Mapped[str] = mapped_column(String(320))
    endpoint: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str] = mapped_column(String(128))
    lease_token: Mapped[int] = mapped_column(Integer, default=1)
    lease_expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
