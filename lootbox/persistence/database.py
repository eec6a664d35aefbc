"""Engine construction and the SQLAlchemy unit of work."""

from __future__ import annotations

import select
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from lootbox.domain.errors import ServiceUnavailable
from lootbox.observability.metrics import count_statements
from lootbox.persistence.catalog_reads import CatalogReadRepository
from lootbox.persistence.idempotency_records import IdempotencyRecordRepository
from lootbox.persistence.listings import ListingRepository
from lootbox.persistence.repositories import (
    CatalogRepository,
    InventoryRepository,
    LedgerRepository,
    OperatorRepository,
    RoundRepository,
)
from lootbox.persistence.secrets import SecretBox, attach_secret_box, environment_secret_box
from lootbox.persistence.seed_pairs import SeedPairRepository


def normalize_database_url(url: str) -> str:
    """Accept the PaaS ``postgres://`` form and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    echo: bool = False,
    prepared_statements: bool = False,
    secret_box: SecretBox | None = None,
) -> Engine:
    """``prepared_statements`` lets psycopg prepare a statement on the server after its
    5th execution on a connection (PostgreSQL only; DATABASE_PREPARED_STATEMENTS).
    ``secret_box`` seals and opens the secret columns; by default the one of
    ``LOOTBOX_ENCRYPTION_KEYS`` (or the development key)."""
    url = normalize_database_url(url)
    if not url.startswith("postgresql+psycopg://"):
        raise ValueError(
            "DATABASE_URL must name a PostgreSQL database (postgres:// or postgresql://);"
            " 'python3 dev.py serve' starts an embedded one when it is unset"
        )
    engine = _postgresql_engine(
        url, pool_size=pool_size, echo=echo, prepared_statements=prepared_statements
    )
    count_statements(engine)  # lootbox_db_statements_total, which on-call alerts read
    attach_secret_box(engine, secret_box or environment_secret_box())
    return engine


def _postgresql_engine(
    url: str, *, pool_size: int, echo: bool, prepared_statements: bool
) -> Engine:
    # Bounded like every other wait on a request's path: a database that does not
    # answer costs a request (or /readyz) seconds, then a 503, never a hung worker.
    connect_args: dict[str, Any] = {"connect_timeout": 3}
    if not prepared_statements:
        # A transaction-mode pooler (PgBouncer before 1.21, many PaaS poolers) gives each
        # transaction any server connection: a statement one client prepared there collides
        # with another's ("_pg3_0" already exists, or runs the other's query), and is
        # missing for its own next transaction. Without a pooler, turn them back on.
        connect_args["prepare_threshold"] = None
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
        pool_timeout=5,
        # No pre-ping: it costs a round trip per transaction. ``_refuse_dead_connection``
        # notices a dropped idle connection without one, and ``_Repository._run`` retries
        # a transaction whose first statement finds its connection gone.
        pool_pre_ping=False,
        pool_recycle=1800,
    )
    event.listen(engine, "connect", _set_timeouts)
    event.listen(engine, "checkout", _refuse_dead_connection)
    return engine


# A request never waits unbounded inside PostgreSQL: a duplicate blocked on another
# request's row lock gives up after LOCK_TIMEOUT (a 503, retried by the caller; the other
# request's transactions are milliseconds long), and no statement runs past
# STATEMENT_TIMEOUT. Set once per connection, not per transaction. (Behind a
# transaction-mode PgBouncer a session SET lands on whichever server connection runs it;
# set both on the database role there as well: ALTER ROLE … SET lock_timeout = '2s'.)
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "10s"


def _set_timeouts(dbapi_connection: Any, _record: Any) -> None:
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        dbapi_connection.execute(
            f"SET lock_timeout = '{LOCK_TIMEOUT}'; SET statement_timeout = '{STATEMENT_TIMEOUT}'"
        )
    finally:
        dbapi_connection.autocommit = autocommit


def _refuse_dead_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection whose server went away (a restart, ``pg_terminate_backend``,
    an idle timeout) has something to read on its idle socket: the server's goodbye, or
    the end of the stream. Seen at checkout without a round trip, the pool discards it and
    hands out another (``DisconnectionError``). A connection lost without a goodbye is
    caught by its first statement instead."""
    if dbapi_connection.closed:
        raise DisconnectionError("connection closed")
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    if readable:
        raise DisconnectionError("the server closed or is closing this idle connection")


class SqlAlchemyUnitOfWork:
    """One transaction. Leaving ``with`` without ``commit()`` rolls back.

    Database failures (a dropped connection, a serialization failure, a lock timeout) leave
    as ``ServiceUnavailable``: the transaction rolled back, nothing is half-written, and the
    caller may retry.
    """

    session: Session

    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory

    def __enter__(self) -> SqlAlchemyUnitOfWork:
        self.session = self.session_factory()
        self.operators = OperatorRepository(self.session)
        self.catalog = CatalogRepository(self.session)
        self.catalog_reads = CatalogReadRepository(self.session)
        self.rounds = RoundRepository(self.session)
        self.items = InventoryRepository(self.session)
        self.ledger = LedgerRepository(self.session)
        self.idempotency = IdempotencyRecordRepository(self.session)
        self.listings = ListingRepository(self.session)
        self.seed_pairs = SeedPairRepository(self.session)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.session.rollback()
        except DBAPIError:
            pass  # the connection is already gone; nothing was committed
        finally:
            self.session.close()
        # A pool with no connection to spare within its timeout is as unavailable to this
        # request as a server that does not answer.
        if isinstance(exc, PoolTimeout) or (
            isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)
        ):
            raise ServiceUnavailable("database unavailable, nothing was changed") from exc

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
