"""The app on Redis beyond one server, over HTTP: a primary found through Sentinels (a
cashout storm, then the primary killed in the middle of traffic) and a Redis Cluster of
three primaries (a storm with keys on every node, and a plain ``redis://`` URL at one of
its nodes). PostgreSQL and the reference wallet as everywhere in e2e; every redis-server
and Sentinel is started here on 127.0.0.1 and stopped by its PID. The wallet's own record
of credits is what counts money."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    PLAYER,
    Reply,
    SignedClient,
    StackConfig,
    WalletAdmin,
    World,
    WorldFactory,
)
from tests.processes import free_port
from tests.redis_topologies import (
    RedisClusterNodes,
    SentinelGroup,
    redis_cluster,
    sentinel_group,
)

pytestmark = pytest.mark.redis

CALL_TIMEOUT = 30.0  # seconds, for any one batch of concurrent calls
FAST_PATH_DOWN = "redis unavailable, idempotency falls back to the database"
FAST_PATH_BACK = "redis answers again"
REFUSAL = "REDIS_URL points at a Redis Cluster node: use redis+cluster://127.0.0.1:{port}"


@pytest.fixture
def world_on(
    postgres_db: str, wallet: WalletAdmin, tmp_path: Path
) -> Iterator[Callable[..., World]]:
    """A world on PostgreSQL whose ``REDIS_URL`` is the given one."""
    with ExitStack() as exit_stack:
        factories: list[WorldFactory] = []

        def build(redis_url: str, **overrides: Any) -> World:
            stack = StackConfig("postgresql-redis", postgres_db, redis_url)
            factory = WorldFactory(stack, wallet, tmp_path, exit_stack)
            factories.append(factory)
            # Duplicates wait for the first answer rather than hear 409 at once.
            return factory(idempotency_wait_seconds=3, database_pool_size=10, **overrides)

        try:
            yield build
        finally:
            for factory in factories:
                factory.close()


def at_once(calls: Sequence[Callable[[], Reply]]) -> list[Reply]:
    """Every call at the same moment (released by a barrier), each in its own thread."""
    barrier = threading.Barrier(len(calls), timeout=CALL_TIMEOUT)

    def run(call: Callable[[], Reply]) -> Reply:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=CALL_TIMEOUT) for future in futures]


def cashout(world: World, item_id: int, key: str) -> Callable[[], Reply]:
    client = SignedClient(world.app, world.operator)  # a client per caller
    return lambda: client.cashout(
        playerExternalId=PLAYER, inventoryItemId=item_id, idempotencyKey=key
    )


def storm(world: World, item_id: int, key: str, callers: int) -> list[Reply]:
    """``callers`` identical cashouts of one item, with one key, at once."""
    return at_once([cashout(world, item_id, key) for _ in range(callers)])


def one_answer(replies: Sequence[Reply]) -> Reply:
    """Identical concurrent requests: each got the answer or was told the key is in use
    (409 with Retry-After), and every 200 is the same bytes. Returns a 200."""
    seen = [(r.status, r.code if r.status != 200 else None) for r in replies]
    assert set(seen) <= {(200, None), (409, "IDEMPOTENCY_KEY_IN_USE")}, seen
    oks = [r for r in replies if r.status == 200]
    assert oks, seen
    assert len({r.data for r in oks}) == 1, "every 200 must be the same answer, byte for byte"
    return oks[0]


def credits_of(world: World, item_id: int) -> list[dict[str, Any]]:
    """The wallet's own record of credits for one item."""
    return world.wallet.credits(inventoryItemId=item_id)


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name.startswith(logger)]


# --- Sentinel -------------------------------------------------------------------------------


@pytest.fixture
def sentinels() -> Iterator[SentinelGroup]:
    with sentinel_group(sentinels=3) as group:
        yield group


def record_in(server: Any, world: World, key: str) -> dict[str, Any] | None:
    """The idempotency record of ``key`` as ``server`` (a redis-server of ours) holds it."""
    with server.client() as client:
        raw = client.get(world.redis_key(key))
    return None if raw is None else dict(json.loads(raw))


def test_a_cashout_storm_through_sentinels_credits_once_and_is_kept_by_the_primary(
    sentinels: SentinelGroup, world_on: Callable[..., World]
) -> None:
    # The first Sentinel listed is down: the client asks the next.
    world = world_on(sentinels.url(unreachable_first=free_port()))
    item_id = world.win_item()["inventoryItemId"]

    answer = one_answer(storm(world, item_id, "storm-1", callers=20))

    assert answer.json["item"]["inventoryItemId"] == item_id
    (credit,) = credits_of(world, item_id)
    assert credit["amountMinor"] == answer.json["item"]["cashbackMinor"]
    stored = record_in(sentinels.primary, world, "storm-1")
    assert stored is not None and stored["state"] == "completed"
    assert stored["body"] == answer.data.decode()
    replay = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item_id, idempotencyKey="storm-1"
    )
    assert replay.replayed and replay.data == answer.data
    assert len(credits_of(world, item_id)) == 1


