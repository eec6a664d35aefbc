"""The servers of a run, each a process of ours on 127.0.0.1, started, tracked and stopped
by PID: a private PostgreSQL (``initdb`` and ``pg_ctl``, ``pg_stat_statements`` loaded), a
private redis-server, the reference wallet under gunicorn, and gunicorn serving our app,
the bare Flask baseline and the peer exactly as the Procfile's ``web:`` line runs ours
(``config/gunicorn.py`` unchanged)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from config.settings import Settings
from tests.processes import children_of, free_port, kill_pids, stop_process, tail

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` (all its threads) plus those of the children it has reaped
    (gunicorn's recycled workers, PostgreSQL's closed backends); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command: state(3) … utime(14) stime(15) cutime(16) cstime(17).
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and of all its descendants, living or reaped."""
    return process_cpu_s(pid) + sum(tree_cpu_s(child) for child in children_of(pid))


def wait_http_ok(url: str, alive: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and alive.poll() is None:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as answer,  # noqa: S310 - 127.0.0.1
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200:\n{tail(log)}")


def base_env() -> dict[str, str]:
    """Our environment without any app, gunicorn or wallet setting that would leak in."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in Settings.ENV_VARS
        and not name.startswith(("GUNICORN", "REFWALLET", "WEB_CONCURRENCY", "PROMETHEUS", "PEER"))
    }
    return env | {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }


@dataclass
class Gunicorn:
    label: str
    proc: subprocess.Popen[bytes]
    port: int
    workers_seen: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def workers(self) -> set[int]:
        found = children_of(self.proc.pid)
        self.workers_seen |= found
        return found

    def cpu_s(self) -> float:
        self.workers()
        return tree_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.workers()
        stop_process(self.proc, timeout=25)
        kill_pids(self.workers_seen, "gunicorn")  # any worker that outlived its master


def start_gunicorn(
    label: str, argv: list[str], env: dict[str, str], workdir: Path, health: str
) -> Gunicorn:
    port = free_port()
    log = workdir / f"{label}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own argv
            [*argv, "--bind", f"{HOST}:{port}"],
            cwd=REPO_ROOT,
            # Each its own metrics directory: config/gunicorn.py empties it at start.
            env=env | {"PORT": str(port), "PROMETHEUS_MULTIPROC_DIR": str(workdir / label)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Gunicorn(label, proc, port)
    try:
        wait_http_ok(f"{server.url}{health}", proc, log)
    except BaseException:
        server.stop()
        raise
    return server


def procfile_command(kind: str) -> list[str]:
    """The argv of a Procfile line (``release``, ``web``), executables from our venv."""
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == kind:
            argv = shlex.split(command)
            if (BIN / argv[0]).exists():
                argv[0] = str(BIN / argv[0])
            return argv
    raise RuntimeError(f"Procfile has no {kind!r} line")


def web_argv(app: str) -> list[str]:
    """The Procfile's ``web:`` argv serving ``app`` instead of ``wsgi:app`` (its ``--bind``
    comes from ``PORT``, which ``start_gunicorn`` overrides with the same port)."""
    return [app if part == "wsgi:app" else part for part in procfile_command("web")]


def wallet_argv(threads: int) -> list[str]:
    """The reference wallet under gunicorn: one process (its ledger lives in memory),
    threads enough for every request of the app that may wait on it, kept-alive
    connections as a production wallet keeps them."""
    return [
        *(str(BIN / "gunicorn"), "--worker-class", "gthread", "--workers", "1"),
        *("--threads", str(threads), "--keep-alive", "30", "--log-level", "warning"),
        "lootbox.refwallet.wsgi:create_app()",
    ]


# --- PostgreSQL ------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` (Debian), or ``pg_ctl`` on PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("no PostgreSQL server binaries: apt-get install -y postgresql")
    return Path(pg_ctl).parent


class PrivatePostgres:
    """A PostgreSQL cluster of our own in ``root``, on a free port of 127.0.0.1, with
    ``pg_stat_statements`` (utility statements too: BEGIN, COMMIT). Run as the ``postgres``
    system user when we are root (``initdb`` refuses root)."""

    SETTINGS = {
        "listen_addresses": HOST,
        "shared_preload_libraries": "pg_stat_statements",
        "pg_stat_statements.track_utility": "on",
        "log_line_prefix": "%m [%p] %d ",  # the database: see bench/counts.py
        # Our app, the peer and the baseline each keep their pools open all run.
        "max_connections": "200",
    }

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.bindir = postgres_bindir()
        self.user = "postgres" if os.geteuid() == 0 else None
        self.log = root / "log"
        self.pid: int | None = None

    def _run(self, *argv: str) -> None:
        done = subprocess.run(  # noqa: S603 - our own argv
            [str(self.bindir / argv[0]), *argv[1:]],
            user=self.user,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()}\n{tail(self.log)}")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            account = pwd.getpwnam(self.user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.root.parent.chmod(0o711)  # our private directory: passable, not readable
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        settings = self.SETTINGS | {
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str, scheme: str = "postgresql") -> str:
        return f"{scheme}://postgres@{HOST}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid) if self.pid else 0.0

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        except (RuntimeError, subprocess.SubprocessError, OSError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGQUIT)  # our postmaster: immediate shutdown
        self.pid = None
