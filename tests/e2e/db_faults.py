"""Real database faults for e2e tests, injected inside the test session's own PostgreSQL
database (``lootbox_t_<random>``) and nowhere else: no other database is touched and the
shared server is never restarted.

* ``SerializationFaults``: a PL/pgSQL trigger the test creates (and drops again) raises
  ``serialization_failure`` (SQLSTATE 40001) on a chosen table and operation while its row
  in a one-table control panel is armed. Each firing bumps a sequence, which, unlike the
  failed transaction, survives the rollback: the test can prove its fault fired.
* ``ConnectionKiller``: ``pg_terminate_backend`` from a connection of its own, for every
  other client backend of this database (that is, the app's pool), waiting until they are
  gone so the timing is deterministic.
* ``drop_connection_at``: runs the killer from inside the app's own engine, just before a
  chosen statement or the COMMIT of the transaction that ran it, so the connection dies
  mid-transaction.
* ``HookedWallet``: the app's real wallet port, with a hook before or after each call.
* ``ledger_inconsistencies``: what an on-call engineer would call half-written.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

from lootbox.domain.records import WalletSettings
from lootbox.persistence.database import normalize_database_url
from lootbox.ports import Wallet, WalletMoneyCall, WalletOutcome

CONTROL_TABLE = "lootbox_test_faults"
FAULT_FUNCTION = "lootbox_test_fault"
TRIGGER_PREFIX = "lootbox_test_fault_"
SEQUENCE_PREFIX = "lootbox_test_fault_hits_"
NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")

# Every statement here is bounded: a lock that cannot be had in time is a test failure,
# never a hang.
SESSION_SETUP = "SET lock_timeout = '5s'; SET statement_timeout = '10s'"
TERMINATE_WAIT_MS = 5000


def _admin_engine(database_url: str) -> Engine:
    """A connection of the test's own, outside the app's pool (autocommit, no pooling)."""
    engine = create_engine(
        normalize_database_url(database_url),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"connect_timeout": 5},
    )
    assert engine.dialect.name == "postgresql", "database faults need PostgreSQL"
    return engine


class SerializationFaults:
    """Triggers that fail chosen statements with SQLSTATE 40001 while armed."""

    def __init__(self, database_url: str) -> None:
        self.engine = _admin_engine(database_url)
        self.faults: dict[str, str] = {}  # name -> table
        with self.engine.connect() as conn:
            conn.exec_driver_sql(SESSION_SETUP)
            conn.exec_driver_sql(
                f"CREATE TABLE {CONTROL_TABLE} (name text PRIMARY KEY, armed boolean NOT NULL)"
            )
            conn.exec_driver_sql(
                f"""
                CREATE FUNCTION {FAULT_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF EXISTS (SELECT 1 FROM {CONTROL_TABLE}
                               WHERE name = TG_ARGV[0] AND armed) THEN
                        PERFORM nextval('{SEQUENCE_PREFIX}' || TG_ARGV[0]);
                        RAISE EXCEPTION 'injected serialization failure (%%: %% on %%)',
                            TG_ARGV[0], TG_OP, TG_TABLE_NAME
                            USING ERRCODE = '40001';
                    END IF;
                    RETURN NEW;
                END
                $$
                """
            )

    def arm(self, name: str, *, table: str, operation: str, when: str | None = None) -> None:
        """Fail every ``operation`` (INSERT or UPDATE) on ``table`` whose row matches
        ``when`` (a trigger ``WHEN`` condition over ``NEW``/``OLD``), until ``disarm``."""
        assert NAME.fullmatch(name), name
        assert operation in ("INSERT", "UPDATE"), operation
        assert re.fullmatch(r"[a-z_]+", table), table
        condition = f" WHEN ({when})" if when else ""
        with self.engine.connect() as conn:
            conn.exec_driver_sql(SESSION_SETUP)
            if name not in self.faults:
                conn.exec_driver_sql(f"CREATE SEQUENCE {SEQUENCE_PREFIX}{name}")
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {TRIGGER_PREFIX}{name} BEFORE {operation} ON {table}"
                    f" FOR EACH ROW{condition} EXECUTE FUNCTION {FAULT_FUNCTION}('{name}')"
                )
                self.faults[name] = table
            conn.execute(
                text(
                    f"INSERT INTO {CONTROL_TABLE} (name, armed) VALUES (:name, true)"
                    " ON CONFLICT (name) DO UPDATE SET armed = true"
                ),
                {"name": name},
            )

    def disarm(self, name: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(
                text(f"UPDATE {CONTROL_TABLE} SET armed = false WHERE name = :name"),
                {"name": name},
            )

    def hits(self, name: str) -> int:
        """How many statements this fault has failed so far."""
        with self.engine.connect() as conn:
            last_value, is_called = conn.exec_driver_sql(
                f"SELECT last_value, is_called FROM {SEQUENCE_PREFIX}{name}"
            ).one()
        return int(last_value) if is_called else 0

    def remove(self) -> None:
        """Drop every trigger, the function, the sequences and the control table."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(SESSION_SETUP)
                for name, table in self.faults.items():
                    conn.exec_driver_sql(
                        f"DROP TRIGGER IF EXISTS {TRIGGER_PREFIX}{name} ON {table}"
                    )
                    conn.exec_driver_sql(f"DROP SEQUENCE IF EXISTS {SEQUENCE_PREFIX}{name}")
                conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {FAULT_FUNCTION}() CASCADE")
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {CONTROL_TABLE}")
        finally:
            self.faults.clear()
            self.engine.dispose()


class ConnectionKiller:
    """Terminates the other client connections of this one database."""

    def __init__(self, database_url: str) -> None:
        self.engine = _admin_engine(database_url)
        database = self.engine.url.database or ""
        # Only ever a database a test created for itself, never the shared ones.
        assert database.startswith("lootbox_"), f"refusing to terminate backends of {database!r}"
        self.terminated: list[int] = []

    def terminate_others(self) -> list[int]:
        """``pg_terminate_backend`` every other client backend of this database, waiting
        (bounded) until each has exited; the pids it terminated."""
        with self.engine.connect() as conn:
            # The targets are fixed first, behind a MATERIALIZED fence, and only then
            # terminated from the select list: a pg_terminate_backend() in a WHERE clause
            # may be evaluated before the datname filter, for every backend of the server.
            rows = conn.execute(
                text(
                    "WITH targets AS MATERIALIZED ("
                    " SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND backend_type = 'client backend')"
                    " SELECT pid, pg_terminate_backend(pid, :wait_ms) AS terminated"
                    " FROM targets"
                ),
                {"wait_ms": TERMINATE_WAIT_MS},
            ).all()
        pids = [int(row.pid) for row in rows if row.terminated]
        self.terminated.extend(pids)
        return pids

    def states(self) -> list[str]:
        """The state of every other client backend of this database (``idle``,
        ``idle in transaction``, ``active`` ...)."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT state FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            ).all()
        return [str(row.state) for row in rows]

    def close(self) -> None:
        self.engine.dispose()


StatementMatch = Callable[[str, Any], bool]


@dataclass
class DropRecord:
    """What ``drop_connection_at`` did: the statements it fired at and the pids it killed."""

    fired_at: list[str] = field(default_factory=list)
    terminated: list[int] = field(default_factory=list)
    shots: int = 0


@contextmanager
def drop_connection_at(
    engine: Engine,
    killer: ConnectionKiller,
    matches: StatementMatch,
    *,
    at_commit: bool = False,
    times: int = 1,
) -> Iterator[DropRecord]:
    """Kill the app's connections (the one running the matching statement among them)
    just before that statement is sent, or, with ``at_commit``, just before the COMMIT of
    the transaction that ran it. Fires at most ``times`` times."""
    record = DropRecord()
    lock = threading.Lock()
    # Connections whose transaction ran the statement, by identity: their COMMIT drops.
    # (Not ``conn.info``: reading it on a connection already invalidated raises.)
    commit_armed: dict[int, str] = {}

    def fire(where: str) -> None:
        record.fired_at.append(where)
        record.terminated.extend(killer.terminate_others())

    def take_shot() -> bool:
        with lock:
            if record.shots >= times:
                return False
            record.shots += 1
            return True

    def before_cursor_execute(
        conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if not matches(statement, parameters) or not take_shot():
            return
        if at_commit:
            commit_armed[id(conn)] = statement
        else:
            fire(statement)

    def before_commit(conn: Any) -> None:
        statement = commit_armed.pop(id(conn), None)
        if statement is not None:
            fire(f"COMMIT after {statement}")

    def on_rollback(conn: Any) -> None:
        commit_armed.pop(id(conn), None)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "commit", before_commit)
    event.listen(engine, "rollback", on_rollback)
    try:
        yield record
    finally:
        event.remove(engine, "before_cursor_execute", before_cursor_execute)
        event.remove(engine, "commit", before_commit)
        event.remove(engine, "rollback", on_rollback)


def statement_matches(prefix: str, *values: Any) -> StatementMatch:
    """A statement starting with ``prefix`` (case and whitespace folded) whose bound
    parameters include every one of ``values``."""
    wanted = " ".join(prefix.split()).upper()

    def matches(statement: str, parameters: Any) -> bool:
        if not " ".join(statement.split()).upper().startswith(wanted):
            return False
        bound = list(parameters.values()) if isinstance(parameters, Mapping) else []
        return all(value in bound for value in values)

    return matches


WalletHook = Callable[[WalletMoneyCall], None]


class HookedWallet:
    """The app's real wallet port, with hooks run before or after each money call."""

    def __init__(
        self, inner: Wallet, *, before: WalletHook | None = None, after: WalletHook | None = None
    ) -> None:
        self.inner = inner
        self.before = before
        self.after = after
        self.calls: list[WalletMoneyCall] = []

    def send(self, settings: WalletSettings, call: WalletMoneyCall) -> WalletOutcome:
        self.calls.append(call)
        if self.before is not None:
            self.before(call)
        outcome = self.inner.send(settings, call)
        if self.after is not None:
            self.after(call)
        return outcome

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


# --- what "half-written" means ------------------------------------------------------------

HALF_WRITTEN: dict[str, str] = {
    "item cashback_pending without a pending cashback": """
        SELECT i.id FROM inventory_items i WHERE i.state = 'cashback_pending'
        AND NOT EXISTS (SELECT 1 FROM money_movements m WHERE m.inventory_item_id = i.id
                        AND m.reason = 'cashback' AND m.status = 'pending')""",
    "pending cashback whose item is not cashback_pending": """
        SELECT m.id FROM money_movements m JOIN inventory_items i ON i.id = m.inventory_item_id
        WHERE m.reason = 'cashback' AND m.status = 'pending'
        AND i.state <> 'cashback_pending'""",
    "accepted cashback whose item is not cashed_back": """
        SELECT m.id FROM money_movements m JOIN inventory_items i ON i.id = m.inventory_item_id
        WHERE m.reason = 'cashback' AND m.status = 'accepted' AND i.state <> 'cashed_back'""",
    "cashed_back item without an accepted cashback": """
        SELECT i.id FROM inventory_items i WHERE i.state = 'cashed_back'
        AND NOT EXISTS (SELECT 1 FROM money_movements m WHERE m.inventory_item_id = i.id
                        AND m.reason = 'cashback' AND m.status = 'accepted')""",
    "round refund_pending without a pending refund": """
        SELECT r.id FROM rounds r WHERE r.status = 'refund_pending'
        AND NOT EXISTS (SELECT 1 FROM money_movements m WHERE m.round_id = r.id
                        AND m.reason = 'refund' AND m.status = 'pending')""",
    "pending refund whose round is not refund_pending": """
        SELECT m.id FROM money_movements m JOIN rounds r ON r.id = m.round_id
        WHERE m.reason = 'refund' AND m.status = 'pending' AND r.status <> 'refund_pending'""",
    "accepted refund whose round is not refunded": """
        SELECT m.id FROM money_movements m JOIN rounds r ON r.id = m.round_id
        WHERE m.reason = 'refund' AND m.status = 'accepted' AND r.status <> 'refunded'""",
    "refunded round without an accepted refund": """
        SELECT r.id FROM rounds r WHERE r.status = 'refunded'
        AND NOT EXISTS (SELECT 1 FROM money_movements m WHERE m.round_id = r.id
                        AND m.reason = 'refund' AND m.status = 'accepted')""",
    "round without exactly one debit": """
        SELECT r.id FROM rounds r WHERE (SELECT count(*) FROM money_movements m
                                         WHERE m.round_id = r.id AND m.kind = 'debit') <> 1""",
    "round whose status disagrees with its debit": """
        SELECT r.id FROM rounds r JOIN money_movements m ON m.round_id = r.id
        AND m.kind = 'debit' WHERE NOT (
            (m.status = 'pending' AND r.status = 'debit_pending')
            OR (m.status = 'refused' AND r.status = 'voided')
            OR (m.status = 'accepted'
                AND r.status IN ('held', 'refund_pending', 'settled', 'refunded')))""",
    "settled round with a reel missing its prize or item": """
        SELECT rr.id FROM round_reels rr JOIN rounds r ON r.id = rr.round_id
        WHERE r.status = 'settled' AND (rr.prize_id IS NULL OR NOT EXISTS (
            SELECT 1 FROM inventory_items i
            WHERE i.round_id = r.id AND i.reel_index = rr.reel_index))""",
    "item of a round that is not settled": """
        SELECT i.id FROM inventory_items i JOIN rounds r ON r.id = i.round_id
        WHERE r.status <> 'settled'""",
}


def ledger_inconsistencies(
    query: Callable[[str], list[Any]], wallet_transactions: list[dict[str, Any]]
) -> list[str]:
    """Every half-written row, and every disagreement between the ledger and the wallet's
    own record: an accepted movement must match exactly one wallet operation (same key,
    type, amount, currency); a wallet operation must have a ledger row that is accepted or
    still pending (outcome unknown), never refused or missing."""
    problems = [
        f"{what}: {[tuple(row) for row in rows]}"
        for what, sql in HALF_WRITTEN.items()
        if (rows := query(sql))
    ]
    ledger = {
        row.idempotency_key: row
        for row in query(
            "SELECT idempotency_key, kind, status, amount_minor, currency FROM money_movements"
        )
    }
    by_key: dict[str, list[dict[str, Any]]] = {}
    for txn in wallet_transactions:
        by_key.setdefault(txn["idempotencyKey"], []).append(txn)
    for key, txns in by_key.items():
        row = ledger.get(key)
        if len(txns) != 1:
            problems.append(f"wallet applied {key!r} {len(txns)} times")
        if row is None or row.status == "refused":
            problems.append(f"wallet applied {key!r}, ledger has {row and row.status}")
    for key, row in ledger.items():
        if row.status != "accepted":
            continue
        txns = by_key.get(key, [])
        expected = (f"wallet.{row.kind}", row.amount_minor, row.currency)
        if [(t["type"], t["amountMinor"], t["currency"]) for t in txns] != [expected]:
            problems.append(f"accepted movement {key!r} {expected} vs wallet {txns}")
    return problems
