"""The e2e harness: the Flask app through HTTP (the Flask test client) with real adapters.

Every test runs on the production stack, ``postgresql-redis``: the session's PostgreSQL
database and the real Redis of ``tests.services.redis_url()`` (never flushed or stopped
here: destructive Redis tests build their app on a ``private_redis_server()`` instead).

The wallet is the real reference wallet served over real HTTP on 127.0.0.1
(``serve_wallet``). Operators are onboarded through the real CLI with a unique slug per
test, and each app keeps its idempotency records under a Redis key prefix of its own
(``redis_key_prefix``: operator ids restart at 1 in every test's database), so the Redis
keys a test writes are its own; they are deleted again when the test ends.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
import requests
from flask import Flask
from sqlalchemy import text

from app import create_app
from lootbox.refwallet import serve_wallet
from lootbox.refwallet.server import RunningWallet
from lootbox.signing import signed_headers
from tests.e2e.db_faults import SerializationFaults
from tests.redis_server import PrivateRedis, private_redis_server
from tests.services import redis_url

WALLET_SECRET = "e2e-wallet-secret-0123456789"
HTTP_TIMEOUT = 5  # seconds, for every call to the wallet's admin API
STARTING_BALANCE = 100_000
PLAYER = "u_8431"
OTHER_PLAYER = "u_9002"

# The operator every test starts with: EUR, three wallet currencies, 80 % cashback.
RATES = {"USD": "1.0842", "JPY": "162.5", "KWD": "0.3312"}
CASHBACK_BPS = 8000

# Deterministic boxes (one prize with odds 1) unless a test needs a real draw.
CATALOG: dict[str, Any] = {
    "boxes": [
        {
            "slug": "gold",
            "name": "Gold Box",
            "priceMinor": 500,
            "prizes": [{"name": "Gold Coin", "valueMinor": 400, "odds": 1}],
        },
        {
            "slug": "silver",
            "name": "Silver Box",
            "priceMinor": 300,
            "prizes": [{"name": "Silver Coin", "valueMinor": 250, "odds": 1}],
        },
        {
            "slug": "final-sale",
            "name": "Final Sale Box",
            "priceMinor": 200,
            "refundable": False,
            "prizes": [{"name": "Final Sale Pin", "valueMinor": 100, "odds": 1}],
        },
        {
            "slug": "no-cashback",
            "name": "Keepsake Box",
            "priceMinor": 400,
            "cashbackEnabled": False,
            "prizes": [{"name": "Keepsake", "valueMinor": 300, "odds": 1}],
        },
        {
            "slug": "box-rule",
            "name": "Box Rule Box",
            "priceMinor": 1200,
            "cashbackBps": 5000,
            "prizes": [{"name": "Box Rule Gem", "valueMinor": 1000, "odds": 1}],
        },
        {
            "slug": "prize-rule",
            "name": "Prize Rule Box",
            "priceMinor": 1200,
            "cashbackBps": 5000,
            "prizes": [
                {"name": "Prize Rule Gem", "valueMinor": 1000, "odds": 1, "cashbackBps": 2500}
            ],
        },
        {
            "slug": "mixed",
            "name": "Mixed Box",
            "priceMinor": 100,
            "prizes": [
                {"name": "Common Sticker", "valueMinor": 50, "odds": 0.7},
                {"name": "Rare Poster", "valueMinor": 500, "odds": 0.3},
            ],
        },
    ]
}

# Gold: 400 EUR minor at 8000 bps.
GOLD_CASHBACK_EUR = 320

STACKS = ("postgresql-redis",)


# --- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creds:
    """An onboarded operator as its backend knows it."""

    slug: str
    currency: str
    key_id: str
    secret: str


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Any
    data: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def error(self) -> dict[str, Any]:
        """The error envelope's inner object, after checking the envelope's shape."""
        assert_error_envelope(self)
        return dict(self.json["error"])

    @property
    def code(self) -> str:
        return str(self.error["code"])

    @property
    def fields(self) -> dict[str, Any]:
        """The per-field details of a VALIDATION_ERROR."""
        error = self.error
        assert error["code"] == "VALIDATION_ERROR", error
        assert isinstance(error.get("details"), dict), error
        fields = error["details"].get("fields")
        assert fields, error
        return dict(fields) if isinstance(fields, dict) else {"_": fields}

    @property
    def replayed(self) -> bool:
        return self.headers.get("Idempotent-Replayed") == "true"


def assert_error_envelope(reply: Reply) -> None:
    """``{"error": {"code", "message", optional "details"}}``, JSON, never HTML."""
    assert reply.headers.get("Content-Type", "").startswith("application/json"), (
        reply.status,
        reply.headers.get("Content-Type"),
        reply.data[:200],
    )
    body = json.loads(reply.data)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert set(error) <= {"code", "message", "details"}, body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body


class SignedClient:
    """An operator backend: signs every request per contract section 3."""

    def __init__(self, app: Flask, creds: Creds) -> None:
        self.app = app
        self.creds = creds
        self.client = app.test_client()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        key_id: str | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
        sign_path: str | None = None,
        sign_body: bytes | None = None,
        signed: bool = True,
        query_string: str | None = None,
    ) -> Reply:
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        all_headers: dict[str, str] = {}
        if signed:
            all_headers.update(
                signed_headers(
                    secret if secret is not None else self.creds.secret,
                    int(time.time()) if timestamp is None else timestamp,
                    method,
                    sign_path if sign_path is not None else path,
                    data if sign_body is None else sign_body,
                    key_id=key_id if key_id is not None else self.creds.key_id,
                )
            )
        all_headers.update(headers or {})
        kwargs: dict[str, Any] = {"method": method, "data": data, "headers": all_headers}
        if content_type is not None and (data or method != "GET"):
            kwargs["content_type"] = content_type
        if query_string is not None:
            kwargs["query_string"] = query_string
        response = self.client.open(path, **kwargs)
        return Reply(response.status_code, response.headers, response.get_data())

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def cashout(self, **body: Any) -> Reply:
        return self.post("/api/s2s/cashout", body)

    def cancel(self, **body: Any) -> Reply:
        return self.post("/api/s2s/cancel", body)

    def open(self, **body: Any) -> Reply:
        return self.post("/api/s2s/open", body)

    def purchase(self, **body: Any) -> Reply:
        return self.post("/api/s2s/purchase", body)

    def health(self, **kwargs: Any) -> Reply:
        return self.get("/api/s2s/health", **kwargs)

    def inventory(self, **params: Any) -> Reply:
        return self.get("/api/s2s/inventory", query_string=urlencode(params))

    def history(self, **params: Any) -> Reply:
        return self.get("/api/s2s/history", query_string=urlencode(params))

    def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every page of a listing, following ``cursor.next`` to the end."""
        pages: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            reply = self.get(path, query_string=urlencode(query))
            assert reply.status == 200, reply.data
            pages.append(reply.json)
            cursor = reply.json["cursor"]["next"]
            if cursor is None:
                return pages
            assert len(pages) < 1000, "a cursor that never ends"


