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

A wallet that is down must not be hammered, nor hold up every other operator: within a
pass, after ``GIVE_UP_AFTER`` unknown outcomes in a row from one operator's wallet, that
operator's remaining movements are left for the next pass without a call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import assert_never

from lootbox.domain.errors import OperationInProgress
from lootbox.domain.records import MoneyMovement, MovementReason, MovementStatus
from lootbox.ports import UnitOfWork, WalletAccepted, WalletOutcome, WalletRefusal
from lootbox.services import ledger
from lootbox.services.context import ServiceContext
from lootbox.services.purchase import settle_debit

# Rows read per query; a pass pages through the due set by id.
BATCH_SIZE = 100
# Wallet calls in flight at once during a pass: calls are I/O bound.
DEFAULT_CONCURRENCY = 4
# Unknown outcomes in a row from one operator's wallet after which a pass stops calling it.
GIVE_UP_AFTER = 3

log = logging.getLogger(__name__)


class Redrive(StrEnum):
    COMPLETED = "completed"  # accepted: final
    REFUSED = "refused"  # refused: final, the subject is free again (or voided)
    STILL_PENDING = "stillPending"  # the wallet's answer is unknown again
    BUSY = "busy"  # a live request holds its lease right now (counted as still pending)


@dataclass
class ReconcileSummary:
    """What one pass did; ``examined`` = ``completed`` + ``refused`` + ``stillPending``.
    A movement a live request settled between the listing and the lease counts by its
    final status: the pass found it completed (or refused)."""

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
            self.still_pending += 1  # unknown again, or busy

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
    stop: threading.Event | None = None,
) -> ReconcileSummary:
    """One pass over the movements due for a re-drive when it starts (pending, lease
    expired). A movement whose outcome stays unknown is examined once per pass; the next
    pass (``run_forever``) tries again. ``stop`` ends the pass early: the movements in
    hand are finished, the others are left for the next run. Raises ``ServiceUnavailable``
    if the database cannot even list what is due."""
    summary = ReconcileSummary()
    start = ctx.clock.now()
    with ctx.uow_factory() as uow:
        summary.due = uow.ledger.count_due_for_redrive(start)
    lock = threading.Lock()
    unknown_in_a_row: dict[int, int] = {}

    def one(movement: MoneyMovement) -> None:
        if stop is not None and stop.is_set():
            return
        with lock:
            wallet_down = unknown_in_a_row.get(movement.operator_id, 0) >= GIVE_UP_AFTER
        result = Redrive.STILL_PENDING if wallet_down else _redrive_safely(ctx, movement)
        with lock:
            if result is Redrive.STILL_PENDING:
                unknown_in_a_row[movement.operator_id] = (
                    unknown_in_a_row.get(movement.operator_id, 0) + 1
                )
            elif result is not Redrive.BUSY:
                unknown_in_a_row[movement.operator_id] = 0
            summary.add(result)
            if progress is not None:
                progress(summary)

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="reconcile") as pool:
        for batch in _due_batches(ctx, start):
            list(pool.map(one, batch))
            if stop is not None and stop.is_set():
                break
    return summary


def _redrive_safely(ctx: ServiceContext, movement: MoneyMovement) -> Redrive:
    """One movement's failure (the database blinking, a bug) must not end the pass for
    every movement after it: it stays pending for the next pass, and the log says why."""
    try:
        return redrive(ctx, movement)
    except Exception:
        log.exception("reconcile: movement %s failed; it stays pending", movement.id)
        return Redrive.STILL_PENDING


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
            leased = ledger.lease(ctx, uow, operator, current)
        except OperationInProgress:
            return Redrive.BUSY  # a request is re-driving it right now
        uow.commit()
    outcome = ledger.send(ctx, leased)
    with ledger.settling(ctx, leased, None, 0) as uow:
        settle(ctx, uow, leased, outcome)
        uow.commit()
    if isinstance(outcome, WalletAccepted):
        return Redrive.COMPLETED
    if isinstance(outcome, WalletRefusal):
        return Redrive.REFUSED
    return Redrive.STILL_PENDING


def settle(
    ctx: ServiceContext, uow: UnitOfWork, leased: ledger.Leased, outcome: WalletOutcome
) -> bool:
    """The same settlement the movement's own use case applies."""
    reason = leased.movement.reason
    if reason is MovementReason.CASHBACK or reason is MovementReason.REFUND:
        return ledger.settle_credit(ctx, uow, leased, outcome)
    if reason is MovementReason.OPEN or reason is MovementReason.PREPAY:
        return settle_debit(ctx, uow, leased, outcome) is not None
    assert_never(reason)


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
    after_pass: Callable[[], None] | None = None,
) -> None:
    """Pass after pass, ``interval_seconds`` apart, until ``stop`` is set. A failed pass
    (database or wallet trouble) is reported and retried at the next interval: a worker
    that exits on the first outage would need a human to bring it back. ``after_pass`` is
    the worker's other chore (the idempotency purge), run after every pass, failed or not;
    it reports its own errors."""
    while not stop.is_set():
        try:
            on_pass(reconcile_once(ctx, concurrency=concurrency, stop=stop))
        except Exception as exc:
            on_error(exc)
        if after_pass is not None and not stop.is_set():
            after_pass()
        stop.wait(interval_seconds)
