"""gunicorn settings for the PaaS (``web:`` in the Procfile).

Threads, not processes alone: a request waits on the operator's wallet (up to the read
timeout) and a duplicate waits on the idempotency lease (up to IDEMPOTENCY_WAIT_SECONDS);
with gthread those waits overlap instead of pinning a whole worker each.
"""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Above the wallet read timeout plus the idempotency wait, so gunicorn never kills a worker
# in the middle of a money call it is legitimately waiting on.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = None  # the app logs one JSON line per request itself
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
