"""The deployment shape, started for real on 127.0.0.1, and the tools to drive it.

``start_stack`` brings up, each as its own process: a private redis-server, the reference
wallet (``python -m lootbox.refwallet``), the operator and catalog set-up through the
``flask`` CLI, and gunicorn exactly as the Procfile runs it. Every process is ours, is
tracked by PID and is stopped (SIGTERM, then SIGKILL) when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import Engine, create_engine, text

from config.settings import Settings
from lootbox.signing import signed_headers
from tests.processes import (
    children_of,
    cmdline,
    free_port,
    kill_pids,
    run_json,
    start_refwallet,
    stop_process,
    tail,
)
from tests.redis_server import PrivateRedis, private_redis_server

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"

# Every HTTP call of the system tests is bounded by this (seconds).
REQUEST_TIMEOUT = 15.0
START_TIMEOUT = 40.0
# All concurrent calls of one test are released together and each is bounded by
# REQUEST_TIMEOUT; the batch as a whole by this.

# The app's wallet budget is 1 + 1 s, so a wallet that answers after 2.5 s is a timeout
# for it; the movement lease must exceed that budget (config refuses otherwise).
APP_ENV = {
    "LOOTBOX_ENV": "production",
    "SECRET_KEY": "system-test-secret-key",
    # A fixed Fernet key: the tests' own, never used anywhere else.
    "LOOTBOX_ENCRYPTION_KEYS": "nuplwiU4uTK-X5TS8m_TPv1X4aYDf_n9RhiXCG89jTw=",
    "WEB_CONCURRENCY": "4",
    "GUNICORN_THREADS": "8",
    "WALLET_READ_TIMEOUT_SECONDS": "1",
    "WALLET_CONNECT_TIMEOUT_SECONDS": "1",
    "MOVEMENT_LEASE_SECONDS": "3",
    # The request-level lease a dead worker leaves behind. Above the longest legitimate
    # request here (2 s wait for a duplicate + 2 s of wallet budget), far below the 30 s
    # default so that the recovery tests finish quickly.
    "IDEMPOTENCY_LEASE_SECONDS": "5",
    "LOG_LEVEL": "INFO",
}

WALLET_SECRET = "system-wallet-secret"
STARTING_BALANCE = 10_000_000
BOX_PRICE = 500
PRIZE_VALUE = 700
CASHBACK_BPS = 5000
CASHBACK = PRIZE_VALUE * CASHBACK_BPS // 10_000
CATALOG = {
    "boxes": [
        {
            "slug": "gold",
            "name": "Gold box",
            "priceMinor": BOX_PRICE,
            "refundable": True,
            "prizes": [{"name": "Coin", "valueMinor": PRIZE_VALUE, "odds": "1"}],
        }
    ]
}


def _socket_inodes(
    local_port: int, remote_port: int | None, *, established_only: bool = False
) -> set[str]:
    """Inodes of the TCP sockets 127.0.0.1:local_port <-> remote_port (any remote port if
    ``None``; any state unless ``established_only``)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
                if (
                    int(local.rsplit(":", 1)[1], 16) == local_port
                    and (remote_port is None or int(remote.rsplit(":", 1)[1], 16) == remote_port)
                    and (not established_only or state == "01")
                    and inode != "0"
                ):
                    inodes.add(inode)
    return inodes


def _owns_socket(pid: int, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) in wanted:
                return True
    return False


