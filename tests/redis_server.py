"""A private, throw-away redis-server for tests that stop, restart or flush Redis.

The shared Redis (6379) is never stopped or flushed by tests; anything destructive runs
against one of these instead, on its own free port, in its own temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.processes import free_port, stop_process

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT = 5.0


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """One redis-server process on 127.0.0.1, owned by the test (or benchmark) that started it."""

    def __init__(
        self, binary: str, port: int, workdir: Path, start_timeout: float = START_TIMEOUT
    ) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @contextmanager
    def client(self) -> Iterator[redis.Redis]:
        """A client of this server for the ``with`` block (the test's own, never shared)."""
        client = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            yield client
        finally:
            client.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (again) on the same port; returns once it answers PING."""
        if self.running:
            return
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(self.workdir),
            "daemonize": "no",
        }
        argv = [self.binary]
        for name, value in options.items():
            argv += [f"--{name}", value]
        with (self.workdir / "redis.log").open("ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if _answers_ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        tail = (self.workdir / "redis.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"private redis-server on port {self.port} did not start:\n{tail}")

    def stop(self) -> None:
        """SIGTERM our own process (by its PID) and wait for it; SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout=5)


def start_private_redis(
    binary: str, workdir: Path, start_timeout: float = START_TIMEOUT
) -> PrivateRedis:
    """A private redis-server on a free port, started; its files in ``workdir``."""
    # The free port can be taken between probing and binding; try a few.
    for attempt in range(3):
        server = PrivateRedis(binary, free_port(), workdir, start_timeout)
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@contextmanager
def private_redis_server() -> Iterator[PrivateRedis]:
    """Start a private redis-server on a free port; always stop it on exit."""
    # Imported here: the benchmark uses the rest of this module and has no use for pytest.
    from tests.services import skip_or_fail

    if not (os.path.exists(REDIS_SERVER) and os.access(REDIS_SERVER, os.X_OK)):
        skip_or_fail(f"{REDIS_SERVER} not found; cannot start a private redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="lootbox-redis-"))
    server: PrivateRedis | None = None
    try:
        server = start_private_redis(REDIS_SERVER, workdir)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
