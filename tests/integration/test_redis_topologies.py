"""RedisIdempotencyStore on Redis beyond one server, each started here on 127.0.0.1: a Redis
Cluster of three primaries (the claim and release scripts on every node's slots, the
commands each node executed counted by the node itself, a plain ``redis://`` client at one
of its nodes refused), and a primary found through Sentinels."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
import redis
from redis.crc import key_slot
from redis.exceptions import TimeoutError as RedisTimeoutError

from lootbox.idempotency.availability import describe
from lootbox.idempotency.redis_clients import (
    ClusterNodeRefused,
    LazyRedisCluster,
    make_redis_client,
)
from lootbox.idempotency.redis_store import RedisIdempotencyStore
from lootbox.observability import metrics
from lootbox.ports import IdempotencyRecord, StoreUnavailable
from tests.processes import free_port
from tests.redis_server import private_redis_server
from tests.redis_topologies import (
    RedisClusterNodes,
    SentinelGroup,
    redis_cluster,
    require_redis_binaries,
    sentinel_group,
)

pytestmark = pytest.mark.redis

SCOPE = 7  # the operator id
ENDPOINT = "POST /api/s2s/cashout"
CREATED_AT = "2024-05-01T12:00:00Z"
BODY = '{"item":{"cashbackMinor":320},"message":"Gl\\u00fcck"}'
REFUSAL = "REDIS_URL points at a Redis Cluster node: use redis+cluster://127.0.0.1:{port}"


def in_progress(request_id: str) -> IdempotencyRecord:
    return IdempotencyRecord(
        state="in_progress",
        endpoint=ENDPOINT,
        fingerprint="sha256:aaa",
        request_id=request_id,
        created_at=CREATED_AT,
    )


def completed(request_id: str) -> IdempotencyRecord:
    return IdempotencyRecord(
        state="completed",
        endpoint=ENDPOINT,
        fingerprint="sha256:aaa",
        request_id=request_id,
        created_at=CREATED_AT,
        status=200,
        body=BODY,
    )


def counter(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def executed(port: int) -> Counter[str]:
    """The commands the server on ``port`` has executed so far, by name (``evalsha``,
    ``script|load``): its own ``INFO commandstats``, a script's inner commands included."""
    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) as client:
        stats = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def executed_on(cluster: RedisClusterNodes, command: str) -> dict[int, int]:
    """How many times each node has executed ``command``, by port."""
    return {node.port: executed(node.port)[command] for node in cluster.nodes}


def delta(after: dict[int, int], before: dict[int, int]) -> dict[int, int]:
    return {port: after[port] - before[port] for port in after}


def every_operation_is_unavailable(store: RedisIdempotencyStore) -> list[StoreUnavailable]:
    """Each operation raises ``StoreUnavailable`` within a second; what they raised."""
    operations: dict[str, Callable[[], Any]] = {
        "claim": lambda: store.claim(SCOPE, "k", in_progress("r"), lease_seconds=30),
        "get": lambda: store.get(SCOPE, "k"),
        "complete": lambda: store.complete(SCOPE, "k", completed("r"), ttl_seconds=60),
        "release": lambda: store.release(SCOPE, "k", "r"),
    }
    raised = []
    for name, operation in operations.items():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            operation()
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"{name} took {elapsed:.2f}s to give up"
        raised.append(caught.value)
    return raised


# --- Redis Cluster --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with redis_cluster() as nodes:
        yield nodes


@pytest.fixture
def cluster_store(cluster: RedisClusterNodes) -> Iterator[RedisIdempotencyStore]:
    client = make_redis_client(cluster.url)
    try:
        yield RedisIdempotencyStore(client, prefix=f"lootbox:idem:t-{uuid4().hex[:12]}")
    finally:
        client.close()


def keys_on_every_node(
    cluster: RedisClusterNodes, store: RedisIdempotencyStore, per_node: int = 2
) -> dict[str, int]:
    """Idempotency keys whose Redis keys fall in each node's slots: key -> node's port."""
    owners = cluster.slot_owners()
    found: dict[str, int] = {}
    counts = dict.fromkeys((n.port for n in cluster.nodes), 0)
    n = 0
    while min(counts.values()) < per_node:
        key = f"key-{n}"
        port = owners[key_slot(store.redis_key(SCOPE, key).encode())].port
        if counts[port] < per_node:
            counts[port] += 1
            found[key] = port
        n += 1
    return found


