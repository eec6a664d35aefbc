"""``python -m bench``: our service, the peer (``bench/peer.py``) and a bare Flask endpoint
under the same gunicorn settings, on the same private PostgreSQL, Redis and reference
wallet (``bench/servers.py``); what each scenario costs, counted by the servers
(``bench/counts.py``); one table, printed and written into ``docs/benchmarks.md``."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import redis
import requests

from bench import counts as counting
from bench import data, load, profile, report
from bench.servers import (
    REPO_ROOT,
    Gunicorn,
    PrivatePostgres,
    base_env,
    postgres_bindir,
    start_gunicorn,
    tree_cpu_s,
    wallet_argv,
    web_argv,
)
from tests.redis_server import PrivateRedis, plain_redis_server, start_private_redis

RESULTS_DIR = REPO_ROOT / "instance" / "bench"
DATABASE = "bench"
APP_ENV = {
    "LOOTBOX_ENV": "production",
    "SECRET_KEY": "bench-secret-key",
    "LOOTBOX_ENCRYPTION_KEYS": "nuplwiU4uTK-X5TS8m_TPv1X4aYDf_n9RhiXCG89jTw=",
}
PEER_KEY = data.Credentials("peer-key", "peer-secret")
STARTING_BALANCE = 10**15  # credits only add; purchases never run out
UNKNOWN_RATE = 3000.0  # req/s assumed for sizing fresh subjects before a replay was measured


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    server: str  # baseline | ours | peer
    kind: str  # baseline | replay | cashout | cancel | purchase | storm
    delay_ms: int = 0


SCENARIOS = (
    Scenario("baseline", "bare Flask JSON endpoint", "baseline", "baseline"),
    Scenario("replay", "ours: replay (the same cashout again)", "ours", "replay"),
    Scenario("peer_replay", "peer: replay", "peer", "replay"),
    Scenario("cashout", "ours: first-time cashout", "ours", "cashout"),
    Scenario("peer_cashout", "peer: first-time cashout", "peer", "cashout"),
    Scenario("cancel", "ours: first-time cancel", "ours", "cancel"),
    Scenario("purchase", "ours: first-time purchase (buy and open)", "ours", "purchase"),
    Scenario("cashout_50ms", "ours: first-time cashout, wallet 50 ms", "ours", "cashout", 50),
    Scenario("storm", "ours: duplicate storm", "ours", "storm"),
)


def wanted(only: set[str] | None) -> list[Scenario]:
    """The scenarios ``--only`` names, by key or kind; the baseline always."""
    return [s for s in SCENARIOS if not only or s.key in only or s.kind in {"baseline", *only}]


@dataclass
class Row:
    key: str
    label: str
    rps: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    flags: list[str] = field(default_factory=list)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # by server, per request
    others_share: float | None = None  # of the machine, used by processes not ours
    counts: counting.Counts | None = None
    notes: str = ""
    profile: str = ""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_jiffies() -> tuple[int, int]:
    """``(busy, total)`` jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


