"""The pieces behind /metrics and the logs, one at a time: what each counter counts, what
the scrape-time gauges report when a backend is down, the bounds on label values, the
METRICS_TOKEN setting, the gunicorn hooks of multiprocess mode, and the log lines (one JSON
object per line, whichever logger wrote it)."""

from __future__ import annotations

import io
import json
import logging
import os
import runpy
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import fakeredis
import pytest
from flask import Flask
from prometheus_client.metrics_core import Metric
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.retry import Retry
from sqlalchemy import text

from config.logging import HANDLER, configure_logging, json_lines
from config.settings import PROJECT_ROOT, ConfigError, Settings
from lootbox.api import observability
from lootbox.api.errors import outcome_for
from lootbox.domain import errors as e
from lootbox.idempotency.redis_clients import MonitoredClient, MonitoredRedis
from lootbox.observability import metrics
from lootbox.observability.scrape import PendingMoneyCollector, RedisUpCollector
from lootbox.persistence.database import make_engine
from lootbox.ports import WalletAccepted, WalletOutcomeUnknown, WalletRefusal
from lootbox.services.context import SystemClock
from lootbox.wallet.http import HttpWallet
from tests.processes import free_port


def counter(name: str, **labels: str) -> float:
    found = metrics.REGISTRY.get_sample_value(name, labels)
    return found or 0.0


def gauges(collected: Iterable[Metric]) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in collected
        for sample in family.samples
        if not sample.labels
    }


# --- Redis failures -----------------------------------------------------------------------------


class MonitoredFakeRedis(MonitoredClient, fakeredis.FakeRedis):
    """The failure-recording door of every app Redis client, on an in-process fake."""


def monitored_fake_redis() -> MonitoredFakeRedis:
    return MonitoredFakeRedis(server=fakeredis.FakeServer())


def test_a_script_cache_miss_is_not_a_redis_error() -> None:
    client = monitored_fake_redis()
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    errors_before = counter("lootbox_redis_errors_total", kind="other")

    # The first call misses the script cache (NOSCRIPT): redis-py loads it and calls again.
    assert script(keys=["n"]) == 1
    assert script(keys=["n"]) == 2

    assert counter("lootbox_redis_errors_total", kind="other") == errors_before


def test_a_command_redis_refuses_counts_as_an_other_error() -> None:
    client = monitored_fake_redis()
    client.set("k", "not a number")
    before = counter("lootbox_redis_errors_total", kind="other")

    with pytest.raises(ResponseError):
        client.incr("k")

    assert counter("lootbox_redis_errors_total", kind="other") - before == 1


def test_a_redis_that_does_not_answer_counts_as_a_connection_error() -> None:
    client = MonitoredRedis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    before = counter("lootbox_redis_errors_total", kind="connection")

    with pytest.raises(RedisConnectionError):
        client.get("k")

    assert counter("lootbox_redis_errors_total", kind="connection") - before == 1


# --- database statements ------------------------------------------------------------------------


def test_every_statement_is_counted(postgres_db: str) -> None:
    engine = make_engine(postgres_db)
    try:
        with engine.connect() as conn:
            before = counter("lootbox_db_statements_total")
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT 2"))
            counted = counter("lootbox_db_statements_total") - before
    finally:
        engine.dispose()

    assert counted == 2  # the two selects (BEGIN is not a statement of ours)


# --- scrape-time gauges ---------------------------------------------------------------------------


def ledger_gauges(database_url: str) -> dict[str, float]:
    """What the scrape-time ledger collector reports for the database at ``database_url``."""
    engine = make_engine(database_url)
    try:
        return gauges(PendingMoneyCollector(engine, SystemClock().now).collect())
    finally:
        engine.dispose()


def test_the_ledger_gauges_on_an_empty_ledger(postgres_db: str) -> None:
    found = ledger_gauges(postgres_db)

    assert found == {
        "lootbox_database_up": 1,
        "lootbox_pending_operations": 0,
        "lootbox_pending_operation_oldest_age_seconds": 0,
    }


def test_a_database_that_does_not_answer_is_reported_not_raised() -> None:
    found = ledger_gauges("postgresql://postgres@127.0.0.1:1/nothing-listens-here")

    assert found == {"lootbox_database_up": 0}


def test_a_redis_ping_that_fails_is_reported_as_down() -> None:
    def ping() -> bool:
        raise ConnectionError("refused")

    assert gauges(RedisUpCollector(ping).collect()) == {"lootbox_redis_up": 0}
    assert gauges(RedisUpCollector(lambda: True).collect()) == {"lootbox_redis_up": 1}


# --- label values and failures --------------------------------------------------------------------


def test_error_codes_are_bounded_so_a_wallet_cannot_flood_the_series(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "_codes_seen", set())
    monkeypatch.setattr(metrics, "_MAX_CODES", 2)

    labels = [metrics._code_label(code) for code in ("A_1", "B_2", "C_3", "A_1", "bad code!")]

    assert labels == ["A_1", "B_2", "OTHER", "A_1", "OTHER"]
    assert metrics._code_label(None) == ""