@dataclass(frozen=True)
class Response:
    """What a caller sees of one answer (picklable across threads, no open sockets)."""

    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return str(self.json["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None

    @property
    def replayed(self) -> bool:
        return self.headers.get("idempotent-replayed") == "true"


@dataclass
class SystemStack:
    base_url: str
    port: int
    wallet_url: str
    wallet_admin_url: str
    database_url: str
    redis: PrivateRedis
    slug: str
    key_id: str
    secret: str
    box_version_id: int
    gunicorn: subprocess.Popen[bytes]
    logdir: Path
    engine: Engine
    env: dict[str, str]
    _sequence: int = field(default=0)

    # --- the S2S API -----------------------------------------------------------------

    def signed(self, method: str, path: str, body: bytes) -> dict[str, str]:
        headers = signed_headers(self.secret, int(time.time()), method, path, body, self.key_id)
        if method == "POST":
            headers["Content-Type"] = "application/json"
        return headers

    def call(
        self, method: str, path: str, document: Any = None, *, timeout: float = REQUEST_TIMEOUT
    ) -> Response:
        body = b"" if document is None else json.dumps(document).encode()
        answer = requests.request(
            method,
            f"{self.base_url}{path}",
            data=body,
            headers=self.signed(method, path, body),
            timeout=timeout,
            allow_redirects=False,
        )
        return Response(
            answer.status_code,
            answer.content,
            {name.lower(): value for name, value in answer.headers.items()},
        )

    def post(self, path: str, document: dict[str, Any], **kwargs: Any) -> Response:
        return self.call("POST", path, document, **kwargs)

    def post_keyed(self, path: str, document: dict[str, Any], key: str | None) -> Response:
        """POST ``document``, with ``idempotencyKey`` if a key is given (else the default)."""
        return self.post(path, document if key is None else document | {"idempotencyKey": key})

    def cashout(self, player: str, item_id: int, key: str | None = None) -> Response:
        document = {"playerExternalId": player, "inventoryItemId": item_id}
        return self.post_keyed("/api/s2s/cashout", document, key)

    def cancel(self, player: str, round_id: str, key: str | None = None) -> Response:
        document = {"playerExternalId": player, "roundPublicId": round_id}
        return self.post_keyed("/api/s2s/cancel", document, key)

    def open(self, player: str, round_id: str, key: str | None = None) -> Response:
        document = {"playerExternalId": player, "roundPublicId": round_id}
        return self.post_keyed("/api/s2s/open", document, key)

    def purchase_body(self, player: str, action: str, mode: str = "open") -> dict[str, Any]:
        return {
            "playerExternalId": player,
            "gameKey": "mystery_box",
            "mode": mode,
            "clientActionId": action,
            "reels": [{"reelIndex": 0, "boxVersionId": self.box_version_id}],
        }

    def purchase(self, player: str, action: str, mode: str = "open") -> Response:
        return self.post("/api/s2s/purchase", self.purchase_body(player, action, mode))

    def new_player(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}-{os.getpid()}-{self._sequence}-{int(time.time() * 1000)}"

    def won_item(self, player: str) -> int:
        """A fresh unresolved inventory item of ``player`` (one atomic purchase)."""
        answer = self.purchase(player, f"buy-{self.new_player('a')}")
        assert answer.status == 200, answer.body
        return int(answer.json["wonItems"][0]["inventoryItemId"])

    def held_round(self, player: str) -> str:
        answer = self.purchase(player, f"prepay-{self.new_player('a')}", mode="prepay")
        assert answer.status == 200, answer.body
        assert answer.json["round"]["status"] == "held"
        return str(answer.json["round"]["publicId"])

    # --- the reference wallet's admin API ---------------------------------------------

    def wallet_transactions(self, **match: Any) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.wallet_admin_url}/transactions", timeout=REQUEST_TIMEOUT)
        answer.raise_for_status()
        return [
            t
            for t in answer.json()["transactions"]
            if all(t.get(name) == value for name, value in match.items())
        ]

    def wallet_stats(self) -> dict[str, int]:
        answer = requests.get(f"{self.wallet_admin_url}/stats", timeout=REQUEST_TIMEOUT)
        answer.raise_for_status()
        return dict(answer.json())

    def add_fault(self, spec: dict[str, Any]) -> None:
        answer = requests.post(f"{self.wallet_admin_url}/faults", json=spec, timeout=5)
        assert answer.status_code == 201, answer.text

    def clear_faults(self) -> None:
        requests.delete(f"{self.wallet_admin_url}/faults", timeout=5).raise_for_status()

    # --- the database, read-only for assertions -----------------------------------------

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())

    def terminate_app_connections(self, *, busy_only: bool = False) -> int:
        """Cut the connections the app holds to its database, as a failover or a
        PostgreSQL restart would; only this stack's own database, never the server. With
        ``busy_only``, only those in the middle of a statement or transaction. Returns how
        many were cut."""
        sql = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        if busy_only:
            sql += " AND state <> 'idle'"
        return len(self.query(sql))

    def cli(self, *args: str) -> dict[str, Any]:
        """``flask --app app …`` against this stack's database and Redis; its JSON answer."""
        return _cli(self.env, self.logdir, *args)

    # --- gunicorn's processes -----------------------------------------------------------------

    def worker_pids(self) -> set[int]:
        return {pid for pid in children_of(self.gunicorn.pid) if b"gunicorn" in cmdline(pid)}

    def busy_workers(self) -> set[int]:
        """Workers holding an accepted client connection right now: serving a request."""
        inodes = _socket_inodes(self.port, None, established_only=True)
        return {pid for pid in self.worker_pids() if _owns_socket(pid, inodes)}

    def worker_serving(self, client_port: int) -> int | None:
        """The worker holding the accepted end of our connection from ``client_port``."""
        inodes = _socket_inodes(self.port, client_port)
        if not inodes:
            return None
        for pid in self.worker_pids():
            if _owns_socket(pid, inodes):
                return pid
        return None

    def wait_for_workers(self, count: int, timeout: float = START_TIMEOUT) -> set[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if len(pids) == count:
                return pids
            time.sleep(0.1)
        raise AssertionError(f"gunicorn has workers {self.worker_pids()}, wanted {count}")

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{tail(path)}" for path in sorted(self.logdir.glob("*.log"))
        )


def summary(answers: Sequence[Response]) -> str:
    return str(Counter((a.status, a.code) for a in answers))


def assert_in_use(answer: Response) -> None:
    assert answer.code == "IDEMPOTENCY_KEY_IN_USE", answer.body
    assert int(answer.headers["retry-after"]) >= 1


