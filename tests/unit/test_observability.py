"""The pieces behind /metrics and the access log, one at a time: what each counter counts,
what the scrape-time gauges report when a backend is down, the bounds on label values, the
METRICS_TOKEN setting and the gunicorn hooks of multiprocess mode."""

from __future__ import annotations

import os
import runpy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry
from sqlalchemy import text

from config.settings import PROJECT_ROOT, ConfigError, Settings
from lootbox.api.errors import outcome_for
from lootbox.domain import errors as e
from lootbox.idempotency.redis_clients import CountingRedis, make_redis_client
from lootbox.observability import metrics
from lootbox.observability.metrics import UNCOUNTED
from lootbox.observability.scrape import PendingMoneyCollector, RedisUpCollector
from lootbox.persistence.database import make_engine
from lootbox.services.context import SystemClock
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


# --- Redis round trips --------------------------------------------------------------------------


def test_each_redis_command_is_one_round_trip() -> None:
    client, _ = make_redis_client(None)
    before = counter("lootbox_redis_commands_total")

    client.set("k", "v")
    client.get("k")

    assert counter("lootbox_redis_commands_total") - before == 2


def test_a_pipeline_is_one_round_trip_however_many_commands_it_carries() -> None:
    client, _ = make_redis_client(None)
    pipe = client.pipeline()
    for n in range(5):
        pipe.set(f"k{n}", n)
    before = counter("lootbox_redis_commands_total")

    assert pipe.execute() == [True] * 5

    assert counter("lootbox_redis_commands_total") - before == 1


def test_an_empty_pipeline_makes_no_round_trip() -> None:
    client, _ = make_redis_client(None)
    before = counter("lootbox_redis_commands_total")

    assert client.pipeline().execute() == []

    assert counter("lootbox_redis_commands_total") - before == 0


def test_a_loaded_script_call_is_one_round_trip() -> None:
    client, _ = make_redis_client(None)
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    script(keys=["n"])  # the first call loads the script (NOSCRIPT, SCRIPT LOAD, EVALSHA)
    before = counter("lootbox_redis_commands_total")
    errors_before = counter("lootbox_redis_errors_total", kind="other")

    assert script(keys=["n"]) == 2

    assert counter("lootbox_redis_commands_total") - before == 1
    assert counter("lootbox_redis_errors_total", kind="other") == errors_before


def test_a_redis_that_does_not_answer_counts_as_a_connection_error() -> None:
    client = CountingRedis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    before = counter("lootbox_redis_errors_total", kind="connection")

    with pytest.raises(RedisConnectionError):
        client.get("k")

    assert counter("lootbox_redis_errors_total", kind="connection") - before == 1


def test_the_scrape_ping_is_not_counted() -> None:
    client, _ = make_redis_client(None)
    before = counter("lootbox_redis_commands_total")

    assert client.ping_uncounted() is True  # type: ignore[attr-defined]

    assert counter("lootbox_redis_commands_total") == before


# --- database statements ------------------------------------------------------------------------


def test_every_statement_is_counted_except_on_an_uncounted_connection() -> None:
    engine = make_engine("sqlite://")
    try:
        with engine.connect() as conn:
            before = counter("lootbox_db_statements_total")
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT 2"))
            counted = counter("lootbox_db_statements_total") - before
        with engine.connect() as conn:
            before = counter("lootbox_db_statements_total")
            conn.execution_options(**{UNCOUNTED: True}).execute(text("SELECT 3"))
            uncounted = counter("lootbox_db_statements_total") - before
    finally:
        engine.dispose()

    assert counted == 3  # BEGIN IMMEDIATE (SQLite), then the two selects
    assert uncounted == 0


# --- scrape-time gauges ---------------------------------------------------------------------------


def ledger_gauges(database_url: str) -> dict[str, float]:
    """What the scrape-time ledger collector reports for the database at ``database_url``."""
    engine = make_engine(database_url)
    try:
        return gauges(PendingMoneyCollector(engine, SystemClock().now).collect())
    finally:
        engine.dispose()


def test_the_ledger_gauges_on_an_empty_ledger(sqlite_db: str) -> None:
    found = ledger_gauges(sqlite_db)

    assert found == {
        "lootbox_database_up": 1,
        "lootbox_pending_operations": 0,
        "lootbox_pending_operation_oldest_age_seconds": 0,
    }


def test_a_database_that_does_not_answer_is_reported_not_raised(tmp_path: Path) -> None:
    found = ledger_gauges(f"sqlite:///{tmp_path}/missing-dir/db.sqlite3")

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
