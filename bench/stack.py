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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from bench.payloads import Credentials
from bench.procs import (
    HOST,
    children_of,
    free_port,
    kill_pids,
    read_line,
    stop_process,
    tail,
    wait_http_ok,
)
from config.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0

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
    log: Path
    app: str
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
            if b"gunicorn" in _cmdline(pid) or b"wsgi" in _cmdline(pid)
        }
        self.workers_seen |= pids
        return pids

    def stop(self) -> None:
        self.worker_pids()
        stop_process(self.proc, timeout=25)
        # Workers exit with their master; any that lingers is still ours, by PID.
        kill_pids(self.workers_seen, "gunicorn")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


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
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.redis_port = 0
        self.wallet_proc: subprocess.Popen[bytes] | None = None
        self.wallet_url = ""
        self.app_env = app_env
        self.gunicorn_env = gunicorn_env
        self.gunicorns: list[Gunicorn] = []
        self.metrics_dir = workdir / "prometheus"
        self.operator: Operator | None = None

    # --- parts ------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.postgres.url(self.database)

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
        for _ in range(3):
            self.redis_port = free_port()
            argv = [
                binary,
                "--port",
                str(self.redis_port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(redis_dir),
                "--daemonize",
                "no",
            ]
            with (self.workdir / "redis.log").open("ab") as log:
                self.redis_proc = subprocess.Popen(  # noqa: S603 - our own argv
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.redis_proc.poll() is None:
                with contextlib.suppress(redis.RedisError):
                    client = self.redis_client()
                    try:
                        if client.ping():
                            return
                    finally:
                        client.close()
                time.sleep(0.05)
            stop_process(self.redis_proc, timeout=5)
        raise RuntimeError(f"redis-server did not start:\n{tail(self.workdir / 'redis.log')}")

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
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "lootbox.refwallet",
            "--host",
            HOST,
            "--port",
            str(port),
            "--secret",
            WALLET_SECRET,
            "--starting-balance",
            str(STARTING_BALANCE),
            "--quiet",
        ]
        with (self.workdir / "refwallet.log").open("ab") as log:
            self.wallet_proc = subprocess.Popen(  # noqa: S603 - our own argv
                argv,
                cwd=REPO_ROOT,
                env=base_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        line = read_line(self.wallet_proc, START_TIMEOUT)
        try:
            announced = json.loads(line)
            assert announced["refwallet"] == "ready"
        except (ValueError, KeyError, AssertionError):
            raise RuntimeError(
                f"reference wallet did not start: {line!r}\n{tail(self.workdir / 'refwallet.log')}"
            ) from None
        self.wallet_url = str(announced["url"])

    def cli(self, *args: str) -> dict[str, Any]:
        return _run_json([str(BIN / "flask"), "--app", "app", *args], self.env(), self.workdir)

    def migrate(self) -> None:
        """The Procfile's ``release:`` command (``flask --app app db upgrade``)."""
        _run_json(procfile_command("release"), self.env(), self.workdir)

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
        self.operator = Operator(
            slug=slug,
            operator_id=int(operator_id[0]),
            credentials=Credentials(str(created["keyId"]), str(created["secret"])),
            box_version_id=box_version_id,
            prize_id=int(prize_id[0]),
        )
        return self.operator

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
        server = Gunicorn(proc=proc, port=port, log=log, app=app)
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
        for proc in (self.wallet_proc, self.redis_proc):
            if proc is not None:
                with contextlib.suppress(Exception):
                    stop_process(proc)
        with contextlib.suppress(Exception):
            self.drop_databases()


def _run_json(argv: list[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own argv
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    with (workdir / "cli.log").open("ab") as log:
        log.write(b"$ " + " ".join(argv).encode() + b"\n" + done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout!r}\n{done.stderr!r}")
    lines = done.stdout.decode().strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


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
