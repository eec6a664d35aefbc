"""Repositories: rows in, domain snapshots out; every state change is a conditional
UPDATE whose row count says whether this caller made the transition."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from sqlalchemy import CursorResult, Row, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lootbox.domain.records import (
    ApiKey,
    BoxSpec,
    BoxVersion,
    CashoutCandidate,
    InventoryItem,
    MoneyMovement,
    MovementKind,
    MovementReason,
    MovementStatus,
    NewMovement,
    Operator,
    Prize,
    PrizeSpec,
    PrizeType,
    Reel,
    RefundCandidate,
    Round,
    WalletSettings,
)
from lootbox.domain.states import ItemState, PurchaseMode, RoundStatus
from lootbox.persistence import statements as hot
from lootbox.persistence.models import (
    CURRENT_VERSION,
    ApiKeyRow,
    BoxRow,
    BoxVersionRow,
    InventoryItemRow,
    MoneyMovementRow,
    OperatorRateRow,
    OperatorRow,
    PrizeRow,
    ReelRow,
    RoundRow,
    SeedPairRow,
)
from lootbox.ports import WalletAccepted, WalletRefusal


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount


class _Repository:
    def __init__(self, session: Session):
        self.session = session

    @staticmethod
    def _insert(table: Any) -> Any:
        """PostgreSQL's ``INSERT``, which has ``ON CONFLICT``."""
        return postgresql.insert(table)

    def _run(self, statement: Any, params: dict[str, Any]) -> CursorResult[Any]:
        """Run one of ``lootbox.persistence.statements`` on this transaction's connection.
        ORM changes not yet flushed are flushed first, as the ORM's autoflush would.

        A transaction's first statement that finds its connection gone (the server
        restarted or ended it while it sat idle in the pool, unseen at checkout) runs once
        more on a fresh connection: nothing of the transaction can have happened yet.
        Never a later statement's: its transaction's earlier work is lost with it."""
        first = not self.session.in_transaction()
        self.session.flush()
        try:
            return self.session.connection().execute(statement, params)
        except DBAPIError as exc:
            if not (first and exc.connection_invalidated):
                raise
        self.session.rollback()  # forgets the dead connection
        return self.session.connection().execute(statement, params)

    def _run_insert(self, statement: Any, params: dict[str, Any]) -> Any:
        """A prebuilt ``INSERT … ON CONFLICT DO NOTHING RETURNING …``: the returned row,
        or ``None`` when a unique index said no."""
        return self._run(statement, params).first()


# --- operators and keys ------------------------------------------------------------------