def stored_on(cluster: RedisClusterNodes, port: int, name: str) -> dict[str, Any] | None:
    """The record at ``name`` as the node itself holds it (a plain client of that node)."""
    (node,) = [n for n in cluster.nodes if n.port == port]
    with cluster.client_of(node) as client:
        raw = client.get(name)
    return None if raw is None else dict(json.loads(raw))


def test_claim_and_release_scripts_work_on_every_nodes_slots(
    cluster: RedisClusterNodes, cluster_store: RedisIdempotencyStore
) -> None:
    store = cluster_store
    keys = keys_on_every_node(cluster, store)
    assert set(keys.values()) == {n.port for n in cluster.nodes}

    for key, port in keys.items():
        name = store.redis_key(SCOPE, key)
        assert store.claim(SCOPE, key, in_progress("first"), lease_seconds=30) is None
        held = store.claim(SCOPE, key, in_progress("second"), lease_seconds=30)
        assert held is not None and held.request_id == "first", key
        store.release(SCOPE, key, "second")  # not its claim: kept
        assert stored_on(cluster, port, name) == json.loads(
            f'{{"op":{SCOPE},"state":"in_progress","endpoint":"{ENDPOINT}",'
            f'"fingerprint":"sha256:aaa","createdAt":"{CREATED_AT}","requestId":"first"}}'
        )
        store.release(SCOPE, key, "first")
        assert stored_on(cluster, port, name) is None
        assert store.claim(SCOPE, key, in_progress("second"), lease_seconds=30) is None
        store.complete(SCOPE, key, completed("second"), ttl_seconds=60)
        again = store.claim(SCOPE, key, in_progress("third"), lease_seconds=30)
        assert again is not None and again.state == "completed" and again.body == BODY
        record = stored_on(cluster, port, name)
        assert record is not None and record["state"] == "completed"


def test_a_script_call_is_one_evalsha_on_its_node_and_a_flushed_script_cache_is_refilled(
    cluster: RedisClusterNodes, cluster_store: RedisIdempotencyStore
) -> None:
    store = cluster_store
    keys = keys_on_every_node(cluster, store, per_node=1)
    (first, second, *others) = keys
    # Reads the layout, and loads both scripts on every primary if no test did before.
    store.claim(SCOPE, "warm-up", in_progress("r"), lease_seconds=30)
    store.release(SCOPE, "warm-up", "r")

    before = executed_on(cluster, "evalsha")
    store.claim(SCOPE, first, in_progress("r"), lease_seconds=30)
    store.release(SCOPE, first, "r")
    assert delta(executed_on(cluster, "evalsha"), before) == {
        port: 2 if port == keys[first] else 0 for port in before
    }

    for node in cluster.nodes:  # as after a restart of every node
        with cluster.client_of(node) as client:
            client.script_flush()
    errors = counter("lootbox_redis_errors_total", kind="other")
    before, loads = executed_on(cluster, "evalsha"), executed_on(cluster, "script|load")
    # EVALSHA (NOSCRIPT), SCRIPT LOAD on every primary, EVALSHA.
    assert store.claim(SCOPE, second, in_progress("r"), lease_seconds=30) is None
    assert delta(executed_on(cluster, "evalsha"), before) == {
        port: 2 if port == keys[second] else 0 for port in before
    }
    assert set(delta(executed_on(cluster, "script|load"), loads).values()) == {1}
    for key in others:  # loaded on every primary, so every node's keys work at once
        before = executed_on(cluster, "evalsha")
        assert store.claim(SCOPE, key, in_progress("r"), lease_seconds=30) is None
        assert delta(executed_on(cluster, "evalsha"), before) == {
            port: 1 if port == keys[key] else 0 for port in before
        }
    assert counter("lootbox_redis_errors_total", kind="other") == errors


def test_the_cluster_client_gives_up_as_quickly_as_the_single_server_client(
    cluster: RedisClusterNodes,
) -> None:
    client = make_redis_client(cluster.url)
    assert isinstance(client, LazyRedisCluster)
    try:
        assert client.ping()
        real = client.cluster()
        assert len(real.get_nodes()) == len(cluster.nodes)  # learnt from the first one
        for node in real.get_nodes():
            assert node.redis_connection is not None
            kwargs = node.redis_connection.connection_pool.connection_kwargs
            assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.5, 0.5)
            assert kwargs["decode_responses"] is False
        # One retry, after reading the layout again; never after a timeout.
        assert real.retry.get_retries() == 1
        assert RedisTimeoutError not in real.ERRORS_ALLOW_RETRY
    finally:
        client.close()


