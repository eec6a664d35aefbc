"""``flask reconcile [--loop]``: drive pending money movements to a definite answer."""

from __future__ import annotations

import logging
import signal
import threading
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

log = logging.getLogger("lootbox.reconcile")


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
@with_appcontext
@json_errors
def reconcile_command(loop: bool, interval: float, concurrency: int) -> None:
    """Re-send every pending money movement whose lease has expired, with its own key
    and amount, and settle the wallet's answer. Prints a JSON summary per pass:
    {"examined", "completed", "refused", "stillPending"}."""
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
    )


def _progress(summary: ReconcileSummary) -> str:
    return (
        f"reconcile: {summary.examined}/{summary.due} examined, {summary.completed} completed, "
        f"{summary.refused} refused, {summary.still_pending} still pending"
    )