def assert_one_answer(answers: Sequence[Response]) -> list[Response]:
    """Identical concurrent requests: each got the answer (200) or was told the key is in
    use (409 with Retry-After), and every 200 is the same bytes. Returns the 200s."""
    assert {a.status for a in answers} <= {200, 409}, summary(answers)
    for answer in answers:
        if answer.status == 409:
            assert_in_use(answer)
    oks = [a for a in answers if a.status == 200]
    assert oks, summary(answers)
    assert len({a.body for a in oks}) == 1, "every 200 must be the same answer, byte for byte"
    return oks


class RawRequest:
    """One signed request on a connection of our own, so that we know its client port
    (and therefore which gunicorn worker accepted it) before the answer comes back."""

    def __init__(self, stack: SystemStack, path: str, document: dict[str, Any]) -> None:
        self.body = json.dumps(document).encode()
        self.headers = stack.signed("POST", path, self.body)
        self.path = path
        self.conn = http.client.HTTPConnection(HOST, stack.port, timeout=REQUEST_TIMEOUT)
        self.conn.connect()
        assert self.conn.sock is not None
        self.client_port = int(self.conn.sock.getsockname()[1])

    def send(self) -> int | str:
        """The HTTP status, or the name of the error if the connection died first."""
        try:
            self.conn.request("POST", self.path, self.body, self.headers)
            return self.conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        finally:
            self.conn.close()


# --- starting it all --------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in Settings.ENV_VARS and not name.startswith(("GUNICORN", "REFWALLET"))
    }
    env.pop("PORT", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli(env: dict[str, str], logdir: Path, *args: str) -> dict[str, Any]:
    return run_json([str(BIN / "flask"), "--app", "app", *args], env, logdir / "cli.log", 60)


def _wait_healthy(stack: SystemStack) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last: object = None
    while time.monotonic() < deadline:
        if stack.gunicorn.poll() is not None:
            break
        try:
            answer = stack.call("GET", "/api/s2s/health", timeout=2)
            if answer.status == 200 and answer.json.get("status") == "ok":
                return
            last = answer
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not become healthy ({last!r}):\n{stack.log_tail()}")


@contextlib.contextmanager
def start_stack(database_url: str) -> Iterator[SystemStack]:
    logdir = Path(tempfile.mkdtemp(prefix="lootbox-system-"))
    processes: list[subprocess.Popen[bytes]] = []
    gunicorn: subprocess.Popen[bytes] | None = None
    workers: set[int] = set()
    engine = create_engine(database_url, pool_size=2, pool_pre_ping=True)
    try:
        with private_redis_server() as redis:
            wallet, wallet_url = start_refwallet(
                logdir / "refwallet.log",
                _base_env(),
                WALLET_SECRET,
                STARTING_BALANCE,
                START_TIMEOUT,
            )
            processes.append(wallet)

            env = _base_env() | APP_ENV
            env |= {"DATABASE_URL": database_url, "REDIS_URL": redis.url}
            slug = f"sys-{os.getpid()}-{int(time.time())}"
            created = _cli(
                env,
                logdir,
                "operators",
                "create",
                slug,
                "--currency",
                "EUR",
                "--wallet-url",
                wallet_url,
                "--wallet-secret",
                WALLET_SECRET,
                "--cashback-bps",
                str(CASHBACK_BPS),
            )
            catalog_file = logdir / "catalog.json"
            catalog_file.write_text(json.dumps(CATALOG))
            imported = _cli(env, logdir, "catalog", "import", slug, str(catalog_file))

            port = free_port()
            with (logdir / "gunicorn.log").open("ab") as log:
                gunicorn = subprocess.Popen(
                    [str(BIN / "gunicorn"), "--config", "config/gunicorn.py", "wsgi:app"],
                    cwd=REPO_ROOT,
                    env=env | {"PORT": str(port)},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            processes.append(gunicorn)
            base = wallet_url.rsplit("/", 1)[0]
            stack = SystemStack(
                base_url=f"http://{HOST}:{port}",
                port=port,
                wallet_url=wallet_url,
                wallet_admin_url=f"{base}/_admin",
                database_url=database_url,
                redis=redis,
                slug=slug,
                key_id=str(created["keyId"]),
                secret=str(created["secret"]),
                box_version_id=int(imported["boxes"][0]["boxVersionId"]),
                gunicorn=gunicorn,
                logdir=logdir,
                engine=engine,
                env=env,
            )
            _wait_healthy(stack)
            stack.wait_for_workers(int(APP_ENV["WEB_CONCURRENCY"]))
            try:
                yield stack
            finally:
                workers = stack.worker_pids()
                for proc in reversed(processes):
                    stop_process(proc)
    finally:
        for proc in reversed(processes):
            stop_process(proc)
        # Workers exit with their master; any that lingers is still ours, by PID.
        kill_pids(workers, "gunicorn")
        engine.dispose()