class OperatorRepository(_Repository):
    def get(self, operator_id: int) -> Operator | None:
        row = self.session.get(OperatorRow, operator_id)
        return self._to_domain(row) if row else None

    def get_by_slug(self, slug: str) -> Operator | None:
        row = self.session.scalar(select(OperatorRow).where(OperatorRow.slug == slug))
        return self._to_domain(row) if row else None

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
        """Create the operator; ``None`` if the slug is taken (by a racing call too)."""
        inserted = self.session.execute(
            self._insert(OperatorRow)
            .values(
                slug=slug,
                currency=currency,
                wallet_url=wallet_url,
                wallet_secret=wallet_secret,
                refunds_enabled=refunds_enabled,
                cashback_enabled=cashback_enabled,
                cashback_bps=cashback_bps,
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(OperatorRow.id)
        ).scalar()
        return self.get(inserted) if inserted is not None else None

    def update_policies(self, operator_id: int, **changes: Any) -> None:
        allowed = {"refunds_enabled", "cashback_enabled", "cashback_bps", "wallet_url"}
        allowed |= {"wallet_secret", "wallet_connect_timeout_ms", "wallet_read_timeout_ms"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"not an operator policy: {sorted(unknown)}")
        if changes:
            self.session.execute(
                update(OperatorRow).where(OperatorRow.id == operator_id).values(**changes)
            )

    def set_rate(self, operator_id: int, currency: str, rate: Decimal, now: datetime) -> None:
        stmt = self._insert(OperatorRateRow).values(
            operator_id=operator_id, currency=currency, rate=str(rate), updated_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["operator_id", "currency"],
            set_={"rate": stmt.excluded.rate, "updated_at": stmt.excluded.updated_at},
        )
        self.session.execute(stmt)

    def _to_domain(self, row: OperatorRow) -> Operator:
        rates = self.session.execute(
            select(OperatorRateRow.currency, OperatorRateRow.rate).where(
                OperatorRateRow.operator_id == row.id
            )
        ).all()

        def seconds(ms: int | None) -> float | None:
            return None if ms is None else ms / 1000

        return Operator(
            id=row.id,
            slug=row.slug,
            currency=row.currency,
            wallet=WalletSettings(
                url=row.wallet_url,
                secret=row.wallet_secret,
                connect_timeout_seconds=seconds(row.wallet_connect_timeout_ms),
                read_timeout_seconds=seconds(row.wallet_read_timeout_ms),
            ),
            refunds_enabled=row.refunds_enabled,
            cashback_enabled=row.cashback_enabled,
            cashback_bps=row.cashback_bps,
            rates={currency: Decimal(rate) for currency, rate in rates},
        )

    # keys

    def get_by_active_key(self, key_id: str) -> tuple[str, Operator] | None:
        """``(secret, operator)`` of an unrevoked API key: what every signed request needs,
        read with one join (and the operator's rates) on the hot path."""
        found = self.session.execute(
            select(ApiKeyRow.secret, OperatorRow)
            .join(OperatorRow, OperatorRow.id == ApiKeyRow.operator_id)
            .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
        ).first()
        if found is None:
            return None
        secret, row = found
        return secret, self._to_domain(row)

    def get_api_key(self, key_id: str) -> ApiKey | None:
        row = self.session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_id == key_id))
        if row is None:
            return None
        return ApiKey(
            key_id=row.key_id,
            operator_id=row.operator_id,
            secret=row.secret,
            revoked=row.revoked_at is not None,
        )

    def add_api_key(self, operator_id: int, key_id: str, secret: str, now: datetime) -> None:
        self.session.add(
            ApiKeyRow(key_id=key_id, operator_id=operator_id, secret=secret, created_at=now)
        )
        self.session.flush()

    def reseal_secrets(self) -> int:
        """Write every stored secret again: the secret columns seal with the first of
        LOOTBOX_ENCRYPTION_KEYS, so after this no row needs an older key. Returns how
        many secrets were rewritten."""
        count = 0
        for table, column in (
            (ApiKeyRow, ApiKeyRow.secret),
            (OperatorRow, OperatorRow.wallet_secret),
            (SeedPairRow, SeedPairRow.server_seed),
        ):
            for row_id, secret in self.session.execute(select(table.id, column)).all():
                self.session.execute(
                    update(table).where(table.id == row_id).values({column: secret})
                )
                count += 1
        return count

    def revoke_api_key(self, key_id: str, now: datetime) -> bool:
        result = self.session.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return _rowcount(result) == 1


# --- catalog ------------------------------------------------------------------------------


class CatalogRepository(_Repository):
    def get_box_version(self, operator_id: int, box_version_id: int) -> BoxVersion | None:
        version = self._run(
            hot.BOX_VERSION, {"version_id": box_version_id, "operator_id": operator_id}
        ).first()
        if version is None:
            return None
        prizes = self._run(hot.PRIZES_OF_VERSION, {"version_id": version.id}).all()
        return BoxVersion(
            id=version.id,
            box_id=version.box_id,
            box_slug=version.box_slug,
            name=version.name,
            version=version.version,
            price_minor=version.price_minor,
            refundable=version.refundable,
            cashback_enabled=version.cashback_enabled,
            cashback_bps=version.cashback_bps,
            active=version.status == "active",
            prizes=tuple(prize_record(p) for p in prizes),
        )

    def publish(
        self, operator_id: int, spec: BoxSpec, content_hash: str, now: datetime
    ) -> tuple[int, int, bool]:
        """Publish a box: keep the current version if its content is unchanged (setting its
        status to what ``spec.is_active`` says, in place), else add a new version and
        supersede the current one. The box's image and custom attributes are replaced.
        Returns ``(box_id, version_id, created)``."""
        box = self.session.scalar(
            select(BoxRow)
            .where(BoxRow.operator_id == operator_id, BoxRow.slug == spec.slug)
            .with_for_update()
        )
        if box is None:
            box = BoxRow(operator_id=operator_id, slug=spec.slug, created_at=now)
            self.session.add(box)
        box.image = spec.image
        box.custom_attributes = spec.custom_attributes
        self.session.flush()
        status = "active" if spec.is_active else "inactive"
        current = self.session.scalar(
            select(BoxVersionRow).where(BoxVersionRow.box_id == box.id, text(CURRENT_VERSION))
        )
        if current is not None and current.content_hash == content_hash:
            if current.status != status:
                current.status = status
                self.session.flush()
            return box.id, current.id, False
        latest = self.session.scalar(
            select(func.max(BoxVersionRow.version)).where(BoxVersionRow.box_id == box.id)
        )
        if current is not None:
            current.status = "superseded"
            self.session.flush()
        version = BoxVersionRow(
            box_id=box.id,
            version=(latest or 0) + 1,
            name=spec.name,
            price_minor=spec.price_minor,
            refundable=spec.refundable,
            cashback_enabled=spec.cashback_enabled,
            cashback_bps=spec.cashback_bps,
            content_hash=content_hash,
            status=status,
            created_at=now,
        )
        self.session.add(version)
        self.session.flush()
        self.session.add_all(
            PrizeRow(
                box_version_id=version.id,
                position=position,
                name=prize.name,
                value_minor=prize.value_minor,
                odds=str(prize.odds),
                cashback_bps=prize.cashback_bps,
                type=str(prize.type),
                image_url=prize.image_url,
                shippable=prize.shippable,
            )
            for position, prize in enumerate(spec.prizes)
        )
        self.session.flush()
        return box.id, version.id, True


