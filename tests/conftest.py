"""Shared fixtures.

Databases: each test session creates its own PostgreSQL database (``lootbox_t_<random>``)
on the server it finds (the machine's, or the embedded one ``dev.py test`` starts),
migrates it with Alembic, truncates it after each test and drops it at the end; the
shared ``test`` database is never written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lootbox.persistence.database import normalize_database_url
from lootbox.persistence.migrate import upgrade_database
from lootbox.persistence.models import Base
from tests.fakes import ServiceHarness
from tests.services import postgres_url

TABLES = ", ".join(table.name for table in reversed(Base.metadata.sorted_tables))


@contextmanager
def empty_postgres_database(prefix: str = "lootbox_t") -> Iterator[str]:
    """A new database with no tables on the server the tests use; dropped after."""
    admin_url = make_url(normalize_database_url(postgres_url()))
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_postgres_database(prefix: str = "lootbox_t") -> Iterator[str]:
    """A new, migrated PostgreSQL database on the server the tests use; dropped after."""
    with empty_postgres_database(prefix) as url:
        upgrade_database(url)
        yield url


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this session; its URL."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def postgres_db(postgres_database: str) -> Iterator[str]:
    """The session's PostgreSQL database, emptied after the test."""
    yield postgres_database
    engine = create_engine(postgres_database)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def database_url(postgres_db: str) -> str:
    """The service's database: the session's PostgreSQL database, emptied after the test."""
    return postgres_db


@pytest.fixture
def harness(postgres_db: str) -> Iterator[ServiceHarness]:
    """The use cases on the session's PostgreSQL database, with a fake wallet, a fixed
    clock and a seeded random source (``tests.fakes.ServiceHarness``)."""
    h = ServiceHarness(postgres_db)
    yield h
    h.close()
