"""The reconciler: drive every money movement whose outcome is unknown to a definite answer.

A request whose wallet call timed out, or whose worker died mid-call, leaves its movement
``pending`` with its key and amount. The next request on the same item or round re-drives
it; the reconciler does the same in the background, so a player who never comes back is
not left with an item stuck in ``cashback_pending`` or a debit nobody settles.

Each due movement is leased (the same fencing lease requests take, so a request and the
reconciler never send at once and a late finisher settles nothing), re-sent with the
**same key and amount**, and settled with the same hook its use case uses: an accepted
cashback marks the item ``cashed_back``, an accepted refund the round ``refunded``, an
accepted debit holds or draws the round; refusals put the item back to ``unresolved``, the
round back to ``held``, or void an unpaid round. An unknown outcome stays pending for the
next pass. Several reconcilers (or a reconciler and live traffic) may run at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from lootbox.domain.errors import OperationInProgress
from lootbox.domain.records import MoneyMovement, MovementReason, MovementStatus
from lootbox.ports import WalletAccepted, WalletRefusal
from lootbox.services.cancel import settle_refund
from lootbox.services.cashout import settle_cashback
from lootbox.services.context import ServiceContext
from lootbox.services.movements import SettleHook, lease, send_and_settle
from lootbox.services.purchase import settle_debit

# Rows read per query; a pass pages through the due set by id.
BATCH_SIZE = 100
# Wallet calls in flight at once during a pass: calls are I/O bound, and one slow wallet
# must not hold up every other operator's pending movements behind it.
DEFAULT_CONCURRENCY = 4


class Redrive(StrEnum):
    COMPLETED = "completed"  # accepted: final
    REFUSED = "refused"  # refused: final, the subject is free again (or voided)
    STILL_PENDING = "stillPending"  # unknown outcome again, or someone else holds it


@dataclass
class ReconcileSummary:
    """What one pass did; ``examined`` = ``completed`` + ``refused`` + ``stillPending``."""

    examined: int = 0
    completed: int = 0
    refused: int = 0
    still_pending: int = 0
    due: int = 0  # how many were due when the pass began (for progress)

    def add(self, result: Redrive) -> None:
        self.examined += 1
        if result is Redrive.COMPLETED:
            self.completed += 1
        elif result is Redrive.REFUSED:
            self.refused += 1
        else:
            self.still_pending += 1

    def to_json(self) -> dict[str, int]:
        return {
            "examined": self.examined,
            "completed": self.completed,
            "refused": self.refused,
            "stillPending": self.still_pending,
        }


Progress = Callable[[ReconcileSummary], None]


def reconcile_once(
    ctx: ServiceContext,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
) -> ReconcileSummary:
    """One pass over the movements due for a re-drive when it starts (pending, lease
    expired). A movement whose outcome stays unknown is examined once per pass; the next
    pass (``run_forever``) tries again. Raises ``ServiceUnavailable`` if the database is."""
    summary = ReconcileSummary()
    start = ctx.clock.now()
    with ctx.uow_factory() as uow:
        summary.due = uow.ledger.count_due_for_redrive(start)
    lock = threading.Lock()

    def one(movement: MoneyMovement) -> None:
        result = redrive(ctx, movement)
        with lock:
            summary.add(result)
            if progress is not None:
                progress(summary)

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="reconcile") as pool:
        for batch in _due_batches(ctx, start):
            # ``list`` re-raises the first failure (a database outage) after the batch.
            list(pool.map(one, batch))
    return summary


def _due_batches(ctx: ServiceContext, start: datetime) -> Iterable[list[MoneyMovement]]:
    after_id = 0
    while True:
        with ctx.uow_factory() as uow:
            # Due as of the pass's start: a movement released during this pass (its
            # re-send just failed) waits for the next pass instead of looping here.
            batch = uow.ledger.due_for_redrive(start, after_id=after_id, limit=BATCH_SIZE)
        if not batch:
            return
        yield batch
        after_id = batch[-1].id


def redrive(ctx: ServiceContext, movement: MoneyMovement) -> Redrive:
    """Re-send one pending movement with its own key and amount and settle the answer."""
    with ctx.uow_factory() as uow:
        current = uow.ledger.get(movement.id)
        operator = uow.operators.get(movement.operator_id)
        assert current is not None and operator is not None, "ledger rows are never deleted"
        if current.status is not MovementStatus.PENDING:
            return _final(current.status)  # a request settled it since the pass listed it
        try:
            leased = lease(ctx, uow, operator, current)
        except OperationInProgress:
            return Redrive.STILL_PENDING  # a request is re-driving it right now
        uow.commit()
    outcome = send_and_settle(ctx, leased, settle_hook(ctx, current.reason))
    if isinstance(outcome, WalletAccepted):
        return Redrive.COMPLETED
    if isinstance(outcome, WalletRefusal):
        return Redrive.REFUSED
    return Redrive.STILL_PENDING


def settle_hook(ctx: ServiceContext, reason: MovementReason) -> SettleHook:
    """The same settlement the movement's own use case applies."""
    if reason is MovementReason.CASHBACK:
        return settle_cashback
    if reason is MovementReason.REFUND:
        return settle_refund
    return settle_debit(ctx.rng)  # open or prepay


def _final(status: MovementStatus) -> Redrive:
    return Redrive.COMPLETED if status is MovementStatus.ACCEPTED else Redrive.REFUSED


def run_forever(
    ctx: ServiceContext,
    stop: threading.Event,
    *,
    interval_seconds: float,
    on_pass: Callable[[ReconcileSummary], None],
    on_error: Callable[[Exception], None],
    concurrency: int = DEFAULT_CONCURRENCY,
) -> None:
    """Pass after pass, ``interval_seconds`` apart, until ``stop`` is set. A failed pass
    (database or wallet trouble) is reported and retried at the next interval: a worker
    that exits on the first outage would need a human to bring it back."""
    while not stop.is_set():
        try:
            on_pass(reconcile_once(ctx, concurrency=concurrency))
        except Exception as exc:
            on_error(exc)
        stop.wait(interval_seconds)
