"""IdempotencyGuard: Redis in front, the database behind it (contract §7).

The store is the real ``RedisIdempotencyStore`` on fakeredis, or a store that is always
down; the database is PostgreSQL. Each ``execute`` runs as a money use case does
(``UseCase``): it claims the key in the database with ``ledger.claim_key`` first, then
stores its 2xx answer (``ledger.answer``), or gives the claim back. "Another worker" is a
thread whose request is parked inside ``execute`` until the test lets it finish.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import fakeredis
import pytest

from lootbox.domain.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    LootboxError,
    WalletUnavailable,
)
from lootbox.idempotency.fingerprint import fingerprint
from lootbox.idempotency.guard import GuardedResponse, IdempotencyGuard
from lootbox.idempotency.redis_store import RedisIdempotencyStore
from lootbox.ports import Answer, IdempotencyRecord, KeyedRequest, StoreUnavailable, UnitOfWork
from lootbox.services import ledger
from lootbox.services.context import ServiceContext
from tests.fakes import ServiceHarness

Request = KeyedRequest

LEASE_SECONDS = 30.0
TTL_SECONDS = 3600
BODY = '{"item": {"inventoryItemId": 88, "name": "Café"},  "balanceAfterMinor": 11820}'.encode()


class DownStore:
    """Redis is down: every call fails the way the real store reports it."""

    def claim(self, *args: object, **kwargs: object) -> IdempotencyRecord | None:
        raise StoreUnavailable("connection refused")

    def get(self, *args: object, **kwargs: object) -> IdempotencyRecord | None:
        raise StoreUnavailable("connection refused")

    def complete(self, *args: object, **kwargs: object) -> None:
        raise StoreUnavailable("connection refused")

    def release(self, *args: object, **kwargs: object) -> None:
        raise StoreUnavailable("connection refused")


@dataclass
class FakeTime:
    """``monotonic``/``sleep`` for the guard: sleeping advances time at once and may run a
    hook (the other worker finishing meanwhile)."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: Callable[[], None] | None = None

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            hook, self.on_sleep = self.on_sleep, None
            hook()


@dataclass
class Calls:
    """An ``execute`` that counts its runs and answers ``status``/``body``."""

    status: int = 200
    body: bytes = BODY
    count: int = 0

    def __call__(self) -> tuple[int, bytes]:
        self.count += 1
        return self.status, self.body


class UseCase:
    """``execute`` as a money use case runs it around the guard: claim the key in the
    database (a stored answer is replayed from there), run, then store a 2xx answer; a
    business rejection or a non-2xx gives the claim back, anything else (money may have
    moved) suspends it."""

    def __init__(self, ctx: ServiceContext, req: KeyedRequest, execute: Callable[[], Any]):
        self.ctx, self.req, self.execute = ctx, req, execute

    def __call__(self) -> Answer:
        with self.ctx.uow_factory() as uow:
            claim = ledger.claim_key(self.ctx, uow, self.req)
            uow.commit()
        if isinstance(claim, Answer):
            return claim
        try:
            status, body = self.execute()
        except LootboxError as error:
            self._give_back(suspend=isinstance(error, WalletUnavailable), token=claim)
            raise
        except BaseException:
            self._give_back(suspend=True, token=claim)
            raise
        with self.ctx.uow_factory() as uow:
            if 200 <= status < 300:
                answer = ledger.answer(self.ctx, uow, self.req, claim, body.decode())
            else:
                ledger.release_key(uow, self.req, claim)
                answer = Answer(status, body.decode(), replayed=False)
            uow.commit()
        return answer

    def _give_back(self, *, suspend: bool, token: int) -> None:
        with self.ctx.uow_factory() as uow:
            if suspend:
                ledger.suspend_key(self.ctx, uow, self.req, token)
            else:
                ledger.release_key(uow, self.req, token)
            uow.commit()


class GuardUnderTest:
    """The guard, each ``run`` wrapping its ``execute`` in a ``UseCase``."""

    def __init__(self, guard: IdempotencyGuard, ctx: ServiceContext) -> None:
        self.guard, self.ctx = guard, ctx

    def run(self, req: KeyedRequest, execute: Callable[[], Any]) -> GuardedResponse:
        return self.guard.run(req, UseCase(self.ctx, req, execute))