def test_a_cluster_client_connects_on_first_use_and_gives_up_quickly_without_a_cluster() -> None:
    client = make_redis_client(f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}")
    store = RedisIdempotencyStore(client)  # made, scripts registered: nothing connected

    for raised in every_operation_is_unavailable(store):
        assert "Redis Cluster cannot be connected" in str(raised)
        assert describe(raised).startswith("ConnectionRefusedError")


def test_a_cluster_url_at_a_single_server_says_it_has_no_cluster_mode() -> None:
    require_redis_binaries()
    with private_redis_server() as server:
        client = make_redis_client(f"redis+cluster://127.0.0.1:{server.port}")
        store = RedisIdempotencyStore(client)

        for raised in every_operation_is_unavailable(store):
            assert "cluster support disabled" in describe(raised), describe(raised)


def test_a_redis_url_at_a_cluster_node_refuses_every_command_and_says_what_to_use(
    cluster: RedisClusterNodes, caplog: pytest.LogCaptureFixture
) -> None:
    node = cluster.nodes[0]
    client = make_redis_client(f"redis://127.0.0.1:{node.port}/0")
    prefix = f"lootbox:idem:t-{uuid4().hex[:12]}"
    store = RedisIdempotencyStore(client, prefix=prefix)
    caplog.set_level(logging.INFO, logger="lootbox")
    commands, errors = executed(node.port), counter("lootbox_redis_errors_total", kind="other")

    raised = every_operation_is_unavailable(store) + every_operation_is_unavailable(store)

    refusal = REFUSAL.format(port=node.port)
    for exc in raised:
        assert isinstance(exc.__cause__, ClusterNodeRefused)
        assert describe(exc).startswith(f"ClusterNodeRefused: {refusal}")
    with pytest.raises(ClusterNodeRefused, match="use redis"):
        client.ping()  # what /readyz and /metrics send
    sent = executed(node.port) - commands
    # Connection set-up (HELLO, CLIENT SETINFO, a health-check PING) and the check itself
    # (INFO) at most: not one of the store's commands reached the node.
    assert not {"evalsha", "eval", "script|load", "get", "set", "del"} & set(sent), sent
    assert counter("lootbox_redis_errors_total", kind="other") - errors == 9
    for each in cluster.nodes:  # not one key written on any node
        with cluster.client_of(each) as plain:
            assert list(plain.scan_iter(match=f"{prefix}:*")) == []
    (logged,) = [r for r in caplog.records if r.levelno == logging.ERROR]  # once per client
    assert logged.getMessage().startswith(refusal)


# --- Sentinel -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelGroup]:
    with sentinel_group(sentinels=1) as group:
        yield group


def test_a_sentinel_client_finds_the_primary_past_a_sentinel_that_is_down(
    sentinels: SentinelGroup,
) -> None:
    client = make_redis_client(sentinels.url(unreachable_first=free_port()))
    store = RedisIdempotencyStore(client, prefix=f"lootbox:idem:t-{uuid4().hex[:12]}")
    try:
        assert store.claim(SCOPE, "k", in_progress("r"), lease_seconds=30) is None
        before = executed(sentinels.primary.port)
        store.complete(SCOPE, "k", completed("r"), ttl_seconds=60)
        replayed = store.get(SCOPE, "k")
        sent = executed(sentinels.primary.port) - before
        # One SET and one GET reached the primary: the Sentinels were only asked where it is.
        assert (sent["set"], sent["get"]) == (1, 1)

        with sentinels.primary.client() as primary:
            raw = primary.get(store.redis_key(SCOPE, "k"))
        assert raw is not None and json.loads(raw)["state"] == "completed"
        assert replayed == IdempotencyRecord(
            state="completed",
            endpoint=ENDPOINT,
            fingerprint="sha256:aaa",
            request_id="",
            created_at=CREATED_AT,
            status=200,
            body=BODY,
        )
    finally:
        client.close()


def test_a_sentinel_client_without_any_sentinel_gives_up_quickly() -> None:
    client = make_redis_client(
        f"redis+sentinel://127.0.0.1:{free_port()},127.0.0.1:{free_port()}/lootbox"
    )
    store = RedisIdempotencyStore(client)

    for raised in every_operation_is_unavailable(store):
        assert "No master found for 'lootbox'" in str(raised)
