"""psycopg's server-side prepared statements: off unless DATABASE_PREPARED_STATEMENTS=on.

Checked on real connections, where it counts: the driver connection's ``prepare_threshold``
and what the server itself holds in ``pg_prepared_statements`` after a statement ran more
often than psycopg's threshold. Behind a transaction-mode pooler they must be off
(tests/system/test_pgbouncer.py shows why).
"""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from sqlalchemy import Engine

from app import create_app
from lootbox.persistence.database import make_engine

pytestmark = pytest.mark.postgres

PSYCOPG_DEFAULT_THRESHOLD = 5


def prepared_on_server(engine: Engine) -> tuple[int | None, int]:
    """One connection of ``engine``: its ``prepare_threshold``, and how many statements the
    server holds prepared for it after the same query ran ten times."""
    raw = engine.raw_connection()
    try:
        assert raw.driver_connection is not None
        threshold = raw.driver_connection.prepare_threshold
        cursor = raw.cursor()
        for n in range(10):
            cursor.execute("SELECT %s::int + 1", (n,))
            assert cursor.fetchone() == (n + 1,)
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        row = cursor.fetchone()
        assert row is not None
        prepared = int(row[0])
        cursor.close()
        raw.rollback()
    finally:
        raw.close()
    return threshold, prepared


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def test_the_engine_prepares_nothing_on_the_server_by_default(
    postgres_database: str, engines: list[Engine]
) -> None:
    engines.append(make_engine(postgres_database))

    assert prepared_on_server(engines[0]) == (None, 0)


def test_the_engine_prepares_after_psycopgs_threshold_when_turned_on(
    postgres_database: str, engines: list[Engine]
) -> None:
    engines.append(make_engine(postgres_database, prepared_statements=True))

    threshold, prepared = prepared_on_server(engines[0])

    assert threshold == PSYCOPG_DEFAULT_THRESHOLD
    assert prepared >= 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("off", None), ("on", PSYCOPG_DEFAULT_THRESHOLD)],
)
def test_the_app_reads_database_prepared_statements_from_the_environment(
    postgres_database: str,
    monkeypatch: pytest.MonkeyPatch,
    raw: str | None,
    expected: int | None,
) -> None:
    if raw is None:
        monkeypatch.delenv("DATABASE_PREPARED_STATEMENTS", raising=False)
    else:
        monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", raw)
    app = create_app({"database_url": postgres_database}, redis_client=fakeredis.FakeRedis())
    engine = app.extensions["lootbox"].engine
    try:
        raw_connection = engine.raw_connection()
        try:
            assert raw_connection.driver_connection is not None
            assert raw_connection.driver_connection.prepare_threshold == expected
        finally:
            raw_connection.close()
    finally:
        engine.dispose()
