"""The benchmark of issue 5: ``python -m bench`` (``make bench``, ``make bench-quick``,
``make bench-scale``, ``make bench-profile``).

Starts its own stack (see ``bench/stack.py``), then for each scenario builds and signs
its requests, sends them with ``wrk`` (or, for the duplicate storm, an asyncio client),
and counts what each request cost on the servers. Prints the table and writes it into
``docs/benchmarks.md`` between markers, and the raw figures as JSON under
``instance/bench/``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import resource
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import data, profile, report
from bench.counters import (
    METRIC_REDIS,
    METRIC_SQL,
    BackendSampler,
    CpuSnapshot,
    RedisMonitor,
    StatementLog,
    app_metrics,
    busy_share,
    commandstats_delta,
    cpu_delta_ms,
    cpu_jiffies,
    find_server_log,
    metrics_delta,
    others_share,
    process_cpu_s,
    redis_commandstats,
    total_statements,
    transactions_of,
)
from bench.machine import (
    app_settings,
    git_revision,
    gunicorn_settings,
    machine,
    postgres_settings,
    versions,
)
from bench.payloads import (
    SignedRequest,
    cancel_requests,
    cashout_requests,
    purchase_requests,
)
from bench.procs import HOST
from bench.results import Counts, Row, Run, aggregate
from bench.stack import REPO_ROOT, BenchStack, Gunicorn, Operator, PostgresServer, bench_stack
from bench.storm import duplicate_storm
from bench.wrk import WrkResult, run_wrk, wrk_binary

DOCS = REPO_ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = REPO_ROOT / "instance" / "bench"
PROFILES_DIR = RESULTS_DIR / "profiles"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    kind: str  # baseline | replay | cashout | cancel | purchase | storm
    delay_ms: int = 0


def scenarios(delay_ms: int, storm: int) -> list[Scenario]:
    return [
        Scenario("baseline", "1. baseline: bare Flask JSON endpoint", "baseline"),
        Scenario("replay", "2. replay: one signed cashout sent again and again", "replay"),
        Scenario("cashout", "3a. first-time cashout, wallet instant", "cashout"),
        Scenario(
            f"cashout_{delay_ms}ms",
            f"3b. first-time cashout, wallet {delay_ms} ms",
            "cashout",
            delay_ms,
        ),
        Scenario("cancel", "3c. first-time cancel, wallet instant", "cancel"),
        Scenario(
            f"cancel_{delay_ms}ms",
            f"3d. first-time cancel, wallet {delay_ms} ms",
            "cancel",
            delay_ms,
        ),
        Scenario("purchase", "4. atomic purchase (buy and open), wallet instant", "purchase"),
        Scenario(
            "storm", f"5a. duplicate storm: {storm} identical cashouts, wallet instant", "storm"
        ),
        Scenario(
            f"storm_{delay_ms}ms",
            f"5b. duplicate storm: {storm} identical cashouts, wallet {delay_ms} ms",
            "storm",
            delay_ms,
        ),
    ]


SCALE_KINDS = ("replay", "cashout", "cancel")
# Measurements of the paired baseline at most, when its workers are replaced meanwhile.
PAIR_ATTEMPTS = 3


@dataclass
class Options:
    mode: str
    duration_s: float
    warmup_s: float
    connections: int
    count: int
    storm: int
    delay_ms: int
    only: set[str] | None
    scale_sizes: list[int]
    repeat: int
    max_pool: int
    workers: int | None
    threads: int | None
    write_docs: bool
    docs: Path
    keep: bool
    postgres: PostgresServer
    render: Path | None
    force_docs: bool
    profile: bool
    pair_s: float  # the baseline measured again right before each scenario; 0: not


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- sending --------------------------------------------------------------------------------


def send_sequential(server: Gunicorn, requests: Sequence[SignedRequest]) -> Counter[int]:
    """Send each request in turn on one keep-alive connection; statuses seen."""
    statuses: Counter[int] = Counter()
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        for request in requests:
            conn.request(request.method, request.path, request.body, request.headers)
            answer = conn.getresponse()
            answer.read()
            statuses[answer.status] += 1
            if answer.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    finally:
        conn.close()
    return statuses


def prime(server: Gunicorn, request: SignedRequest) -> None:
    """Send once so that later copies are replays; it must succeed."""
    statuses = send_sequential(server, [request])
    if statuses.get(200) != 1:
        raise RuntimeError(f"priming {request.path} failed: {dict(statuses)}")


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Tenant:
    """One database of ours (with its Redis database number and its operator). The
    scaling run keeps one per size, so that it can alternate between them."""

    database: str
    redis_db: int
    operator: Operator
    conn: psycopg.Connection
    size: int | None = None  # items of history wanted (scaling run)
    history: int = 0  # items of history added so far
    replay_rps: float | None = None
    fresh_rps: float | None = None  # the fastest first-time scenario so far


class Bench:
    def __init__(self, options: Options, stack: BenchStack, run: Run) -> None:
        self.options = options
        self.stack = stack
        self.run = run
        self.tags = data.Tags()
        self.tenants: list[Tenant] = []
        self.tenant: Tenant | None = None
        self.counts: dict[str, Counts] = {}
        self.baseline_rps: float | None = None
        # The baseline's server stays up for the whole run, idle between its measurements,
        # so that it can be measured again right before each scenario (``paired_baseline``).
        self.baseline_server: Gunicorn | None = None
        self.baseline_request: SignedRequest | None = None
        self.profile_dir = PROFILES_DIR / run_stamp(run)

    # --- set-up ---------------------------------------------------------------------------

    def setup(self) -> None:
        stack = self.stack
        log("starting redis-server, database, reference wallet")
        stack.start_redis()
        stack.start_wallet()
        self.activate(self.new_tenant(stack.database_prefix, 0))
        self.redis = stack.redis_client()
        with stack.postgres.connect() as pg:
            self.run.record.update(
                {
                    "machine": machine(),
                    "versions": versions(pg, self.redis),
                    "postgresql_settings": postgres_settings(pg),
                }
            )
        env = stack.env()
        self.run.record["gunicorn"] = gunicorn_settings(env)
        self.run.record["app"] = app_settings(env)
        self.run.record["git"] = git_revision()
        self.run.record["load_generator"] = {
            "wrk_threads": 1,
            "repeat": self.options.repeat,
            "wrk_connections": self.options.connections,
            "duration_s": self.options.duration_s,
            "warmup_s": self.options.warmup_s,
            "counting_pass_requests": self.options.count,
            "storm_requests": self.options.storm,
            "wallet_delay_ms": self.options.delay_ms,
            "paired_baseline_s": self.options.pair_s,
        }

    def wanted(self, scenario: Scenario) -> bool:
        only = self.options.only
        return only is None or scenario.key in only or scenario.kind in only

    def new_tenant(self, database: str, redis_db: int) -> Tenant:
        """A new database, migrated, with the operator and catalog onboarded."""
        self.stack.use_database(database, redis_db)
        self.stack.create_database()
        self.stack.migrate()
        operator = self.stack.onboard()
        conn = self.stack.postgres.connect(database)
        if self.tenants:
            # The wallet is shared: items of different databases must not share ids, or
            # their cashouts would share wallet keys (cashback:inventory:<id>).
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('inventory_items', 'id'), %s)",
                (len(self.tenants) * 10**12,),
            )
        tenant = Tenant(database, redis_db, operator, conn)
        self.tenants.append(tenant)
        return tenant

    def activate(self, tenant: Tenant) -> None:
        self.stack.use_database(tenant.database, tenant.redis_db)
        self.tenant = tenant

    @property
    def current(self) -> Tenant:
        assert self.tenant is not None
        return self.tenant

    @property
    def db(self) -> psycopg.Connection:
        return self.current.conn

    @property
    def op(self) -> Operator:
        return self.current.operator

    # --- requests ----------------------------------------------------------------------------

    def build(self, scenario: Scenario, count: int) -> list[SignedRequest]:
        """``count`` signed requests for ``scenario``, their subjects freshly made."""
        credentials = self.op.credentials
        if scenario.kind == "baseline":
            return cashout_requests(credentials, [(1, "bench-baseline")])
        if scenario.kind in ("replay", "cashout", "storm"):
            items = data.create_items(self.db, self.op, count, self.tags.next("C"))
            return cashout_requests(credentials, items)
        if scenario.kind == "cancel":
            rounds = data.create_held_rounds(self.db, self.op, count, self.tags.next("H"))
            return cancel_requests(credentials, rounds)
        if scenario.kind == "purchase":
            return purchase_requests(
                credentials, self.op.box_version_id, count, self.tags.next("buy")
            )
        raise ValueError(scenario.kind)

    def pool_size(self, scenario: Scenario) -> int:
        """Enough one-time requests for the whole duration: the fastest this scenario can
        go is bounded by the replay (or, before it is known, the baseline) rate, by three
        times the fastest first-time scenario measured so far, and with a slow wallet by
        connections / delay."""
        bound = self.current.replay_rps or self.baseline_rps or 5000.0
        if self.current.fresh_rps:
            bound = min(bound, 3 * self.current.fresh_rps)
        if scenario.delay_ms:
            bound = min(bound, self.options.connections / (scenario.delay_ms / 1000))
        size = math.ceil(bound * self.options.duration_s * 1.3) + 4 * self.options.connections
        return min(size, self.options.max_pool)

    # --- servers -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def app_server(self, app: str = "wsgi:app", label: str = "app") -> Iterator[Gunicorn]:
        server = self.stack.start_gunicorn(app, label)
        try:
            yield server
        finally:
            self.stack.stop_gunicorn(server)

    def warm_up(self, server: Gunicorn, request: SignedRequest) -> None:
        """Every worker imported, every pool connected, before anything is measured.

        Every second request asks to close its connection, so wrk keeps reconnecting and
        every worker accepts some: with keep-alive alone, the first accepts decide which
        workers ever see a request, and an idle one would open its database and Redis
        connections in the middle of a measurement."""
        closing = SignedRequest(
            request.method, request.path, {**request.headers, "Connection": "close"}, request.body
        )
        if self.options.warmup_s > 0:
            run_wrk(
                server.url,
                [request, closing],
                host_header=server.host_header,
                duration_s=self.options.warmup_s,
                connections=self.options.connections,
                mode="cycle",
            )

    def primed_replay(self, server: Gunicorn) -> SignedRequest:
        replay = Scenario("replay", "", "replay")
        request = self.build(replay, 1)[0]
        prime(server, request)
        return request

    # --- measuring under load -------------------------------------------------------------------

    def cpu_snapshot(self, server: Gunicorn) -> CpuSnapshot:
        """CPU seconds so far of each part of the stack (see ``cpu_delta_ms``)."""
        stack = self.stack
        app = process_cpu_s(server.proc.pid, with_reaped_children=True)
        app += sum(process_cpu_s(pid) for pid in server.worker_pids())
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        parts = {
            "app": app,
            "wallet": process_cpu_s(stack.wallet_proc.pid) if stack.wallet_proc else 0.0,
            "redis": process_cpu_s(stack.redis.pid) if stack.redis and stack.redis.pid else 0.0,
            # wrk (a child we waited for) and this process (the storm's client).
            "load generator": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime,
        }
        return CpuSnapshot(parts)

    def backend_sampler(self) -> BackendSampler:
        """CPU time of our database's backends during a run (see ``BackendCpu``)."""
        database = self.current.database
        return BackendSampler(lambda: self.stack.postgres.connect(database))

    def measure_wrk(
        self,
        server: Gunicorn,
        scenario: Scenario,
        requests: Sequence[SignedRequest],
        mode: str,
        pool: int | None,
    ) -> Row:
        """One wrk run of ``scenario`` with what it cost each process; a scenario other than
        the baseline is paired with the baseline measured right before it."""
        paired_rps = self.paired_baseline() if scenario.kind != "baseline" else None
        self.stack.wallet_delay(scenario.delay_ms)
        before_cs = redis_commandstats(self.redis)
        before_metrics = app_metrics(server.url)
        before_cpu = cpu_jiffies()
        before_processes = self.cpu_snapshot(server)
        loadavg = os.getloadavg()[0]
        recording = self.start_profile(server, scenario)
        try:
            with self.backend_sampler() as backends:
                result = run_wrk(
                    server.url,
                    requests,
                    host_header=server.host_header,
                    duration_s=self.options.duration_s,
                    connections=self.options.connections,
                    mode=mode,
                )
                time.sleep(1.0)  # the requests still in flight when wrk stopped finish
                if recording is not None:
                    recording.stop()  # before our own requests (the metrics scrape) below
        except BaseException:
            if recording is not None:
                recording.abort()
            raise
        after_processes = self.cpu_snapshot(server)
        after_cpu = cpu_jiffies()
        after_cs = redis_commandstats(self.redis)
        after_metrics = app_metrics(server.url)
        # Reaped only now, after the snapshot: its CPU must not count as the load
        # generator's (RUSAGE_CHILDREN); it is added to ours below instead.
        summary = recording.finish() if recording is not None else None
        self.stack.wallet_delay(0)
        row = self._row(scenario, result, pool)
        row.loadavg = loadavg
        row.cpu_ms = cpu_delta_ms(before_processes, after_processes, result.requests)
        if result.requests:
            row.cpu_ms["postgres"] = backends.cpu.total_s() * 1000 / result.requests
        row.cpu_busy = busy_share(before_cpu, after_cpu)
        ours_s = sum(row.cpu_ms.values()) * result.requests / 1000
        if summary is not None:
            ours_s += summary.py_spy_cpu_s
            row.extra["profile"] = summary.to_json()
        elif recording is not None:
            log(f"{scenario.key}: py-spy wrote no profile (see {recording.log})")
        row.cpu_others = others_share(before_cpu, after_cpu, ours_s)
        row.load = _load_counts(
            result.requests,
            commandstats_delta(before_cs, after_cs),
            metrics_delta(before_metrics, after_metrics),
        )
        return pair(row, paired_rps)

    def start_profile(self, server: Gunicorn, scenario: Scenario) -> profile.Recording | None:
        """With ``--profile``: py-spy on gunicorn's master and, through it, every worker,
        for as long as wrk runs (see ``bench/profile.py``)."""
        if not self.options.profile:
            return None
        name = scenario.key
        size = self.size_for(scenario)
        if size is not None:
            name += f"-{size}"
        output = self.profile_dir / f"{name}.txt"
        round_ = 2
        while output.exists():  # the next round of the same scenario
            output = self.profile_dir / f"{name}-{round_}.txt"
            round_ += 1
        return profile.Recording(server.proc.pid, self.options.duration_s, output)

    def _row(self, scenario: Scenario, result: WrkResult, pool: int | None) -> Row:
        return Row(
            key=scenario.key,
            label=scenario.label,
            rps=result.rps,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            requests=result.requests,
            duration_s=result.duration_s,
            statuses=result.statuses,
            socket_errors=sum(result.socket_errors.values()),
            pool=pool,
            exhausted=result.exhausted,
            extra={"p90_ms": result.p90_ms, "max_ms": result.max_ms, "mean_ms": result.mean_ms},
            size=self.size_for(scenario),
        )

    def size_for(self, scenario: Scenario) -> int | None:
        """Items of history in the database, for the rows of the scaling run."""
        if self.options.mode != "scale" or scenario.kind == "baseline":
            return None
        return self.current.size

    def baseline(self, server: Gunicorn) -> Row:
        scenario = scenarios(self.options.delay_ms, self.options.storm)[0]
        log("baseline: bare Flask app under the same gunicorn configuration")
        request = self.build(scenario, 1)[0]
        self.warm_up(server, request)
        row = self.measure_wrk(server, scenario, [request], "cycle", None)
        self.baseline_rps = row.rps
        self.baseline_server, self.baseline_request = server, request
        return row

    def paired_baseline(self) -> float | None:
        """The baseline's req/s again, measured for ``pair_s`` seconds right before a
        scenario. This machine's speed drifts by tens of percent within minutes (other
        work, the host), so a scenario divided by a baseline measured minutes earlier
        mostly measures the drift; divided by the baseline measured next to it, the drift
        cancels out (``pair``). ``None`` when pairing is off."""
        server, request = self.baseline_server, self.baseline_request
        if self.options.pair_s <= 0 or server is None or request is None:
            return None
        # The baseline's workers serve about 10,000 requests each per pairing, so the
        # shipped max_requests replaces them every few pairings: a measurement during which
        # a worker was replaced (its successor importing the app) is taken again.
        attempt = 1
        while True:
            # Idle since its last run: warmed up first, as for every measurement. Measured
            # cold, its first 2 s ran at 2,099 req/s against 5,358 minutes before (trial
            # run), which would have inflated the scenario's ratio 2.5 times.
            workers = server.worker_pids()
            self.warm_up(server, request)
            result = run_wrk(
                server.url,
                [request],
                host_header=server.host_header,
                duration_s=self.options.pair_s,
                connections=self.options.connections,
                mode="cycle",
            )
            if server.worker_pids() == workers or attempt == PAIR_ATTEMPTS:
                return result.rps
            log(f"baseline: a worker was replaced while it was measured; again ({attempt})")
            attempt += 1

    def scenario_under_load(self, server: Gunicorn, scenario: Scenario) -> Row:
        if scenario.kind == "storm":
            return self.storm(server, scenario)
        if scenario.kind == "replay":
            request = self.primed_replay(server)
            row = self.measure_wrk(server, scenario, [request], "cycle", None)
            self.current.replay_rps = max(row.rps or 0.0, self.current.replay_rps or 0.0)
            return row
        pool = self.pool_size(scenario)
        log(f"{scenario.key}: making {pool} fresh subjects")
        requests = self.build(scenario, pool)
        data.analyze(self.db)
        row = self.measure_wrk(server, scenario, requests, "once", pool)
        if not row.exhausted and row.rps:
            self.current.fresh_rps = max(row.rps, self.current.fresh_rps or 0.0)
        row.extra["db_effects"] = self.db_effects(scenario, requests)
        return row

    def db_effects(self, scenario: Scenario, requests: Sequence[SignedRequest]) -> dict[str, int]:
        """What the database holds afterwards for this scenario's subjects (sanity)."""
        if scenario.kind == "cashout":
            ids = [json.loads(r.body)["inventoryItemId"] for r in requests]
            row = self.db.execute(
                "SELECT count(*) FILTER (WHERE state = 'cashed_back'),"
                " count(*) FILTER (WHERE state = 'unresolved')"
                " FROM inventory_items WHERE id BETWEEN %s AND %s",
                (min(ids), max(ids)),
            ).fetchone()
            assert row is not None
            return {"cashed_back": int(row[0]), "unresolved": int(row[1])}
        if scenario.kind == "cancel":
            public_ids = [json.loads(r.body)["roundPublicId"] for r in requests]
            row = self.db.execute(
                "SELECT count(*) FILTER (WHERE status = 'refunded'),"
                " count(*) FILTER (WHERE status = 'held')"
                " FROM rounds WHERE public_id = ANY(%s)",
                (public_ids,),
            ).fetchone()
            assert row is not None
            return {"refunded": int(row[0]), "held": int(row[1])}
        return {}

    def storm(self, server: Gunicorn, scenario: Scenario) -> Row:
        request = self.build(scenario, 1)[0]
        item_id = int(json.loads(request.body)["inventoryItemId"])
        self.stack.wallet_delay(scenario.delay_ms)
        before_cs = redis_commandstats(self.redis)
        before_metrics = app_metrics(server.url)
        before_stats = self.stack.wallet_stats()
        before_processes = self.cpu_snapshot(server)
        loadavg = os.getloadavg()[0]
        with self.backend_sampler() as backends:
            result = duplicate_storm(HOST, server.port, request, self.options.storm)
            time.sleep(0.5)
        after_processes = self.cpu_snapshot(server)
        after_cs = redis_commandstats(self.redis)
        after_metrics = app_metrics(server.url)
        after_stats = self.stack.wallet_stats()
        self.stack.wallet_delay(0)
        credits = [
            t
            for t in self.stack.wallet_transactions()
            if t.get("inventoryItemId") == item_id and t.get("type") == "wallet.credit"
        ]
        movements = self.db.execute(
            "SELECT status, count(*) FROM money_movements"
            " WHERE inventory_item_id = %s GROUP BY status",
            (item_id,),
        ).fetchall()
        bodies = {a.body for a in result.answers if a.status == 200}
        answers = len(result.answers)
        row = Row(
            key=scenario.key,
            label=scenario.label,
            rps=None,
            p50_ms=result.percentile_ms(50),
            p99_ms=result.percentile_ms(99),
            requests=answers,
            duration_s=result.wall_s,
            statuses=result.statuses,
            socket_errors=sum(1 for a in result.answers if a.error),
            loadavg=loadavg,
            extra={
                "wallet_credits": len(credits),
                "wallet_applied": after_stats.get("applied", 0) - before_stats.get("applied", 0),
                "wallet_calls": after_stats.get("calls", 0) - before_stats.get("calls", 0),
                "ledger_movements": {str(status): int(n) for status, n in movements},
                "distinct_200_bodies": len(bodies),
                "replayed": sum(1 for a in result.answers if a.replayed),
                "max_ms": result.percentile_ms(100),
                "wall_s": result.wall_s,
                "item": item_id,
            },
            size=self.size_for(scenario),
        )
        row.cpu_ms = cpu_delta_ms(before_processes, after_processes, answers)
        row.cpu_ms["postgres"] = backends.cpu.total_s() * 1000 / answers
        row.load = _load_counts(
            answers,
            commandstats_delta(before_cs, after_cs),
            metrics_delta(before_metrics, after_metrics),
        )
        return row

    # --- Redis memory per completed record ----------------------------------------------------

    def memory_per_record(self) -> dict[str, Any]:
        """What one completed idempotency record costs Redis, measured two ways on the
        cashout records the run left behind: ``MEMORY USAGE`` of a sample, and how much
        ``used_memory`` falls when that sample is deleted (key, value, expiry entry and
        allocator rounding; the run is over, so nothing else moves it)."""
        pattern = "lootbox:idem:*:cashback:inventory:*"  # the run's own redis-server
        sample: list[bytes] = []
        for key in self.redis.scan_iter(match=pattern, count=1000):
            sample.append(key)
            if len(sample) >= 5000:
                break
        if not sample:
            return {}
        usages = [int(self.redis.memory_usage(k, samples=0) or 0) for k in sample]
        lengths = [int(self.redis.strlen(k)) for k in sample]
        ttl = self.redis.ttl(sample[0])
        example = self.redis.get(sample[0])
        before = int(self.redis.info("memory")["used_memory"])
        for start in range(0, len(sample), 500):
            self.redis.delete(*sample[start : start + 500])
        freed = before - int(self.redis.info("memory")["used_memory"])
        return {
            "records": int(self.redis.dbsize()) + len(sample),
            "sampled_keys": len(sample),
            "memory_usage_mean_bytes": sum(usages) / len(usages),
            "value_length_mean_bytes": sum(lengths) / len(lengths),
            "freed_by_delete_bytes": freed,
            "freed_per_key_bytes": freed / len(sample),
            "sample_ttl_s": ttl,
            "example_key": sample[0].decode(),
            "example_value": example.decode() if isinstance(example, bytes) else None,
        }

    # --- the counting pass ----------------------------------------------------------------------

    def counting_pass(self, wanted: Sequence[Scenario]) -> None:
        """Each scenario once more, a few requests in sequence (the storm: one burst),
        with ``log_statement = all`` on our database and ``MONITOR`` on our Redis: the
        exact SQL statements, transactions and Redis round trips per request."""
        statement_log = StatementLog(
            find_server_log(self.db), self.stack.database, {self.db.info.backend_pid}
        )
        if not statement_log.usable:
            log(f"PostgreSQL server log not readable ({statement_log.path}): SQL counts n/a")
        self.run.record["counting"] = {
            "postgresql_log": str(statement_log.path),
            "postgresql_log_usable": statement_log.usable,
        }
        self.stack.set_statement_logging(True)
        try:
            with self.app_server(label="counting") as server:
                self.warm_up(server, self.primed_replay(server))
                for scenario in wanted:
                    if scenario.kind == "baseline":
                        continue
                    log(f"counting pass: {scenario.key}")
                    self.counts[scenario.key] = self.count_one(server, scenario, statement_log)
        finally:
            self.stack.set_statement_logging(False)

    def count_one(
        self, server: Gunicorn, scenario: Scenario, statement_log: StatementLog
    ) -> Counts:
        if scenario.kind == "storm":
            requests = self.build(scenario, 1)
        elif scenario.kind == "replay":
            first = self.build(scenario, 1)[0]
            prime(server, first)
            requests = [first] * self.options.count
        else:
            requests = self.build(scenario, self.options.count)
        self.stack.wallet_delay(scenario.delay_ms)
        send: Callable[[], tuple[int, Counter[int]]]
        if scenario.kind == "storm":

            def send() -> tuple[int, Counter[int]]:
                result = duplicate_storm(HOST, server.port, requests[0], self.options.storm)
                return len(result.answers), Counter(result.statuses)

        else:

            def send() -> tuple[int, Counter[int]]:
                return len(requests), send_sequential(server, requests)

        # The app's counters are read outside the windows: a scrape may query the
        # database itself (gauges), which is not what a request costs.
        before_metrics = app_metrics(server.url)
        time.sleep(0.2)
        with RedisMonitor(HOST, self.stack.redis_port) as monitor:
            statement_log.mark()
            sent, statuses = send()
            time.sleep(0.3)
            statements = statement_log.read()
        after_metrics = app_metrics(server.url)
        self.stack.wallet_delay(0)
        counts = Counts(requests=sent, statuses=dict(statuses))
        if statements is not None:
            counts.sql_statements = (
                total_statements(statements, with_transaction_control=False) / sent
            )
            counts.sql_transactions = transactions_of(statements) / sent
            counts.sql_breakdown = {k: n / sent for k, n in statements.most_common()}
        counts.redis_round_trips = monitor.count.total_round_trips / sent
        counts.redis_commands = monitor.count.total_commands / sent
        breakdown = Counter(monitor.count.round_trips)
        breakdown.update({f"{k} (in script)": n for k, n in monitor.count.in_scripts.items()})
        counts.redis_breakdown = {k: n / sent for k, n in breakdown.most_common()}
        delta = metrics_delta(before_metrics, after_metrics)
        if delta is not None:
            counts.metrics_sql = delta[METRIC_SQL] / sent
            counts.metrics_redis = delta[METRIC_REDIS] / sent
        return counts

    # --- the whole run -----------------------------------------------------------------

    def main_pass(self, wanted: Sequence[Scenario]) -> None:
        samples: list[Row] = []
        with self.app_server() as server:
            self.warm_up(server, self.primed_replay(server))
            for repeat in range(self.options.repeat):
                for scenario in wanted:
                    if scenario.kind == "baseline":
                        continue
                    log(f"{scenario.key}: {scenario.label}{_nth(repeat, self.options.repeat)}")
                    samples.append(self.scenario_under_load(server, scenario))
                    log(report.row_line(samples[-1]))
        for row in aggregate_rows(samples):
            self.finish_row(row)
        self.run.memory = self.memory_per_record()

    def finish_row(self, row: Row) -> None:
        paired = row.extra.get("paired_ratio")
        if paired is not None:
            row.ratio = paired
        elif self.baseline_rps and row.rps is not None:
            row.ratio = row.rps / self.baseline_rps
        if row.key in self.counts:
            row.exact = self.counts[row.key]
        self.run.rows.append(row)

    def scale_pass(self, wanted: Sequence[Scenario]) -> None:
        """One database per size, filled first; then the scenarios on each in turn,
        alternating the order each round (A B, B A, …), so that a change in other work on
        the machine hits every size alike. Each row is the median of its rounds."""
        sizes = self.options.scale_sizes
        self.current.size = sizes[0]
        for index, size in enumerate(sizes[1:], start=1):
            tenant = self.new_tenant(f"{self.stack.database_prefix}_{index}", index)
            tenant.size = size
        for tenant in self.tenants:
            self.activate(tenant)
            self.grow_background(tenant)
        samples: list[Row] = []
        for repeat in range(self.options.repeat):
            order = self.tenants if repeat % 2 == 0 else list(reversed(self.tenants))
            for tenant in order:
                self.activate(tenant)
                with self.app_server() as server:
                    self.warm_up(server, self.primed_replay(server))
                    for scenario in wanted:
                        if scenario.kind not in SCALE_KINDS:
                            continue
                        log(
                            f"{scenario.key} with {tenant.size} items in the database"
                            f"{_nth(repeat, self.options.repeat)}"
                        )
                        samples.append(self.scenario_under_load(server, scenario))
                        log(report.row_line(samples[-1]))
        rows = aggregate_rows(samples)
        for row in sorted(rows, key=lambda r: r.size or 0):
            self.finish_row(row)

    def grow_background(self, tenant: Tenant) -> None:
        size = tenant.size or 0
        missing = size - tenant.history
        if missing > 0:
            log(f"{tenant.database}: adding {missing} items of history")

            def progress(done: int, elapsed: float) -> None:
                if done % 200_000 == 0 or done == missing:
                    log(f"  {done}/{missing} items in {elapsed:.0f} s")

            began = time.monotonic()
            data.add_background(
                self.db, self.op, missing, "BG", start=tenant.history + 1, progress=progress
            )
            data.analyze(self.db, vacuum=True)
            self.run.record.setdefault("background_load_s", {})[str(size)] = round(
                time.monotonic() - began, 1
            )
            tenant.history = size
        self.run.record.setdefault("items_in_database", {})[str(size)] = data.count_items(self.db)

    def execute(self) -> None:
        self.setup()
        idle_before = cpu_jiffies()
        time.sleep(2.0)
        self.run.record["machine"]["busy_share_before_start"] = round(
            busy_share(idle_before, cpu_jiffies()), 3
        )
        wanted = [s for s in scenarios(self.options.delay_ms, self.options.storm) if self.wanted(s)]
        with self.app_server("bench.baseline_app:app", "baseline") as baseline_server:
            baseline = self.baseline(baseline_server)
            self.finish_row(baseline)
            log(report.row_line(baseline))
            if self.options.mode == "scale":
                self.scale_pass(wanted)
            else:
                if self.options.count > 0:
                    self.counting_pass(wanted)
                self.main_pass(wanted)
        self.baseline_server = None
        self.run.record["machine"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]

    def close(self) -> None:
        for tenant in self.tenants:
            tenant.conn.close()


