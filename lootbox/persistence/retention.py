"""Deleting idempotency records past their retention: the SQL behind the worker's purge and
``flask idem purge`` (lootbox/services/retention.py).

Each batch is one short transaction of its own: a ``DELETE`` of at most ``limit`` rows
picked oldest first along ``ix_idempotency_records_expired`` (a partial index of completed
records). ``FOR UPDATE SKIP LOCKED`` lets two purgers (two workers, or the worker and
on-call's command) take different rows instead of queueing behind each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from lootbox.domain.errors import ServiceUnavailable
from lootbox.persistence.models import IdempotencyRecordRow

RECORDS: Table = IdempotencyRecordRow.__table__  # type: ignore[assignment]

# Completed and past its expiry. An in-progress record (a request running, or suspended
# after a 503 because money may have moved) has no expiry and is never matched. The state
# is literal SQL, the predicate of the partial index: as a bound parameter, the generic
# plan of a prepared statement (DATABASE_PREPARED_STATEMENTS=on) could not use the index.
_EXPIRED = (
    text("idempotency_records.state = 'completed'"),
    RECORDS.c.expires_at < bindparam("now"),
)

DELETE_EXPIRED_BATCH = delete(RECORDS).where(
    RECORDS.c.id.in_(
        select(RECORDS.c.id)
        .where(*_EXPIRED)
        .order_by(RECORDS.c.expires_at)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
)
COUNT_EXPIRED = select(func.count()).select_from(RECORDS).where(*_EXPIRED)


class PostgresIdempotencyRetention:
    """``ExpiredIdempotencyRecords`` on the ``idempotency_records`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def delete_expired(self, now: datetime, limit: int) -> int:
        with self._transaction() as conn:
            result = conn.execute(DELETE_EXPIRED_BATCH, {"now": now, "limit": limit})
            assert isinstance(result, CursorResult)
            return int(result.rowcount)

    def count_expired(self, now: datetime) -> int:
        with self._transaction() as conn:
            return int(conn.execute(COUNT_EXPIRED, {"now": now}).scalar_one())

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """As the unit of work does: a database that fails is ``ServiceUnavailable``, and
        the batch rolled back whole."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (DBAPIError, PoolTimeout) as exc:
            raise ServiceUnavailable("database unavailable, nothing was deleted") from exc
