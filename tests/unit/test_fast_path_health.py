"""FastPathHealth: Redis going away is logged once, with its cause, and its return once."""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable

import pytest
import redis

from lootbox.idempotency.availability import FastPathHealth, describe
from lootbox.ports import StoreUnavailable

LOGGER = "lootbox.idempotency"


def store_failure(root: BaseException) -> StoreUnavailable:
    """``root`` as the store reports it: a redis-py error raised from it, in a
    ``StoreUnavailable`` raised from that."""
    try:
        try:
            try:
                raise root
            except OSError as exc:
                raise redis.ConnectionError(f"Error connecting to 127.0.0.1:6380. {exc}") from exc
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis claim of 'lootbox:idem:1:k' failed: {exc}") from exc
    except StoreUnavailable as exc:
        return exc


def self_signed() -> StoreUnavailable:
    return store_failure(
        ssl.SSLCertVerificationError(
            1,
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed"
            " certificate (_ssl.c:1006)",
        )
    )


def refused() -> StoreUnavailable:
    return store_failure(ConnectionRefusedError(111, "Connection refused"))


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def test_two_failures_log_one_warning_a_success_one_info_and_a_new_failure_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    health = FastPathHealth()

    health.failed(refused())
    health.failed(refused())
    assert [level for level, _ in records(caplog)] == [logging.WARNING]

    health.succeeded()
    health.succeeded()
    assert [level for level, _ in records(caplog)] == [logging.WARNING, logging.INFO]

    health.failed(self_signed())
    health.failed(self_signed())
    logged = records(caplog)
    assert [level for level, _ in logged] == [logging.WARNING, logging.INFO, logging.WARNING]
    assert "ConnectionRefusedError: Connection refused" in logged[0][1]
    assert "falls back to the database" in logged[0][1]
    assert "certificate verify failed: self-signed certificate" in logged[2][1]


def test_successes_while_the_fast_path_works_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    health = FastPathHealth()

    for _ in range(3):
        health.succeeded()

    assert records(caplog) == []
    assert health.cause is None


def test_the_cause_is_kept_while_unavailable_and_cleared_when_back() -> None:
    health = FastPathHealth()

    assert health.failed(refused()) == "ConnectionRefusedError: Connection refused"
    assert health.cause == "ConnectionRefusedError: Connection refused"
    health.succeeded()
    assert health.cause is None


def test_a_self_signed_certificate_is_named_with_what_to_change_in_redis_url() -> None:
    text = describe(self_signed())

    assert text.startswith(
        "SSLCertVerificationError: certificate verify failed: self-signed certificate ("
    )
    assert "?ssl_ca_certs=/path/to/ca.pem" in text
    assert "?ssl_cert_reqs=none" in text


def test_another_tls_error_suggests_checking_the_scheme() -> None:
    text = describe(store_failure(ssl.SSLError(1, "[SSL] record layer failure (_ssl.c:1000)")))

    assert text.startswith("SSLError: record layer failure (")
    assert "rediss://" in text


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (refused, "ConnectionRefusedError: Connection refused"),
        (
            lambda: StoreUnavailable("redis get failed: OOM"),
            "StoreUnavailable: redis get failed: OOM",
        ),
        (
            lambda: redis.TimeoutError("Timeout reading from socket"),
            "TimeoutError: Timeout reading",
        ),
    ],
)
def test_other_causes_are_named_without_a_hint(
    failure: Callable[[], BaseException], expected: str
) -> None:
    text = describe(failure())

    assert text.startswith(expected)
    assert "REDIS_URL" not in text


def test_threads_failing_and_recovering_together_log_each_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    health = FastPathHealth()
    threads = 8
    start = threading.Barrier(threads)

    def hammer(report: str) -> None:
        start.wait(5)
        for _ in range(200):
            if report == "failed":
                health.failed(refused())
            else:
                health.succeeded()

    for report in ("failed", "succeeded"):
        workers = [threading.Thread(target=hammer, args=(report,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        start.reset()

    assert [level for level, _ in records(caplog)] == [logging.WARNING, logging.INFO]