def pair(row: Row, baseline_rps: float | None) -> Row:
    """Note on ``row`` the baseline measured right before it and the ratio to it."""
    if baseline_rps and row.rps is not None:
        row.extra["paired_baseline_rps"] = baseline_rps
        row.extra["paired_ratio"] = row.rps / baseline_rps
    return row


def _nth(repeat: int, repeats: int) -> str:
    return f" (round {repeat + 1} of {repeats})" if repeats > 1 else ""


def aggregate_rows(samples: Sequence[Row]) -> list[Row]:
    """One row per scenario and size, in first-seen order: the median of its rounds (and
    the profile of all its rounds together)."""
    groups: dict[tuple[str, int | None], list[Row]] = {}
    for row in samples:
        groups.setdefault((row.key, row.size), []).append(row)
    rows = []
    for group in groups.values():
        row = aggregate(group)
        profiles = [r.extra["profile"] for r in group if r.extra.get("profile")]
        if len(profiles) > 1:
            merged = profile.merge([profile.ProfileSummary.from_json(p) for p in profiles])
            row.extra["profile"] = merged.to_json()
        rows.append(row)
    return rows


def run_stamp(run: Run) -> str:
    """The run's start time as a file name part (20260101T000000+0000)."""
    return run.started_at.replace(":", "").replace("-", "")