def prize_record(row: PrizeRow | Row[Any]) -> Prize:
    """A prize row as the domain sees it; ``odds`` exactly as published (a decimal string)."""
    return Prize(
        id=row.id,
        name=row.name,
        value_minor=row.value_minor,
        odds=Decimal(row.odds),
        cashback_bps=row.cashback_bps,
        type=PrizeType(row.type),
        image_url=row.image_url,
        shippable=row.shippable,
    )


# --- rounds and items ------------------------------------------------------------------------


class RoundRepository(_Repository):
    def get(self, round_id: int) -> Round | None:
        row = self._run(hot.ROUND_BY_ID, {"round_id": round_id}).first()
        return self._to_domain(row) if row else None

    def get_by_public_id(
        self, operator_id: int, public_id: str, *, for_update: bool = False
    ) -> Round | None:
        statement = hot.ROUND_FOR_UPDATE if for_update else hot.ROUND
        row = self._run(statement, {"operator_id": operator_id, "public_id": public_id}).first()
        return self._to_domain(row) if row else None

    def lock_for_refund(self, operator_id: int, public_id: str) -> RefundCandidate | None:
        """The round locked, with its live refund and its boxes' refundability: one
        statement (``statements.ROUND_FOR_CANCEL``)."""
        row = self._run(
            hot.ROUND_FOR_CANCEL, {"operator_id": operator_id, "public_id": public_id}
        ).first()
        if row is None:
            return None
        return RefundCandidate(
            round=self._to_domain(row, reels=()),
            live_refund=_live_movement(row),
            all_boxes_refundable=bool(row.all_boxes_refundable),
        )

    def get_by_client_action(
        self, operator_id: int, player_external_id: str, client_action_id: str
    ) -> Round | None:
        row = self.session.scalar(
            select(RoundRow).where(
                RoundRow.operator_id == operator_id,
                RoundRow.player_external_id == player_external_id,
                RoundRow.client_action_id == client_action_id,
                RoundRow.status != str(RoundStatus.VOIDED),
            )
        )
        return self._to_domain(row) if row else None

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
        """Insert a ``debit_pending`` round with its reels; ``None`` if the player's
        ``clientActionId`` already has a round (a racing duplicate purchase)."""
        round_id = self.session.execute(
            self._insert(RoundRow)
            .values(
                public_id=public_id,
                operator_id=operator_id,
                player_external_id=player_external_id,
                mode=str(mode),
                status=str(RoundStatus.DEBIT_PENDING),
                client_action_id=client_action_id,
                currency=currency,
                bet_minor=bet_minor,
                operator_amount_minor=operator_amount_minor,
                rate=str(rate),
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing()
            .returning(RoundRow.id)
        ).scalar()
        if round_id is None:
            return None
        self.session.add_all(
            ReelRow(
                round_id=round_id,
                reel_index=reel.reel_index,
                box_version_id=reel.box_version_id,
                price_minor=reel.price_minor,
            )
            for reel in reels
        )
        self.session.flush()
        # As written: the round is what these values and the reels make it, no re-read.
        return Round(
            id=round_id,
            public_id=public_id,
            operator_id=operator_id,
            player_external_id=player_external_id,
            mode=mode,
            status=RoundStatus.DEBIT_PENDING,
            client_action_id=client_action_id,
            currency=currency,
            bet_minor=bet_minor,
            operator_amount_minor=operator_amount_minor,
            rate=rate,
            open_idempotency_key=None,
            reels=tuple(sorted(reels, key=lambda reel: reel.reel_index)),
            created_at=now,
        )

    def transition(
        self,
        round_id: int,
        from_status: RoundStatus,
        to_status: RoundStatus,
        now: datetime,
        **values: Any,
    ) -> bool:
        params = {
            "round_id": round_id,
            "from_status": str(from_status),
            "status": str(to_status),
            "updated_at": now,
            **values,
        }
        return self._run(hot.ROUND_TRANSITION, params).rowcount == 1

    def set_prize(self, round_id: int, reel_index: int, prize_id: int) -> None:
        self.session.execute(
            update(ReelRow)
            .where(
                ReelRow.round_id == round_id,
                ReelRow.reel_index == reel_index,
                ReelRow.prize_id.is_(None),
            )
            .values(prize_id=prize_id)
        )

    def _to_domain(self, row: RoundRow | Row[Any], *, reels: Sequence[Reel] | None = None) -> Round:
        # An ORM row or a Core row of the same table (statements.py): the columns either way.
        if reels is None:
            reels = [
                Reel(r.reel_index, r.box_version_id, r.price_minor, r.prize_id)
                for r in self._run(hot.REELS_OF_ROUND, {"round_id": row.id}).all()
            ]
        return Round(
            id=row.id,
            public_id=row.public_id,
            operator_id=row.operator_id,
            player_external_id=row.player_external_id,
            mode=PurchaseMode(row.mode),
            status=RoundStatus(row.status),
            client_action_id=row.client_action_id,
            currency=row.currency,
            bet_minor=row.bet_minor,
            operator_amount_minor=row.operator_amount_minor,
            rate=Decimal(row.rate),
            open_idempotency_key=row.open_idempotency_key,
            reels=tuple(reels),
            created_at=row.created_at,
        )


class InventoryRepository(_Repository):
    def get(
        self, operator_id: int, item_id: int, *, for_update: bool = False
    ) -> InventoryItem | None:
        statement = hot.ITEM_FOR_UPDATE if for_update else hot.ITEM
        row = self._run(statement, {"item_id": item_id, "operator_id": operator_id}).first()
        return _item(row) if row else None

    def lock_for_cashout(self, operator_id: int, item_id: int) -> CashoutCandidate | None:
        """The item locked, with its live credit and its cashback rules: one statement
        (``statements.ITEM_FOR_CASHOUT``)."""
        row = self._run(
            hot.ITEM_FOR_CASHOUT, {"item_id": item_id, "operator_id": operator_id}
        ).first()
        if row is None:
            return None
        return CashoutCandidate(
            item=_item(row),
            live_credit=_live_movement(row),
            box_cashback_enabled=row.box_cashback_enabled,
            box_cashback_bps=row.box_cashback_bps,
            prize_cashback_bps=row.prize_cashback_bps,
        )

    def for_round(self, round_id: int) -> list[InventoryItem]:
        rows = self.session.scalars(
            select(InventoryItemRow)
            .where(InventoryItemRow.round_id == round_id)
            .order_by(InventoryItemRow.reel_index)
        ).all()
        return [_item(r) for r in rows]

    def add_many(self, items: Iterable[dict[str, Any]], now: datetime) -> None:
        self.session.add_all(
            InventoryItemRow(
                **item, state=str(ItemState.UNRESOLVED), created_at=now, updated_at=now
            )
            for item in items
        )
        self.session.flush()

    def transition(
        self, item_id: int, from_state: ItemState, to_state: ItemState, now: datetime
    ) -> bool:
        params = {
            "item_id": item_id,
            "from_state": str(from_state),
            "to_state": str(to_state),
            "now": now,
        }
        return self._run(hot.ITEM_TRANSITION, params).rowcount == 1


def _item(row: InventoryItemRow | Row[Any]) -> InventoryItem:
    # An ORM row or a Core row of the same table (statements.py): the columns either way.
    return InventoryItem(
        id=row.id,
        operator_id=row.operator_id,
        player_external_id=row.player_external_id,
        round_id=row.round_id,
        reel_index=row.reel_index,
        prize_id=row.prize_id,
        box_version_id=row.box_version_id,
        name=row.name,
        value_minor=row.value_minor,
        state=ItemState(row.state),
        created_at=row.created_at,
    )


# --- the ledger ----------------------------------------------------------------------------------


class LedgerRepository(_Repository):
    def get(self, movement_id: int) -> MoneyMovement | None:
        row = self.session.get(MoneyMovementRow, movement_id, populate_existing=True)
        return _movement(row) if row else None

    def get_by_key(self, operator_id: int, key: str) -> MoneyMovement | None:
        row = self.session.scalar(
            select(MoneyMovementRow).where(
                MoneyMovementRow.operator_id == operator_id,
                MoneyMovementRow.idempotency_key == key,
            )
        )
        return _movement(row) if row else None

    def live_refund(self, round_id: int) -> MoneyMovement | None:
        row = self._run(hot.LIVE_REFUND, {"subject_id": round_id}).first()
        return _movement(row) if row else None

    def debit_for_round(self, round_id: int) -> MoneyMovement | None:
        row = self.session.scalar(
            select(MoneyMovementRow).where(
                MoneyMovementRow.kind == str(MovementKind.DEBIT),
                MoneyMovementRow.round_id == round_id,
            )
        )
        return _movement(row) if row else None

    def due_for_redrive(
        self, now: datetime, *, after_id: int = 0, limit: int = 100
    ) -> list[MoneyMovement]:
        """Pending movements nobody holds a live lease on at ``now``, oldest first after
        ``after_id``: what the reconciler re-sends. Keyset-paged on the id, so a pass that
        keeps ``now`` fixed never revisits a row; one that became due after ``now`` waits
        for the next pass."""
        rows = self.session.scalars(
            select(MoneyMovementRow)
            .where(MoneyMovementRow.id > after_id, *self._due(now))
            .order_by(MoneyMovementRow.id)
            .limit(limit)
        )
        return [_movement(row) for row in rows]

    def pending(self, *, limit: int) -> list[MoneyMovement]:
        """Every movement whose outcome is not known yet, oldest first (at most ``limit``)."""
        rows = self.session.scalars(
            select(MoneyMovementRow)
            .where(MoneyMovementRow.status == str(MovementStatus.PENDING))
            .order_by(MoneyMovementRow.id)
            .limit(limit)
        )
        return [_movement(row) for row in rows]

    def count_due_for_redrive(self, now: datetime) -> int:
        return int(
            self.session.scalar(
                select(func.count()).select_from(MoneyMovementRow).where(*self._due(now))
            )
            or 0
        )

    @staticmethod
    def _due(now: datetime) -> tuple[Any, ...]:
        """Pending, and nobody holds a live lease on it: free to be (re-)sent."""
        return (
            MoneyMovementRow.status == str(MovementStatus.PENDING),
            (MoneyMovementRow.lease_expires_at.is_(None))
            | (MoneyMovementRow.lease_expires_at <= now),
        )

    def record(
        self, new: NewMovement, now: datetime, *, leased_until: datetime | None = None
    ) -> MoneyMovement | None:
        """Write a pending movement; ``None`` if the key or the subject is already taken
        (the unique indexes decide, so two racing callers cannot both write one).

        With ``leased_until`` the row is written already leased to the caller, who is
        about to send it: one INSERT instead of an INSERT and a ``claim``, and its
        ``RETURNING`` gives the movement as written."""
        row = new_movement_row(new, now, leased_until=leased_until)
        written = self._run_insert(hot.NEW_MOVEMENT, row)
        return _movement(written) if written is not None else None

    def record_credit(
        self, new: NewMovement, now: datetime, *, leased_until: datetime
    ) -> MoneyMovement | None:
        """Write a cashback or refund credit leased to the caller and, in the same
        statement, move its subject to pending (item ``unresolved`` → ``cashback_pending``,
        round ``held`` → ``refund_pending``). ``None``, and nothing moved, when the key or
        the subject's live credit is already taken."""
        statement, pending = _CREDIT_SUBJECT[new.reason]
        row = new_movement_row(new, now, leased_until=leased_until)
        params = {f"new_{name}": value for name, value in row.items()} | pending | {"now": now}
        written = self._run(statement, params).first()
        return _movement(written) if written is not None else None

    def settle_credit(
        self,
        movement: MoneyMovement,
        token: int,
        outcome: WalletAccepted | WalletRefusal,
        now: datetime,
    ) -> tuple[bool, bool]:
        """Settle a credit under the caller's fencing token and move its subject out of
        pending in the same statement: accepted, to ``cashed_back``/``refunded``; refused,
        back to ``unresolved``/``held``. Returns ``(settled, moved)``."""
        params: dict[str, Any] = {"movement_id": movement.id, "token": token, "now": now}
        if isinstance(outcome, WalletAccepted):
            answer = "accepted"
            params |= {
                "balance_after": outcome.balance_after_minor,
                "txn_ref": outcome.provider_txn_ref,
            }
        else:
            answer = "refused"
            params |= {"code": outcome.code, "message": outcome.message[:500]}
        statement, states = _SETTLE_CREDIT[movement.reason][answer]
        row = self._run(statement, params | states).one()
        return row.settled == 1, row.moved == 1

    def rearm(self, movement_id: int, new: NewMovement, now: datetime) -> bool:
        """Reuse a refused movement's key for a new attempt (the wallet does not consume a
        refused key). Only a refused row can be re-armed, so nothing live is overwritten."""
        result = self.session.execute(
            update(MoneyMovementRow)
            .where(
                MoneyMovementRow.id == movement_id,
                MoneyMovementRow.status == str(MovementStatus.REFUSED),
            )
            .values(
                status=str(MovementStatus.PENDING),
                amount_minor=new.amount_minor,
                currency=new.currency,
                operator_amount_minor=new.operator_amount_minor,
                rate=str(new.rate),
                refusal_code=None,
                refusal_message=None,
                completed_at=None,
                lease_expires_at=None,
                attempts=0,
                last_error=None,
                updated_at=now,
            )
        )
        return _rowcount(result) == 1

    def claim(self, movement_id: int, now: datetime, lease_until: datetime) -> int | None:
        """Take the lease on a pending movement; returns the new fencing token, or ``None``
        if another caller holds an unexpired lease (its wallet call is in flight)."""
        token: int | None = self.session.execute(
            update(MoneyMovementRow)
            .where(MoneyMovementRow.id == movement_id, *self._due(now))
            .values(
                lease_token=MoneyMovementRow.lease_token + 1,
                lease_expires_at=lease_until,
                attempts=MoneyMovementRow.attempts + 1,
                updated_at=now,
            )
            .returning(MoneyMovementRow.lease_token)
        ).scalar_one_or_none()
        return token

    def mark_accepted(
        self,
        movement_id: int,
        token: int,
        balance_after_minor: int | None,
        provider_txn_ref: str | None,
        now: datetime,
    ) -> bool:
        return self._finish(
            hot.MOVEMENT_ACCEPTED,
            movement_id,
            token,
            now,
            balance_after=balance_after_minor,
            txn_ref=provider_txn_ref,
        )

    def mark_refused(
        self, movement_id: int, token: int, code: str, message: str, now: datetime
    ) -> bool:
        return self._finish(
            hot.MOVEMENT_REFUSED, movement_id, token, now, code=code, message=message[:500]
        )

    def release(self, movement_id: int, token: int, error: str, now: datetime) -> bool:
        """Outcome unknown: keep it pending but free the lease so the next attempt (or the
        reconciler) re-drives it at once with the same key."""
        return self._finish(hot.MOVEMENT_RELEASED, movement_id, token, now, error=error[:500])

    def _finish(
        self, statement: Any, movement_id: int, token: int, now: datetime, **values: Any
    ) -> bool:
        # The fencing token (in the statement): a late finisher whose lease was taken over
        # changes nothing.
        params = {"movement_id": movement_id, "token": token, "now": now, **values}
        return self._run(statement, params).rowcount == 1


def _moves(statement: Any, from_state: str, to_state: str) -> tuple[Any, dict[str, str]]:
    """A statement that moves a subject, with the states it moves it between."""
    return statement, {"from_state": str(from_state), "to_state": str(to_state)}


# Per credit reason: the statement recording it with its subject's move to pending, and the
# subject's states around it.
_CREDIT_SUBJECT: dict[MovementReason, tuple[Any, dict[str, str]]] = {
    MovementReason.CASHBACK: _moves(
        hot.RECORD_CASHBACK, ItemState.UNRESOLVED, ItemState.CASHBACK_PENDING
    ),
    MovementReason.REFUND: _moves(hot.RECORD_REFUND, RoundStatus.HELD, RoundStatus.REFUND_PENDING),
}


# Per credit reason and wallet answer: the settling statement and the subject's move.
_SETTLE_CREDIT: dict[MovementReason, dict[str, tuple[Any, dict[str, str]]]] = {
    MovementReason.CASHBACK: {
        "accepted": _moves(
            hot.SETTLE_CASHBACK["accepted"], ItemState.CASHBACK_PENDING, ItemState.CASHED_BACK
        ),
        "refused": _moves(
            hot.SETTLE_CASHBACK["refused"], ItemState.CASHBACK_PENDING, ItemState.UNRESOLVED
        ),
    },
    MovementReason.REFUND: {
        "accepted": _moves(
            hot.SETTLE_REFUND["accepted"], RoundStatus.REFUND_PENDING, RoundStatus.REFUNDED
        ),
        "refused": _moves(
            hot.SETTLE_REFUND["refused"], RoundStatus.REFUND_PENDING, RoundStatus.HELD
        ),
    },
}


def new_movement_row(
    new: NewMovement, now: datetime, *, leased_until: datetime | None = None
) -> dict[str, Any]:
    """The columns of a new pending movement: never sent, or (``leased_until``) leased to
    the caller about to send it, as ``claim`` would leave it: the first attempt under
    fencing token 1."""
    token = attempts = 1 if leased_until is not None else 0
    return {
        "operator_id": new.operator_id,
        "idempotency_key": new.idempotency_key,
        "kind": str(new.kind),
        "reason": str(new.reason),
        "status": str(MovementStatus.PENDING),
        "player_external_id": new.player_external_id,
        "amount_minor": new.amount_minor,
        "currency": new.currency,
        "operator_amount_minor": new.operator_amount_minor,
        "operator_currency": new.operator_currency,
        "rate": str(new.rate),
        "round_id": new.round_id,
        "round_public_id": new.round_public_id,
        "inventory_item_id": new.inventory_item_id,
        "lease_token": token,
        "lease_expires_at": leased_until,
        "attempts": attempts,
        "created_at": now,
        "updated_at": now,
    }


def _live_movement(row: Row[Any]) -> MoneyMovement | None:
    """The ``live_``-prefixed movement columns of a joined locking read, if any joined."""
    if row.live_id is None:
        return None
    fields = {k.removeprefix("live_"): v for k, v in row._mapping.items() if k.startswith("live_")}
    return _movement(SimpleNamespace(**fields))


def _movement(row: MoneyMovementRow | Row[Any] | SimpleNamespace) -> MoneyMovement:
    # An ORM row or a Core row of the same table (statements.py): the columns either way.
    return MoneyMovement(
        id=row.id,
        operator_id=row.operator_id,
        idempotency_key=row.idempotency_key,
        kind=MovementKind(row.kind),
        reason=MovementReason(row.reason),
        status=MovementStatus(row.status),
        player_external_id=row.player_external_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        operator_amount_minor=row.operator_amount_minor,
        operator_currency=row.operator_currency,
        rate=Decimal(row.rate),
        round_id=row.round_id,
        round_public_id=row.round_public_id,
        inventory_item_id=row.inventory_item_id,
        lease_token=row.lease_token,
        lease_expires_at=row.lease_expires_at,
        balance_after_minor=row.balance_after_minor,
        provider_txn_ref=row.provider_txn_ref,
        refusal_code=row.refusal_code,
        attempts=row.attempts,
        created_at=row.created_at,
        last_error=row.last_error,
    )


__all__ = [
    "BoxSpec",
    "CatalogRepository",
    "InventoryRepository",
    "LedgerRepository",
    "NewMovement",
    "OperatorRepository",
    "PrizeSpec",
    "RoundRepository",
]
