"""On-call's view of idempotency keys: the Redis record and the database record side by
side, the keys of an operator, and releasing a key that is stuck."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from lootbox.domain.errors import IdempotencyRecordNotFound, KeyNotReleasable, OperatorNotFound
from lootbox.ports import (
    Clock,
    DurableKey,
    IdempotencyRecord,
    IdempotencyStore,
    StoreUnavailable,
    UnitOfWork,
)

UowFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class KeyInspection:
    operator_slug: str
    key: str
    redis_key: str
    redis: IdempotencyRecord | None
    redis_error: str | None  # Redis could not be read: why
    database: DurableKey | None
    now: datetime


@dataclass(frozen=True)
class KeyListing:
    keys: list[DurableKey]
    truncated: bool  # there were more than the limit: these are the newest


def inspect_key(
    uow_factory: UowFactory, store: IdempotencyStore, clock: Clock, slug: str, key: str
) -> KeyInspection:
    """Both records of one key. A key recorded nowhere is ``IdempotencyRecordNotFound``;
    so is one the database lacks while Redis cannot be read (the database is the durable
    record: Redis alone holds a key only for the moment between the two claims)."""
    operator_id = _operator_id(uow_factory, slug)
    with uow_factory() as uow:
        durable: DurableKey | None = uow.idempotency.describe(operator_id, key)
    redis_record, redis_error = None, None
    try:
        redis_record = store.get(operator_id, key)
    except StoreUnavailable as exc:
        redis_error = str(exc)
    if durable is None and redis_record is None:
        where = (
            f"no database record, and Redis could not be read ({redis_error})"
            if redis_error
            else "neither Redis nor the database has it"
        )
        raise IdempotencyRecordNotFound(f"no key {key!r} for operator {slug!r}: {where}")
    return KeyInspection(
        slug,
        key,
        store.redis_key(operator_id, key),
        redis_record,
        redis_error,
        durable,
        clock.now(),
    )


def list_keys(
    uow_factory: UowFactory,
    clock: Clock,
    slug: str,
    *,
    state: str | None,
    older_than: timedelta | None,
    limit: int,
) -> KeyListing:
    """The operator's durable records, newest first, at most ``limit`` (``truncated``
    says whether there were more). The database has them all; Redis may have lost some."""
    operator_id = _operator_id(uow_factory, slug)
    before = clock.now() - older_than if older_than is not None else None
    with uow_factory() as uow:
        found: list[DurableKey] = uow.idempotency.list_for_operator(
            operator_id, state=state, created_before=before, limit=limit + 1
        )
    return KeyListing(found[:limit], truncated=len(found) > limit)


def release_key(
    uow_factory: UowFactory, store: IdempotencyStore, clock: Clock, slug: str, key: str
) -> DurableKey:
    """Forget a stuck key: an in-progress record whose lease has expired (its worker died,
    or it was suspended after a 503). Refuses, saying why, for anything else: a completed
    answer must stay replayable, and a live lease means a request is running.

    Money is not at stake either way: a pending money movement keeps its own key and is
    re-driven by the reconciler, and the ledger refuses a key that moved money for another
    request."""
    operator_id = _operator_id(uow_factory, slug)
    now = clock.now()
    with uow_factory() as uow:
        durable: DurableKey | None = uow.idempotency.describe(operator_id, key)
        if durable is None:
            raise IdempotencyRecordNotFound(f"no database record for {slug}/{key}")
        if durable.record.state == "completed":
            raise KeyNotReleasable(
                "the key is completed: its answer is replayed until "
                f"{_iso(durable.expires_at)}, and releasing it would let it run again"
            )
        if durable.lease_expires_at > now:
            raise KeyNotReleasable(
                f"request {durable.record.request_id} holds the key until "
                f"{_iso(durable.lease_expires_at)}; retry after that"
            )
        if not uow.idempotency.release_stuck(operator_id, key, now):
            raise KeyNotReleasable("the key changed meanwhile; inspect it again")
        uow.commit()
    # The Redis hold, if any, is released under its own request id (the one that claimed
    # it there); if Redis is down it expires by itself, and the guard ignores a stale one.
    with suppress(StoreUnavailable):
        fast = store.get(operator_id, key)
        if fast is not None and fast.state == "in_progress":
            store.release(operator_id, key, fast.request_id)
    return durable


def _operator_id(uow_factory: UowFactory, slug: str) -> int:
    with uow_factory() as uow:
        operator = uow.operators.get_by_slug(slug)
    if operator is None:
        raise OperatorNotFound(f"no operator {slug!r}")
    return int(operator.id)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "-"
