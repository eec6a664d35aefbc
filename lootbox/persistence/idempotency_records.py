"""The durable idempotency records: the guarantee behind the Redis fast path."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select, update

from lootbox.persistence import statements as hot
from lootbox.persistence.models import IdempotencyRecordRow
from lootbox.persistence.repositories import _Repository
from lootbox.ports import DurableClaim, DurableKey, IdempotencyRecord


class IdempotencyRecordRepository(_Repository):
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
    ) -> DurableClaim:
        """Insert the in-progress record, or say what already holds the key.

        ``ON CONFLICT DO NOTHING`` makes the insert the lock: of two racing callers exactly
        one gets the row. An in-progress record whose lease expired (its worker died) is
        taken over with a new fencing token.
        """
        inserted = self._run_insert(
            hot.NEW_IDEMPOTENCY_RECORD,
            {
                "operator_id": operator_id,
                "idempotency_key": key,
                "endpoint": endpoint,
                "fingerprint": fingerprint,
                "state": "in_progress",
                "request_id": request_id,
                "lease_token": 1,
                "lease_expires_at": lease_until,
                "created_at": now,
            },
        )
        if inserted is not None:
            return DurableClaim("claimed", lease_token=1)

        row = self.session.scalar(self._select(operator_id, key))
        if row is None:  # deleted between our insert and read: let the caller retry
            return DurableClaim("in_progress")
        record = _record(row)
        if row.fingerprint != fingerprint:
            return DurableClaim("mismatch", record)
        if row.state == "completed":
            return DurableClaim("completed", record)
        if row.lease_expires_at > now:
            return DurableClaim("in_progress", record)
        # Computed once, before the UPDATE: the ORM synchronises ``row`` afterwards.
        token = row.lease_token + 1
        taken = self.session.execute(
            update(IdempotencyRecordRow)
            .where(
                IdempotencyRecordRow.id == row.id,
                IdempotencyRecordRow.state == "in_progress",
                IdempotencyRecordRow.lease_token == row.lease_token,
            )
            .values(lease_token=token, lease_expires_at=lease_until, request_id=request_id)
        )
        assert isinstance(taken, CursorResult)
        if taken.rowcount == 1:
            return DurableClaim("claimed", lease_token=token)
        return DurableClaim("in_progress", record)

    def describe(self, operator_id: int, key: str) -> DurableKey | None:
        row = self.session.scalar(self._select(operator_id, key))
        return _durable(row) if row else None

    def list_for_operator(
        self,
        operator_id: int,
        *,
        state: str | None = None,
        created_before: datetime | None = None,
        limit: int = 100,
    ) -> list[DurableKey]:
        """Records of one operator, newest first, optionally of one state and older than
        a moment."""
        query = select(IdempotencyRecordRow).where(IdempotencyRecordRow.operator_id == operator_id)
        if state is not None:
            query = query.where(IdempotencyRecordRow.state == state)
        if created_before is not None:
            query = query.where(IdempotencyRecordRow.created_at < created_before)
        newest_first = (IdempotencyRecordRow.created_at.desc(), IdempotencyRecordRow.id.desc())
        rows = self.session.scalars(query.order_by(*newest_first).limit(limit))
        return [_durable(row) for row in rows]

    def release_stuck(self, operator_id: int, key: str, now: datetime) -> bool:
        """Delete an in-progress record whose lease has expired (on-call's release); a
        record that is completed or still held is left alone."""
        result = self.session.execute(
            delete(IdempotencyRecordRow).where(
                IdempotencyRecordRow.operator_id == operator_id,
                IdempotencyRecordRow.idempotency_key == key,
                IdempotencyRecordRow.state == "in_progress",
                IdempotencyRecordRow.lease_expires_at <= now,
            )
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

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
    ) -> bool:
        params = _held(operator_id, key, lease_token) | {
            "status": status,
            "body": body,
            "now": now,
            "expires": expires_at,
        }
        return self._run(hot.IDEMPOTENCY_COMPLETE, params).rowcount == 1

    def suspend(self, *, operator_id: int, key: str, lease_token: int, now: datetime) -> None:
        """Free the lease but keep the record and its fingerprint: the outcome may have
        moved money, so the next attempt with this key must be the same request."""
        self._run(hot.IDEMPOTENCY_SUSPEND, _held(operator_id, key, lease_token) | {"now": now})

    def delete_expired(self, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` completed records whose expiry is before ``now``,
        oldest first, skipping rows another purger holds; how many."""
        return self._run(hot.DELETE_EXPIRED_BATCH, {"now": now, "limit": limit}).rowcount

    def count_expired(self, now: datetime) -> int:
        """How many completed records expired before ``now``."""
        return int(self._run(hot.COUNT_EXPIRED, {"now": now}).scalar_one())

    def release(self, *, operator_id: int, key: str, lease_token: int) -> None:
        """Forget a non-final attempt so that a retry re-evaluates from scratch."""
        self._run(hot.IDEMPOTENCY_RELEASE, _held(operator_id, key, lease_token))

    @staticmethod
    def _select(operator_id: int, key: str):  # type: ignore[no-untyped-def]
        return select(IdempotencyRecordRow).where(
            IdempotencyRecordRow.operator_id == operator_id,
            IdempotencyRecordRow.idempotency_key == key,
        )


def _held(operator_id: int, key: str, lease_token: int) -> dict[str, Any]:
    """The parameters of the fenced writes (``statements._HELD``): this caller's lease."""
    return {"of_operator": operator_id, "key": key, "token": lease_token}


def _record(row: IdempotencyRecordRow) -> IdempotencyRecord:
    return IdempotencyRecord(
        state="completed" if row.state == "completed" else "in_progress",
        endpoint=row.endpoint,
        fingerprint=row.fingerprint,
        request_id=row.request_id,
        created_at=row.created_at.isoformat(),
        status=row.status_code,
        body=row.response_body,
    )


def _durable(row: IdempotencyRecordRow) -> DurableKey:
    return DurableKey(
        key=row.idempotency_key,
        record=_record(row),
        lease_token=row.lease_token,
        lease_expires_at=row.lease_expires_at,
        completed_at=row.completed_at,
        expires_at=row.expires_at,
    )
