"""On-call tools: ``flask ops pending``, ``flask idem show|list|release|purge``.

``ops`` answers in JSON like every command; ``idem show`` and ``idem list`` are read by a
human at 3 a.m., so they print aligned text, and JSON with ``--json``; ``idem release`` and
``idem purge`` answer in JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import click
from flask.cli import AppGroup

from lootbox.cli.output import ProgressLine, emit, json_errors
from lootbox.container import container
from lootbox.domain.errors import IdempotencyRecordNotFound
from lootbox.ports import DurableKey, IdempotencyRecord
from lootbox.services.idempotency_admin import (
    KeyInspection,
    inspect_key,
    list_keys,
    release_key,
)
from lootbox.services.operations import PendingOperation, pending_operations
from lootbox.services.purchase import purchase_key
from lootbox.services.retention import (
    DEFAULT_BATCH_SIZE,
    count_expired_idempotency_records,
    purge_expired_idempotency_records,
)

ops_cli = AppGroup("ops", help="Money operations, for on-call.")
idem_cli = AppGroup("idem", help="Idempotency keys, for on-call.")


@ops_cli.command("pending")
@click.option(
    "--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="At most."
)
@json_errors
def ops_pending(limit: int) -> None:
    """Operations whose wallet outcome is unknown, oldest first, with their age and the
    money at risk per currency. The reconciler re-sends them; one that stays here across
    passes is what to look at (docs/reliability.md)."""
    box = container()
    report = pending_operations(box.uow_factory, box.services.clock, limit=limit)
    emit(
        {
            "count": len(report.operations),
            "truncated": report.truncated,
            "oldestAgeSeconds": _seconds(report.oldest_age_seconds),
            "atRisk": {
                currency: {
                    "operations": risk.operations,
                    "creditsMinor": risk.credits_minor,
                    "debitsMinor": risk.debits_minor,
                }
                for currency, risk in sorted(report.at_risk.items())
            },
            "operations": [_operation(op) for op in report.operations],
        }
    )


def _operation(op: PendingOperation) -> dict[str, Any]:
    m = op.movement
    return {
        "operator": op.operator_slug,
        "idempotencyKey": m.idempotency_key,
        "type": f"wallet.{m.kind}",
        "reason": str(m.reason),
        "phase": str(op.phase),
        "playerExternalId": m.player_external_id,
        "amountMinor": m.amount_minor,
        "currency": m.currency,
        "inventoryItemId": m.inventory_item_id,
        "roundPublicId": m.round_public_id,
        "attempts": m.attempts,
        "lastError": m.last_error,
        "ageSeconds": _seconds(op.age_seconds),
        "createdAt": m.created_at.isoformat(),
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- idem ----------------------------------------------------------------------------------


class Duration(click.ParamType):
    """``90s``, ``5m``, ``2h``, ``1d``."""

    name = "duration"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: Any, ctx: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = re.fullmatch(r"(\d{1,7})([smhd])", str(value).strip())
        if match is None:
            self.fail(f"{value!r}: expected a number and a unit, like 90s, 5m, 2h or 1d")
        return timedelta(seconds=int(match[1]) * self._UNITS[match[2]])


def _store() -> Any:
    return container().guard.store


# A purchase's key is derived from its player and clientActionId: on-call has those two.
_player_option = click.option(
    "--player",
    metavar="PLAYER",
    default=None,
    help=(
        "The purchase's playerExternalId: KEY is then its clientActionId, and the key is "
        "the purchase's, built as the service builds it (--player u_8431 act-1 is "
        f"{purchase_key('u_8431', 'act-1')})."
    ),
)


def _key(key: str, player: str | None) -> str:
    return key if player is None else purchase_key(player, key)


@contextmanager
def _hint_purchase_keys(player: str | None) -> Iterator[None]:
    """A purchase is not recorded under its clientActionId: say how to find it."""
    try:
        yield
    except IdempotencyRecordNotFound as exc:
        if player is not None:
            raise
        raise IdempotencyRecordNotFound(
            f"{exc.message}. A purchase's key is not its clientActionId: "
            "pass the clientActionId with --player PLAYER"
        ) from exc


@idem_cli.command("show")
@click.argument("slug")
@click.argument("key")
@_player_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@json_errors
def idem_show(slug: str, key: str, player: str | None, as_json: bool) -> None:
    """The Redis record and the database record of one key, side by side. A key recorded
    in neither is an error (IDEMPOTENCY_RECORD_NOT_FOUND, exit code 1)."""
    box = container()
    with _hint_purchase_keys(player):
        seen = inspect_key(box.uow_factory, _store(), box.services.clock, slug, _key(key, player))
    if as_json:
        emit(
            {
                "operator": seen.operator_slug,
                "key": seen.key,
                "redisKey": seen.redis_key,
                "redis": seen.redis.to_json() if seen.redis else None,
                "redisError": seen.redis_error,
                "database": _durable_json(seen.database) if seen.database else None,
            }
        )
        return
    click.echo(_side_by_side(seen))


@idem_cli.command("list")
@click.argument("slug")
@click.option("--state", type=click.Choice(["in_progress", "completed"]), default=None)
@click.option("--older-than", type=Duration(), default=None, help="e.g. 5m, 2h, 1d.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@json_errors
def idem_list(
    slug: str, state: str | None, older_than: timedelta | None, limit: int, as_json: bool
) -> None:
    """The operator's keys from the database (the complete record), newest first. When
    there are more than --limit, says so (``truncated`` in JSON)."""
    box = container()
    now = box.services.clock.now()
    listing = list_keys(
        box.uow_factory, box.services.clock, slug, state=state, older_than=older_than, limit=limit
    )
    if as_json:
        emit(
            {
                "count": len(listing.keys),
                "truncated": listing.truncated,
                "keys": [_durable_json(d) for d in listing.keys],
            }
        )
        return
    if not listing.keys:
        click.echo("no keys")
        return
    rows = [("KEY", "STATE", "ENDPOINT", "AGE", "LEASE", "STATUS")]
    for d in listing.keys:
        rows.append(
            (
                d.key,
                d.record.state,
                d.record.endpoint,
                _age(now, datetime.fromisoformat(d.record.created_at)),
                _lease(now, d),
                str(d.record.status or "-"),
            )
        )
    click.echo(_table(rows))
    if listing.truncated:
        click.echo(
            f"… cut at --limit {limit}: these are the newest {limit} keys, there are older "
            "ones; raise --limit (or narrow with --state, --older-than) to see them"
        )


@idem_cli.command("release")
@click.argument("slug")
@click.argument("key")
@_player_option
@json_errors
def idem_release(slug: str, key: str, player: str | None) -> None:
    """Forget a stuck in-progress key whose lease has expired, so its retry runs at once.
    Refuses, saying why, a completed key or one a request still holds."""
    box = container()
    with _hint_purchase_keys(player):
        released = release_key(
            box.uow_factory, _store(), box.services.clock, slug, _key(key, player)
        )
    emit(
        {
            "released": released.key,
            "operator": slug,
            "requestId": released.record.request_id,
            "endpoint": released.record.endpoint,
        }
    )


@idem_cli.command("purge")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=10_000),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Rows per DELETE, each its own transaction.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Stop after this many (capped: true says more are left).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@json_errors
def idem_purge(batch_size: int, max_rows: int, dry_run: bool) -> None:
    """Delete, for every operator, the completed idempotency records whose retention
    (IDEMPOTENCY_TTL_SECONDS) is over, as the worker does after each reconcile pass. Never
    an in-progress key. Prints {"deleted", "batches", "capped", "seconds", "expiredBefore"};
    progress on stderr."""
    box = container()
    now = box.services.clock.now()
    if dry_run:
        expired = count_expired_idempotency_records(box.uow_factory, now)
        emit({"expired": expired, "expiredBefore": now.isoformat()})
        return
    progress = ProgressLine()
    summary = purge_expired_idempotency_records(
        box.uow_factory,
        now,
        batch_size=batch_size,
        max_rows=max_rows,
        progress=lambda deleted: progress.say(f"idem purge: {deleted} deleted"),
    )
    emit({**summary.to_json(), "expiredBefore": now.isoformat()})


def _side_by_side(seen: KeyInspection) -> str:
    redis, durable = seen.redis, seen.database
    db = durable.record if durable else None

    def cell(record: IdempotencyRecord | None, name: str) -> str:
        value = getattr(record, name) if record is not None else None
        if value is None or value == "":  # "": a request id Redis does not keep
            return "-"
        # A fingerprint is told apart by its first hex digits; --json has it whole.
        return f"{value[:23]}…" if name == "fingerprint" and len(value) > 24 else str(value)

    if seen.redis_error:
        redis_state = f"unreadable: {seen.redis_error}"
    else:
        redis_state = redis.state if redis else "absent"
    rows = [
        ("", "REDIS", "DATABASE"),
        ("state", redis_state, db.state if db else "absent"),
        *(
            (label, cell(redis, name), cell(db, name))
            for label, name in (
                ("endpoint", "endpoint"),
                ("fingerprint", "fingerprint"),
                ("request id", "request_id"),
                ("created", "created_at"),
            )
        ),
        ("lease", "-", _lease(seen.now, durable) if durable else "-"),
        ("completed", "-", _iso(durable.completed_at) if durable else "-"),
        ("replayed until", "-", _iso(durable.expires_at) if durable else "-"),
        ("status", cell(redis, "status"), cell(db, "status")),
    ]
    # Bodies are long: below the table, the database's only when it differs.
    redis_body, db_body = _short(redis.body if redis else None), _short(db.body if db else None)
    bodies = f"body, redis:     {redis_body}\nbody, database:  " + (
        "the same" if db_body == redis_body and db_body != "-" else db_body
    )
    if redis is not None and db is not None:
        same = redis.fingerprint == db.fingerprint
        note = "fingerprints agree" if same else "FINGERPRINTS DIFFER"
    else:
        note = "one side is absent: the database is the durable record"
    heading = f"{seen.operator_slug} / {seen.key}  (redis key {seen.redis_key}; {note})"
    return f"{heading}\n\n{_table(rows)}\n\n{bodies}"


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _lease(now: datetime, durable: DurableKey) -> str:
    if durable.record.state == "completed":
        return "-"
    left = (durable.lease_expires_at - now).total_seconds()
    token = f"token {durable.lease_token}"
    if left > 0:
        return f"{token}, held for {left:.0f} s more"
    return f"{token}, expired {-left:.0f} s ago"


def _age(now: datetime, then: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _short(body: str | None, limit: int = 300) -> str:
    if body is None:
        return "-"
    body = body.rstrip("\n")
    return body if len(body) <= limit else body[:limit] + "…"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "-"


def _durable_json(durable: DurableKey) -> dict[str, Any]:
    return {
        "key": durable.key,
        **durable.record.to_json(),
        "leaseToken": durable.lease_token,
        "leaseExpiresAt": durable.lease_expires_at.isoformat(),
        "completedAt": _iso(durable.completed_at) if durable.completed_at else None,
        "expiresAt": _iso(durable.expires_at) if durable.expires_at else None,
    }
