"""Request-level idempotency: the Redis fast path in front, the database behind it.

For each ``(operator, idempotencyKey)``:

1. Redis ``SET NX`` with a lease decides, cheaply, who runs a request and serves completed
   answers without touching the database.
2. The database record (a unique row) is the guarantee: it is claimed too, so a flushed,
   evicted or unreachable Redis never lets a duplicate through, and it replays completed
   answers Redis has lost.
3. Only 2xx answers are stored as final. Business rejections and wallet refusals are
   released so that a retry re-evaluates. An answer that may have moved money (an unknown
   wallet outcome, a storage failure, a crash) frees the lease but keeps the fingerprint:
   the retry re-drives the same operation, and the same key with another request is still
   ``IDEMPOTENCY_KEY_REUSED``.

The use cases are themselves idempotent by key (they rebuild an earlier success from the
ledger), so a worker dying between the business commit and storing the answer costs a
re-evaluation, never a second money movement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from lootbox.domain.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    LootboxError,
    ServiceUnavailable,
    WalletUnavailable,
)
from lootbox.idempotency.availability import FastPathHealth
from lootbox.ports import (
    Clock,
    DurableClaim,
    DurableKey,
    IdempotencyRecord,
    IdempotencyStore,
    StoreUnavailable,
    UnitOfWork,
)

log = logging.getLogger("lootbox.idempotency")

Outcome = Literal["fresh", "replay"]


@dataclass(frozen=True)
class GuardedResponse:
    status: int
    body: bytes
    outcome: Outcome


@dataclass(frozen=True)
class Request:
    operator_id: int
    key: str
    endpoint: str
    fingerprint: str
    request_id: str


class IdempotencyGuard:
    def __init__(
        self,
        store: IdempotencyStore,
        uow_factory: Callable[[], UnitOfWork],
        clock: Clock,
        *,
        wait_seconds: float,
        lease_seconds: float,
        ttl_seconds: int,
        poll_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        fast_path: FastPathHealth | None = None,
    ):
        self.store = store
        self.uow_factory = uow_factory
        self.clock = clock
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds
        self.ttl_seconds = ttl_seconds
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.monotonic = monotonic
        self.fast_path = fast_path or FastPathHealth()  # logs Redis going away, and why

    def run(self, req: Request, execute: Callable[[], tuple[int, bytes]]) -> GuardedResponse:
        """Run ``execute`` at most once at a time per key, replay a completed success, and
        refuse a key reused for a different request.

        Raises ``IdempotencyKeyReused`` or ``IdempotencyKeyInUse``; exceptions from
        ``execute`` propagate after the key is released.
        """
        deadline = self.monotonic() + self.wait_seconds
        consulted_database = dropped_stale = False
        while True:
            seen = self._claim_fast(req)
            if seen is not None and seen.state == "completed":
                self._check_fingerprint(req, seen)
                return _replay(seen)
            if seen is not None:
                # Redis says a request holds the key. The hold may be stale: a claim that
                # reached a slow Redis after its request had finished through the database,
                # or a release lost while Redis was down. The database has the last word,
                # so ask it once before waiting, and at the end.
                if not consulted_database or self.monotonic() >= deadline:
                    consulted_database = True
                    finished, running = self._durable_state(req)
                    if finished is not None:
                        self._backfill_fast(req, finished)
                        return _replay(finished)
                    if not running and not dropped_stale:
                        # Nobody holds the key where it counts: drop the stale hold and
                        # claim again (the database still arbitrates any race).
                        self._drop_stale_fast(req, seen)
                        dropped_stale = True
                        continue
                self._check_fingerprint(req, seen)
            else:
                try:
                    claim = self._claim_durable(req)
                except BaseException:
                    self._release_fast(req)  # else retries would wait out the Redis lease
                    raise
                if claim.outcome == "claimed":
                    return self._execute(req, claim.lease_token, execute)
                if claim.outcome == "completed":  # same fingerprint, or it would be mismatch
                    assert claim.record is not None
                    # Writing the answer replaces our own Redis claim: no release first.
                    self._backfill_fast(req, claim.record)
                    return _replay(claim.record)
                self._release_fast(req)
                if claim.record is not None:
                    self._check_fingerprint(req, claim.record)
            # Someone else is running this key: wait briefly for their answer.
            if self.monotonic() >= deadline:
                raise IdempotencyKeyInUse(retry_after_seconds=1)
            self.sleep(self.poll_seconds)

    # --- steps -----------------------------------------------------------------------

    def _claim_fast(self, req: Request) -> IdempotencyRecord | None:
        """``None`` means go on to the database: we own the Redis key, or Redis is down."""
        record = IdempotencyRecord(
            state="in_progress",
            endpoint=req.endpoint,
            fingerprint=req.fingerprint,
            request_id=req.request_id,
            created_at=self.clock.now().isoformat(),
        )
        try:
            seen = self.store.claim(req.operator_id, req.key, record, self.lease_seconds)
        except StoreUnavailable as exc:
            self.fast_path.failed(exc)  # logged once, with its cause, until Redis is back
            return None
        self.fast_path.succeeded()
        return seen

    def _durable_state(self, req: Request) -> tuple[IdempotencyRecord | None, bool]:
        """``(completed record or None, whether a request holds the key right now)``."""
        with self.uow_factory() as uow:
            durable: DurableKey | None = uow.idempotency.describe(req.operator_id, req.key)
        if durable is None:
            return None, False
        if durable.record.state != "completed":
            return None, durable.lease_expires_at > self.clock.now()
        self._check_fingerprint(req, durable.record)
        return durable.record, False

    def _drop_stale_fast(self, req: Request, stale: IdempotencyRecord) -> None:
        with suppress(StoreUnavailable):  # then the next claim falls back to the database
            self.store.release(req.operator_id, req.key, stale.request_id)

    def _claim_durable(self, req: Request) -> DurableClaim:
        with self.uow_factory() as uow:
            now = self.clock.now()
            claim: DurableClaim = uow.idempotency.claim(
                operator_id=req.operator_id,
                key=req.key,
                endpoint=req.endpoint,
                fingerprint=req.fingerprint,
                request_id=req.request_id,
                now=now,
                lease_until=now + timedelta(seconds=self.lease_seconds),
            )
            uow.commit()
            return claim

    def _execute(
        self, req: Request, lease_token: int, execute: Callable[[], tuple[int, bytes]]
    ) -> GuardedResponse:
        try:
            status, body = execute()
        except (WalletUnavailable, ServiceUnavailable):
            self._suspend(req, lease_token)  # money may have moved
            raise
        except LootboxError:
            self._release(req, lease_token)  # decided without moving money
            raise
        except BaseException:
            self._suspend(req, lease_token)  # unknown: assume it may have
            raise
        if 200 <= status < 300:
            self._complete(req, lease_token, status, body)
        else:
            self._release(req, lease_token)
        return GuardedResponse(status, body, "fresh")

    def _complete(self, req: Request, lease_token: int, status: int, body: bytes) -> None:
        text = body.decode("utf-8")
        with self.uow_factory() as uow:
            now = self.clock.now()
            stored = uow.idempotency.complete(
                operator_id=req.operator_id,
                key=req.key,
                lease_token=lease_token,
                status=status,
                body=text,
                now=now,
                expires_at=now + timedelta(seconds=self.ttl_seconds),
            )
            uow.commit()
        if not stored:
            # Our lease was taken over: the newer holder stores its (equal) answer.
            self._release_fast(req)
            return
        self._backfill_fast(
            req,
            IdempotencyRecord(
                state="completed",
                endpoint=req.endpoint,
                fingerprint=req.fingerprint,
                request_id=req.request_id,
                created_at=self.clock.now().isoformat(),
                status=status,
                body=text,
            ),
        )

    def _release(self, req: Request, lease_token: int) -> None:
        try:
            with self.uow_factory() as uow:
                uow.idempotency.release(
                    operator_id=req.operator_id, key=req.key, lease_token=lease_token
                )
                uow.commit()
        except Exception:  # the lease expires by itself; never mask the real error
            log.exception("could not release idempotency record %s", req.key)
        self._release_fast(req)

    def _suspend(self, req: Request, lease_token: int) -> None:
        try:
            with self.uow_factory() as uow:
                uow.idempotency.suspend(
                    operator_id=req.operator_id,
                    key=req.key,
                    lease_token=lease_token,
                    now=self.clock.now(),
                )
                uow.commit()
        except Exception:  # the lease expires by itself
            log.exception("could not suspend idempotency record %s", req.key)
        self._release_fast(req)

    def _release_fast(self, req: Request) -> None:
        with suppress(StoreUnavailable):  # the Redis lease expires by itself
            self.store.release(req.operator_id, req.key, req.request_id)

    def _backfill_fast(self, req: Request, record: IdempotencyRecord) -> None:
        with suppress(StoreUnavailable):  # the database keeps the answer
            self.store.complete(req.operator_id, req.key, record, self.ttl_seconds)

    @staticmethod
    def _check_fingerprint(req: Request, seen: IdempotencyRecord) -> None:
        if seen.fingerprint != req.fingerprint:
            raise IdempotencyKeyReused()


def _replay(record: IdempotencyRecord) -> GuardedResponse:
    assert record.status is not None and record.body is not None
    return GuardedResponse(record.status, record.body.encode("utf-8"), "replay")
