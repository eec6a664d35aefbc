"""Redis is the fast path, never the guarantee (contract section 7): with the system's own
redis-server flushed or stopped, PostgreSQL alone still replays answers and keeps money
movements to one. Only the private redis-server of the stack is touched, never a shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from tests.concurrency import concurrently
from tests.system.stack import (
    CASHBACK,
    SystemStack,
    assert_one_answer,
    summary,
)

pytestmark = pytest.mark.system


@pytest.fixture
def redis_down(system: SystemStack) -> Iterator[SystemStack]:
    """The stack with its redis-server stopped for the test, and started again after."""
    system.redis.stop()
    try:
        yield system
    finally:
        system.redis.start()


def test_success_replays_byte_for_byte_after_redis_is_flushed(system: SystemStack) -> None:
    player = system.new_player("flushed")
    item = system.won_item(player)
    key = f"cashout-{player}"
    first = system.cashout(player, item, key)
    assert first.status == 200, first.body

    with system.redis.client() as client:
        assert client.keys("lootbox:idem:*"), "the fast path should have had the answer"
        client.flushall()  # the stack's own redis-server

    again = system.cashout(player, item, key)

    assert again.status == 200
    assert again.replayed
    assert again.body == first.body
    assert len(system.wallet_transactions(type="wallet.credit", inventoryItemId=item)) == 1


def test_with_redis_down_fifty_identical_cashouts_credit_once(redis_down: SystemStack) -> None:
    system = redis_down
    player = system.new_player("no-redis")
    item = system.won_item(player)
    key = f"cashout-{player}"

    answers = concurrently([partial(system.cashout, player, item, key)] * 50)

    oks = assert_one_answer(answers)
    assert oks[0].json["item"]["cashbackMinor"] == CASHBACK
    credits = system.wallet_transactions(type="wallet.credit", inventoryItemId=item)
    assert len(credits) == 1, credits
    assert credits[0]["idempotencyKey"] == key


def test_with_redis_down_fifty_keys_for_one_item_credit_once(redis_down: SystemStack) -> None:
    system = redis_down
    player = system.new_player("no-redis-keys")
    item = system.won_item(player)
    keys = [f"cashout-{player}-{n}" for n in range(50)]

    answers = concurrently([partial(system.cashout, player, item, key) for key in keys])

    assert [a.status for a in answers].count(200) == 1, summary(answers)
    assert {(a.status, a.code) for a in answers if a.status != 200} <= {
        (422, "CASHBACK_NOT_AVAILABLE"),
        (409, "IDEMPOTENCY_KEY_IN_USE"),
    }, summary(answers)
    assert len(system.wallet_transactions(type="wallet.credit", inventoryItemId=item)) == 1


def test_redis_coming_back_is_used_again_without_restarting_the_app(system: SystemStack) -> None:
    player = system.new_player("redis-back")
    first_item, second_item = system.won_item(player), system.won_item(player)
    system.redis.stop()
    try:
        during = system.cashout(player, first_item, f"during-{player}")
        assert during.status == 200, during.body  # the database guard alone
    finally:
        system.redis.start()

    after = system.cashout(player, second_item, f"after-{player}")

    assert after.status == 200, after.body
    with system.redis.client() as client:
        # The fast path holds the new answer: the workers reconnected by themselves.
        assert client.keys(f"lootbox:idem:*:after-{player}")
    replay = system.cashout(player, first_item, f"during-{player}")
    assert replay.replayed and replay.body == during.body


def test_a_redis_that_stops_answering_falls_back_to_the_database(system: SystemStack) -> None:
    """A Redis that accepts connections but answers nothing for seconds (CLIENT PAUSE:
    a stalled primary, a long fork): each call gives up after its 0.5 s socket timeout."""
    player = system.new_player("redis-slow")
    items = [system.won_item(player) for _ in range(5)]
    with system.redis.client() as client:
        try:
            client.execute_command("CLIENT", "PAUSE", "4000", "ALL")
            answers = concurrently(
                [partial(system.cashout, player, item, f"slow-{player}-{item}") for item in items]
            )
        finally:
            client.execute_command("CLIENT", "UNPAUSE")

    assert [a.status for a in answers] == [200] * 5, summary(answers)
    for item in items:
        assert len(system.wallet_transactions(type="wallet.credit", inventoryItemId=item)) == 1
    # Late claims that reached Redis after the pause do not block the replays.
    again = [system.cashout(player, item, f"slow-{player}-{item}") for item in items]
    assert [a.body for a in again] == [a.body for a in answers]
    assert all(a.replayed for a in again)


def test_redis_evicting_every_key_changes_nothing_for_the_money(system: SystemStack) -> None:
    """maxmemory with allkeys-random: records vanish between claim and complete."""
    player = system.new_player("evicting")
    item = system.won_item(player)
    key = f"cashout-{player}"
    with system.redis.client() as client:
        try:
            client.config_set("maxmemory-policy", "allkeys-random")
            client.config_set("maxmemory", "1")
            answers = concurrently([partial(system.cashout, player, item, key)] * 20)
            others = concurrently(
                [partial(system.cashout, player, item, f"{key}-{n}") for n in range(10)]
            )
        finally:
            client.config_set("maxmemory", "0")
            client.config_set("maxmemory-policy", "noeviction")

    oks = [a for a in answers if a.status == 200]
    assert oks and {a.status for a in answers} <= {200, 409}, summary(answers)
    assert len({a.body for a in oks}) == 1
    assert {(a.status, a.code) for a in others} <= {
        (422, "CASHBACK_NOT_AVAILABLE"),
        (409, "IDEMPOTENCY_KEY_IN_USE"),
    }, summary(others)
    assert len(system.wallet_transactions(type="wallet.credit", inventoryItemId=item)) == 1
    assert system.cashout(player, item, key).body == oks[0].body


def test_redis_out_of_memory_refusing_writes_falls_back_to_the_database(
    system: SystemStack,
) -> None:
    """maxmemory with noeviction: every write is refused with an OOM error."""
    player = system.new_player("oom")
    item = system.won_item(player)
    with system.redis.client() as client:
        try:
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", "1")
            first = system.cashout(player, item, f"oom-{player}")
            again = system.cashout(player, item, f"oom-{player}")
        finally:
            client.config_set("maxmemory", "0")

    assert first.status == 200, first.body
    assert again.replayed and again.body == first.body
    assert len(system.wallet_transactions(type="wallet.credit", inventoryItemId=item)) == 1