class World:
    def __init__(self, harness: ServiceHarness, redis: fakeredis.FakeRedis | None) -> None:
        self.harness = harness
        self.redis = redis
        self.store = RedisIdempotencyStore(redis) if redis is not None else DownStore()
        self.time = FakeTime()
        self.operator = harness.create_operator()
        self.uow_opened = 0

    def uow(self) -> UnitOfWork:
        self.uow_opened += 1
        return self.harness.uow()

    def guard(self, wait_seconds: float = 0.5) -> GuardUnderTest:
        ctx = ServiceContext(
            uow_factory=self.uow,
            wallet=self.harness.wallet,
            clock=self.harness.clock,  # type: ignore[arg-type]
            idempotency_lease_seconds=LEASE_SECONDS,
            idempotency_ttl_seconds=TTL_SECONDS,
        )
        guard = IdempotencyGuard(
            self.store,  # type: ignore[arg-type]
            self.uow,
            self.harness.clock,
            wait_seconds=wait_seconds,
            lease_seconds=LEASE_SECONDS,
            ttl_seconds=TTL_SECONDS,
            poll_seconds=0.05,
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
        )
        return GuardUnderTest(guard, ctx)

    def request(
        self,
        request_id: str,
        key: str = "cashback:inventory:88",
        body: dict[str, Any] | None = None,
        operator_id: int | None = None,
    ) -> Request:
        return Request(
            operator_id=operator_id or self.operator.id,
            key=key,
            endpoint="cashout",
            fingerprint=fingerprint("cashout", body or {"inventoryItemId": 88, "currency": None}),
            request_id=request_id,
        )

    def redis_record(self, key: str = "cashback:inventory:88") -> dict[str, Any] | None:
        assert self.redis is not None
        raw = self.redis.get(self.store.redis_key(self.operator.id, key))
        return None if raw is None else json.loads(raw)


@pytest.fixture(params=["redis", "redis-down"])
def world(request: pytest.FixtureRequest, postgres_db: str) -> Iterator[World]:
    harness = ServiceHarness(postgres_db)
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer()) if request.param == "redis" else None
    yield World(harness, redis)
    harness.close()