def test_a_sentinel_failover_is_served_by_the_database_until_the_new_primary_takes_over(
    sentinels: SentinelGroup, world_on: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    world = world_on(sentinels.url())
    caplog.set_level(logging.INFO, logger="lootbox.idempotency")
    before = world.win_item()["inventoryItemId"]
    one_answer(storm(world, before, "before", callers=5))
    assert record_in(sentinels.primary, world, "before") is not None  # the fast path works
    new_primary = sentinels.replica

    os.kill(sentinels.primary.pid or 0, signal.SIGKILL)  # the primary crashes
    sentinels.primary.stop()  # reaps it
    rounds: list[tuple[int, str, Reply, float]] = []
    deadline = time.monotonic() + 40
    while True:  # traffic goes on: an item won, then a storm of cashouts of it
        item_id = world.win_item()["inventoryItemId"]
        key = f"failover-{len(rounds)}"
        started = time.monotonic()
        answer = one_answer(storm(world, item_id, key, callers=5))
        rounds.append((item_id, key, answer, time.monotonic() - started))
        if record_in(new_primary, world, key) is not None:
            break  # the fast path is back, on the new primary
        assert time.monotonic() < deadline, "the fast path did not come back within 40 s"

    sentinels.wait_for_promotion(timeout=5)  # every Sentinel names the replica
    for item_id, _, answer, _ in rounds:
        assert answer.json["item"]["inventoryItemId"] == item_id
        assert len(credits_of(world, item_id)) == 1, item_id
    during = [
        (key, answer) for _, key, answer, _ in rounds if not record_in(new_primary, world, key)
    ]
    assert during, "no request ran while Redis was away"
    assert max(seconds for *_, seconds in rounds) < 5.0, rounds  # no one waited for Redis
    logged = messages(caplog, "lootbox.idempotency")
    (down,) = [n for n, (_, text) in enumerate(logged) if text.startswith(FAST_PATH_DOWN)]
    (back,) = [n for n, (_, text) in enumerate(logged) if text.startswith(FAST_PATH_BACK)]
    assert logged[down][0] == logging.WARNING and logged[back][0] == logging.INFO
    assert down < back
    # An answer given while Redis was away replays, and is then kept by the new primary.
    key, answer = during[0]
    item_id = next(i for i, k, *_ in rounds if k == key)
    replay = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item_id, idempotencyKey=key)
    assert replay.replayed and replay.data == answer.data
    stored = record_in(new_primary, world, key)
    assert stored is not None and stored["body"] == answer.data.decode()
    assert len(credits_of(world, item_id)) == 1


# --- Redis Cluster --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterNodes]:
    with redis_cluster() as nodes:
        yield nodes


def test_a_cashout_storm_on_a_redis_cluster_credits_once_per_item_with_keys_on_every_node(
    cluster: RedisClusterNodes, world_on: Callable[..., World]
) -> None:
    world = world_on(cluster.url)
    keys: dict[str, int] = {}  # idempotency key -> the port of the node that holds it
    for n in range(1000):
        port = cluster.node_for(world.redis_key(f"storm-{n}")).port
        if list(keys.values()).count(port) < 2:
            keys[f"storm-{n}"] = port
        if len(keys) == 2 * len(cluster.nodes):
            break
    items = {key: world.win_item()["inventoryItemId"] for key in keys}

    replies = at_once([cashout(world, items[key], key) for key in keys for _ in range(6)])

    answers = {key: one_answer(replies[6 * n : 6 * n + 6]) for n, key in enumerate(keys)}
    assert set(keys.values()) == {node.port for node in cluster.nodes}
    for key, port in keys.items():
        assert answers[key].json["item"]["inventoryItemId"] == items[key]
        assert len(credits_of(world, items[key])) == 1, key
        (node,) = [node for node in cluster.nodes if node.port == port]
        with cluster.client_of(node) as client:  # where the claim and answer landed
            stored = json.loads(client.get(world.redis_key(key)) or "null")
        assert stored["state"] == "completed" and stored["body"] == answers[key].data.decode()
        replay = world.api.cashout(
            playerExternalId=PLAYER, inventoryItemId=items[key], idempotencyKey=key
        )
        assert replay.replayed and replay.data == answers[key].data


def test_a_redis_url_at_a_cluster_node_is_refused_clearly_and_the_database_serves(
    cluster: RedisClusterNodes, world_on: Callable[..., World], caplog: pytest.LogCaptureFixture
) -> None:
    node = cluster.nodes[0]
    world = world_on(f"redis://127.0.0.1:{node.port}/0")
    caplog.set_level(logging.INFO, logger="lootbox")
    items = [world.win_item()["inventoryItemId"] for _ in range(4)]

    firsts = [
        world.api.cashout(playerExternalId=PLAYER, inventoryItemId=i, idempotencyKey=f"plain-{i}")
        for i in items
    ]
    agains = [
        world.api.cashout(playerExternalId=PLAYER, inventoryItemId=i, idempotencyKey=f"plain-{i}")
        for i in items
    ]
    probe = world.app.test_client().get("/readyz")

    assert [r.status for r in firsts] == [200] * 4, [r.data for r in firsts]
    assert all(a.replayed and a.data == f.data for a, f in zip(agains, firsts, strict=True))
    for item_id in items:
        assert len(credits_of(world, item_id)) == 1
    refusal = REFUSAL.format(port=node.port)
    assert probe.status_code == 200  # Redis never takes the instance out of rotation
    ready = probe.get_json()
    assert (ready["status"], ready["database"], ready["redis"]) == (
        "degraded",
        "ok",
        "unreachable",
    )
    assert ready["reason"].startswith(f"ClusterNodeRefused: {refusal}")
    logged = messages(caplog, "lootbox")
    assert [text for level, text in logged if level == logging.ERROR] == [
        refusal + " (a redis:// client reaches that node's slots only; the other keys answer"
        " MOVED). Until then idempotency runs on the database alone"
    ]
    (down,) = [text for _, text in logged if text.startswith(FAST_PATH_DOWN)]  # once
    assert refusal in down
    prefix = world.app.extensions["lootbox"].settings.redis_key_prefix
    for each in cluster.nodes:  # nothing written anywhere
        with cluster.client_of(each) as client:
            assert list(client.scan_iter(match=f"{prefix}:*")) == []
