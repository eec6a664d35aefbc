"""The service's Prometheus metrics, the functions that record them, and their exposition.

Two modes, chosen by prometheus-client from the environment when it is first imported:

* **plain** (``PROMETHEUS_MULTIPROC_DIR`` unset: the dev server, the CLI, the tests): the
  values live in this process and ``/metrics`` reports them.
* **multiprocess** (``PROMETHEUS_MULTIPROC_DIR`` set; ``config/gunicorn.py`` sets it for
  every worker): each gunicorn worker writes its values to memory-mapped files in that
  directory, and whichever worker answers ``/metrics`` merges every worker's files, those
  of workers that have since exited included, so counters never go backwards when a worker
  is recycled or killed. Without this a scrape would see one random worker's share.

Only counters and histograms are recorded here, because those add up across workers. The
gauges (money in flight, database and Redis up) are computed by the answering worker when
``/metrics`` is scraped (``lootbox.observability.scrape``), once, and never written to the
shared files, so they are never summed across workers.

Recording never raises: a metric is not worth a failed request, and above all not a wallet
call that moved money and then blew up on the way back.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import wraps
from typing import Any, ParamSpec

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event

__all__ = [
    "CONTENT_TYPE",
    "MULTIPROC_DIR_ENV",
    "count_statements",
    "multiprocess_dir",
    "record_db_statement",
    "record_idempotency_outcome",
    "record_redis_error",
    "record_request",
    "record_wallet_call",
    "render",
]

log = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format (0.0.4): every Prometheus version reads it, and our metric and
# label names need none of the newer format's escaping.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Request latency: from a cached replay (milliseconds) to a wallet call at its timeouts
# (connect 2 s + read 5 s by default) and a duplicate waiting on the first (2 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0)


# Read once, like prometheus-client itself does when it is imported (just above): a
# variable set later would not change where the values go, only where we look for them.
_DIR = os.environ.get(MULTIPROC_DIR_ENV) or None
if _DIR:
    # A metric without labels opens its file when it is defined, just below: a directory
    # that is not there yet would make importing the app fail.
    os.makedirs(_DIR, exist_ok=True)

# The ``_created`` series: multiprocess mode (production) has none, so the plain mode should
# not have them either; nobody alerts on them, and they double the number of series.
disable_created_metrics()

# Our own registry rather than prometheus-client's global one: nothing a library registers
# there ends up in our exposition by accident.
REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "lootbox_http_requests",
    "HTTP requests answered, by route, method, status and error code ('' on success).",
    ["endpoint", "method", "status", "code"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "lootbox_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (probes and /metrics excluded).",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
IDEMPOTENT_REQUESTS = Counter(
    "lootbox_idempotent_requests",
    "Requests that reached the idempotency guard, by route and outcome"
    " (fresh, replay, in_use, mismatch, refused, unavailable, rejected, error).",
    ["endpoint", "outcome"],
    registry=REGISTRY,
)
WALLET_CALLS = Counter(
    "lootbox_wallet_calls",
    "Calls to operators' wallets, by type (debit, credit, balance) and outcome"
    " (accepted, refused, unknown).",
    ["type", "outcome"],
    registry=REGISTRY,
)
WALLET_LATENCY = Histogram(
    "lootbox_wallet_call_duration_seconds",
    "Time from sending a wallet call to classifying its answer, by type.",
    ["type"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DB_STATEMENTS = Counter(
    "lootbox_db_statements",
    "SQL statements sent to the database (/metrics' own query included; BEGIN, COMMIT and"
    " pool pings not).",
    registry=REGISTRY,
)
REDIS_ERRORS = Counter(
    "lootbox_redis_errors",
    "Redis commands that failed, by kind (connection, timeout, other).",
    ["kind"],
    registry=REGISTRY,
)

_KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_CODE = re.compile(r"[A-Z0-9_]{1,64}")
# Error codes include the wallet's own refusal codes, passed through verbatim: a bound on
# the distinct values keeps a wallet that invents codes from flooding the time series.
_MAX_CODES = 100
_codes_seen: set[str] = set()
_codes_lock = threading.Lock()
OTHER = "OTHER"

P = ParamSpec("P")
_failure_logged = False


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    @wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        global _failure_logged
        try:
            record(*args, **kwargs)
        except Exception:
            if not _failure_logged:  # once per process: the cause is the same every time
                _failure_logged = True
                log.exception("recording a metric failed; metrics may be incomplete")

    return guarded


def _method_label(method: str) -> str:
    return method if method in _KNOWN_METHODS else OTHER


def _code_label(code: str | None) -> str:
    if not code:
        return ""
    if not _CODE.fullmatch(code):
        return OTHER
    with _codes_lock:
        if code in _codes_seen:
            return code
        if len(_codes_seen) >= _MAX_CODES:
            return OTHER
        _codes_seen.add(code)
    return code


@_never_raises
def record_request(
    endpoint: str, method: str, status: int, code: str | None, seconds: float, *, timed: bool
) -> None:
    """One answered request. ``timed=False`` leaves it out of the latency histogram (the
    probes and /metrics: frequent, trivial, and not what a latency alert is about)."""
    HTTP_REQUESTS.labels(endpoint, _method_label(method), str(status), _code_label(code)).inc()
    if timed:
        HTTP_LATENCY.labels(endpoint).observe(max(0.0, seconds))


@_never_raises
def record_idempotency_outcome(endpoint: str, outcome: str) -> None:
    IDEMPOTENT_REQUESTS.labels(endpoint, outcome).inc()


@_never_raises
def record_wallet_call(call_type: str, outcome: str, seconds: float) -> None:
    """``call_type`` as on the wire (``wallet.credit``) or bare (``credit``)."""
    kind = call_type.removeprefix("wallet.")
    WALLET_CALLS.labels(kind, outcome).inc()
    WALLET_LATENCY.labels(kind).observe(max(0.0, seconds))


@_never_raises
def record_db_statement() -> None:
    DB_STATEMENTS.inc()


@_never_raises
def record_redis_error(kind: str) -> None:
    REDIS_ERRORS.labels(kind).inc()


def multiprocess_dir() -> str | None:
    """The directory shared by the workers, or ``None`` in plain mode."""
    return _DIR


def count_statements(engine: Engine) -> None:
    """Count every statement ``engine`` sends (``lootbox_db_statements_total``)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        record_db_statement()


class _Registered:
    """This process's own values, as one collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return iter(self._registry.collect())


def render(scrape_time: Iterable[Collector] = ()) -> bytes:
    """The exposition: the counters and histograms (merged across workers in multiprocess
    mode), then what ``scrape_time`` collectors compute now."""
    registry = CollectorRegistry(auto_describe=False)
    if _DIR:
        MultiProcessCollector(registry, path=_DIR)
    else:
        registry.register(_Registered(REGISTRY))  # type: ignore[arg-type]
    for collector in scrape_time:
        registry.register(collector)
    return generate_latest(registry)