@pytest.fixture
def redis_world(postgres_db: str) -> Iterator[World]:
    harness = ServiceHarness(postgres_db)
    yield World(harness, fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    harness.close()


class OtherWorker:
    """A request running in a thread, parked inside ``execute`` until ``finish()``."""

    def __init__(self, guard: GuardUnderTest, req: Request, answer: Calls) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.answer = answer
        self.result: GuardedResponse | None = None
        self.error: BaseException | None = None

        def execute() -> tuple[int, bytes]:
            self.started.set()
            assert self.release.wait(10), "the test never let the other worker finish"
            return answer()

        def run() -> None:
            try:
                self.result = guard.run(req, execute)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert self.started.wait(10), "the other worker never started executing"

    def finish(self) -> None:
        self.release.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.error is None, self.error


# --- the basics ----------------------------------------------------------------------------------


def test_a_fresh_key_executes_once(world: World) -> None:
    execute = Calls()
    answer = world.guard().run(world.request("req-1"), execute)
    assert answer == GuardedResponse(200, BODY, "fresh")
    assert execute.count == 1


def test_a_completed_key_is_replayed_byte_for_byte_without_executing(world: World) -> None:
    guard = world.guard()
    guard.run(world.request("req-1"), Calls())

    again = Calls(status=500, body=b"must not run")
    answer = guard.run(world.request("req-2"), again)

    assert answer == GuardedResponse(200, BODY, "replay")
    assert again.count == 0


def test_a_key_reused_for_another_request_is_refused_without_executing(world: World) -> None:
    guard = world.guard()
    guard.run(world.request("req-1"), Calls())

    other = Calls()
    with pytest.raises(IdempotencyKeyReused):
        guard.run(world.request("req-2", body={"inventoryItemId": 89, "currency": None}), other)
    assert other.count == 0


@pytest.mark.parametrize("status", [400, 404, 409, 422, 503])
def test_a_non_success_answer_is_not_stored_so_the_retry_executes(
    world: World, status: int
) -> None:
    guard = world.guard()
    first = guard.run(world.request("req-1"), Calls(status=status, body=b'{"error": {}}'))
    assert (first.status, first.outcome) == (status, "fresh")

    retry = Calls()
    assert guard.run(world.request("req-2"), retry) == GuardedResponse(200, BODY, "fresh")
    assert retry.count == 1


def test_an_exception_releases_the_key_and_propagates(world: World) -> None:
    guard = world.guard()

    def explode() -> tuple[int, bytes]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        guard.run(world.request("req-1"), explode)

    retry = Calls()
    assert guard.run(world.request("req-2"), retry).outcome == "fresh"
    assert retry.count == 1


def test_a_non_success_answer_does_not_pin_the_fingerprint(world: World) -> None:
    guard = world.guard()
    guard.run(world.request("req-1"), Calls(status=422))
    other = Calls()
    other_body = {"inventoryItemId": 89, "currency": None}
    assert guard.run(world.request("req-2", body=other_body), other).outcome == "fresh"


def test_keys_are_scoped_per_operator(world: World) -> None:
    rival = world.harness.create_operator("rival")
    guard = world.guard()
    guard.run(world.request("req-1"), Calls())

    theirs = Calls(body=b'{"theirs": true}')
    answer = guard.run(world.request("req-2", operator_id=rival.id), theirs)
    assert (answer.body, answer.outcome, theirs.count) == (b'{"theirs": true}', "fresh", 1)


def test_an_answer_stored_for_another_operator_is_never_replayed(redis_world: World) -> None:
    # Even if one Redis key ever held two tenants' records (slugs in keys once allowed it),
    # the value names its operator and a foreign one is not an answer.
    rival = redis_world.harness.create_operator("rival")
    guard = redis_world.guard()
    guard.run(redis_world.request("req-1"), Calls())
    assert redis_world.redis is not None
    theirs_key = redis_world.store.redis_key(rival.id, "cashback:inventory:88")
    ours = redis_world.redis.get(
        redis_world.store.redis_key(redis_world.operator.id, "cashback:inventory:88")
    )
    redis_world.redis.set(theirs_key, ours)

    theirs = Calls(body=b'{"theirs": true}')
    answer = guard.run(redis_world.request("req-2", operator_id=rival.id), theirs)

    assert (answer.body, answer.outcome, theirs.count) == (b'{"theirs": true}', "fresh", 1)


# --- Redis is only an accelerator ----------------------------------------------------------------


def test_with_redis_down_the_database_still_gives_exactly_once(postgres_db: str) -> None:
    harness = ServiceHarness(postgres_db)
    try:
        world = World(harness, None)
        guard = world.guard()
        execute = Calls()
        answers = [guard.run(world.request(f"req-{n}"), execute) for n in range(3)]
        assert execute.count == 1
        assert [a.outcome for a in answers] == ["fresh", "replay", "replay"]
        assert {a.body for a in answers} == {BODY}
    finally:
        harness.close()


def test_redis_flushed_after_completion_replays_from_the_database(redis_world: World) -> None:
    guard = redis_world.guard()
    guard.run(redis_world.request("req-1"), Calls())
    assert redis_world.redis is not None
    redis_world.redis.flushall()

    again = Calls()
    answer = guard.run(redis_world.request("req-2"), again)

    assert answer == GuardedResponse(200, BODY, "replay")
    assert again.count == 0
    # ... and the fast path is filled again.
    record = redis_world.redis_record()
    assert record is not None
    assert (record["state"], record["status"], record["body"]) == ("completed", 200, BODY.decode())


def test_a_stale_hold_in_redis_does_not_block_the_replay_of_a_finished_request(
    redis_world: World,
) -> None:
    """A claim that reached a slow Redis after its request had finished through the
    database leaves an in-progress record nobody will release: the database answers."""
    guard = redis_world.guard()
    guard.run(redis_world.request("req-1"), Calls())
    assert redis_world.redis is not None
    stale = dict(redis_world.redis_record() or {}, state="in_progress", requestId="req-late")
    stale.pop("status"), stale.pop("body")
    redis_world.redis.set(
        redis_world.store.redis_key(redis_world.operator.id, "cashback:inventory:88"),
        json.dumps(stale),
        px=int(LEASE_SECONDS * 1000),
    )

    again = Calls()
    answer = guard.run(redis_world.request("req-2"), again)

    assert answer == GuardedResponse(200, BODY, "replay")
    assert again.count == 0
    assert redis_world.time.sleeps == []  # answered at once, not after the wait
    record = redis_world.redis_record()
    assert record is not None and record["state"] == "completed"


def _leave_stale_hold(world: World, request_id: str, body: dict[str, Any]) -> None:
    """An in-progress Redis record whose request is over (its release was lost while
    Redis was down), with no live hold in the database."""
    assert world.redis is not None
    stale = {
        "op": world.operator.id,
        "state": "in_progress",
        "endpoint": "cashout",
        "fingerprint": fingerprint("cashout", body),
        "requestId": request_id,
        "createdAt": "2024-05-01T12:00:00+00:00",
    }
    world.redis.set(
        world.store.redis_key(world.operator.id, "cashback:inventory:88"),
        json.dumps(stale),
        px=int(LEASE_SECONDS * 1000),
    )


def test_a_stale_hold_of_a_released_request_does_not_block_its_retry(redis_world: World) -> None:
    """A refused request whose Redis release was lost: the retry re-evaluates at once."""
    _leave_stale_hold(redis_world, "req-refused", {"inventoryItemId": 88, "currency": None})

    again = Calls()
    answer = redis_world.guard().run(redis_world.request("req-2"), again)

    assert answer.outcome == "fresh" and again.count == 1
    assert redis_world.time.sleeps == []


def test_a_stale_hold_does_not_make_another_body_a_reused_key(redis_world: World) -> None:
    """The database holds nothing for the key: a different body is a new request."""
    _leave_stale_hold(redis_world, "req-refused", {"inventoryItemId": 88, "currency": "USD"})

    again = Calls()
    answer = redis_world.guard().run(redis_world.request("req-2"), again)

    assert answer.outcome == "fresh" and again.count == 1


def test_a_live_hold_still_makes_a_duplicate_wait(redis_world: World) -> None:
    guard = redis_world.guard()
    other = OtherWorker(guard, redis_world.request("req-1"), Calls())
    try:
        with pytest.raises(IdempotencyKeyInUse):
            guard.run(redis_world.request("req-2"), Calls())
    finally:
        other.finish()


def test_a_completed_answer_in_redis_is_replayed_without_touching_the_database(
    redis_world: World,
) -> None:
    guard = redis_world.guard()
    guard.run(redis_world.request("req-1"), Calls())
    opened = redis_world.uow_opened

    assert guard.run(redis_world.request("req-2"), Calls()).outcome == "replay"
    assert redis_world.uow_opened == opened


def test_the_redis_record_is_readable_by_a_human(redis_world: World) -> None:
    req = redis_world.request("req-1")
    redis_world.guard().run(req, Calls())

    record = redis_world.redis_record()
    assert record is not None
    assert record["op"] == redis_world.operator.id  # whose answer it is
    assert record["state"] == "completed"
    assert record["endpoint"] == "cashout"
    # The digest in base64url: the same sha256 as the request's hex fingerprint.
    digest = base64.urlsafe_b64decode(record["fingerprint"].removeprefix("sha256:") + "=")
    assert "sha256:" + digest.hex() == req.fingerprint
    assert record["status"] == 200
    assert record["body"] == BODY.decode()
    assert record["createdAt"] == "2024-05-01T12:00:00Z"
    # Who answered is kept by the database record, not in a week-long Redis value.
    assert "requestId" not in record
    with redis_world.harness.uow() as uow:
        durable = uow.idempotency.describe(redis_world.operator.id, req.key)
    assert durable is not None and durable.record.request_id == "req-1"


def test_a_key_reused_after_redis_lost_it_is_still_refused(redis_world: World) -> None:
    guard = redis_world.guard()
    guard.run(redis_world.request("req-1"), Calls())
    assert redis_world.redis is not None
    redis_world.redis.flushall()

    with pytest.raises(IdempotencyKeyReused):
        guard.run(redis_world.request("req-2", body={"other": True}), Calls())


# --- concurrent requests -------------------------------------------------------------------------


def test_a_concurrent_request_waits_briefly_then_is_told_the_key_is_in_use(world: World) -> None:
    guard = world.guard(wait_seconds=0.5)
    first = OtherWorker(guard, world.request("req-1"), Calls())
    second = Calls()
    try:
        with pytest.raises(IdempotencyKeyInUse) as in_use:
            guard.run(world.request("req-2"), second)
    finally:
        first.finish()

    assert second.count == 0
    assert in_use.value.retry_after_seconds >= 1
    assert 0.5 <= sum(world.time.sleeps) <= 0.5 + 0.05 + 1e-9  # bounded by wait_seconds
    assert first.result is not None
    assert first.result.outcome == "fresh"


def test_a_concurrent_request_replays_the_answer_when_the_first_finishes_in_time(
    world: World,
) -> None:
    guard = world.guard(wait_seconds=2.0)
    first = OtherWorker(guard, world.request("req-1"), Calls())
    world.time.on_sleep = first.finish

    second = Calls()
    answer = guard.run(world.request("req-2"), second)

    assert answer == GuardedResponse(200, BODY, "replay")
    assert second.count == 0
    assert len(world.time.sleeps) == 1


def test_a_concurrent_request_for_another_fingerprint_is_refused_at_once(world: World) -> None:
    guard = world.guard(wait_seconds=2.0)
    first = OtherWorker(guard, world.request("req-1"), Calls())
    try:
        with pytest.raises(IdempotencyKeyReused):
            guard.run(world.request("req-2", body={"other": True}), Calls())
    finally:
        first.finish()
    assert world.time.sleeps == []


def test_a_concurrent_request_runs_after_the_first_failed(world: World) -> None:
    guard = world.guard(wait_seconds=2.0)
    first = OtherWorker(guard, world.request("req-1"), Calls(status=503))
    world.time.on_sleep = first.finish

    second = Calls()
    assert guard.run(world.request("req-2"), second).outcome == "fresh"
    assert second.count == 1


def test_redis_flushed_while_a_request_runs_still_holds_the_key(redis_world: World) -> None:
    guard = redis_world.guard(wait_seconds=0.2)
    first = OtherWorker(guard, redis_world.request("req-1"), Calls())
    assert redis_world.redis is not None
    redis_world.redis.flushall()
    second = Calls()
    try:
        with pytest.raises(IdempotencyKeyInUse):
            guard.run(redis_world.request("req-2"), second)
    finally:
        first.finish()
    assert second.count == 0


def test_an_expired_lease_of_a_dead_worker_is_taken_over(world: World) -> None:
    dead = world.request("req-dead")
    now = world.harness.clock.now()
    if world.redis is not None:
        world.store.claim(
            world.operator.id,
            dead.key,
            IdempotencyRecord(
                "in_progress", dead.endpoint, dead.fingerprint, dead.request_id, now.isoformat()
            ),
            lease_seconds=0.01,
        )
    with world.harness.uow() as uow:
        claim = uow.idempotency.claim(
            operator_id=world.operator.id,
            key=dead.key,
            endpoint=dead.endpoint,
            fingerprint=dead.fingerprint,
            request_id=dead.request_id,
            now=now,
            lease_until=now + timedelta(seconds=LEASE_SECONDS),
        )
        uow.commit()
    assert claim.outcome == "claimed"
    guard = world.guard(wait_seconds=0.1)

    with pytest.raises(IdempotencyKeyInUse):  # the lease is still running
        guard.run(world.request("req-2"), Calls())

    time.sleep(0.02)  # the Redis lease (real time) is over
    world.harness.clock.advance(LEASE_SECONDS + 1)  # ... and the database lease
    successor = Calls()
    assert guard.run(world.request("req-3"), successor).outcome == "fresh"
    assert successor.count == 1

    # The dead worker waking up late cannot overwrite the stored answer.
    with world.harness.uow() as uow:
        late = uow.idempotency.complete(
            operator_id=world.operator.id,
            key=dead.key,
            lease_token=claim.lease_token,
            status=200,
            body="late",
            now=world.harness.clock.now(),
            expires_at=world.harness.clock.now(),
        )
        uow.commit()
    assert late is False
    assert guard.run(world.request("req-4"), Calls()) == GuardedResponse(200, BODY, "replay")
