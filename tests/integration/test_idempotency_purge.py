"""The idempotency purge against PostgreSQL: it deletes exactly the completed records past
their expiry, in batches that each commit on their own, skips rows another transaction
holds, and never touches an in-progress record or one still within its retention."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text

from lootbox.domain.errors import ServiceUnavailable
from lootbox.persistence.database import SqlAlchemyUnitOfWork, make_engine, make_session_factory
from lootbox.persistence.models import IdempotencyRecordRow, OperatorRow
from lootbox.persistence.statements import DELETE_EXPIRED_BATCH
from lootbox.ports import UnitOfWork
from lootbox.services.retention import (
    count_expired_idempotency_records,
    purge_expired_idempotency_records,
)

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
TTL = timedelta(days=7)


def units_of_work(engine: Engine) -> Callable[[], UnitOfWork]:
    session_factory = make_session_factory(engine)
    return lambda: SqlAlchemyUnitOfWork(session_factory)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def operator_id(engine: Engine) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(OperatorRow)
                .values(
                    slug="acme",
                    currency="EUR",
                    wallet_url="http://127.0.0.1:1/wallet",
                    wallet_secret="s3cret",
                    refunds_enabled=True,
                    cashback_enabled=True,
                    cashback_bps=5000,
                    created_at=NOW,
                )
                .returning(OperatorRow.id)
            ).scalar_one()
        )


def add_records(
    engine: Engine,
    operator_id: int,
    prefix: str,
    count: int,
    *,
    state: str = "completed",
    completed_ago: timedelta | None = None,
    expires_at: datetime | None = None,
) -> None:
    """``count`` records as the guard writes them: a completed one ``completed_ago`` (its
    expiry then TTL later), an in-progress one without an expiry unless given."""
    rows: list[dict[str, Any]] = []
    for n in range(count):
        completed_at = NOW - completed_ago if completed_ago is not None else None
        rows.append(
            {
                "operator_id": operator_id,
                "idempotency_key": f"{prefix}-{n}",
                "endpoint": "cashout",
                "fingerprint": "f" * 64,
                "state": state,
                "request_id": f"req-{prefix}-{n}",
                "lease_token": 1,
                "lease_expires_at": (completed_at or NOW) - timedelta(days=30),
                "status_code": 200 if state == "completed" else None,
                "response_body": '{"item": {}}' if state == "completed" else None,
                "created_at": (completed_at or NOW) - timedelta(seconds=1),
                "completed_at": completed_at,
                "expires_at": expires_at
                if expires_at is not None
                else (completed_at + TTL if completed_at is not None else None),
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(IdempotencyRecordRow), rows)


def keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(text("SELECT idempotency_key FROM idempotency_records")))


def expired_left(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM idempotency_records"
                    " WHERE state = 'completed' AND expires_at < :now"
                ),
                {"now": NOW},
            ).scalar_one()
        )


@pytest.fixture
def seeded(engine: Engine, operator_id: int) -> set[str]:
    """1,234 expired answers, and the keys that must survive a purge at ``NOW``."""
    add_records(engine, operator_id, "expired", 1234, completed_ago=TTL + timedelta(hours=1))
    add_records(engine, operator_id, "fresh", 3, completed_ago=timedelta(days=1))
    # Expiring exactly now: still within retention ("past expiry" is strictly after it).
    add_records(engine, operator_id, "edge", 1, completed_ago=TTL)
    # A request running, and one suspended after a 503 long ago (money may have moved):
    # no expiry, never purged.
    add_records(engine, operator_id, "running", 2, state="in_progress")
    add_records(engine, operator_id, "suspended", 2, state="in_progress")
    # Even an in-progress row that somehow carries a past expiry is not the purge's.
    add_records(
        engine,
        operator_id,
        "odd",
        1,
        state="in_progress",
        expires_at=NOW - timedelta(days=365),
    )
    return keys(engine) - {f"expired-{n}" for n in range(1234)}


def test_the_purge_deletes_exactly_the_expired_completed_records(
    engine: Engine, seeded: set[str]
) -> None:
    retention = units_of_work(engine)
    assert count_expired_idempotency_records(retention, NOW) == 1234

    summary = purge_expired_idempotency_records(retention, NOW, batch_size=500)

    assert summary.deleted == 1234
    assert summary.batches == 3  # 500, 500, 234
    assert summary.capped is False
    assert keys(engine) == seeded
    assert count_expired_idempotency_records(retention, NOW) == 0


def test_each_batch_commits_on_its_own(engine: Engine, seeded: set[str]) -> None:
    """Seen from another connection after each batch: the rows are already gone, so a
    failure later in the purge loses none of the work, and no transaction spans it."""
    retention = units_of_work(engine)
    left_after_each: list[int] = []

    purge_expired_idempotency_records(
        retention,
        NOW,
        batch_size=500,
        progress=lambda deleted: left_after_each.append(expired_left(engine)),
    )

    assert left_after_each == [734, 234, 0]


def test_the_cap_stops_the_purge_and_the_next_one_goes_on(engine: Engine, seeded: set[str]) -> None:
    retention = units_of_work(engine)

    first = purge_expired_idempotency_records(retention, NOW, batch_size=500, max_rows=700)
    second = purge_expired_idempotency_records(retention, NOW, batch_size=500, max_rows=700)

    assert (first.deleted, first.batches, first.capped) == (700, 2, True)
    assert (second.deleted, second.capped) == (534, False)
    assert keys(engine) == seeded


def test_a_stop_request_ends_the_purge_after_the_batch_in_hand(
    engine: Engine, seeded: set[str]
) -> None:
    retention = units_of_work(engine)
    stop = threading.Event()
    stop.set()

    summary = purge_expired_idempotency_records(retention, NOW, batch_size=100, stop=stop)

    assert (summary.deleted, summary.batches, summary.capped) == (100, 1, True)


def test_a_row_another_transaction_holds_is_skipped_not_waited_for(
    engine: Engine, seeded: set[str]
) -> None:
    retention = units_of_work(engine)
    with engine.connect() as holder:
        holder.execute(
            text(
                "SELECT id FROM idempotency_records WHERE idempotency_key = 'expired-7' FOR UPDATE"
            )
        )
        # The purge runs in a thread, bounded: if it waited for the lock, this would fail.
        with ThreadPoolExecutor(1) as pool:
            summary = pool.submit(
                purge_expired_idempotency_records, retention, NOW, batch_size=500
            ).result(timeout=10)
        holder.rollback()

    assert summary.deleted == 1233
    assert keys(engine) == seeded | {"expired-7"}
    assert purge_expired_idempotency_records(retention, NOW).deleted == 1


def test_two_purgers_at_once_delete_each_row_once(engine: Engine, seeded: set[str]) -> None:
    retention = units_of_work(engine)
    start = threading.Barrier(2)

    def purge(_: int) -> int:
        start.wait(timeout=5)
        return purge_expired_idempotency_records(retention, NOW, batch_size=50).deleted

    with ThreadPoolExecutor(2) as pool:
        deleted = list(pool.map(purge, range(2)))

    assert sum(deleted) == 1234
    assert keys(engine) == seeded


def test_the_delete_walks_the_partial_index_even_as_a_generic_plan(
    engine: Engine, seeded: set[str]
) -> None:
    """The plan PostgreSQL picks for the purge's own statement, prepared and planned
    without its parameters' values (as with DATABASE_PREPARED_STATEMENTS=on), when
    sequential scans cost what they do on a big table."""
    sql = str(DELETE_EXPIRED_BATCH.compile(dialect=engine.dialect))
    sql = sql.replace("%(now)s", "$1").replace("%(limit)s", "$2")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE idempotency_records"))
        conn.execute(text("SET enable_seqscan = off"))
        conn.execute(text("SET plan_cache_mode = force_generic_plan"))
        conn.exec_driver_sql(f"PREPARE purge_batch(timestamptz, bigint) AS {sql}")
        plan = "\n".join(
            row[0]
            for row in conn.exec_driver_sql(
                "EXPLAIN EXECUTE purge_batch('2026-03-04T05:06:07Z', 500)"
            )
        )
    assert "ix_idempotency_records_expired" in plan, plan
    assert "$1" in plan, plan  # a generic plan indeed


def test_a_database_that_does_not_answer_is_service_unavailable() -> None:
    unreachable = make_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(ServiceUnavailable):
            purge_expired_idempotency_records(units_of_work(unreachable), NOW)
    finally:
        unreachable.dispose()
