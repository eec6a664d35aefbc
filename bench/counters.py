"""Counting what a request costs, on the servers' side: Redis commands and round trips,
SQL statements and transactions, and (when the app exports them) its own counters.

* Redis, under load: ``INFO commandstats`` of our private redis-server, before and after.
  Redis counts the commands a Lua script runs as well as the script call itself, so this
  is *commands executed*, not round trips.
* Redis, counting pass: ``MONITOR`` on the private server. Every line names its client;
  lines from ``lua`` are commands run inside a script. Round trips are the others (the
  app sends no pipelines or transactions, so one command is one round trip).
* PostgreSQL, counting pass: ``log_statement = all`` set on our database only (``ALTER
  DATABASE``), and the server log read from a byte offset: one ``statement:`` or
  ``execute …:`` line per statement the server ran, by backend PID. The shared server
  has no ``pg_stat_statements`` loaded (it needs ``shared_preload_libraries`` and a
  restart), and ``pg_stat_database`` counts transactions, not statements, and lags by up
  to ten seconds.
* The app's own Prometheus counters (``lootbox_db_statements_total``,
  ``lootbox_redis_commands_total``) from ``GET /metrics``, when that endpoint exists.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
import requests

METRIC_SQL = "lootbox_db_statements_total"
METRIC_REDIS = "lootbox_redis_commands_total"
METRIC_NAMES = (METRIC_SQL, METRIC_REDIS)

# --- Redis ---------------------------------------------------------------------------------


def redis_commandstats(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the server started (``INFO commandstats``)."""
    stats = client.info("commandstats")
    calls: dict[str, int] = {}
    for name, value in stats.items():
        command = name.removeprefix("cmdstat_")
        if isinstance(value, dict):
            calls[command] = int(value.get("calls", 0))
    return calls


def commandstats_delta(
    before: dict[str, int], after: dict[str, int], ignore: tuple[str, ...] = ("info",)
) -> dict[str, int]:
    """Calls per command between two snapshots, without our own ``INFO`` calls."""
    delta = {
        name: after.get(name, 0) - before.get(name, 0)
        for name in set(before) | set(after)
        if name not in ignore
    }
    return {name: n for name, n in sorted(delta.items()) if n > 0}


_MONITOR_LINE = re.compile(r'^\+?[0-9.]+ \[\d+ ([^\]]*)\] "([^"]*)"')


def parse_monitor_line(line: str) -> tuple[str, str] | None:
    """``(client, COMMAND)`` of one MONITOR line; client is ``lua`` inside a script."""
    match = _MONITOR_LINE.match(line)
    if match is None:
        return None
    return match.group(1), match.group(2).upper()


@dataclass
class MonitorCount:
    round_trips: Counter[str] = field(default_factory=Counter)
    in_scripts: Counter[str] = field(default_factory=Counter)

    @property
    def total_round_trips(self) -> int:
        return sum(self.round_trips.values())

    @property
    def total_commands(self) -> int:
        return self.total_round_trips + sum(self.in_scripts.values())


