"""What a request costs, counted by the servers themselves, never by the app.

* PostgreSQL (our private server): ``pg_stat_statements`` counts every statement our
  database ran, ``BEGIN`` and ``COMMIT`` included (``track_utility``), and
  ``pg_stat_database`` its transactions. A pool's pre-ping (``;``, an empty query) is no
  statement for ``pg_stat_statements`` but a transaction of its own for
  ``pg_stat_database``; the server's log counts them (``log_statement = all`` while the
  counts are taken). Round trips are statements plus pings; transactions leave the pings
  out. ``pg_stat_database`` sees a backend's counts only when the backend flushes them,
  at the latest ten seconds after it goes idle (PostgreSQL 15), so a reading waits that
  long after the last request (``SETTLE_S``).
* Redis (our private redis-server): ``INFO commandstats``. Redis counts the commands a
  Lua script runs as well as the script's call (an ``EVALSHA`` that runs a ``GET`` is two
  commands and one round trip), so the breakdown by command is kept.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

SETTLE_S = 11.0
# log_line_prefix '%m [%p] %d ' (bench/servers.py), then the statement, simple or extended.
_PING = re.compile(r"\] (\S+) LOG:  (?:statement|execute [^:]*): ;\s*$")


def statement_kind(text: str) -> str:
    """A short name for a (normalised) statement: ``BEGIN``, ``COMMIT``, ``SELECT
    inventory_items``, ``UPDATE money_movements`` …"""
    words = text.split()
    if not words:
        return "(empty)"
    verb, lowered = words[0].upper(), [w.lower().strip('"(') for w in words]
    table = ""
    if verb in ("SELECT", "DELETE", "WITH") and "from" in lowered:
        table = lowered[lowered.index("from") + 1]
    elif verb == "INSERT" and len(lowered) > 2:
        table = lowered[2]
    elif verb == "UPDATE" and len(lowered) > 1:
        table = lowered[1]
    return f"{verb} {table}".strip()


def pings(log: Path, database: str) -> int:
    """Empty queries (``;``) ``database`` ran, as far as the server logged statements."""
    with log.open(errors="replace") as lines:
        return sum(1 for line in lines if (m := _PING.search(line)) and m.group(1) == database)


@dataclass
class Reading:
    statements: Counter[str]  # by kind
    transactions: int
    sessions: int  # connections opened
    pings: int
    redis: Counter[str]  # calls by command


def read(
    monitor: psycopg.Connection,
    database: str,
    database_oid: int,
    log: Path,
    redis_client: redis.Redis,
) -> Reading:
    """The counters so far. ``monitor`` is a connection to another database than the one
    measured, so that its own statements and transactions are never counted."""
    monitor.execute("SELECT pg_stat_clear_snapshot()")
    statements: Counter[str] = Counter()
    for query, calls in monitor.execute(
        "SELECT query, calls FROM pg_stat_statements WHERE dbid = %s", (database_oid,)
    ):
        statements[statement_kind(str(query))] += int(calls)
    row = monitor.execute(
        "SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database WHERE datid = %s",
        (database_oid,),
    ).fetchone()
    assert row is not None
    commands: Counter[str] = Counter()
    for name, value in redis_client.info("commandstats").items():
        if isinstance(value, dict) and name != "cmdstat_info":
            commands[name.removeprefix("cmdstat_")] = int(value.get("calls", 0))
    return Reading(statements, int(row[0]), int(row[1]), pings(log, database), commands)


@dataclass
class Counts:
    """Per request, between two readings."""

    requests: int
    transactions: float
    round_trips: float
    redis_calls: float
    detail: dict[str, float]  # statements by kind, pings, Redis commands

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def per_request(before: Reading, after: Reading, requests: int) -> Counts:
    statements = after.statements - before.statements
    redis_calls = after.redis - before.redis
    pinged = after.pings - before.pings
    transactions = after.transactions - before.transactions - pinged
    detail: Counter[str] = Counter(statements)
    if pinged:
        detail["; (pool pre-ping)"] = pinged
    # Transactions PostgreSQL counted beyond the COMMIT and ROLLBACK statements (and the
    # pings): statements run outside BEGIN, a connection's start, or nothing we could see.
    ended = statements["COMMIT"] + statements["ROLLBACK"]
    if transactions > ended:
        detail["transactions without BEGIN/COMMIT"] = transactions - ended
    if after.sessions > before.sessions:  # each start runs a transaction of its own
        detail["new connections"] = after.sessions - before.sessions
    detail.update({f"redis {name}": n for name, n in redis_calls.items()})
    n = max(1, requests)
    return Counts(
        requests=requests,
        transactions=transactions / n,
        round_trips=(sum(statements.values()) + pinged) / n,
        redis_calls=sum(redis_calls.values()) / n,
        detail={kind: count / n for kind, count in detail.most_common()},
    )


def settle() -> None:
    """Until every backend has flushed what it counted (see the module docstring)."""
    time.sleep(SETTLE_S)