def _load_counts(
    requests: int, commands: dict[str, int], metrics: dict[str, float] | None
) -> Counts:
    counts = Counts(requests=requests)
    if requests > 0:
        counts.redis_commands = sum(commands.values()) / requests
        counts.redis_breakdown = {k: n / requests for k, n in commands.items()}
        if metrics is not None:
            counts.metrics_sql = metrics[METRIC_SQL] / requests
            counts.metrics_redis = metrics[METRIC_REDIS] / requests
    return counts


# --- the command line ------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short durations: a smoke check")
    parser.add_argument("--scale", action="store_true", help="the scaling run (1k and 1M items)")
    parser.add_argument(
        "--duration", type=float, help="seconds per wrk scenario (20; quick 4; scale 10)"
    )
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per server (3; quick 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument(
        "--count",
        type=int,
        help="requests per scenario in the counting pass (40; quick 10; 0: skip)",
    )
    parser.add_argument("--storm", type=int, default=200, help="identical requests in a storm")
    parser.add_argument("--delay-ms", type=int, default=50, help="the slow wallet's delay (50)")
    parser.add_argument("--only", help="comma-separated scenario keys or kinds")
    parser.add_argument(
        "--scale-sizes", default="1000,1000000", help="items already in the database"
    )
    parser.add_argument(
        "--repeat", type=int, help="rounds of the measured runs, rows are medians (1; scale 3)"
    )
    parser.add_argument(
        "--pair",
        type=float,
        help="seconds of baseline measured again right before each scenario, for its ratio"
        " (5; quick 2; 0: compare with the first baseline only)",
    )
    parser.add_argument("--max-pool", type=int, default=400_000, help="fresh subjects per scenario")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY (default: the config's)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS (default: the config's)")
    parser.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="update docs/benchmarks.md after a quick run too (by default only full and"
        " scaling runs do)",
    )
    parser.add_argument("--docs-file", type=Path, default=DOCS)
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="run nothing: render a saved run (instance/bench/*.json) into the document",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the app's workers with py-spy during each wrk scenario; print where"
        " their CPU went (raw stacks under instance/bench/profiles/)",
    )
    parser.add_argument("--pg-host", default=os.environ.get("BENCH_PG_HOST", "127.0.0.1"))
    parser.add_argument("--pg-port", type=int, default=int(os.environ.get("BENCH_PG_PORT", "5432")))
    parser.add_argument("--pg-user", default=os.environ.get("BENCH_PG_USER", "postgres"))
    args = parser.parse_args(argv)
    quick = args.quick
    mode = "scale" if args.scale else ("quick" if quick else "full")
    return Options(
        mode=mode,
        duration_s=args.duration or (4.0 if quick else (10.0 if args.scale else 20.0)),
        warmup_s=args.warmup if args.warmup is not None else (2.0 if quick else 3.0),
        connections=args.connections,
        count=args.count if args.count is not None else (10 if quick else 40),
        storm=args.storm,
        delay_ms=args.delay_ms,
        only={s.strip() for s in args.only.split(",")} | {"baseline"} if args.only else None,
        scale_sizes=[int(s) for s in args.scale_sizes.split(",")],
        repeat=max(1, args.repeat or (3 if args.scale else 1)),
        max_pool=args.max_pool,
        workers=args.workers,
        threads=args.threads,
        write_docs=not args.no_docs and (args.write_docs or not quick),
        docs=args.docs_file,
        keep=args.keep,
        postgres=PostgresServer(args.pg_host, args.pg_port, args.pg_user),
        render=args.render,
        force_docs=args.write_docs,
        profile=args.profile,
        pair_s=args.pair if args.pair is not None else (2.0 if quick else 5.0),
    )


