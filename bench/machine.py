"""What a run was measured on: the machine, the versions and the configuration."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.wrk import wrk_version
from config.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
GUNICORN_SETTINGS = (
    "bind",
    "workers",
    "worker_class",
    "threads",
    "timeout",
    "graceful_timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "loglevel",
)
PG_SETTINGS = (
    "max_connections",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "work_mem",
)


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "os": platform.platform(terse=True),
        "loadavg_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions(pg: psycopg.Connection, redis_client: redis.Redis) -> dict[str, str]:
    row = pg.execute("SHOW server_version").fetchone()
    info = redis_client.info("server")
    return {
        "python": platform.python_version(),
        "postgresql": str(row[0]) if row else "unknown",
        "redis": str(info.get("redis_version", "unknown")),
        "wrk": wrk_version(),
        "gunicorn": _package("gunicorn"),
        "flask": _package("flask"),
        "werkzeug": _package("werkzeug"),
        "flask-smorest": _package("flask-smorest"),
        "sqlalchemy": _package("sqlalchemy"),
        "psycopg": _package("psycopg"),
        "redis-py": _package("redis"),
        "prometheus-client": _package("prometheus-client"),
    }


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """``config/gunicorn.py`` evaluated under the app's environment, as gunicorn sees it."""
    code = (
        "import json, runpy; g = runpy.run_path('config/gunicorn.py'); "
        f"print(json.dumps({{k: g.get(k) for k in {list(GUNICORN_SETTINGS)!r}}}))"
    )
    done = subprocess.run(  # noqa: S603 - our own argv
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(json.loads(done.stdout))


def app_settings(env: dict[str, str]) -> dict[str, Any]:
    """The app's settings under ``env``, secrets left out."""
    settings = Settings.from_env(env)
    return {
        "env": settings.env,
        "database_pool_size": settings.database_pool_size,
        "database_max_overflow": settings.database_pool_size,
        "wallet_connect_timeout_seconds": settings.wallet_connect_timeout_seconds,
        "wallet_read_timeout_seconds": settings.wallet_read_timeout_seconds,
        "idempotency_wait_seconds": settings.idempotency_wait_seconds,
        "idempotency_lease_seconds": settings.idempotency_lease_seconds,
        "idempotency_ttl_seconds": settings.idempotency_ttl_seconds,
        "movement_lease_seconds": settings.movement_lease_seconds,
        "log_level": settings.log_level,
        "set_by_bench": sorted(
            name
            for name in env
            if name in Settings.ENV_VARS
            or name.startswith(("GUNICORN", "WEB_CONCURRENCY", "PROMETHEUS"))
        ),
    }


def postgres_settings(pg: psycopg.Connection) -> dict[str, str]:
    rows = pg.execute(
        "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)", (list(PG_SETTINGS),)
    ).fetchall()
    return {str(name): f"{setting}{' ' + unit if unit else ''}" for name, setting, unit in rows}


def git_revision() -> str:
    """The checked-out commit, ``+dirty`` if the work tree differs (read-only commands)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--"],  # noqa: S607 - git from PATH
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        ).returncode
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
