"""Measure what money requests cost the database, and what the idempotency purge costs.

Used for docs/scaling.md. On a throw-away database of the PostgreSQL at DATABASE_URL (created,
migrated, dropped at the end), with the reference wallet over HTTP on 127.0.0.1 and the app
in this process (Flask test client, every request signed as an operator backend signs it):

1. phases of real requests: atomic purchases, cashouts of the won items, pre-paid purchases,
   then cancels of half of them and opens of the other half. After each phase, per table:
   rows, heap bytes, index bytes (``pg_relation_size``, ``pg_indexes_size``,
   ``pg_total_relation_size``), so each request type's rows and bytes are the differences;
2. the same sizes after ``VACUUM FULL`` (compact: what live rows take), and the average
   ``pg_column_size`` of a row of each table;
3. the purge: the completed records cloned (realistic bodies) until ``--purge-rows`` of them
   are past their expiry, a ``CHECKPOINT`` (the purge deletes rows written days ago, whose
   pages are not in the WAL since the last checkpoint), then the worker's purge with its
   batch size, timed, with the WAL it wrote (``pg_current_wal_lsn`` before and after), and
   the ``VACUUM`` that makes the space reusable.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python tools/storage_footprint.py --requests 5000 --purge-rows 100000 \\
        --purges 500/off,5000/off,500/lz4

Prints one JSON document on stdout (progress on stderr). Redis keys go under a prefix of
their own and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app
from lootbox.persistence.database import (
    SqlAlchemyUnitOfWork,
    make_session_factory,
    normalize_database_url,
)
from lootbox.persistence.migrate import upgrade_database
from lootbox.refwallet import serve_wallet
from lootbox.services.retention import purge_expired_idempotency_records
from lootbox.signing import signed_headers

WALLET_SECRET = "footprint-wallet-secret-0123456789"  # noqa: S105 - a throw-away wallet
CATALOG = Path(__file__).resolve().parent.parent / "examples" / "demo-catalog.json"
TABLES = ("rounds", "round_reels", "inventory_items", "money_movements", "idempotency_records")
PLAYERS = 1000


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    admin_url = make_url(normalize_database_url(server_url))
    name = f"lootbox_footprint_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Backend:
    """An operator backend calling the app in-process, every request signed."""

    def __init__(self, app: Any, key_id: str, secret: str) -> None:
        self.client = app.test_client()
        self.key_id = key_id
        self.secret = secret

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        headers = signed_headers(
            self.secret, int(time.time()), "POST", path, data, key_id=self.key_id
        )
        response = self.client.post(
            path, data=data, headers=headers, content_type="application/json"
        )
        return response.status_code, response.get_json()


def sizes(engine: Engine) -> dict[str, dict[str, int]]:
    found = {}
    with engine.connect() as conn:
        for table in TABLES:
            row = conn.execute(
                text(
                    f"SELECT (SELECT count(*) FROM {table}) AS rows,"  # noqa: S608 - TABLES
                    f" pg_relation_size('{table}') AS heap,"
                    f" pg_indexes_size('{table}') AS indexes,"
                    f" pg_total_relation_size('{table}') AS total"
                )
            ).one()
            found[table] = dict(row._mapping)
    return found


def index_sizes(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(size)
            for name, size in conn.execute(
                text(
                    "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes"
                    " WHERE relname = ANY(:tables) ORDER BY relname, indexrelname"
                ),
                {"tables": list(TABLES)},
            )
        }


def registries(engine: Engine) -> dict[str, dict[str, int]]:
    """What the narrow, unpartitioned tables that would hold the keys' uniqueness beside a
    partitioned ledger (docs/scaling.md) cost per row: built from the rows just written."""
    statements = {
        "movement_keys": (
            "CREATE TABLE movement_keys AS SELECT operator_id, idempotency_key,"
            " id AS movement_id, created_at FROM money_movements",
            "ALTER TABLE movement_keys ADD PRIMARY KEY (operator_id, idempotency_key)",
        ),
        "purchase_actions": (
            "CREATE TABLE purchase_actions AS SELECT operator_id, player_external_id,"
            " client_action_id, id AS round_id, created_at FROM rounds",
            "ALTER TABLE purchase_actions"
            " ADD PRIMARY KEY (operator_id, player_external_id, client_action_id)",
        ),
    }
    found = {}
    with engine.begin() as conn:
        for table, (create, key) in statements.items():
            conn.execute(text(create))
            conn.execute(text(key))
            row = conn.execute(
                text(
                    f"SELECT count(*) AS rows, pg_relation_size('{table}') AS heap,"  # noqa: S608
                    f" pg_indexes_size('{table}') AS indexes FROM {table}"
                )
            ).one()
            found[table] = dict(row._mapping)
            conn.execute(text(f"DROP TABLE {table}"))
    return found


def row_widths(engine: Engine) -> dict[str, float]:
    with engine.connect() as conn:
        return {
            table: float(
                conn.execute(
                    text(f"SELECT avg(pg_column_size(t.*)) FROM {table} t")  # noqa: S608
                ).scalar_one()
                or 0
            )
            for table in TABLES
        }


def delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]]) -> dict[str, Any]:
    return {
        table: {k: after[table][k] - before[table][k] for k in after[table]} for table in TABLES
    }


def run_phase(
    name: str, engine: Engine, requests: list[tuple[str, dict[str, Any]]], backend: Backend
) -> tuple[dict[str, Any], list[Any]]:
    before = sizes(engine)
    started = time.monotonic()
    answers = []
    for n, (path, body) in enumerate(requests, 1):
        status, answer = backend.post(path, body)
        if status != 200:
            raise RuntimeError(f"{name}: {path} answered {status}: {answer}")
        answers.append(answer)
        if n % 1000 == 0:
            say(f"{name}: {n}/{len(requests)}")
    seconds = time.monotonic() - started
    after = sizes(engine)
    say(f"{name}: {len(requests)} requests in {seconds:.1f} s")
    return {
        "requests": len(requests),
        "seconds": round(seconds, 1),
        "added": delta(after, before),
    }, answers


def lsn(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT pg_current_wal_lsn()")).scalar_one())


def wal_bytes(engine: Engine, start: str, end: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT pg_wal_lsn_diff(:end, :start)"), {"start": start, "end": end}
            ).scalar_one()
        )


def autocommit(engine: Engine, sql: str) -> float:
    started = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(sql))
    return time.monotonic() - started


def measure_purge(
    engine: Engine, rows: int, batch_size: int, wal_compression: str
) -> dict[str, Any]:
    """Clone the completed records into ``rows`` expired ones, then purge them, with the
    scratch database's ``wal_compression`` set to ``wal_compression`` for the purge."""
    with engine.begin() as conn:
        existing = int(
            conn.execute(
                text("SELECT count(*) FROM idempotency_records WHERE state = 'completed'")
            ).scalar_one()
        )
    copies = -(-rows // existing)
    start = lsn(engine)
    started = time.monotonic()
    with engine.begin() as conn:
        conn.execute(
            text(
                """
                INSERT INTO idempotency_records (operator_id, idempotency_key, endpoint,
                    fingerprint, state, request_id, lease_token, lease_expires_at,
                    status_code, response_body, created_at, completed_at, expires_at)
                SELECT operator_id, 'old-' || g || '-' || idempotency_key, endpoint,
                    fingerprint, state, request_id, lease_token,
                    lease_expires_at - interval '8 days', status_code, response_body,
                    created_at - interval '8 days', completed_at - interval '8 days',
                    completed_at - interval '1 day'
                FROM (SELECT * FROM idempotency_records WHERE state = 'completed'
                      ORDER BY id) r, generate_series(1, :copies) g
                LIMIT :rows
                """
            ),
            {"copies": copies, "rows": rows},
        )
    insert_seconds = time.monotonic() - started
    insert_wal = wal_bytes(engine, start, lsn(engine))
    autocommit(engine, "VACUUM ANALYZE idempotency_records")
    before = sizes(engine)["idempotency_records"]
    database = engine.url.database
    autocommit(engine, f"ALTER DATABASE \"{database}\" SET wal_compression = '{wal_compression}'")
    engine.dispose()  # the purge's connections start with the setting
    autocommit(engine, "CHECKPOINT")

    session_factory = make_session_factory(engine)

    def retention() -> SqlAlchemyUnitOfWork:
        return SqlAlchemyUnitOfWork(session_factory)

    batch_ms: list[float] = []
    last = [time.monotonic()]

    def tick(_deleted: int) -> None:
        now = time.monotonic()
        batch_ms.append((now - last[0]) * 1000)
        last[0] = now

    start = lsn(engine)
    summary = purge_expired_idempotency_records(
        retention,
        datetime.now(UTC),
        batch_size=batch_size,
        max_rows=rows * 2,
        progress=tick,
    )
    purge_wal = wal_bytes(engine, start, lsn(engine))
    autocommit(engine, f'ALTER DATABASE "{database}" RESET wal_compression')
    engine.dispose()
    start = lsn(engine)
    vacuum_seconds = autocommit(engine, "VACUUM idempotency_records")
    vacuum_wal = wal_bytes(engine, start, lsn(engine))
    after = sizes(engine)["idempotency_records"]
    return {
        "expiredRows": rows,
        "insert": {"seconds": round(insert_seconds, 2), "walBytes": insert_wal},
        "tableBeforePurge": before,
        "purge": {
            **summary.to_json(),
            "batchSize": batch_size,
            "walCompression": wal_compression,
            "rowsPerSecond": round(summary.deleted / summary.seconds),
            "batchMs": {
                "median": round(statistics.median(batch_ms), 2),
                "p99": round(sorted(batch_ms)[int(len(batch_ms) * 0.99) - 1], 2),
                "max": round(max(batch_ms), 2),
            },
            "walBytes": purge_wal,
            "walBytesPerRow": round(purge_wal / max(1, summary.deleted)),
        },
        "vacuumAfter": {"seconds": round(vacuum_seconds, 2), "walBytes": vacuum_wal},
        "tableAfterVacuum": after,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="per phase")
    parser.add_argument("--purge-rows", type=int, default=100_000)
    parser.add_argument(
        "--purges",
        type=lambda value: [(int(b), c) for b, c in (v.split("/") for v in value.split(","))],
        default=[(500, "off")],
        help="comma-separated BATCH_SIZE/WAL_COMPRESSION: one purge measurement each",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as on Ctrl-C
    server = os.environ["DATABASE_URL"]
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6")
    prefix = f"lootbox:idem:footprint-{uuid.uuid4().hex[:8]}"
    n = args.requests

    with (
        scratch_database(server) as url,
        serve_wallet([WALLET_SECRET], starting_balance_minor=10**12) as wallet,
    ):
        upgrade_database(url)
        app = create_app(
            {
                "database_url": url,
                "redis_url": redis_url,
                "redis_key_prefix": prefix,
                "env": "test",
                "log_level": "WARNING",
            }
        )
        box = app.extensions["lootbox"]
        engine = box.engine
        runner = app.test_cli_runner()
        onboard = (
            f"operators create acme --currency EUR --cashback-bps 8000 --wallet-url {wallet.url}"
        )
        created = runner.invoke(args=[*onboard.split(), "--wallet-secret", WALLET_SECRET])
        operator = json.loads(created.stdout)
        imported = json.loads(
            runner.invoke(args=["catalog", "import", "acme", str(CATALOG)]).stdout
        )
        versions = {b["slug"]: b["boxVersionId"] for b in imported["boxes"]}
        backend = Backend(app, operator["keyId"], operator["secret"])

        def player(i: int) -> str:
            return f"u_{i % PLAYERS:06d}"

        def purchase(i: int, mode: str) -> tuple[str, dict[str, Any]]:
            return "/api/s2s/purchase", {
                "playerExternalId": player(i),
                "gameKey": "mystery_box",
                "mode": mode,
                "clientActionId": f"act-{mode}-{uuid.uuid4().hex[:16]}",
                "reels": [{"reelIndex": 0, "boxVersionId": versions["dragon"]}],
            }

        report: dict[str, Any] = {"requestsPerPhase": n, "phases": {}}
        try:
            start = sizes(engine)
            atomic = [purchase(i, "open") for i in range(n)]
            phase, bought = run_phase("purchase (open, 1 reel)", engine, atomic, backend)
            report["phases"]["purchaseOpen"] = phase
            cashouts = [
                ("/api/s2s/cashout", {"playerExternalId": player(i), "inventoryItemId": item})
                for i, item in enumerate(a["wonItems"][0]["inventoryItemId"] for a in bought)
            ]
            report["phases"]["cashout"], _ = run_phase("cashout", engine, cashouts, backend)
            phase, held = run_phase(
                "purchase (prepay)", engine, [purchase(i, "prepay") for i in range(n)], backend
            )
            report["phases"]["purchasePrepay"] = phase
            half = n // 2
            rounds = [a["round"]["publicId"] for a in held]
            cancels = [
                ("/api/s2s/cancel", {"playerExternalId": player(i), "roundPublicId": r})
                for i, r in enumerate(rounds[:half])
            ]
            opens = [
                ("/api/s2s/open", {"playerExternalId": player(i + half), "roundPublicId": r})
                for i, r in enumerate(rounds[half:])
            ]
            report["phases"]["cancel"], _ = run_phase("cancel", engine, cancels, backend)
            report["phases"]["open"], _ = run_phase("open", engine, opens, backend)

            autocommit(engine, "VACUUM ANALYZE")
            report["asWritten"] = delta(sizes(engine), start)
            report["avgRowBytes"] = row_widths(engine)
            with engine.connect() as conn:
                report["avgResponseBodyBytes"] = {
                    endpoint: round(float(avg))
                    for endpoint, avg in conn.execute(
                        text(
                            "SELECT endpoint, avg(octet_length(response_body))"
                            " FROM idempotency_records GROUP BY endpoint"
                        )
                    )
                }
                report["server"] = conn.execute(text("SHOW server_version")).scalar_one()
            for table in TABLES:
                autocommit(engine, f"VACUUM FULL {table}")
            report["compact"] = delta(sizes(engine), start)
            report["compactIndexes"] = index_sizes(engine)
            report["registries"] = registries(engine)

            report["purge"] = [
                measure_purge(engine, args.purge_rows, batch_size, compression)
                for batch_size, compression in args.purges
            ]
        finally:
            names = list(box.redis.scan_iter(match=f"{prefix}:*", count=1000))
            for i in range(0, len(names), 1000):
                box.redis.delete(*names[i : i + 1000])
            box.services.wallet.close()
            engine.dispose()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
