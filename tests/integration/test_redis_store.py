"""RedisIdempotencyStore against fakeredis, the shared redis-server, and a private
redis-server that these tests stop, restart, flush and break."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from uuid import uuid4

import fakeredis
import pytest
import redis

from lootbox.idempotency.redis_clients import make_redis_client
from lootbox.idempotency.redis_store import RedisIdempotencyStore
from lootbox.ports import IdempotencyRecord, StoreUnavailable
from tests.redis_server import PrivateRedis, private_redis_server
from tests.services import redis_url

SCOPE = 7  # the operator id
KEY = "key-1"
ENDPOINT = "POST /v1/rounds"
CREATED_AT = "2024-05-01T12:00:00Z"
# A body with everything that must survive byte-for-byte: quotes, escapes, non-ASCII.
BODY = '{"roundId":"r-1","message":"Gl\\u00fcck \\"gro\\u00df\\"\\n","amountMinor":150}\n'


def in_progress(request_id: str = "req-1", fingerprint: str = "sha256:aaa") -> IdempotencyRecord:
    return IdempotencyRecord(
        state="in_progress",
        endpoint=ENDPOINT,
        fingerprint=fingerprint,
        request_id=request_id,
        created_at=CREATED_AT,
    )


def completed(request_id: str = "req-1", status: int = 201, body: str = BODY) -> IdempotencyRecord:
    return IdempotencyRecord(
        state="completed",
        endpoint=ENDPOINT,
        fingerprint="sha256:aaa",
        request_id=request_id,
        created_at=CREATED_AT,
        status=status,
        body=body,
    )


def replay_of(record: IdempotencyRecord) -> IdempotencyRecord:
    """A completed record as Redis gives it back: without the request that answered
    (the database keeps that), everything a replay uses unchanged."""
    return replace(record, request_id="")


@pytest.fixture(params=["fakeredis", pytest.param("redis-server", marks=pytest.mark.redis)])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    if request.param == "fakeredis":
        fake = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        yield fake
        fake.close()
    else:
        real = make_redis_client(redis_url())
        yield real
        real.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    # A unique prefix per test: the shared Redis is only ever touched through these keys.
    unique = f"lootbox:idem:test-{uuid4().hex}"
    yield unique
    leftovers = list(client.scan_iter(match=f"{unique}:*"))
    if leftovers:
        client.delete(*leftovers)


@pytest.fixture
def store(client: redis.Redis, prefix: str) -> RedisIdempotencyStore:
    return RedisIdempotencyStore(client, prefix=prefix)


def raw_json(client: redis.Redis, prefix: str, key: str = KEY) -> dict:
    raw = client.get(f"{prefix}:{SCOPE}:{key}")
    assert raw is not None, "no value stored"
    return json.loads(raw)


# --- claim -------------------------------------------------------------------------------


def test_claim_on_an_empty_key_owns_it_and_stores_readable_json(store, client, prefix):
    record = in_progress()
    record.extra["operatorId"] = 3

    assert store.claim(SCOPE, KEY, record, lease_seconds=30) is None

    assert store.redis_key(SCOPE, KEY) == f"{prefix}:{SCOPE}:{KEY}"
    assert raw_json(client, prefix) == {
        "op": SCOPE,
        "state": "in_progress",
        "endpoint": ENDPOINT,
        "fingerprint": "sha256:aaa",
        "requestId": "req-1",
        "createdAt": CREATED_AT,
        "operatorId": 3,
    }
    assert 0 < client.pttl(f"{prefix}:{SCOPE}:{KEY}") <= 30_000


def test_second_claim_returns_the_existing_record(store):
    first = in_progress("req-1", fingerprint="sha256:first")
    first.extra["note"] = "kept"
    assert store.claim(SCOPE, KEY, first, lease_seconds=30) is None

    existing = store.claim(SCOPE, KEY, in_progress("req-2", "sha256:second"), lease_seconds=30)

    assert existing == first
    assert existing.fingerprint == "sha256:first"
    assert existing.request_id == "req-1"
    assert existing.extra == {"note": "kept"}


def test_claim_by_the_owning_request_again_still_owns_it(store):
    assert store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30) is None
    assert store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30) is None


def test_claim_after_the_lease_expires_succeeds_again(store, client, prefix):
    assert store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=0.2) is None
    assert store.claim(SCOPE, KEY, in_progress("req-2"), lease_seconds=0.2) is not None

    time.sleep(0.3)

    assert store.claim(SCOPE, KEY, in_progress("req-2"), lease_seconds=30) is None
    assert raw_json(client, prefix)["requestId"] == "req-2"


def test_claim_returns_a_completed_record_for_replay(store):
    store.complete(SCOPE, KEY, completed("req-1"), ttl_seconds=60)

    existing = store.claim(SCOPE, KEY, in_progress("req-2"), lease_seconds=30)

    assert existing == replay_of(completed("req-1"))


def test_keys_are_scoped_per_operator(store):
    assert store.claim(1, KEY, in_progress("req-1"), lease_seconds=30) is None
    assert store.claim(2, KEY, in_progress("req-2"), lease_seconds=30) is None


def test_no_two_operators_and_keys_share_a_redis_key(store):
    # With slugs in the key, operator "opa:cashback" + key "inventory:21" and operator
    # "opa" + key "cashback:inventory:21" were one Redis key. Ids hold no ":".
    assert store.redis_key(1, "2:k") != store.redis_key(12, "k")
    assert store.redis_key(1, "2:k") == f"{store.redis_key(1, '')}2:k"


def test_another_operators_completed_record_is_never_replayed(store, client, prefix):
    store.complete(SCOPE, KEY, completed("req-1"), ttl_seconds=60)
    foreign = client.get(f"{prefix}:{SCOPE}:{KEY}")
    client.set(f"{prefix}:{SCOPE + 1}:{KEY}", foreign)  # as if the key had been shared

    assert store.get(SCOPE + 1, KEY) is None
    with pytest.raises(StoreUnavailable):  # not an answer: the database decides
        store.claim(SCOPE + 1, KEY, in_progress("req-2"), lease_seconds=30)


def test_a_record_that_names_no_operator_is_treated_as_absent(store, client, prefix):
    # Written before records named their operator: whoever it was, it is not replayed.
    unnamed = {
        "state": "completed",
        "endpoint": ENDPOINT,
        "fingerprint": "sha256:aaa",
        "createdAt": CREATED_AT,
        "status": 200,
        "body": BODY,
    }
    client.set(f"{prefix}:{SCOPE}:{KEY}", json.dumps(unnamed))

    assert store.get(SCOPE, KEY) is None


def test_concurrent_claims_have_exactly_one_owner(store):
    threads = 20
    barrier = threading.Barrier(threads)
    results: dict[str, IdempotencyRecord | None] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        request_id = f"req-{n}"
        try:
            barrier.wait(timeout=5)
            results[request_id] = store.claim(SCOPE, KEY, in_progress(request_id), 30)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=10)

    assert not errors
    owners = [rid for rid, existing in results.items() if existing is None]
    assert len(results) == threads
    assert len(owners) == 1
    assert {existing.request_id for existing in results.values() if existing} == set(owners)


# --- get / complete ----------------------------------------------------------------------


def test_get_of_a_missing_key_is_none(store):
    assert store.get(SCOPE, KEY) is None


def test_complete_then_get_replays_status_and_body_exactly(store, client, prefix):
    assert store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30) is None

    store.complete(SCOPE, KEY, completed("req-1", status=201), ttl_seconds=3600)

    got = store.get(SCOPE, KEY)
    assert got is not None
    assert got.state == "completed"
    assert got.status == 201
    assert got.body == BODY
    assert got == replay_of(completed("req-1", status=201))
    assert raw_json(client, prefix)["state"] == "completed"
    assert raw_json(client, prefix)["body"] == BODY
    assert 3_590_000 < client.pttl(f"{prefix}:{SCOPE}:{KEY}") <= 3_600_000


BODIES = ["", "plain text", "\u00e9\u4e2d\U0001f600", "lone \ud800 surrogate"]


@pytest.mark.parametrize("body", BODIES)
def test_any_body_text_round_trips(store, body):
    store.complete(SCOPE, KEY, completed(body=body), ttl_seconds=60)
    got = store.get(SCOPE, KEY)
    assert got is not None
    assert got.body == body


def test_complete_refuses_an_in_progress_record(store):
    with pytest.raises(ValueError):
        store.complete(SCOPE, KEY, in_progress(), ttl_seconds=60)


def test_get_tolerates_unknown_and_missing_optional_fields(store, client, prefix):
    client.set(
        f"{prefix}:{SCOPE}:{KEY}",
        json.dumps(
            {
                "op": SCOPE,
                "state": "in_progress",
                "endpoint": ENDPOINT,
                "fingerprint": "sha256:aaa",
                "requestId": "req-9",
                "createdAt": CREATED_AT,
                "walletKey": "w-1",
            }
        ),
    )

    got = store.get(SCOPE, KEY)

    assert got == IdempotencyRecord(
        state="in_progress",
        endpoint=ENDPOINT,
        fingerprint="sha256:aaa",
        request_id="req-9",
        created_at=CREATED_AT,
        extra={"walletKey": "w-1"},
    )


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"state": "done", "endpoint": "e", "fingerprint": "f", "requestId": "r", '
        b'"createdAt": "c"}',
        b'{"state": "in_progress", "endpoint": "e", "fingerprint": "f", "createdAt": "c"}',
    ],
    ids=["not-json", "not-utf8", "not-object", "unknown-state", "in-progress-without-owner"],
)
def test_an_unreadable_value_is_treated_as_absent_and_logged(store, client, prefix, value, caplog):
    client.set(f"{prefix}:{SCOPE}:{KEY}", value)

    with caplog.at_level(logging.WARNING, logger="lootbox.idempotency.redis_store"):
        assert store.get(SCOPE, KEY) is None
    assert f"{prefix}:{SCOPE}:{KEY}" in caplog.text

    # ... and a claim takes the key over instead of being blocked by garbage.
    assert store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30) is None
    assert raw_json(client, prefix)["requestId"] == "req-1"


# --- release -----------------------------------------------------------------------------


def test_release_by_the_owner_deletes_the_record(store, client, prefix):
    store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30)

    store.release(SCOPE, KEY, "req-1")

    assert client.exists(f"{prefix}:{SCOPE}:{KEY}") == 0
    assert store.claim(SCOPE, KEY, in_progress("req-2"), lease_seconds=30) is None


def test_release_by_another_request_keeps_the_record(store, client, prefix):
    store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30)

    store.release(SCOPE, KEY, "req-2")

    assert raw_json(client, prefix)["requestId"] == "req-1"


def test_release_keeps_a_completed_record(store, client, prefix):
    store.complete(SCOPE, KEY, completed("req-1"), ttl_seconds=60)

    store.release(SCOPE, KEY, "req-1")

    assert raw_json(client, prefix)["state"] == "completed"


def test_release_of_a_missing_key_does_nothing(store, client, prefix):
    store.release(SCOPE, KEY, "req-1")
    assert client.exists(f"{prefix}:{SCOPE}:{KEY}") == 0


# --- make_redis_client -------------------------------------------------------------------


def test_without_a_url_there_is_no_client_and_the_error_says_what_to_do():
    for missing in ("", None):
        with pytest.raises(ValueError, match="REDIS_URL is not set"):
            make_redis_client(missing)  # type: ignore[arg-type]


@pytest.mark.redis
def test_with_a_url_the_client_is_real_and_fails_fast():
    client = make_redis_client(redis_url(), socket_timeout=0.25, connect_timeout=0.3)
    try:
        assert client.ping()
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.25
        assert kwargs["socket_connect_timeout"] == 0.3
        assert kwargs["health_check_interval"] == 30
        assert kwargs["retry"].get_retries() == 1
    finally:
        client.close()


# --- failures ----------------------------------------------------------------------------


def every_operation_is_unavailable(store: RedisIdempotencyStore) -> None:
    operations = {
        "claim": lambda: store.claim(SCOPE, KEY, in_progress(), lease_seconds=30),
        "get": lambda: store.get(SCOPE, KEY),
        "complete": lambda: store.complete(SCOPE, KEY, completed(), ttl_seconds=60),
        "release": lambda: store.release(SCOPE, KEY, "req-1"),
    }
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            operation()
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"{name} took {elapsed:.2f}s to give up"
        assert isinstance(caught.value.__cause__, redis.exceptions.RedisError), name


def test_a_disconnected_fakeredis_is_unavailable():
    server = fakeredis.FakeServer()
    store = RedisIdempotencyStore(fakeredis.FakeRedis(server=server))
    server.connected = False
    every_operation_is_unavailable(store)
    server.connected = True
    assert store.claim(SCOPE, KEY, in_progress(), lease_seconds=30) is None


@pytest.fixture
def private() -> Iterator[tuple[PrivateRedis, redis.Redis, RedisIdempotencyStore]]:
    with private_redis_server() as server:
        client = make_redis_client(server.url)
        try:
            yield server, client, RedisIdempotencyStore(client)
        finally:
            client.close()


@pytest.mark.redis
def test_a_stopped_redis_is_unavailable_and_the_same_client_recovers(private):
    server, _, store = private
    assert store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30) is None  # pooled

    server.stop()
    every_operation_is_unavailable(store)
    every_operation_is_unavailable(store)  # still down: no cached state makes it worse

    server.start()  # same port, empty data, empty script cache
    assert store.get(SCOPE, KEY) is None
    assert store.claim(SCOPE, KEY, in_progress("req-2"), lease_seconds=30) is None
    store.complete(SCOPE, KEY, completed("req-2"), ttl_seconds=60)
    assert store.get(SCOPE, KEY) == replay_of(completed("req-2"))
    store.release(SCOPE, KEY, "req-2")


@pytest.mark.redis
def test_a_restart_while_idle_costs_no_request_its_fast_path(private):
    server, _, store = private
    assert store.claim(SCOPE, KEY, in_progress("req-1"), lease_seconds=30) is None
    old_pid = server.pid

    server.stop()
    server.start()
    assert server.pid != old_pid

    # The pooled socket died with the old process, and the new one has an empty script
    # cache: the first call after the restart must still reconnect and re-load the script.
    assert store.claim(SCOPE, KEY, in_progress("req-2"), lease_seconds=30) is None


@pytest.mark.redis
def test_a_flushed_redis_has_forgotten_everything(private):
    _, client, store = private
    store.complete(SCOPE, KEY, completed(), ttl_seconds=60)

    client.flushall()  # the private server only

    assert store.get(SCOPE, KEY) is None
    assert store.claim(SCOPE, KEY, in_progress("req-2"), lease_seconds=30) is None


@pytest.mark.redis
def test_a_redis_out_of_memory_is_unavailable(private):
    _, client, store = private
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        with pytest.raises(StoreUnavailable):
            store.claim(SCOPE, KEY, in_progress(), lease_seconds=30)
        with pytest.raises(StoreUnavailable):
            store.complete(SCOPE, KEY, completed(), ttl_seconds=60)
    finally:
        client.config_set("maxmemory", "0")


@pytest.mark.redis
def test_a_read_only_replica_is_unavailable(private):
    _, client, store = private
    with private_redis_server() as primary:
        # Replicate from another private server we own: writes are then refused (READONLY).
        client.replicaof("127.0.0.1", primary.port)
        try:
            with pytest.raises(StoreUnavailable) as caught:
                store.complete(SCOPE, KEY, completed(), ttl_seconds=60)
            assert isinstance(caught.value.__cause__, redis.exceptions.ReadOnlyError)
            with pytest.raises(StoreUnavailable):
                store.claim(SCOPE, KEY, in_progress(), lease_seconds=30)
        finally:
            client.replicaof("NO", "ONE")


# --- the compact completed record (docs/benchmarks.md: Redis memory per record) -----------

FULL_FINGERPRINT = "sha256:" + "a663aabae2ec80d2646bcc204a992fbf981695875c600874cc66576d126328d6"
CASHOUT_BODY = (
    '{"balanceAfterMinor":1000000000001050,"item":{"cashbackMinor":350,"currency":"EUR",'
    '"inventoryItemId":2768,"state":"cashed_back"}}\n'
)
# A cashout's answer as the guard completes it, as long as real ones are.
CASHOUT_ANSWER = IdempotencyRecord(
    state="completed",
    endpoint="cashout",
    fingerprint=FULL_FINGERPRINT,
    request_id="7820870c083e49c79fe84c49f3d4dd7e",
    created_at="2026-11-22T00:37:45.559848+00:00",
    status=200,
    body=CASHOUT_BODY,
)


def test_a_completed_record_is_stored_compactly_and_read_back_whole(store, client, prefix):
    answer = CASHOUT_ANSWER

    store.complete(SCOPE, KEY, answer, ttl_seconds=3600)

    stored = raw_json(client, prefix)
    assert stored == {
        "op": SCOPE,
        "state": "completed",
        "endpoint": "cashout",
        "fingerprint": "sha256:pmOquuLsgNJka8wgSpkvv5gWlYdcYAh0zGZXbRJjKNY",
        "createdAt": "2026-11-22T00:37:45Z",
        "status": 200,
        "body": CASHOUT_BODY,
    }
    # What the replay compares and sends is unchanged; only who answered is not kept
    # here (the database record keeps it).
    assert store.get(SCOPE, KEY) == replace(
        answer, request_id="", created_at="2026-11-22T00:37:45Z"
    )


def test_a_completed_cashout_record_stays_under_the_memory_target(store, client, prefix):
    """At most 512 bytes of Redis memory per completed record. The value must stay within
    jemalloc's 384-byte class: with the key and Redis's own entries that is about 472
    bytes (MEMORY USAGE of ``lootbox:idem:7:cashback:inventory:2768`` on redis 7). The
    operator id in the value (tenant isolation) moved it up from the 320-byte class."""
    answer = CASHOUT_ANSWER

    store.complete(12345, "cashback:inventory:2768", answer, ttl_seconds=3600)

    value = client.get(f"{prefix}:12345:cashback:inventory:2768")
    assert len(value) <= 381  # + sds header = the 384-byte allocation


def test_a_record_in_the_older_long_form_is_still_read(store, client, prefix):
    client.set(
        f"{prefix}:{SCOPE}:{KEY}",
        json.dumps(
            {
                "op": SCOPE,
                "state": "completed",
                "endpoint": "cashout",
                "fingerprint": FULL_FINGERPRINT,
                "requestId": "req-old",
                "createdAt": "2026-11-22T00:37:45.559848+00:00",
                "status": 200,
                "body": CASHOUT_BODY,
            }
        ),
    )

    got = store.get(SCOPE, KEY)

    assert got is not None
    assert (got.fingerprint, got.request_id, got.body) == (
        FULL_FINGERPRINT,
        "req-old",
        CASHOUT_BODY,
    )