def preflight(options: Options) -> list[str]:
    """What is missing, each with how to get it."""
    missing = []
    if wrk_binary() is None:
        missing.append("wrk: `make bench-deps` (as root: apt-get install -y wrk)")
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        missing.append("redis-server: apt-get install -y redis-server")
    if options.profile and profile.py_spy_binary() is None:
        missing.append(profile.MISSING)
    try:
        with options.postgres.connect():
            pass
    except psycopg.Error as exc:
        missing.append(
            f"PostgreSQL at {options.postgres.host}:{options.postgres.port} as "
            f"{options.postgres.user} (trust auth): {str(exc).strip()}"
        )
    return missing


def render_saved(path: Path, options: Options) -> int:
    """Print (and write into the document) a run saved as JSON, without running it."""
    run = Run.from_json(json.loads(path.read_text()))
    duration = float(run.record.get("load_generator", {}).get("duration_s", 0))
    text = report.render(run, duration)
    print(text)
    if options.write_docs and (run.mode != "quick" or options.force_docs):
        report.update_doc(options.docs, run, text)
        log(f"updated {options.docs}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.render is not None:
        return render_saved(options.render, options)
    missing = preflight(options)
    if missing:
        print("bench: cannot run, missing:\n  - " + "\n  - ".join(missing), file=sys.stderr)
        return 2
    gunicorn_env = {}
    if options.workers:
        gunicorn_env["WEB_CONCURRENCY"] = str(options.workers)
    if options.threads:
        gunicorn_env["GUNICORN_THREADS"] = str(options.threads)
    run = Run(
        mode=options.mode,
        command="python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    began = time.monotonic()
    with bench_stack(options.postgres, {}, gunicorn_env, keep_workdir=options.keep) as stack:
        bench = Bench(options, stack, run)
        try:
            bench.execute()
        except KeyboardInterrupt:
            log("interrupted: stopping everything we started")
            return 130
        finally:
            bench.close()
            if options.keep:
                log(f"logs kept in {stack.workdir}")
    run.elapsed_s = round(time.monotonic() - began, 1)
    text = report.render(run, options.duration_s)
    print(text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = RESULTS_DIR / f"{run_stamp(run)}-{run.mode}.json"
    raw.write_text(json.dumps(run.to_json(), indent=2, default=str))
    log(f"raw figures: {raw.relative_to(REPO_ROOT)}")
    if options.profile:
        log(f"py-spy stacks: {bench.profile_dir.relative_to(REPO_ROOT)}/")
    if options.write_docs:
        report.update_doc(options.docs, run, text)
        log(f"updated {options.docs.relative_to(REPO_ROOT)}")
    log(f"done in {run.elapsed_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