class Bench:
    def __init__(self, options: argparse.Namespace, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.rows: dict[str, Row] = {}
        self.record: dict[str, Any] = {}
        self.replay_rps: dict[str, float] = {}
        self.tags = data.Tags()
        self.servers: dict[str, Gunicorn] = {}
        self.postgres = PrivatePostgres(workdir / "postgres")
        self.redis: PrivateRedis | None = None
        self.connections = 0
        self.stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def wanted(self) -> list[Scenario]:
        return wanted(self.options.only)

    def start(self) -> None:
        log("starting PostgreSQL, redis-server and the reference wallet")
        self.postgres.start()
        self.monitor = self.postgres.connect()  # on another database than the one measured
        self.monitor.execute("CREATE EXTENSION pg_stat_statements")
        self.monitor.execute(f"CREATE DATABASE {DATABASE}")
        oid = self.monitor.execute("SELECT oid FROM pg_database WHERE datname = %s", (DATABASE,))
        self.database_oid = int(oid.fetchone()[0])  # type: ignore[index]
        self.db = self.postgres.connect(DATABASE)
        (self.workdir / "redis").mkdir()
        self.redis = start_private_redis(str(plain_redis_server()), self.workdir / "redis", 10)
        self.redis_client = redis.Redis(port=self.redis.port, socket_timeout=30)
        env = base_env() | {"PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics")}
        if self.options.workers:
            env["WEB_CONCURRENCY"] = str(self.options.workers)
        if self.options.threads:
            env["GUNICORN_THREADS"] = str(self.options.threads)
        self.record["gunicorn"] = gunicorn_settings(env)
        concurrency = self.record["gunicorn"]["workers"] * self.record["gunicorn"]["threads"]
        self.connections = self.options.connections or concurrency
        secrets = f"{data.WALLET_SECRET},{data.PEER_WALLET_SECRET}"
        wallet_env = base_env() | {
            "REFWALLET_SECRETS": secrets,
            "REFWALLET_STARTING_BALANCE": str(STARTING_BALANCE),
        }
        self.wallet = self.serve("wallet", wallet_argv(2 * concurrency), wallet_env)
        wallet_url = f"{self.wallet.url}/wallet"
        redis_url = f"redis://127.0.0.1:{self.redis.port}"
        ours_env = env | APP_ENV | {"DATABASE_URL": self.postgres.url(DATABASE)}
        ours_env |= dict(setting.split("=", 1) for setting in self.options.app_setting)
        ours_env["REDIS_URL"] = f"{redis_url}/0"
        log("migrating, onboarding the operator (flask CLI), starting gunicorn")
        self.operator = data.onboard(ours_env, wallet_url, self.workdir, self.db)
        self.serve("baseline", web_argv("bench.baseline_app:app"), env)
        self.serve("ours", web_argv("wsgi:app"), ours_env)
        if any(s.server == "peer" for s in self.wanted()):
            data.create_peer_items(self.db, 0, "table")
            peer_env = env | {
                "PEER_DATABASE_URL": self.postgres.url(DATABASE, "postgresql+psycopg"),
                "PEER_REDIS_URL": f"{redis_url}/1",
                "PEER_API_KEYS": f"{PEER_KEY.key_id}:{PEER_KEY.secret}",
                "PEER_WALLET_URL": wallet_url,
                "PEER_WALLET_SECRET": data.PEER_WALLET_SECRET,
            }
            self.serve("peer", web_argv("bench.peer:create_app()"), peer_env)

    def serve(self, label: str, argv: list[str], env: dict[str, str]) -> Gunicorn:
        health = "/_admin/stats" if label == "wallet" else "/healthz"
        self.servers[label] = start_gunicorn(label, argv, env, self.workdir, health)
        return self.servers[label]

    def stop(self) -> None:
        for stop in [s.stop for s in self.servers.values()] + [
            *([self.redis.stop] if self.redis else []),
            self.postgres.stop,
        ]:
            with contextlib.suppress(Exception):
                stop()

    def wallet_delay(self, delay_ms: int) -> None:
        """Every wallet call waits ``delay_ms`` (a ``delay`` fault, until cleared)."""
        faults = f"{self.wallet.url}/_admin/faults"
        requests.delete(faults, timeout=10).raise_for_status()
        if delay_ms:
            fault = {"mode": "delay", "delayMs": delay_ms}
            requests.post(faults, json=fault, timeout=10).raise_for_status()

    # --- requests --------------------------------------------------------------------------

    def build(self, scenario: Scenario, count: int) -> list[load.SignedRequest]:
        """``count`` signed requests for ``scenario``, their subjects freshly made."""
        credentials = PEER_KEY if scenario.server == "peer" else self.operator.credentials
        if scenario.kind == "baseline":
            return load.cashouts(credentials, [(1, "bench-baseline")])
        if scenario.server == "peer":
            items = data.create_peer_items(self.db, count, self.tags.next("P"))
            return load.cashouts(credentials, items)
        if scenario.kind in ("replay", "cashout", "storm"):
            items = data.create_items(self.db, self.operator, count, self.tags.next("C"))
            return load.cashouts(credentials, items)
        if scenario.kind == "cancel":
            rounds = data.create_held_rounds(self.db, self.operator, count, self.tags.next("H"))
            return load.cancels(credentials, rounds)
        return load.purchases(credentials, self.operator.box_version_id, count, self.tags.next("B"))

    def primed(self, scenario: Scenario) -> load.SignedRequest:
        """A cashout answered once already, so that every copy of it is a replay."""
        request = self.build(Scenario(scenario.key, "", scenario.server, "replay"), 1)[0]
        statuses = load.send_in_turn(self.servers[scenario.server].port, [request])
        if statuses != {200: 1}:
            raise RuntimeError(f"{scenario.key}: the first request failed: {dict(statuses)}")
        return request

    # --- under load ------------------------------------------------------------------------

    def measure(self, scenario: Scenario) -> None:
        server, row = self.servers[scenario.server], self.row(scenario)
        cycle = scenario.kind in ("baseline", "replay")
        # Warm-up: every second request closes its connection, so every worker gets some.
        warm = self.build(scenario, 1)[0] if scenario.kind == "baseline" else self.primed(scenario)
        closing = load.SignedRequest(warm.path, warm.headers | {"Connection": "close"}, warm.body)
        load.run_wrk(server.url, [warm, closing], self.options.warmup, self.connections, True)
        if cycle:
            batch = [warm]
        else:
            bound = self.replay_rps.get(scenario.server, UNKNOWN_RATE)
            if scenario.delay_ms:
                bound = min(bound, self.connections * 1000 / scenario.delay_ms)
            size = load.pool_size(bound, self.options.duration, self.connections)
            log(f"{scenario.key}: making {size} fresh subjects")
            batch = self.build(scenario, size)
            data.analyze(self.db)
        self.wallet_delay(scenario.delay_ms)
        recording = None
        if self.options.profile and scenario.server == "ours":
            output = RESULTS_DIR / "profiles" / self.stamp / f"{scenario.key}.txt"
            recording = profile.Recording(server.proc.pid, self.options.duration, output)
        before, jiffies = self.cpu(server), machine_jiffies()
        result = load.run_wrk(server.url, batch, self.options.duration, self.connections, cycle)
        time.sleep(1.0)  # the requests in flight when wrk stopped
        after, jiffies_after = self.cpu(server), machine_jiffies()
        self.wallet_delay(0)
        if recording is not None:
            row.profile = recording.finish()
        row.rps, row.p99_ms, row.requests = result.rps, result.p99_ms, result.requests
        if result.exhausted:
            row.flags.append("ran out of fresh subjects: req/s understated")
        if result.errors:
            row.flags.append(f"{result.errors} errors")
        row.cpu_ms = {k: (after[k] - before[k]) * 1000 / max(1, result.requests) for k in before}
        busy, total = (b - a for a, b in zip(jiffies, jiffies_after, strict=True))
        ours = (sum(after.values()) - sum(before.values())) * os.sysconf("SC_CLK_TCK")
        row.others_share = max(0.0, busy - ours) / total if total else None
        if scenario.kind == "replay":
            self.replay_rps[scenario.server] = result.rps
        log(report.row_line(row))

    def cpu(self, server: Gunicorn) -> dict[str, float]:
        """CPU seconds so far of each server, and of wrk (a child we wait for)."""
        assert self.redis is not None and self.redis.pid is not None
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {
            "app": server.cpu_s(),
            "PostgreSQL": self.postgres.cpu_s(),
            "Redis": tree_cpu_s(self.redis.pid),
            "wallet": self.wallet.cpu_s(),
            "wrk": children.ru_utime + children.ru_stime,
        }

    def row(self, scenario: Scenario) -> Row:
        return self.rows.setdefault(scenario.key, Row(scenario.key, scenario.label))

    # --- counted by the servers --------------------------------------------------------------

    def counting_pass(self, wanted: Sequence[Scenario]) -> None:
        """Each scenario again, ``count`` requests one after the other (the storm: one
        burst), between readings of the servers' own counters."""
        n = self.options.count
        windows = [
            (
                s,
                [self.primed(s)] * n
                if s.kind == "replay"
                else self.build(s, 1 if s.kind == "storm" else n),
            )
            for s in wanted
            if s.kind != "baseline"
        ]
        data.analyze(self.db)
        # Pings are counted in the log; autovacuum's transactions would count as ours.
        self.monitor.execute("ALTER SYSTEM SET log_statement = 'all'")
        self.monitor.execute("ALTER SYSTEM SET autovacuum = off")
        self.monitor.execute("SELECT pg_reload_conf()")
        busy = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        for _ in range(120):  # a worker that started before may still be vacuuming our tables
            if not self.monitor.execute(busy).fetchone()[0]:  # type: ignore[index]
                break
            time.sleep(1.0)
        try:
            log(
                f"counting pass: {len(windows)} windows of {n} requests, {counting.SETTLE_S} s each"
            )
            counting.settle()
            before = self.reading()
            for scenario, batch in windows:
                self.wallet_delay(scenario.delay_ms)
                if scenario.kind == "storm":
                    sent = self.storm(scenario, batch[0])
                else:
                    statuses = load.send_in_turn(self.servers[scenario.server].port, batch)
                    sent = len(batch)
                    if statuses != {200: sent}:
                        self.row(scenario).flags.append(f"counting pass: {dict(statuses)}")
                self.wallet_delay(0)
                counting.settle()
                after = self.reading()
                self.row(scenario).counts = counting.per_request(before, after, sent)
                log(f"counted {scenario.key}: {report.counts_line(self.rows[scenario.key])}")
                before = after
        finally:
            self.monitor.execute("ALTER SYSTEM RESET ALL")
            self.monitor.execute("SELECT pg_reload_conf()")

    def reading(self) -> counting.Reading:
        return counting.read(
            self.monitor, DATABASE, self.database_oid, self.postgres.log, self.redis_client
        )

    def storm(self, scenario: Scenario, request: load.SignedRequest) -> int:
        """``storm`` copies of one fresh cashout at once; then what the wallet credited
        and our ledger recorded for its item."""
        server, row = self.servers["ours"], self.row(scenario)
        cpu = server.cpu_s()
        answers = load.duplicate_storm(server.port, request, self.options.storm)
        time.sleep(0.5)
        row.label = f"ours: duplicate storm ({len(answers)} identical cashouts at once)"
        row.requests = len(answers)
        row.cpu_ms = {"app": (server.cpu_s() - cpu) * 1000 / len(answers)}
        row.p99_ms = load.percentile_ms(answers, 99)
        item = int(json.loads(request.body)["inventoryItemId"])
        found = requests.get(f"{self.wallet.url}/_admin/transactions?operator=secret-1", timeout=60)
        credits = sum(
            1
            for t in found.json()["transactions"]
            if t.get("inventoryItemId") == item and t.get("type") == "wallet.credit"
        )
        bodies = {a.body for a in answers if a.status == 200}
        row.notes = f"{credits} wallet credit, {len(bodies)} distinct answer"
        if credits != 1 or len(bodies) != 1 or any(a.status != 200 for a in answers):
            statuses = sorted({a.status for a in answers})
            row.flags.append(f"{credits} credits, {len(bodies)} answers, statuses {statuses}")
        return len(answers)

    # --- the whole run ---------------------------------------------------------------------

    def execute(self) -> None:
        idle = machine_jiffies()
        time.sleep(2.0)
        now = machine_jiffies()
        self.record["busy_before_start"] = (now[0] - idle[0]) / max(1, now[1] - idle[1])
        self.record["loadavg_at_start"] = [round(v, 2) for v in os.getloadavg()]
        self.start()
        wanted = self.wanted()
        # Measured first: every worker has then connected and warmed its pools and caches,
        # so the counts are a request's own, not a worker's first.
        for scenario in wanted:
            if scenario.kind != "storm":
                self.measure(scenario)
        counted = [
            s for s in wanted if (self.options.storm if s.kind == "storm" else self.options.count)
        ]
        if counted:
            self.counting_pass(counted)
        self.record["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
        server_version = self.db.execute("SHOW server_version").fetchone()
        self.record["versions"] = {
            "python": platform.python_version(),
            "PostgreSQL": str(server_version[0]).split()[0] if server_version else "?",
            "Redis": str(self.redis_client.info("server")["redis_version"]),
        } | {
            name: metadata.version(name)
            for name in ("gunicorn", "flask", "sqlalchemy", "psycopg", "redis", "requests")
            + (("aws-lambda-powertools",) if "peer" in self.servers else ())
        }


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """``config/gunicorn.py`` evaluated under ``env``, as gunicorn sees it."""
    code = (
        "import json, runpy; g = runpy.run_path('config/gunicorn.py'); print(json.dumps("
        "{k: g[k] for k in ('workers', 'threads', 'worker_class', 'keepalive', 'max_requests')}))"
    )
    done = subprocess.run(  # noqa: S603 - our own argv
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, check=True
    )
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - our own argv
            ["git", *args],  # noqa: S607 - git from PATH
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        "+dirty" if git("status", "--porcelain") else ""
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="short runs, a smoke check; prints only")
    add("--duration", type=float, help="seconds per wrk run (20; quick 4)")
    add("--only", type=lambda v: set(v.split(",")), help="scenario keys or kinds; prints only")
    add("--count", type=int, help="requests per scenario in the counting pass (40; quick 10)")
    add("--storm", type=int, default=200, help="identical requests in the storm (200)")
    add("--workers", type=int, help="WEB_CONCURRENCY for every gunicorn; prints only")
    add("--threads", type=int, help="GUNICORN_THREADS for every gunicorn; prints only")
    add("--connections", type=int, help="wrk connections (default: workers × threads)")
    add("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    add("--keep", action="store_true", help="keep the servers' logs")
    add(
        "--app-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for our app only (e.g. DATABASE_PREPARED_STATEMENTS=on); prints only",
    )
    add("--profile", action="store_true", help="py-spy on our app while wrk runs")
    args = parser.parse_args(argv)
    args.duration = args.duration or (4.0 if args.quick else 20.0)
    args.warmup = 1.0 if args.quick else 2.0
    args.count = args.count if args.count is not None else (10 if args.quick else 40)
    partial = args.quick or args.only or args.workers or args.threads or args.app_setting
    args.write_docs = not (args.no_docs or partial)
    return args


def preflight(options: argparse.Namespace) -> list[str]:
    missing = [] if shutil.which("wrk") else ["wrk: make bench-deps (apt-get install -y wrk)"]
    if plain_redis_server() is None:
        missing.append("redis-server: apt-get install -y redis-server")
    try:
        postgres_bindir()
    except RuntimeError as exc:
        missing.append(str(exc))
    if options.profile and profile.py_spy() is None:
        missing.append("py-spy: pip install -r requirements-dev.txt")
    peer = any(s.server == "peer" for s in wanted(options.only))
    if peer and importlib.util.find_spec("aws_lambda_powertools") is None:
        missing.append("the peer's libraries: pip install -r bench/requirements-peer.txt")
    return missing


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    missing = preflight(options)
    if missing:
        print("bench: cannot run, missing:\n  - " + "\n  - ".join(missing), file=sys.stderr)
        return 2
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="lootbox-bench-"))
    bench = Bench(options, workdir)
    try:
        bench.execute()
    except KeyboardInterrupt:
        log("interrupted: stopping everything we started")
        return 130
    finally:
        bench.stop()
        if options.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    run = {
        "command": "python -m bench " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
        "started": bench.stamp,
        "minutes": (time.monotonic() - began) / 60,
        "revision": git_revision(),
        "machine": report.machine() | bench.record,
        "duration_s": options.duration,
        "count": options.count,
        "connections": bench.connections,
    }
    rows = [bench.rows[s.key] for s in SCENARIOS if s.key in bench.rows]
    text = report.render(run, rows)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"{bench.stamp.replace(':', '')}.json"
    raw.write_text(json.dumps(run | {"rows": [r.__dict__ for r in rows]}, indent=2, default=vars))
    log(f"raw figures: {raw.relative_to(REPO_ROOT)}")
    if options.write_docs:
        report.update_doc(report.DOCS, text)
        log(f"updated {report.DOCS.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
