"""Two instances of the service on one host (two deployments side by side, or the old and
the new one during a switch), each gunicorn started as the Procfile starts it, by the same
user: both serve, and neither takes over the other's gunicorn control socket (a Unix
socket at a path shared by everything the user runs, unless config/gunicorn.py says
otherwise)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.processes import children_of, free_port, kill_pids, stop_process, tail
from tests.redis_server import private_redis_server
from tests.system.stack import APP_ENV, BIN, HOST, REPO_ROOT, _base_env

pytestmark = pytest.mark.system

START_TIMEOUT = 30.0
UNIX_LISTENING = 0x00010000  # __SO_ACCEPTCON in /proc/net/unix's Flags


def listening_unix_paths(pid: int) -> set[str]:
    """The filesystem paths of the Unix sockets ``pid`` listens on."""
    owned = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                owned.add(link[len("socket:[") : -1])
    paths = set()
    with open("/proc/net/unix") as table:
        next(table)
        for line in table:
            parts = line.split()
            if len(parts) >= 8 and parts[6] in owned and int(parts[3], 16) & UNIX_LISTENING:
                paths.add(parts[7])
    return paths


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """gunicorn as the Procfile's ``web:`` runs it, on a free port; stopped after."""
    port = free_port()
    workers: set[int] = set()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "--config", "config/gunicorn.py", "wsgi:app"],
            cwd=REPO_ROOT,
            env=env | {"PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not healthy(port):
            assert proc.poll() is None, f"gunicorn exited:\n{tail(log)}"
            assert time.monotonic() < deadline, f"gunicorn did not serve /healthz:\n{tail(log)}"
            time.sleep(0.1)
        workers = children_of(proc.pid)
        yield proc, port
    finally:
        workers |= children_of(proc.pid)
        stop_process(proc)
        kill_pids(workers, "gunicorn")  # workers outliving their master: ours, by PID


def test_two_gunicorn_masters_of_one_user_both_serve_and_share_no_control_socket(
    postgres_database: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # the one user's home, shared by both instances
    home.mkdir()
    with private_redis_server() as redis:
        env = _base_env() | APP_ENV | {"WEB_CONCURRENCY": "2", "HOME": str(home)}
        env |= {"DATABASE_URL": postgres_database, "REDIS_URL": redis.url}
        env.pop("XDG_RUNTIME_DIR", None)  # else gunicorn's default socket would go there
        with (
            gunicorn(env, tmp_path / "first.log") as (first, first_port),
            gunicorn(env, tmp_path / "second.log") as (second, second_port),
        ):
            assert healthy(first_port) and healthy(second_port)
            first_sockets = listening_unix_paths(first.pid)
            second_sockets = listening_unix_paths(second.pid)
            # A control socket at a path both use would be one instance's only (the last to
            # bind it, and each re-binds it after every fork of a worker): a command meant
            # for one would reach the other.
            assert not first_sockets & second_sockets, (first_sockets, second_sockets)
            for path in first_sockets | second_sockets:
                assert Path(path).exists(), f"{path} was removed by the other instance"
