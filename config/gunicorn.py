"""gunicorn settings for the PaaS (``web:`` in the Procfile).

Threads, not processes alone: a request waits on the operator's wallet (up to the read
timeout) and a duplicate waits on the idempotency lease (up to IDEMPOTENCY_WAIT_SECONDS);
with gthread those waits overlap instead of pinning a whole worker each.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile
from typing import Any

from config.logging import LOGGING, gunicorn_logger

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
# 2 × cores workers × 8 threads, kept by measurement (docs/benchmarks.md, "gunicorn
# workers × threads"): on two cores 2×8, 2×16, 3×8, 4×4 and 4×8 served the same replay,
# first-time cashout and 50 ms-wallet rates within the noise; this one gives 32 request
# slots per instance for waits on a slow wallet or a duplicate's key, and one GIL per
# worker process, so a CPU burst uses every core.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Above the wallet read timeout plus the idempotency wait, so gunicorn never kills a worker
# in the middle of a money call it is legitimately waiting on.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# No control socket (gunicornc): nothing here uses it, signals cover what it does (TTIN,
# TTOU, HUP, TERM), and its default path is one per user (~/.gunicorn/gunicorn.ctl), so a
# second instance on the host takes it over (each re-binds it around every worker fork).
control_socket_disable = True
# Recycle a worker now and then (a slow leak cannot grow for ever), but rarely: a new
# worker imports and builds the app again, about 1.2 s of CPU. At 5,000 requests a busy
# worker was replaced every few seconds, which cost a replay about a sixth of its CPU
# (docs/benchmarks.md, "What each change bought").
max_requests = 100_000
max_requests_jitter = 10_000
# Every line, gunicorn's and the app's, as one JSON object on stdout; the app writes the
# access line, gunicorn none (config/logging.py).
logconfig_dict = LOGGING
logger_class = gunicorn_logger
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# --- Prometheus multiprocess mode ------------------------------------------------------------
# Every worker counts into memory-mapped files in one directory, and the worker that
# answers GET /metrics merges them all (lootbox/observability/metrics.py). Without it a
# scrape would report one random worker's share. The variable must be in the environment
# before a worker first imports prometheus_client; the workers are forked from this master
# and load the app after the fork (no preload_app), so setting it here is early enough.
# Set PROMETHEUS_MULTIPROC_DIR to choose the directory (its *.db files are deleted at
# start); unset, a private temporary directory is made here and removed at exit.
# (The mark survives a configuration reload on SIGHUP, when the variable is already set.)
_CREATED_MARK = "LOOTBOX_CREATED_METRICS_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="lootbox-metrics-")
    os.environ[_CREATED_MARK] = os.environ["PROMETHEUS_MULTIPROC_DIR"]
_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]
_owns_metrics_dir = os.environ.get(_CREATED_MARK) == _metrics_dir


def on_starting(server: object) -> None:
    """Counters left by an earlier run would be added to this run's: start empty."""
    os.makedirs(_metrics_dir, exist_ok=True)
    for stale in glob.glob(os.path.join(_metrics_dir, "*.db")):
        os.remove(stale)


def child_exit(server: object, worker: Any) -> None:
    """A worker exited (recycled by max_requests, killed, crashed). Its counters stay in
    the directory, so totals never go backwards; only its live gauges are dropped."""
    from prometheus_client import multiprocess  # after the variable is set, in the master

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server: object) -> None:
    if _owns_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