def test_an_unknown_method_is_one_label() -> None:
    assert metrics._method_label("POST") == "POST"
    assert metrics._method_label("BREW") == "OTHER"


def test_recording_a_metric_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any) -> Any:
        raise OSError("no space left for the metrics files")

    monkeypatch.setattr(metrics.WALLET_CALLS, "labels", broken)

    metrics.record_wallet_call("wallet.credit", "accepted", 0.1)  # no exception


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (e.IdempotencyKeyInUse(), "in_use"),
        (e.OperationInProgress(), "in_use"),
        (e.IdempotencyKeyReused(), "mismatch"),
        (e.WalletRefused("INSUFFICIENT_FUNDS"), "refused"),
        (e.WalletRefused("PLAYER_BLOCKED"), "refused"),
        (e.WalletUnavailable(), "unavailable"),
        (e.ServiceUnavailable(), "unavailable"),
        (e.CashbackNotAvailable(), "rejected"),
        (e.InvalidSignature(), "rejected"),
        (e.LootboxError(), "error"),
    ],
)
def test_each_error_has_its_access_log_outcome(error: e.LootboxError, outcome: str) -> None:
    assert outcome_for(error) == outcome


# --- METRICS_TOKEN ------------------------------------------------------------------------------


def test_no_metrics_token_leaves_metrics_open_and_a_set_one_stays_out_of_the_repr() -> None:
    assert Settings.from_env({}).metrics_token == ""
    settings = Settings.from_env({"METRICS_TOKEN": "a-long-enough-token-42"})
    assert settings.metrics_token == "a-long-enough-token-42"
    assert "a-long-enough-token-42" not in repr(settings)


@pytest.mark.parametrize("token", ["short", "has spaces but is long enough"])
def test_a_weak_or_malformed_metrics_token_is_refused(token: str) -> None:
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        Settings.from_env({"METRICS_TOKEN": token})


# --- gunicorn: multiprocess mode ----------------------------------------------------------------

GUNICORN_CONFIG = str(PROJECT_ROOT / "config" / "gunicorn.py")


class FakeWorker:
    pid = 999_999


def test_gunicorn_makes_a_private_metrics_directory_and_removes_it_at_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("LOOTBOX_CREATED_METRICS_DIR", raising=False)

    config = runpy.run_path(GUNICORN_CONFIG)

    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert directory.is_dir()
    config["on_starting"](None)
    (directory / "gauge_livesum_999999.db").write_bytes(b"")
    config["child_exit"](None, FakeWorker())
    assert not (directory / "gauge_livesum_999999.db").exists()
    config["on_exit"](None)
    assert not directory.exists()


def test_gunicorn_empties_a_given_metrics_directory_at_start_and_keeps_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    (directory / "README").write_text("not ours to delete")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    monkeypatch.delenv("LOOTBOX_CREATED_METRICS_DIR", raising=False)

    config = runpy.run_path(GUNICORN_CONFIG)
    config["on_starting"](None)
    config["on_exit"](None)

    assert sorted(p.name for p in directory.iterdir()) == ["README"]


# --- log lines: one JSON object per line, whichever logger wrote it -------------------------------

EVERY_LINE = {"time", "level", "logger", "message"}
ACCESS_FIELDS = {
    "requestId",
    "operator",
    "keyId",
    "method",
    "endpoint",
    "path",
    "idempotencyKey",
    "outcome",
    "status",
    "code",
    "latencyMs",
}