class RedisMonitor:
    """``MONITOR`` on a raw socket while a block runs; stopped by a sentinel ``ECHO``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.count = MonitorCount()
        self._sentinel = f"bench-monitor-stop-{uuid.uuid4().hex}"
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> RedisMonitor:
        sock = socket.create_connection((self.host, self.port), timeout=30)
        sock.sendall(b"MONITOR\r\n")
        reader = sock.makefile("rb")
        first = reader.readline()
        if not first.startswith(b"+OK"):
            sock.close()
            raise RuntimeError(f"MONITOR refused: {first!r}")
        self._sock = sock
        self._thread = threading.Thread(target=self._read, args=(reader,), daemon=True)
        self._thread.start()
        return self

    def _read(self, reader: object) -> None:
        try:
            for raw in reader:  # type: ignore[attr-defined]
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if self._sentinel in line:
                    return
                parsed = parse_monitor_line(line)
                if parsed is None:
                    continue
                client, command = parsed
                if command in ("INFO", "MONITOR", "ECHO"):
                    continue
                if client == "lua":
                    self.count.in_scripts[command] += 1
                else:
                    self.count.round_trips[command] += 1
        except BaseException as exc:
            self._error = exc

    def __exit__(self, *exc: object) -> None:
        # A bare socket, not a client library: no HELLO or other handshake of ours may
        # show up among the commands counted.
        with socket.create_connection((self.host, self.port), timeout=10) as sentinel:
            sentinel.sendall(f"ECHO {self._sentinel}\r\n".encode())
            sentinel.recv(1024)
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._sock is not None:
            self._sock.close()
        if self._error is not None:
            raise RuntimeError(f"MONITOR reader failed: {self._error!r}")


# --- PostgreSQL ----------------------------------------------------------------------------

# log_line_prefix '%m [%p] %q%u@%d ' (Debian's default), then the message.
_LOG_LINE = re.compile(r"\[(\d+)\] [^@\s]*@(\S+) LOG:  (?:statement|execute [^:]*): (.*)$")


def classify_statement(text: str) -> str:
    """A short name for a statement: BEGIN, COMMIT, ``SELECT operators``,
    ``INSERT idempotency_records``, ``SELECT 1 (ping)`` …"""
    if text.strip() == ";":
        # psycopg's ping: SQLAlchemy's pool_pre_ping on every checkout.
        return "; (pool pre-ping)"
    words = text.strip().rstrip(";").split()
    if not words:
        return "(empty)"
    verb = words[0].upper()
    lowered = [w.lower().strip('"(') for w in words]
    if verb == "SELECT" and len(words) == 2 and words[1] == "1":
        return "SELECT 1 (ping)"
    table = ""
    if verb in ("SELECT", "DELETE") and "from" in lowered:
        table = lowered[lowered.index("from") + 1]
    elif verb == "INSERT" and len(lowered) > 2:
        table = lowered[2]
    elif verb == "UPDATE" and len(lowered) > 1:
        table = lowered[1]
    return f"{verb} {table}".strip()


def parse_statement_log(text: str, database: str, exclude_pids: set[int]) -> Counter[str]:
    """Statements logged for ``database`` (``log_statement = all``), by kind."""
    statements: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("\t"):
            # A statement's continuation lines (the server indents them with a tab).
            if current is not None:
                current.append(line.strip())
            continue
        current = None
        match = _LOG_LINE.search(line)
        if match is None or match.group(2) != database:
            continue
        if int(match.group(1)) in exclude_pids:
            continue
        current = [match.group(3)]
        statements.append(current)
    return Counter(classify_statement(" ".join(parts)) for parts in statements)


def transactions_of(statements: Counter[str]) -> int:
    return statements.get("COMMIT", 0) + statements.get("ROLLBACK", 0)


def total_statements(statements: Counter[str], *, with_transaction_control: bool) -> int:
    control = ("BEGIN", "COMMIT", "ROLLBACK")
    return sum(
        n for kind, n in statements.items() if with_transaction_control or kind not in control
    )


def find_server_log(conn: psycopg.Connection) -> Path | None:
    """Where the server writes its log: ``pg_current_logfile()`` with the logging
    collector on, else Debian's ``/var/log/postgresql/postgresql-<major>-main.log``."""
    row = conn.execute("SELECT pg_current_logfile(), current_setting('data_directory')").fetchone()
    if row and row[0]:
        path = Path(row[0])
        return path if path.is_absolute() else Path(row[1]) / path
    version = conn.execute("SHOW server_version_num").fetchone()
    if version is None:
        return None
    major = int(version[0]) // 10000
    candidate = Path(f"/var/log/postgresql/postgresql-{major}-main.log")
    return candidate if candidate.exists() else None


class StatementLog:
    """Reads what the server logged for our database between ``mark`` and ``read``."""

    def __init__(self, path: Path | None, database: str, exclude_pids: set[int]) -> None:
        self.path = path
        self.database = database
        self.exclude_pids = exclude_pids
        self._offset = 0

    @property
    def usable(self) -> bool:
        if self.path is None:
            return False
        try:
            with self.path.open("rb"):
                return True
        except OSError:
            return False

    def mark(self) -> None:
        if self.path is not None and self.usable:
            self._offset = self.path.stat().st_size

    def read(self, settle_s: float = 0.3) -> Counter[str] | None:
        if self.path is None or not self.usable:
            return None
        time.sleep(settle_s)  # the server writes its log asynchronously from our view
        with self.path.open("rb") as log:
            log.seek(self._offset)
            text = log.read().decode("utf-8", "replace")
        return parse_statement_log(text, self.database, self.exclude_pids)


# --- the app's own counters -----------------------------------------------------------------


