"""``flask reconcile [--loop]``: drive pending money movements to a definite answer; the
loop (the Procfile's ``worker:``) also purges expired idempotency records."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

import click
from flask.cli import with_appcontext

from lootbox.cli.output import ProgressLine, emit, json_errors
from lootbox.container import container
from lootbox.services.reconcile import (
    DEFAULT_CONCURRENCY,
    ReconcileSummary,
    reconcile_once,
    run_forever,
)
from lootbox.services.retention import purge_expired_idempotency_records

log = logging.getLogger("lootbox.reconcile")
retention_log = logging.getLogger("lootbox.retention")


@click.command("reconcile")
@click.option(
    "--loop", is_flag=True, help="Run pass after pass until SIGTERM/SIGINT (the worker process)."
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between passes with --loop.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Wallet calls in flight at once.",
)
@click.option(
    "--purge/--no-purge",
    default=True,
    show_default=True,
    help=(
        "With --loop, after each pass also delete the completed idempotency records past "
        "their retention (IDEMPOTENCY_TTL_SECONDS), as flask idem purge does."
    ),
)
@with_appcontext
@json_errors
def reconcile_command(loop: bool, interval: float, concurrency: int, purge: bool) -> None:
    """Re-send every pending money movement whose lease has expired, with its own key
    and amount, and settle the wallet's answer. Prints a JSON summary per pass:
    {"examined", "completed", "refused", "stillPending"}. With --loop, also purges expired
    idempotency records after each pass and logs what it deleted (logger lootbox.retention)."""
    ctx = container().services
    if not loop:
        progress = ProgressLine()
        summary = reconcile_once(
            ctx, concurrency=concurrency, progress=lambda s: progress.say(_progress(s))
        )
        if summary.examined:
            progress.say(_progress(summary), force=True)
        emit(summary.to_json())
        return

    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # Finish the movements in hand (each is settled or released, never abandoned
        # mid-call), then exit; the PaaS sends SIGTERM before it kills.
        log.info("reconciler: signal %s, stopping after this pass", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("reconciler: running a pass every %.1f s", interval)

    def on_pass(summary: ReconcileSummary) -> None:
        if summary.examined:  # one line per pass that did something; quiet when idle
            emit(summary.to_json())

    def on_error(exc: Exception) -> None:
        log.error("reconciler: pass failed, retrying in %.1f s: %r", interval, exc)

    run_forever(
        ctx,
        stop,
        interval_seconds=interval,
        on_pass=on_pass,
        on_error=on_error,
        concurrency=concurrency,
        after_pass=purge_expired(stop) if purge else None,
    )


def purge_expired(stop: threading.Event) -> Callable[[], None]:
    """The worker's purge, run after each reconcile pass: at most one capped run of short
    batches, logged when it deleted something, with the total since the worker started. A
    failure is logged and the next pass tries again."""
    box = container()
    total = 0

    def purge() -> None:
        nonlocal total
        try:
            summary = purge_expired_idempotency_records(
                box.uow_factory, box.services.clock.now(), stop=stop
            )
        except Exception as exc:
            retention_log.error(
                "retention: purge failed, trying again after the next pass: %r", exc
            )
            return
        if summary.deleted:
            total += summary.deleted
            retention_log.info(
                "retention: deleted %d expired idempotency records in %d batches (%.3f s)%s",
                summary.deleted,
                summary.batches,
                summary.seconds,
                "; more are due, the next pass goes on" if summary.capped else "",
                extra={"purge": summary.to_json(), "purgedSinceStart": total},
            )

    return purge


def _progress(summary: ReconcileSummary) -> str:
    return (
        f"reconcile: {summary.examined}/{summary.due} examined, {summary.completed} completed, "
        f"{summary.refused} refused, {summary.still_pending} still pending"
    )
