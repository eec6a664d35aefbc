"""CPU per request without gunicorn, HTTP or other processes: ``python -m bench.inprocess``.

The wrk runs measure the deployment; this measures the code. The app runs in this
process on a fresh database of the local PostgreSQL and a private redis-server, with a
fake wallet that answers at once, and Flask's test client sends signed requests one after
another. For each kind, ``time.process_time()`` over a batch (after a warm-up batch)
divided by the batch: the CPU this process spent per request (the test client's own work
included, the database's and Redis's not). A third figure is the service's wallet client
alone: signed credits sent to the reference wallet, which runs as its own process.
``--profile`` adds a cProfile of one more batch of each kind, sorted by cumulative CPU.

It is what "What each change bought" in docs/benchmarks.md quotes for changes measured
in process: run it on two checkouts, alternating, minutes apart.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.stack import WALLET_SECRET, PostgresServer, base_env
from lootbox.domain.records import WalletSettings
from lootbox.ports import WalletAccepted, WalletMoneyCall
from lootbox.wallet import HttpWallet
from tests.e2e.conftest import Creds, SignedClient
from tests.fakes import FakeWallet, box_doc
from tests.processes import start_refwallet, stop_process
from tests.redis_server import start_private_redis

REDIS_BINARY = "/usr/bin/redis-server"


@contextmanager
def fresh_database(postgres: PostgresServer) -> Iterator[str]:
    name = f"lootbox_bench_inprocess_{uuid.uuid4().hex[:8]}"
    with postgres.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres.url(name)
    finally:
        with postgres.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_ms_per_call(calls: Sequence[Callable[[], object]]) -> float:
    started = time.process_time()
    for call in calls:
        call()
    return (time.process_time() - started) * 1000 / len(calls)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="per measured batch (300)")
    parser.add_argument("--profile", action="store_true", help="cProfile one more batch")
    options = parser.parse_args(argv)
    n = options.requests

    with fresh_database(PostgresServer()) as database_url, tempfile.TemporaryDirectory() as tmp:
        redis_server = start_private_redis(REDIS_BINARY, Path(tmp))
        wallet, wallet_url = start_refwallet(
            Path(tmp) / "refwallet.log", base_env(), WALLET_SECRET, 10**15, 20.0
        )
        try:
            os.environ["DATABASE_URL"] = database_url
            from app import create_app  # after DATABASE_URL: the CLI's migration reads it

            app = create_app(
                {
                    "env": "test",
                    "database_url": database_url,
                    "redis_url": redis_server.url,
                    "log_level": "INFO",
                },
                wallet=FakeWallet(),
            )
            quiet_logs()
            results = measure(app, Path(tmp), n, options.profile)
            results["wallet call (HttpWallet to the reference wallet): CPU ms per call"] = round(
                wallet_call_cpu_ms(wallet_url, n), 3
            )
        finally:
            stop_process(wallet)
            redis_server.stop()
    print(json.dumps(results, indent=2))
    return 0


def wallet_call_cpu_ms(wallet_url: str, n: int) -> float:
    """One signed ``wallet.credit`` per call through the service's own wallet client, to
    the reference wallet running as its own process (its CPU is not counted here)."""
    client = HttpWallet()
    settings = WalletSettings(url=wallet_url, secret=WALLET_SECRET)
    serial = iter(range(10**9))

    def credit() -> object:
        item = next(serial)
        outcome = client.send(
            settings,
            WalletMoneyCall(
                type="wallet.credit",
                idempotency_key=f"cashback:inventory:{item}",
                player_external_id="p1",
                amount_minor=1,
                currency="EUR",
                reason="cashback",
                round_public_id=None,
                inventory_item_id=item,
                reference={"operatorAmountMinor": 1, "operatorCurrency": "EUR", "rate": "1"},
            ),
        )
        assert isinstance(outcome, WalletAccepted), outcome
        return outcome

    cpu_ms_per_call([credit] * 50)  # warm-up: connections, imports
    try:
        return cpu_ms_per_call([credit] * n)
    finally:
        client.close()


def quiet_logs() -> None:
    """Every request still formats and writes its access line (that is part of its cost),
    to /dev/null instead of the terminal."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def measure(app: Any, tmp: Path, n: int, profile: bool) -> dict[str, float]:
    runner = app.test_cli_runner()

    def cli(*args: str) -> Any:
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    cli("db", "upgrade")
    creds = cli(
        "operators", "create", "inprocess", "--currency", "EUR", "--cashback-bps", "5000",
        "--wallet-url", "http://127.0.0.1:9/unused", "--wallet-secret", "x" * 32,
    )  # fmt: skip
    catalog = tmp / "catalog.json"
    catalog.write_text(json.dumps({"boxes": [box_doc("gold")]}))
    version = cli("catalog", "import", "inprocess", str(catalog))["boxes"][0]["boxVersionId"]
    signed = SignedClient(app, Creds("inprocess", "EUR", creds["keyId"], creds["secret"]))

    def post(path: str, document: dict[str, Any]) -> Any:
        reply = signed.post(path, document)
        assert reply.status == 200, (path, reply.status, reply.data)
        return reply.json

    def purchase(player: str) -> int:
        outcome = post(
            "/api/s2s/purchase",
            {
                "playerExternalId": player,
                "gameKey": "mystery_box",
                "mode": "open",
                "clientActionId": "a1",
                "reels": [{"reelIndex": 0, "boxVersionId": version}],
            },
        )
        return int(outcome["wonItems"][0]["inventoryItemId"])

    def cashout(player: str, item: int) -> Callable[[], object]:
        body = {"playerExternalId": player, "inventoryItemId": item}
        return lambda: post("/api/s2s/cashout", body)

    batches = 3 if profile else 2  # warm-up, measured, profiled
    players = [f"p{i}" for i in range(n * batches)]
    fresh = [cashout(p, purchase(p)) for p in players]
    replay = [fresh[0]] * n

    results = {}
    fresh[0]()
    for kind, calls in (("fresh cashout", fresh), ("replay", replay)):
        cpu_ms_per_call(calls[1:n] if kind == "fresh cashout" else calls)  # warm-up
        batch = calls[n : 2 * n] if kind == "fresh cashout" else calls
        results[f"{kind}: CPU ms per request"] = round(cpu_ms_per_call(batch), 3)
        if profile:
            profiled = calls[2 * n :] if kind == "fresh cashout" else calls
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            cpu_ms_per_call(profiled)
            profiler.disable()
            print(f"--- {kind} ---", file=sys.stderr)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    return results


if __name__ == "__main__":
    sys.exit(main())
