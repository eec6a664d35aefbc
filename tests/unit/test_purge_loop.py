"""The purge's loop over the unit of work: batch sizes, the cap, a stop request, what it
reports."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from lootbox.services.retention import PurgeSummary, purge_expired_idempotency_records

NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


class ExpiredRecords:
    """``expired`` records waiting; remembers each batch's limit."""

    def __init__(self, expired: int) -> None:
        self.expired = expired
        self.limits: list[int] = []

    def delete_expired(self, now: datetime, limit: int) -> int:
        assert now == NOW
        self.limits.append(limit)
        deleted = min(limit, self.expired)
        self.expired -= deleted
        return deleted

    def count_expired(self, now: datetime) -> int:
        return self.expired


class Batches:
    """A unit of work factory whose ``idempotency`` is ``records``; counts the commits."""

    def __init__(self, records: ExpiredRecords) -> None:
        self.idempotency = records
        self.commits = 0

    def __call__(self) -> Batches:
        return self

    def __enter__(self) -> Batches:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def commit(self) -> None:
        self.commits += 1


def ticks() -> Callable[[], float]:
    """A monotonic clock that moves one second per reading."""
    clock = iter(range(100))
    return lambda: float(next(clock))


def test_it_deletes_in_batches_until_a_short_batch_says_none_is_left() -> None:
    records = ExpiredRecords(1234)

    summary = purge_expired_idempotency_records(
        Batches(records),  # type: ignore[arg-type]
        NOW,
        batch_size=500,
    )

    assert records.limits == [500, 500, 500]
    assert summary.deleted == 1234
    assert summary.batches == 3
    assert summary.capped is False
    assert records.expired == 0


def test_an_exact_multiple_takes_one_more_empty_batch_to_know_it_is_done() -> None:
    records = ExpiredRecords(1000)

    summary = purge_expired_idempotency_records(
        Batches(records),  # type: ignore[arg-type]
        NOW,
        batch_size=500,
    )

    assert records.limits == [500, 500, 500]
    assert (summary.deleted, summary.capped) == (1000, False)


def test_nothing_expired_costs_one_statement() -> None:
    records = ExpiredRecords(0)

    summary = purge_expired_idempotency_records(
        Batches(records),  # type: ignore[arg-type]
        NOW,
    )

    assert records.limits == [500]
    assert summary == PurgeSummary(deleted=0, batches=1, capped=False, seconds=summary.seconds)


def test_the_cap_shrinks_the_last_batch_and_says_more_is_left() -> None:
    records = ExpiredRecords(5000)

    summary = purge_expired_idempotency_records(
        Batches(records),  # type: ignore[arg-type]
        NOW,
        batch_size=500,
        max_rows=1200,
    )

    assert records.limits == [500, 500, 200]
    assert (summary.deleted, summary.capped) == (1200, True)
    assert records.expired == 3800


def test_a_stop_request_ends_it_after_the_batch_in_hand() -> None:
    records = ExpiredRecords(5000)
    stop = threading.Event()
    stop.set()

    summary = purge_expired_idempotency_records(
        Batches(records),  # type: ignore[arg-type]
        NOW,
        stop=stop,
    )

    assert records.limits == [500]
    assert (summary.deleted, summary.capped) == (500, True)


def test_progress_hears_the_running_count_and_the_summary_its_time() -> None:
    records = ExpiredRecords(1100)
    heard: list[int] = []

    summary = purge_expired_idempotency_records(
        Batches(records),  # type: ignore[arg-type]
        NOW,
        progress=heard.append,
        monotonic=ticks(),
    )

    assert heard == [500, 1000, 1100]
    assert summary.seconds == 1.0
    assert summary.to_json() == {"deleted": 1100, "batches": 3, "capped": False, "seconds": 1.0}


@pytest.mark.parametrize(("batch_size", "max_rows"), [(0, 10), (10, 0)])
def test_sizes_below_one_are_refused(batch_size: int, max_rows: int) -> None:
    with pytest.raises(ValueError):
        purge_expired_idempotency_records(
            ExpiredRecords(1), NOW, batch_size=batch_size, max_rows=max_rows
        )
