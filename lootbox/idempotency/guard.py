"""Request-level idempotency: the Redis fast path in front of the database's claim.

For each ``(operator, idempotencyKey)``:

1. Redis ``SET NX`` with a lease decides, cheaply, who runs a request and serves completed
   answers without touching the database.
2. The database record (a unique row) is the guarantee. The use case claims it first in
   its own first transaction and stores the answer in its last (``services.ledger``), so a
   flushed, evicted or unreachable Redis never lets a duplicate through, a completed answer
   Redis lost is replayed from the database, and a business rejection rolls the claim back
   with everything else.
3. Here, after the use case: a success (fresh or replayed from the database) is written
   to Redis; anything else frees the Redis key, so a retry re-evaluates against the
   database, which kept the fingerprint of an answer that may have moved money.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Literal

from lootbox.domain.errors import IdempotencyKeyInUse, IdempotencyKeyReused, KeyHeldElsewhere
from lootbox.idempotency.availability import FastPathHealth
from lootbox.ports import (
    Answer,
    Clock,
    DurableKey,
    IdempotencyRecord,
    IdempotencyStore,
    KeyedRequest,
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

    def run(self, req: KeyedRequest, execute: Callable[[], Answer]) -> GuardedResponse:
        """Run ``execute`` (the use case, which claims the key in the database) at most
        once at a time per key, replay a completed success, and refuse a key reused for a
        different request.

        Raises ``IdempotencyKeyReused`` or ``IdempotencyKeyInUse``; exceptions from
        ``execute`` propagate after the Redis key is freed.
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
                    answer = execute()
                except KeyHeldElsewhere:
                    self._release_fast(req)  # a live request holds it in the database: wait
                except BaseException:
                    self._release_fast(req)  # else retries would wait out the Redis lease
                    raise
                else:
                    if 200 <= answer.status < 300:
                        # Writing the answer replaces our own Redis claim: no release first.
                        self._backfill_fast(req, self._completed(req, answer))
                    else:
                        self._release_fast(req)  # only a success is final
                    return GuardedResponse(
                        answer.status,
                        answer.body.encode("utf-8"),
                        "replay" if answer.replayed else "fresh",
                    )
            # Someone else is running this key: wait briefly for their answer.
            if self.monotonic() >= deadline:
                raise IdempotencyKeyInUse(retry_after_seconds=1)
            self.sleep(self.poll_seconds)

    # --- steps -----------------------------------------------------------------------

    def _claim_fast(self, req: KeyedRequest) -> IdempotencyRecord | None:
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

    def _durable_state(self, req: KeyedRequest) -> tuple[IdempotencyRecord | None, bool]:
        """``(completed record or None, whether a request holds the key right now)``."""
        with self.uow_factory() as uow:
            durable: DurableKey | None = uow.idempotency.describe(req.operator_id, req.key)
        if durable is None:
            return None, False
        if durable.record.state != "completed":
            return None, durable.lease_expires_at > self.clock.now()
        self._check_fingerprint(req, durable.record)
        return durable.record, False

    def _drop_stale_fast(self, req: KeyedRequest, stale: IdempotencyRecord) -> None:
        with suppress(StoreUnavailable):  # then the next claim falls back to the database
            self.store.release(req.operator_id, req.key, stale.request_id)

    def _completed(self, req: KeyedRequest, answer: Answer) -> IdempotencyRecord:
        return IdempotencyRecord(
            state="completed",
            endpoint=req.endpoint,
            fingerprint=req.fingerprint,
            request_id=req.request_id,
            created_at=self.clock.now().isoformat(),
            status=answer.status,
            body=answer.body,
        )

    def _release_fast(self, req: KeyedRequest) -> None:
        with suppress(StoreUnavailable):  # the Redis lease expires by itself
            self.store.release(req.operator_id, req.key, req.request_id)

    def _backfill_fast(self, req: KeyedRequest, record: IdempotencyRecord) -> None:
        with suppress(StoreUnavailable):  # the database keeps the answer
            self.store.complete(req.operator_id, req.key, record, self.ttl_seconds)

    @staticmethod
    def _check_fingerprint(req: KeyedRequest, seen: IdempotencyRecord) -> None:
        if seen.fingerprint != req.fingerprint:
            raise IdempotencyKeyReused()


def _replay(record: IdempotencyRecord) -> GuardedResponse:
    assert record.status is not None and record.body is not None
    return GuardedResponse(record.status, record.body.encode("utf-8"), "replay")
