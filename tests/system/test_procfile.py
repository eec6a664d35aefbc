"""The service under honcho, as a developer runs it from ``Procfile.dev``: the release step
first (as the platform runs it, before any process starts), then ``honcho start``, one
signed request, and SIGTERM to honcho, after which none of the processes it started may be
left. All on 127.0.0.1: the machine's PostgreSQL (a database of this test's own, empty
until the release step migrates it) and a private redis-server."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy.engine import make_url

from lootbox.signing import signed_headers
from tests.conftest import empty_postgres_database as empty_database
from tests.processes import children_of, cmdline, free_port, stop_process, tail, wait_until
from tests.redis_server import private_redis_server
from tests.system.stack import APP_ENV, BIN, HOST, REPO_ROOT, WALLET_SECRET, _base_env, _cli

pytestmark = pytest.mark.system

PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")  # honcho's and foreman's reading
DEV_START = ("-f", "Procfile.dev", "start")  # as README says, "Operating it"
WORKERS = 2
RELEASE_TIMEOUT = 30.0
START_TIMEOUT = 30.0
# honcho itself sends SIGKILL 5 s after SIGTERM to whatever has not exited; a clean stop
# is well inside that.
STOP_TIMEOUT = 10.0


def procfile(path: Path) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in map(PROCFILE_LINE.match, path.read_text().splitlines())
        if m is not None
    }


@contextlib.contextmanager
def empty_postgres_database() -> Iterator[str]:
    """A new database with no tables, dropped after; its URL in the form the platform's
    add-on gives it (``postgres://``)."""
    with empty_database("lootbox_procfile") as url:
        yield make_url(url).set(drivername="postgres").render_as_string(hide_password=False)


def start_time(pid: int) -> int | None:
    """The kernel's start time of a live ``pid`` (``None`` once it has exited, zombies
    included): with the PID, it names one process even if the PID is reused later."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every live process under ``pid``, recursively: PID -> start time."""
    found: dict[int, int] = {}
    pending = [pid]
    while pending:
        for child in children_of(pending.pop()):
            started = start_time(child)
            if started is not None and child not in found:
                found[child] = started
                pending.append(child)
    return found


def parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def argv(pid: int) -> list[bytes]:
    return cmdline(pid).split(b"\0")


def is_gunicorn(pid: int) -> bool:
    """gunicorn's master or one of its workers (forks of it), not the shell that ran it."""
    words = argv(pid)
    return len(words) > 1 and words[1].endswith(b"/gunicorn") and b"--config" in words


def is_reconciler(pid: int) -> bool:
    words = argv(pid)
    return len(words) > 1 and words[1].endswith(b"/flask") and b"reconcile" in words


def still_running(processes: dict[int, int]) -> dict[int, bytes]:
    return {pid: cmdline(pid) for pid, started in processes.items() if start_time(pid) == started}


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
        return True
    return False


def healthy(port: int) -> bool:
    try:
        return requests.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_honcho_runs_the_dev_procfile_serves_a_signed_request_and_stops_everything_on_sigterm(
    tmp_path: Path,
) -> None:
    commands = procfile(REPO_ROOT / "Procfile.dev")
    assert "release" not in commands, "honcho would stop everything when the release exits"
    honcho_log = tmp_path / "honcho.log"
    no_dotenv = tmp_path / "empty.env"  # a developer's .env must not redirect this test
    no_dotenv.write_text("")
    processes: dict[int, int] = {}
    honcho: subprocess.Popen[bytes] | None = None

    with empty_postgres_database() as database_url, private_redis_server() as redis:
        env = _base_env() | APP_ENV | {"WEB_CONCURRENCY": str(WORKERS)}
        env |= {"DATABASE_URL": database_url, "REDIS_URL": redis.url}

        release = procfile(REPO_ROOT / "Procfile")["release"]
        done = subprocess.run(
            ["/bin/sh", "-c", release],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=RELEASE_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"{release}: {done.stdout!r} {done.stderr!r}"
        slug = f"procfile-{os.getpid()}"
        operator = _cli(
            env,
            tmp_path,
            "operators",
            "create",
            slug,
            "--currency",
            "EUR",
            "--wallet-url",
            "http://127.0.0.1:9/wallet",  # never called: the request below reads only
            "--wallet-secret",
            WALLET_SECRET,
        )

        port = free_port()
        try:
            with honcho_log.open("ab") as log:
                honcho = subprocess.Popen(
                    [str(BIN / "honcho"), "--no-colour", "-e", str(no_dotenv), *DEV_START],
                    cwd=REPO_ROOT,
                    env=env | {"PORT": str(port)},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + START_TIMEOUT
            while not healthy(port):
                assert honcho.poll() is None, f"honcho exited early:\n{tail(honcho_log)}"
                assert time.monotonic() < deadline, f"no /healthz:\n{tail(honcho_log)}"
                time.sleep(0.1)

            path = "/api/s2s/inventory"
            headers = signed_headers(
                str(operator["secret"]), int(time.time()), "GET", path, b"", operator["keyId"]
            )
            answer = requests.get(
                f"http://{HOST}:{port}{path}?playerExternalId=u_1", headers=headers, timeout=10
            )
            assert answer.status_code == 200, answer.text

            proc = honcho

            def everything_up() -> dict[int, int] | None:
                found = descendants(proc.pid)
                gunicorns = {pid for pid in found if is_gunicorn(pid)}
                masters = {pid for pid in gunicorns if parent(pid) not in gunicorns}
                workers = gunicorns - masters
                reconcilers = {pid for pid in found if is_reconciler(pid)}
                up = len(masters) == 1 and len(workers) == WORKERS and bool(reconcilers)
                return found if up else None

            processes = wait_until(everything_up, START_TIMEOUT, "gunicorn and the reconciler")
            # Nothing has exited on its own (honcho would have stopped everything).
            assert "stopped (rc=" not in honcho_log.read_text(errors="replace"), tail(honcho_log)

            honcho.send_signal(signal.SIGTERM)
            honcho.wait(timeout=STOP_TIMEOUT)
            wait_until(lambda: not still_running(processes), STOP_TIMEOUT, "every process")
            output = honcho_log.read_text(errors="replace")
            assert "SIGKILL" not in output, f"a process ignored SIGTERM:\n{tail(honcho_log)}"
            assert not port_open(port)
        finally:
            if honcho is not None and honcho.poll() is None:  # the test failed midway
                processes |= descendants(honcho.pid)
                stop_process(honcho, timeout=STOP_TIMEOUT)
            for pid in still_running(processes):  # ours, the same processes by start time
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
