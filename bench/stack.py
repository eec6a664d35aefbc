"""The deployment shape for the benchmark, started for real on 127.0.0.1.

Each part is its own process, started by us, tracked by PID and stopped by PID: a private
``redis-server`` on a free port, a fresh database ``lootbox_bench_<random>`` on the shared
PostgreSQL server (dropped at the end), the reference wallet
(``python -m lootbox.refwallet``), the operator and catalog set-up through the ``flask``
CLI, the Procfile's ``release:`` command for the migrations, and gunicorn exactly as the
Procfile's ``web:`` line runs it (``config/gunicorn.py`` unchanged).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from bench.payloads import Credentials
from bench.procs import HOST, wait_http_ok
from config.settings import Settings
from tests.processes import (
    children_of,
    cmdline,
    free_port,
    kill_pids,
    run_json,
    start_refwallet,
    stop_process,
)
from tests.redis_server import PrivateRedis, start_private_redis

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
REDIS_START_TIMEOUT = 10.0

WALLET_SECRET = "bench-wallet-secret"  # noqa: S105 - the local reference wallet's
# Credits only add; purchases must never run out, whatever the scenario length.
STARTING_BALANCE = 10**15
BOX_PRICE = 500
PRIZE_VALUE = 700
CASHBACK_BPS = 5000
CATALOG = {
    "boxes": [
        {
            "slug": "bench",
            "name": "Benchmark box",
            "priceMinor": BOX_PRICE,
            "refundable": True,
            "prizes": [{"name": "Coin", "valueMinor": PRIZE_VALUE, "odds": "1"}],
        }
    ]
}

# What the benchmark sets for the app; everything else is the shipped default.
APP_ENV = {
    "LOOTBOX_ENV": "production",
    "SECRET_KEY": "bench-secret-key",
    # The benchmark's own Fernet key, for the secrets it stores.
    "LOOTBOX_ENCRYPTION_KEYS": "nuplwiU4uTK-X5TS8m_TPv1X4aYDf_n9RhiXCG89jTw=",
}


@dataclass(frozen=True)
class PostgresServer:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=database,
            autocommit=autocommit,
            connect_timeout=5,
        )


@dataclass
class Operator:
    slug: str
    operator_id: int
    credentials: Credentials
    box_version_id: int
    prize_id: int
    currency: str = "EUR"


@dataclass
class Gunicorn:
    proc: subprocess.Popen[bytes]
    port: int
    workers_seen: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def host_header(self) -> str:
        return f"{HOST}:{self.port}"

    def worker_pids(self) -> set[int]:
        pids = {
            pid
            for pid in children_of(self.proc.pid)
            if b"gunicorn" in cmdline(pid) or b"wsgi" in cmdline(pid)
        }
        self.workers_seen |= pids
        return pids

    def stop(self) -> None:
        self.worker_pids()
        stop_process(self.proc, timeout=25)
        # Workers exit with their master; any that lingers is still ours, by PID.
        kill_pids(self.workers_seen, "gunicorn")


def procfile_command(kind: str) -> list[str]:
    """The argv of a Procfile line (``release``, ``web``), executables from our venv."""
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == kind:
            argv = shlex.split(command)
            local = BIN / argv[0]
            if local.exists():
                argv[0] = str(local)
            return argv
    raise RuntimeError(f"Procfile has no {kind!r} line")


def base_env() -> dict[str, str]:
    """Our environment without any app, gunicorn or wallet setting that would leak in."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in Settings.ENV_VARS
        and not name.startswith(("GUNICORN", "REFWALLET", "WEB_CONCURRENCY", "PROMETHEUS"))
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