# --- the wallet ------------------------------------------------------------------------------


class WalletAdmin:
    """The reference wallet's own record and switches, over its admin HTTP API."""

    def __init__(self, running: RunningWallet) -> None:
        self.running = running
        self.url = running.url
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(
            method, f"{self.running.admin_url}/{path}", json=body, timeout=HTTP_TIMEOUT
        )
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json()

    def transactions(self, **match: Any) -> list[dict[str, Any]]:
        rows = self._call("GET", "transactions")["transactions"]
        return [row for row in rows if all(row.get(k) == v for k, v in match.items())]

    def credits(self, **match: Any) -> list[dict[str, Any]]:
        return self.transactions(type="wallet.credit", **match)

    def debits(self, **match: Any) -> list[dict[str, Any]]:
        return self.transactions(type="wallet.debit", **match)

    def fault(self, mode: str, **spec: Any) -> dict[str, Any]:
        return dict(self._call("POST", "faults", {"mode": mode, **spec})["fault"])

    def stats(self) -> dict[str, int]:
        return dict(self._call("GET", "stats"))

    def fault_count(self) -> int:
        return len(self._call("GET", "faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_balance(self, player: str, currency: str, balance_minor: int) -> None:
        self._call(
            "PUT",
            "balances",
            {"playerExternalId": player, "currency": currency, "balanceMinor": balance_minor},
        )

    def balance(self, player: str, currency: str = "EUR") -> int:
        for row in self._call("GET", "balances")["balances"]:
            if row["playerExternalId"] == player and row["currency"] == currency:
                return int(row["balanceMinor"])
        return STARTING_BALANCE

    def block(self, player: str) -> None:
        self._call("POST", f"players/{player}/block")

    def unblock(self, player: str) -> None:
        self._call("POST", f"players/{player}/unblock")


# --- CLI ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict[str, Any]:
        return dict(json.loads(self.stderr)["error"])


def run_cli(app: Flask, *args: str) -> CliResult:
    result = app.test_cli_runner().invoke(args=list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


def unique_slug(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- the world a test runs in ---------------------------------------------------------------


@dataclass
class World:
    """One app on one stack, with an onboarded operator, its catalog and its wallet."""

    stack: str
    app: Flask
    wallet: WalletAdmin
    operator: Creds
    boxes: dict[str, int]
    tmp_path: Path
    slugs: list[str] = field(default_factory=list)
    private_redis: PrivateRedis | None = None

    @property
    def api(self) -> SignedClient:
        return SignedClient(self.app, self.operator)

    def client_for(self, creds: Creds) -> SignedClient:
        return SignedClient(self.app, creds)

    @property
    def redis(self) -> Any:
        return self.app.extensions["lootbox"].redis

    def cli(self, *args: str) -> CliResult:
        return run_cli(self.app, *args)

    def onboard(
        self,
        slug: str | None = None,
        *,
        wallet_url: str | None = None,
        cashback_bps: int | None = CASHBACK_BPS,
        extra: tuple[str, ...] = (),
    ) -> Creds:
        slug = slug or unique_slug()
        args = [
            "operators",
            "create",
            slug,
            "--currency",
            "EUR",
            "--wallet-url",
            wallet_url or self.wallet.url,
            "--wallet-secret",
            WALLET_SECRET,
        ]
        for code, rate in RATES.items():
            args += ["--rate", f"{code}={rate}"]
        if cashback_bps is not None:
            args += ["--cashback-bps", str(cashback_bps)]
        result = self.cli(*args, *extra)
        assert result.exit_code == 0, result
        self.slugs.append(slug)
        doc = result.json
        return Creds(doc["slug"], doc["currency"], doc["keyId"], doc["secret"])

    def import_catalog(self, document: Any, slug: str | None = None) -> dict[str, int]:
        path = self.tmp_path / f"catalog-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(document))
        result = self.cli("catalog", "import", slug or self.operator.slug, str(path))
        assert result.exit_code == 0, result
        return {box["slug"]: box["boxVersionId"] for box in result.json["boxes"]}

    # --- scenarios every test file needs ---

    def purchase_body(
        self,
        *boxes: str,
        player: str = PLAYER,
        mode: str | None = None,
        currency: str | None = None,
        client_action_id: str | None = None,
        box_ids: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        ids = box_ids or self.boxes
        body: dict[str, Any] = {
            "playerExternalId": player,
            "gameKey": "mystery_box",
            "clientActionId": client_action_id or f"act-{uuid.uuid4().hex[:12]}",
            "reels": [
                {"reelIndex": i, "boxVersionId": ids[box]}
                for i, box in enumerate(boxes or ["gold"])
            ],
        }
        if mode is not None:
            body["mode"] = mode
        if currency is not None:
            body["currency"] = currency
        return body

    def win_item(
        self,
        box: str = "gold",
        *,
        player: str = PLAYER,
        client: SignedClient | None = None,
        box_ids: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Buy and open a box; the won item (unresolved)."""
        body = self.purchase_body(box, player=player, box_ids=box_ids)
        reply = (client or self.api).purchase(**body)
        assert reply.status == 200, reply.data
        (item,) = reply.json["wonItems"]
        return dict(item)

    def hold_round(
        self,
        box: str = "gold",
        *,
        player: str = PLAYER,
        currency: str | None = None,
        client: SignedClient | None = None,
        box_ids: dict[str, int] | None = None,
    ) -> str:
        """Pre-pay a box; the held round's public id."""
        body = self.purchase_body(
            box, player=player, mode="prepay", currency=currency, box_ids=box_ids
        )
        reply = (client or self.api).purchase(**body)
        assert reply.status == 200, reply.data
        assert reply.json["round"]["status"] == "held"
        return str(reply.json["round"]["publicId"])

    def lose_redis_keys(self) -> None:
        """FLUSHALL the app's Redis: only ever a private redis-server."""
        assert self.private_redis is not None, "build the world with controllable_redis=True"
        self.redis.flushall()

    @property
    def operator_id(self) -> int:
        (found,) = self.query("SELECT id FROM operators WHERE slug = :s", s=self.operator.slug)
        return int(found.id)

    def redis_key(self, key: str, operator_id: int | None = None) -> str:
        """Where the app keeps ``key``'s idempotency record in Redis."""
        store = self.app.extensions["lootbox"].guard.store
        return str(store.redis_key(operator_id or self.operator_id, key))

    def redis_record(self, key: str, operator_id: int | None = None) -> dict[str, Any] | None:
        raw = self.redis.get(self.redis_key(key, operator_id))
        return None if raw is None else dict(json.loads(raw))

    def stop_redis(self) -> None:
        """Take the app's Redis away: its private redis-server."""
        assert self.private_redis is not None, "build the world with controllable_redis=True"
        self.private_redis.stop()

    def start_redis(self) -> None:
        assert self.private_redis is not None
        self.private_redis.start()

    def query(self, sql: str, **params: Any) -> list[Any]:
        """What an on-call engineer would read in the database."""
        with self.app.extensions["lootbox"].engine.connect() as conn:
            return list(conn.execute(text(sql), params))


@dataclass(frozen=True)
class StackConfig:
    name: str
    database_url: str
    redis_url: str


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> StackConfig:
    url = redis_url()
    return StackConfig(request.param, request.getfixturevalue("postgres_db"), url)


@contextmanager
def running_wallet() -> Iterator[WalletAdmin]:
    with serve_wallet([WALLET_SECRET], starting_balance_minor=STARTING_BALANCE) as running:
        admin = WalletAdmin(running)
        try:
            yield admin
        finally:
            admin.session.close()


@pytest.fixture
def wallet() -> Iterator[WalletAdmin]:
    with running_wallet() as admin:
        yield admin


@pytest.fixture
def other_wallet() -> Iterator[WalletAdmin]:
    """A second operator's own wallet."""
    with running_wallet() as admin:
        yield admin


@pytest.fixture
def faults(stack: StackConfig) -> Iterator[SerializationFaults]:
    """Serialization failures injected into the stack's database (tests.e2e.db_faults)."""
    injected = SerializationFaults(stack.database_url)
    try:
        yield injected
    finally:
        injected.remove()


def app_settings(stack: StackConfig, **overrides: Any) -> dict[str, Any]:
    return {
        "database_url": stack.database_url,
        "redis_url": stack.redis_url,
        "env": "test",
        "idempotency_wait_seconds": 0.5,
        "idempotency_ttl_seconds": 3600,
        "wallet_connect_timeout_seconds": 1.0,
        "wallet_read_timeout_seconds": 2.0,
        "movement_lease_seconds": 4.0,
        "log_level": "WARNING",
        "redis_key_prefix": f"lootbox:idem:t-{uuid.uuid4().hex[:12]}",
        **overrides,
    }


class WorldFactory:
    """Builds worlds (apps) on this test's stack; tears all of them down afterwards."""

    def __init__(
        self, stack: StackConfig, wallet: WalletAdmin, tmp_path: Path, exit_stack: ExitStack
    ) -> None:
        self.stack = stack
        self.wallet = wallet
        self.tmp_path = tmp_path
        self.exit_stack = exit_stack
        self.worlds: list[World] = []

    def __call__(
        self,
        *,
        controllable_redis: bool = False,
        catalog: Any = CATALOG,
        **overrides: Any,
    ) -> World:
        """``controllable_redis``: a Redis this test may flush and stop (a private
        redis-server)."""
        stack = self.stack
        server: PrivateRedis | None = None
        if controllable_redis:
            server = self.exit_stack.enter_context(private_redis_server())
            stack = StackConfig(stack.name, stack.database_url, server.url)
        app = create_app(app_settings(stack, **overrides))
        world = World(
            stack=stack.name,
            app=app,
            wallet=self.wallet,
            operator=Creds("", "", "", ""),
            boxes={},
            tmp_path=self.tmp_path,
            private_redis=server,
        )
        self.worlds.append(world)
        world.operator = world.onboard()
        if catalog is not None:
            world.boxes = world.import_catalog(catalog)
        return world

    def close(self) -> None:
        for world in self.worlds:
            container = world.app.extensions["lootbox"]
            if world.private_redis is None:
                _delete_keys_of(container.redis, container.settings.redis_key_prefix)
            container.services.wallet.close()
            container.engine.dispose()


def _delete_keys_of(client: redis.Redis, prefix: str) -> None:
    """Remove this app's own keys (a unique prefix) from the shared Redis: never a flush."""
    try:
        names = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if names:
            client.delete(*names)
    except redis.RedisError:
        pass  # the keys expire by themselves (short TTL in these apps)


@pytest.fixture
def make_world(stack: StackConfig, wallet: WalletAdmin, tmp_path: Path) -> Iterator[WorldFactory]:
    with ExitStack() as exit_stack:
        factory = WorldFactory(stack, wallet, tmp_path, exit_stack)
        try:
            yield factory
        finally:
            factory.close()


@pytest.fixture
def world(make_world: WorldFactory) -> World:
    """The default world: an app on this stack, an operator, the catalog, a wallet."""
    return make_world()
