"""/metrics and the access log in the deployment shape: gunicorn with four workers, as the
Procfile runs it. Whichever worker answers a scrape reports every worker's counts
(prometheus-client multiprocess mode, set up by config/gunicorn.py), a worker that dies
takes none of them with it, the gauges read from the database are not multiplied by the
number of workers, and each request writes one JSON line to the log."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import wait_until
from tests.system.stack import APP_ENV, REQUEST_TIMEOUT, SystemStack

pytestmark = pytest.mark.system

HEALTH = ("GET", "/api/s2s/health", "200", "")
WORKERS = int(APP_ENV["WEB_CONCURRENCY"])


def scrape(system: SystemStack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """One scrape, on a new connection (so any worker may answer it)."""
    answer = requests.get(f"{system.base_url}/metrics", timeout=REQUEST_TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"{key} reported twice"
            samples[key] = sample.value
    return samples


def health_count(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
    method, endpoint, status, code = HEALTH
    labels = {"endpoint": endpoint, "method": method, "status": status, "code": code}
    return samples.get(("lootbox_http_requests_total", frozenset(labels.items())), 0.0)


def gauge(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return samples[(name, frozenset())]


def test_every_scrape_reports_the_requests_of_all_workers(system: SystemStack) -> None:
    baseline = health_count(scrape(system))
    sent = 40

    for _ in range(sent):  # each on a new connection, so they spread over the workers
        assert system.call("GET", "/api/s2s/health").status == 200

    # With one registry per worker, a scrape would see the answering worker's share only,
    # and scrapes answered by different workers would disagree.
    for _ in range(2 * WORKERS):
        assert health_count(scrape(system)) - baseline == sent


def test_a_dead_workers_counts_stay_in_the_totals(system: SystemStack) -> None:
    for _ in range(20):
        assert system.call("GET", "/api/s2s/health").status == 200
    before = health_count(scrape(system))
    victim = sorted(system.worker_pids())[0]

    os.kill(victim, signal.SIGKILL)  # a worker of our own stack, by its PID
    wait_until(
        lambda: victim not in system.worker_pids() and len(system.worker_pids()) == WORKERS,
        timeout=30,
        what="gunicorn to replace the killed worker",
    )

    for _ in range(2 * WORKERS):
        assert health_count(scrape(system)) == before


def test_gauges_from_the_database_are_not_summed_over_workers(system: SystemStack) -> None:
    ((pending,),) = system.query("SELECT count(*) FROM money_movements WHERE status = 'pending'")

    for _ in range(2 * WORKERS):
        samples = scrape(system)
        assert gauge(samples, "lootbox_database_up") == 1
        assert gauge(samples, "lootbox_redis_up") == 1
        assert gauge(samples, "lootbox_pending_operations") == pending


def test_each_request_writes_one_json_line_to_the_log(system: SystemStack) -> None:
    request_id = f"sys-{uuid.uuid4().hex}"
    path = "/api/s2s/health"
    headers = system.signed("GET", path, b"") | {"X-Request-Id": request_id}

    answer = requests.get(f"{system.base_url}{path}", headers=headers, timeout=REQUEST_TIMEOUT)

    assert answer.status_code == 200
    assert answer.headers["X-Request-Id"] == request_id
    log = (system.logdir / "gunicorn.log").read_text(errors="replace")
    lines = [json.loads(line) for line in log.splitlines() if request_id in line]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line["operator"] == system.slug
    assert (line["endpoint"], line["status"], line["outcome"]) == (path, 200, None)
    assert system.secret not in log
    assert headers["X-Signature"] not in log