def one_json_object(raw: str) -> dict[str, Any]:
    """A log line as a collector reads it: one JSON object, with the fields every line has
    and its time in UTC."""
    line = json.loads(raw)
    assert isinstance(line, dict), raw
    assert set(line) >= EVERY_LINE, raw
    assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0), raw
    return line


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The root logger also writes through config/logging.py's handler into a buffer, at
    INFO; returns the lines written so far, each checked to be one JSON object."""
    caplog.set_level(logging.INFO)  # the root logger's level, put back after the test
    buffer = io.StringIO()
    handler = json_lines(buffer)
    logging.getLogger().addHandler(handler)
    try:
        yield lambda: [one_json_object(raw) for raw in buffer.getvalue().splitlines()]
    finally:
        logging.getLogger().removeHandler(handler)


def test_the_access_line_has_the_documented_fields_and_nothing_else(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    app = Flask(__name__)
    observability.init_app(app)
    app.add_url_rule("/api/s2s/health", view_func=lambda: {"status": "ok"})

    reply = app.test_client().get(
        "/api/s2s/health",
        headers={"X-Request-Id": "req-unit-1", "X-Signature": "a-signature-never-logged"},
    )

    assert reply.status_code == 200
    (line,) = [line for line in log_lines() if line["logger"] == "lootbox.access"]
    assert set(line) == EVERY_LINE | ACCESS_FIELDS
    assert (line["level"], line["message"]) == ("INFO", "GET /api/s2s/health 200")
    assert (line["requestId"], line["endpoint"], line["status"]) == (
        "req-unit-1",
        "/api/s2s/health",
        200,
    )
    assert "a-signature-never-logged" not in json.dumps(line)


@pytest.mark.parametrize(
    ("outcome", "status", "fields"),
    [
        (WalletAccepted(1, "txn-1"), 200, ("accepted", None, None)),
        (WalletRefusal("LIMIT_REACHED", "no"), 422, ("refused", "LIMIT_REACHED", None)),
        (
            WalletOutcomeUnknown("read timeout after 5.0s"),
            None,
            ("unknown", None, "read timeout after 5.0s"),
        ),
    ],
)
def test_a_wallet_call_line_has_its_fields(
    log_lines: Callable[[], list[dict[str, Any]]],
    outcome: Any,
    status: int | None,
    fields: tuple[str, str | None, str | None],
) -> None:
    HttpWallet._log("wallet.credit", "cashback:inventory:88", outcome, status, 5003)

    (line,) = log_lines()
    assert (line["logger"], line["level"]) == ("lootbox.wallet", "INFO")
    assert line["message"].startswith("wallet call type=wallet.credit key=cashback:inventory:88")
    assert (line["callType"], line["idempotencyKey"]) == ("wallet.credit", "cashback:inventory:88")
    assert (line["walletOutcome"], line["walletCode"], line["reason"]) == fields
    assert (line["walletStatus"], line["latencyMs"]) == (status, 5003)


def test_gunicorns_own_lines_are_json_too(log_lines: Callable[[], list[dict[str, Any]]]) -> None:
    logging.getLogger("gunicorn.error").info("Booting worker with pid: %s", 4242)
    # How gunicorn writes an access line, were it on (config/logging.py turns it off): its
    # "atoms" as the argument, request headers among them.
    atoms = {"h": "127.0.0.1", "r": "GET /healthz HTTP/1.1", "s": "200"}
    atoms["{x-signature}i"] = "a-signature-never-logged"
    logging.getLogger("gunicorn.access").info('%(h)s "%(r)s" %(s)s', atoms)

    booting, access = log_lines()
    assert (booting["logger"], booting["message"]) == (
        "gunicorn.error",
        "Booting worker with pid: 4242",
    )
    assert set(access) == EVERY_LINE  # the atoms are not fields
    assert access["message"] == '127.0.0.1 "GET /healthz HTTP/1.1" 200'
    assert "a-signature-never-logged" not in json.dumps(access)


def test_a_traceback_is_a_field_of_its_one_line(
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    try:
        raise RuntimeError("bug in the wallet adapter\nsecond line of the message")
    except RuntimeError:
        logging.getLogger("lootbox.api").exception("unhandled error")

    (line,) = log_lines()  # one line however many the traceback has
    assert (line["logger"], line["level"], line["message"]) == (
        "lootbox.api",
        "ERROR",
        "unhandled error",
    )
    assert line["exc_info"].startswith("Traceback (most recent call last):")
    assert line["exc_info"].endswith("second line of the message")


@pytest.fixture
def without_our_handler() -> Iterator[logging.Logger]:
    """The root logger without config/logging.py's handler for the test (another test's app
    may have added it); whatever the test adds is removed after, the original put back."""
    root = logging.getLogger()
    level = root.level
    ours = [handler for handler in root.handlers if handler.name == HANDLER]
    for handler in ours:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in [h for h in root.handlers if h.name == HANDLER]:
            root.removeHandler(handler)
        for handler in ours:
            root.addHandler(handler)
        root.setLevel(level)


def test_configuring_again_adds_no_second_handler_and_keeps_the_others(
    without_our_handler: logging.Logger,
) -> None:
    others = list(without_our_handler.handlers)  # pytest's log capture among them

    configure_logging("info")
    configure_logging("WARNING")

    ours = [h for h in without_our_handler.handlers if h.name == HANDLER]
    assert len(ours) == 1
    assert [h for h in without_our_handler.handlers if h.name != HANDLER] == others
    assert without_our_handler.level == logging.WARNING


def test_lines_go_to_stdout_but_to_stderr_under_the_flask_cli(
    without_our_handler: logging.Logger,
) -> None:
    configure_logging("INFO")
    (served,) = [h for h in without_our_handler.handlers if h.name == HANDLER]
    without_our_handler.removeHandler(served)

    with click.Context(click.Command("reconcile")):
        configure_logging("INFO")
    (cli,) = [h for h in without_our_handler.handlers if h.name == HANDLER]

    assert isinstance(served, logging.StreamHandler) and isinstance(cli, logging.StreamHandler)
    assert served.stream is sys.stdout
    assert cli.stream is sys.stderr