class BenchStack:
    """Everything a benchmark run needs, torn down (by PID) in ``close``."""

    def __init__(
        self,
        workdir: Path,
        postgres: PostgresServer,
        app_env: dict[str, str],
        gunicorn_env: dict[str, str],
    ) -> None:
        self.workdir = workdir
        self.postgres = postgres
        self.database_prefix = f"lootbox_bench_{secrets.token_hex(4)}"
        self.database = self.database_prefix
        self.databases_created: list[str] = []
        self.redis_db = 0
        self.redis: PrivateRedis | None = None
        self.wallet_proc: subprocess.Popen[bytes] | None = None
        self.wallet_url = ""
        self.app_env = app_env
        self.gunicorn_env = gunicorn_env
        self.gunicorns: list[Gunicorn] = []
        self.metrics_dir = workdir / "prometheus"

    # --- parts ------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.postgres.url(self.database)

    @property
    def redis_port(self) -> int:
        assert self.redis is not None, "start_redis() first"
        return self.redis.port

    @property
    def redis_url(self) -> str:
        return f"redis://{HOST}:{self.redis_port}/{self.redis_db}"

    def use_database(self, database: str, redis_db: int) -> None:
        """Point what starts next (CLI, gunicorn) at another of our databases and another
        Redis database number (the scaling run keeps one of each per size)."""
        self.database = database
        self.redis_db = redis_db

    @property
    def wallet_admin_url(self) -> str:
        return self.wallet_url.rsplit("/", 1)[0] + "/_admin"

    def redis_client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.redis_port, socket_timeout=30)

    def env(self) -> dict[str, str]:
        """The app's environment: production mode, our database and Redis, and the
        gunicorn/app knobs the caller chose (recorded with the results)."""
        return (
            base_env()
            | APP_ENV
            | self.app_env
            | self.gunicorn_env
            | {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
            }
        )

    def start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(exist_ok=True)
        self.redis = start_private_redis(binary, redis_dir, REDIS_START_TIMEOUT)

    def create_database(self) -> None:
        """Create the current database (a name of ours, made by this run)."""
        with self.postgres.connect() as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        self.databases_created.append(self.database)

    def drop_databases(self) -> None:
        with self.postgres.connect() as conn:
            while self.databases_created:
                name = self.databases_created.pop()
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def set_statement_logging(self, enabled: bool) -> None:
        """``log_statement = all`` for connections to our database only (new ones)."""
        with self.postgres.connect() as conn:
            if enabled:
                conn.execute(f"ALTER DATABASE \"{self.database}\" SET log_statement = 'all'")
            else:
                conn.execute(f'ALTER DATABASE "{self.database}" RESET log_statement')

    def start_wallet(self) -> None:
        self.wallet_proc, self.wallet_url = start_refwallet(
            self.workdir / "refwallet.log",
            base_env(),
            WALLET_SECRET,
            STARTING_BALANCE,
            START_TIMEOUT,
        )

    def cli(self, *args: str) -> dict[str, Any]:
        return self._run([str(BIN / "flask"), "--app", "app", *args])

    def migrate(self) -> None:
        """The Procfile's ``release:`` command (``flask --app app db upgrade``)."""
        self._run(procfile_command("release"))

    def _run(self, argv: list[str]) -> dict[str, Any]:
        return run_json(argv, self.env(), self.workdir / "cli.log", timeout=120)

    def onboard(self) -> Operator:
        slug = "bench"
        created = self.cli(
            "operators",
            "create",
            slug,
            "--currency",
            "EUR",
            "--wallet-url",
            self.wallet_url,
            "--wallet-secret",
            WALLET_SECRET,
            "--rate",
            "USD=1.0842",
            "--cashback-bps",
            str(CASHBACK_BPS),
        )
        catalog_file = self.workdir / "catalog.json"
        catalog_file.write_text(json.dumps(CATALOG))
        imported = self.cli("catalog", "import", slug, str(catalog_file))
        box_version_id = int(imported["boxes"][0]["boxVersionId"])
        with self.postgres.connect(self.database) as conn:
            operator_id = conn.execute(
                "SELECT id FROM operators WHERE slug = %s", (slug,)
            ).fetchone()
            prize_id = conn.execute(
                "SELECT id FROM prizes WHERE box_version_id = %s ORDER BY position LIMIT 1",
                (box_version_id,),
            ).fetchone()
        assert operator_id is not None and prize_id is not None
        return Operator(
            slug=slug,
            operator_id=int(operator_id[0]),
            credentials=Credentials(str(created["keyId"]), str(created["secret"])),
            box_version_id=box_version_id,
            prize_id=int(prize_id[0]),
        )

    def start_gunicorn(self, app: str = "wsgi:app", label: str = "app") -> Gunicorn:
        """gunicorn with the Procfile's ``web:`` argv, ``wsgi:app`` swapped for ``app``."""
        argv = procfile_command("web")
        argv = [app if part == "wsgi:app" else part for part in argv]
        self.metrics_dir.mkdir(exist_ok=True)
        port = free_port()
        log = self.workdir / f"gunicorn-{label}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - our own argv
                argv,
                cwd=REPO_ROOT,
                env=self.env() | {"PORT": str(port)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Gunicorn(proc=proc, port=port)
        self.gunicorns.append(server)
        wait_http_ok(f"{server.url}/healthz", proc, START_TIMEOUT, log)
        return server

    def stop_gunicorn(self, server: Gunicorn) -> None:
        server.stop()
        if server in self.gunicorns:
            self.gunicorns.remove(server)

    # --- the reference wallet's admin API -----------------------------------------------

    def wallet_delay(self, delay_ms: int) -> None:
        """Every wallet call waits ``delay_ms`` before it is answered (a ``delay`` fault
        without ``times``: until cleared); 0 clears all faults."""
        requests.delete(f"{self.wallet_admin_url}/faults", timeout=10).raise_for_status()
        if delay_ms > 0:
            answer = requests.post(
                f"{self.wallet_admin_url}/faults",
                json={"mode": "delay", "delayMs": delay_ms},
                timeout=10,
            )
            answer.raise_for_status()

    def wallet_transactions(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.wallet_admin_url}/transactions", timeout=120)
        answer.raise_for_status()
        return list(answer.json()["transactions"])

    def wallet_stats(self) -> dict[str, int]:
        answer = requests.get(f"{self.wallet_admin_url}/stats", timeout=10)
        answer.raise_for_status()
        return {k: int(v) for k, v in answer.json().items()}

    # --- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        for server in list(reversed(self.gunicorns)):
            with contextlib.suppress(Exception):
                self.stop_gunicorn(server)
        if self.wallet_proc is not None:
            with contextlib.suppress(Exception):
                stop_process(self.wallet_proc, STOP_TIMEOUT)
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.stop()
        with contextlib.suppress(Exception):
            self.drop_databases()


@contextlib.contextmanager
def bench_stack(
    postgres: PostgresServer,
    app_env: dict[str, str],
    gunicorn_env: dict[str, str],
    keep_workdir: bool = False,
) -> Iterator[BenchStack]:
    workdir = Path(tempfile.mkdtemp(prefix="lootbox-bench-"))
    stack = BenchStack(workdir, postgres, app_env, gunicorn_env)
    try:
        yield stack
    finally:
        stack.close()
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
