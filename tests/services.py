"""Where the real servers are, and what to do when they are not there.

Service-backed tests run wherever PostgreSQL / Redis can be reached and are skipped with
a visible reason elsewhere. ``LOOTBOX_REQUIRE_SERVICES=1`` (set by CI) turns every such
skip into a failure, so a broken service cannot hide behind a skip.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import parse_qs, urlparse

import pytest

REQUIRE_SERVICES = os.environ.get("LOOTBOX_REQUIRE_SERVICES", "") not in ("", "0", "false")

DEFAULT_TEST_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unix_socket_listens(path: str) -> bool:
    """Whether a server listens on the unix socket ``path`` (the embedded servers do)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


def skip_or_fail(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (LOOTBOX_REQUIRE_SERVICES is set, so this is a failure)")
    pytest.skip(reason)


def postgres_url() -> str:
    """The PostgreSQL URL for tests, or skip (fail under CI) if it cannot be reached."""
    url = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if not url.startswith(("postgres://", "postgresql")):
        url = DEFAULT_TEST_POSTGRES_URL
    parsed = urlparse(url)
    socket_dir = parse_qs(parsed.query).get("host", [""])[0]
    if socket_dir.startswith("/"):  # a unix socket, as the embedded PostgreSQL listens
        if not unix_socket_listens(f"{socket_dir}/.s.PGSQL.{parsed.port or 5432}"):
            skip_or_fail(f"PostgreSQL not listening in {socket_dir}")
    elif not reachable(parsed.hostname or "127.0.0.1", parsed.port or 5432):
        skip_or_fail(f"PostgreSQL not reachable at {parsed.hostname}:{parsed.port or 5432}")
    return url


def redis_url() -> str:
    """The Redis URL for tests, or skip (fail under CI) if it cannot be reached."""
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or DEFAULT_TEST_REDIS_URL
    parsed = urlparse(url)
    if parsed.scheme == "unix":  # the embedded Redis
        if not unix_socket_listens(parsed.path):
            skip_or_fail(f"Redis not listening on {parsed.path}")
    elif not reachable(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        skip_or_fail(f"Redis not reachable at {parsed.hostname}:{parsed.port or 6379}")
    return url
