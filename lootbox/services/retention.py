"""Retention of idempotency records: a completed answer is replayed for
``IDEMPOTENCY_TTL_SECONDS``, then deleted here.

Deleting it is safe for money because the ledger is never purged: a retry after the
retention period is evaluated again, and the use cases answer it from the ledger (the same
key's accepted movement, the same clientActionId's round), never with a second movement.
Redis drops its copy by its own TTL.

The purge deletes in small batches, each its own short transaction, until nothing expired
is left or it reaches its cap: a backlog (after an outage, or the first run) is worked off
over several passes, without one long transaction holding locks and WAL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lootbox.ports import UnitOfWork

# Rows per DELETE: one batch stays a few milliseconds (docs/scaling.md).
DEFAULT_BATCH_SIZE = 500
# Rows per pass at most. The worker runs a pass every 5 s, so it keeps up with up to
# 10,000 expiries a second; a larger backlog takes several passes.
DEFAULT_MAX_ROWS = 50_000


@dataclass(frozen=True)
class PurgeSummary:
    deleted: int
    batches: int  # DELETE statements run, the last one included
    capped: bool  # stopped at the cap (or by a stop request): more may be left
    seconds: float

    def to_json(self) -> dict[str, int | bool | float]:
        return {
            "deleted": self.deleted,
            "batches": self.batches,
            "capped": self.capped,
            "seconds": round(self.seconds, 3),
        }


def purge_expired_idempotency_records(
    uow_factory: Callable[[], UnitOfWork],
    now: datetime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rows: int = DEFAULT_MAX_ROWS,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> PurgeSummary:
    """Delete the completed records that expired before ``now``, ``batch_size`` at a time,
    at most ``max_rows``; ``stop`` ends it after the batch in hand, ``progress`` hears the
    running count after each batch. Never an in-progress record: it guards a request that
    runs, or one whose money may have moved. Raises ``ServiceUnavailable`` if the database
    fails; the batches committed before stay deleted."""
    if batch_size < 1 or max_rows < 1:
        raise ValueError("batch_size and max_rows must be at least 1")
    started = monotonic()
    deleted = batches = 0
    while True:
        limit = min(batch_size, max_rows - deleted)
        with uow_factory() as uow:  # each batch its own short transaction
            removed = uow.idempotency.delete_expired(now, limit)
            uow.commit()
        deleted += removed
        batches += 1
        if progress is not None:
            progress(deleted)
        if removed < limit:  # nothing expired is left (as of ``now``)
            capped = False
            break
        if deleted >= max_rows or (stop is not None and stop.is_set()):
            capped = True
            break
    return PurgeSummary(deleted, batches, capped, monotonic() - started)


def count_expired_idempotency_records(uow_factory: Callable[[], UnitOfWork], now: datetime) -> int:
    """What a purge at ``now`` would delete (on-call's ``--dry-run``)."""
    with uow_factory() as uow:
        return uow.idempotency.count_expired(now)