def parse_prometheus(text: str, names: tuple[str, ...] = METRIC_NAMES) -> dict[str, float]:
    """Sum over all label sets of each counter in ``names`` (text exposition format)."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, rest = line.partition(" ")
        name = name_part.split("{", 1)[0]
        if "{" in name_part and "}" not in name_part:
            # A label value with a space: the value is after the closing brace.
            closing = line.index("}")
            name = line[: line.index("{")]
            rest = line[closing + 1 :].strip()
        if name not in names:
            continue
        try:
            value = float(rest.split()[0])
        except (IndexError, ValueError):
            continue
        sums[name] = sums.get(name, 0.0) + value
    return sums


def app_metrics(base_url: str) -> dict[str, float] | None:
    """The app's counters, or ``None`` while it exports none (no ``/metrics`` yet)."""
    try:
        answer = requests.get(f"{base_url}/metrics", timeout=10)
    except requests.RequestException:
        return None
    if answer.status_code != 200:
        return None
    found = parse_prometheus(answer.text)
    return found or None


def metrics_delta(
    before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    return {name: after.get(name, 0.0) - before.get(name, 0.0) for name in METRIC_NAMES}


# --- the machine ------------------------------------------------------------------------------


def cpu_jiffies() -> tuple[int, int]:
    """``(busy, total)`` jiffies of all CPUs since boot (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]
    idle = values[3] + values[4]
    total = sum(values)
    return total - idle, total


def others_share(before: tuple[int, int], after: tuple[int, int], ours_s: float) -> float:
    """The share of all cores used by processes that are not ours between two
    ``cpu_jiffies`` readings (an upper bound: the PostgreSQL server's own processes, and
    our backends' time after their last reading, count as others)."""
    busy_s = (after[0] - before[0]) / CLOCK_TICKS
    total_s = (after[1] - before[1]) / CLOCK_TICKS
    return max(0.0, busy_s - ours_s) / total_s if total_s > 0 else 0.0


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy = after[0] - before[0]
    total = after[1] - before[1]
    return busy / total if total > 0 else 0.0


# --- CPU time per process ------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int, *, with_reaped_children: bool = False) -> float:
    """CPU seconds (user + system) of ``pid``, all its threads; with the children it has
    already waited for if asked (gunicorn's master reaps workers that ``max_requests``
    recycled, so their time is not lost). 0 if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    # After the command: state(3) ... utime(14) stime(15) cutime(16) cstime(17).
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


@dataclass
class CpuSnapshot:
    """CPU seconds so far, per part of the stack."""

    parts: dict[str, float] = field(default_factory=dict)


def cpu_delta_ms(before: CpuSnapshot, after: CpuSnapshot, requests: int) -> dict[str, float]:
    """CPU milliseconds per request, per part."""
    if requests <= 0:
        return {}
    return {
        name: (after.parts.get(name, 0.0) - seconds) * 1000 / requests
        for name, seconds in before.parts.items()
    }


class BackendCpu:
    """CPU seconds used by a set of PostgreSQL backends over a run, from readings taken
    every few hundred milliseconds: a backend's first reading is its starting point (0 for
    one born after the first reading), its last reading its end. A pool's overflow
    connections come and go during a run; only the time a closing backend spent after its
    last reading is missed."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._readings = 0

    def observe(self, readings: dict[int, float]) -> None:
        for pid, seconds in readings.items():
            if pid not in self._first:
                self._first[pid] = seconds if self._readings == 0 else 0.0
            self._last[pid] = seconds
        self._readings += 1

    def total_s(self) -> float:
        return sum(self._last[pid] - self._first[pid] for pid in self._last)


class BackendSampler:
    """Reads the CPU time of our database's backends in a thread while a run goes on."""

    def __init__(self, connect: Callable[[], psycopg.Connection], interval_s: float = 0.25):
        self._connect = connect
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu = BackendCpu()
        self.error: BaseException | None = None

    def _read(self, conn: psycopg.Connection) -> dict[int, float]:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
        return {int(r[0]): process_cpu_s(int(r[0])) for r in rows}

    def _run(self, conn: psycopg.Connection) -> None:
        try:
            while not self._stop.is_set():
                self.cpu.observe(self._read(conn))
                self._stop.wait(self._interval_s)
            self.cpu.observe(self._read(conn))
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            conn.close()

    def __enter__(self) -> BackendSampler:
        conn = self._connect()
        self.cpu.observe(self._read(conn))  # the starting point, before the run
        self._thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
