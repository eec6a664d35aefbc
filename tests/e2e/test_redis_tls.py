"""Redis over TLS (``rediss://``), as a PaaS Redis with a self-signed certificate serves it,
and what the log and ``/readyz`` say while the fast path is unavailable.

Each TLS test starts its own redis-server that speaks TLS only, with a certificate made for
it (``private_redis_server(tls=True)``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.conftest import StackConfig, WalletAdmin, World, WorldFactory
from tests.redis_server import PrivateRedis, private_redis_server

CERTIFICATE_PROBLEM = "SSLCertVerificationError: certificate verify failed: self-signed certificate"


@pytest.fixture
def tls_redis() -> Iterator[PrivateRedis]:
    with private_redis_server(tls=True) as server:
        yield server


@pytest.fixture
def world_on(
    postgres_db: str, wallet: WalletAdmin, tmp_path: Path
) -> Iterator[Callable[[str], World]]:
    """A world on PostgreSQL whose ``REDIS_URL`` is the given one."""
    with ExitStack() as exit_stack:
        factories: list[WorldFactory] = []

        def build(redis_url: str) -> World:
            stack = StackConfig("postgresql-redis", postgres_db, redis_url)
            factory = WorldFactory(stack, wallet, tmp_path, exit_stack)
            factories.append(factory)
            return factory()

        try:
            yield build
        finally:
            for factory in factories:
                factory.close()


def logged(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.INFO]


def completed_records_in(server: PrivateRedis) -> list[dict[str, object]]:
    """The completed idempotency records the server holds (it holds nothing else)."""
    with server.client() as client:
        values = [client.get(name) for name in client.scan_iter(count=500)]
    docs = [json.loads(value) for value in values if value is not None]
    return [doc for doc in docs if doc.get("state") == "completed"]


def test_an_untrusted_certificate_is_logged_once_with_its_fix_and_requests_use_the_database(
    tls_redis: PrivateRedis, world_on: Callable[[str], World], caplog: pytest.LogCaptureFixture
) -> None:
    world = world_on(tls_redis.url)  # rediss://, the certificate verified (redis-py's default)
    caplog.set_level(logging.INFO, logger="lootbox")

    body = world.purchase_body("gold")
    first = world.api.purchase(**body)
    again = world.api.purchase(**body)
    items = [world.win_item() for _ in range(3)]

    assert first.status == 200, first.data
    assert again.status == 200 and again.replayed and again.data == first.data
    assert all(item["state"] == "unresolved" for item in items)
    (warning,) = logged(caplog, "lootbox.idempotency")  # five requests, one line
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert "falls back to the database" in message
    assert CERTIFICATE_PROBLEM in message
    assert "?ssl_cert_reqs=none" in message and "?ssl_ca_certs=" in message
    assert completed_records_in(tls_redis) == []  # nothing reached Redis

    probes = [world.app.test_client().get("/readyz") for _ in range(3)]

    for probe in probes:
        assert probe.status_code == 200
        ready = probe.get_json()
        assert (ready["status"], ready["database"], ready["redis"]) == (
            "degraded",
            "ok",
            "unreachable",
        )
        assert ready["reason"].startswith(CERTIFICATE_PROBLEM)
        assert "?ssl_ca_certs=" in ready["reason"]
    (readiness,) = logged(caplog, "lootbox.readiness")  # three probes, one line
    assert readiness.levelno == logging.WARNING
    assert CERTIFICATE_PROBLEM in readiness.getMessage()


@pytest.mark.parametrize("options", ["ssl_cert_reqs=none", "ssl_ca_certs={cert}"])
def test_tls_options_in_redis_url_make_the_fast_path_work(
    tls_redis: PrivateRedis,
    world_on: Callable[[str], World],
    caplog: pytest.LogCaptureFixture,
    options: str,
) -> None:
    assert tls_redis.tls is not None
    url = f"{tls_redis.url}?{options.format(cert=tls_redis.tls.cert)}"
    world = world_on(url)
    caplog.set_level(logging.INFO, logger="lootbox")

    body = world.purchase_body("gold")
    first = world.api.purchase(**body)
    again = world.api.purchase(**body)
    ready = world.app.test_client().get("/readyz")

    assert first.status == 200, first.data
    assert again.status == 200 and again.replayed and again.data == first.data
    (stored,) = completed_records_in(tls_redis)  # the replay's source, in this redis-server
    assert stored["body"] == first.data.decode()
    assert ready.get_json() == {"status": "ready", "database": "ok", "redis": "ok"}
    assert logged(caplog, "lootbox.idempotency") == []
    assert logged(caplog, "lootbox.readiness") == []


def test_redis_going_away_and_coming_back_is_logged_once_each_way(
    make_world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world(controllable_redis=True)
    caplog.set_level(logging.INFO, logger="lootbox.idempotency")
    probe = world.app.test_client()

    world.stop_redis()
    try:
        while_down = [world.win_item() for _ in range(3)]
        degraded = probe.get("/readyz").get_json()
    finally:
        world.start_redis()
    after = [world.win_item() for _ in range(2)]

    assert len(while_down) == 3 and len(after) == 2
    assert degraded["status"] == "degraded" and degraded["reason"]
    assert "REDIS_URL" not in degraded["reason"]  # no TLS hint for a stopped server
    assert probe.get("/readyz").get_json() == {"status": "ready", "database": "ok", "redis": "ok"}
    down, back = logged(caplog, "lootbox.idempotency")
    assert down.levelno == logging.WARNING and degraded["reason"] in down.getMessage()
    assert back.levelno == logging.INFO and "answers again" in back.getMessage()
