"""Redis is the fast path, never the guarantee (contract section 7): with the system's own
redis-server flushed or stopped, PostgreSQL alone still replays answers and keeps money
movements to one. Only the private redis-server of the stack is touched, never a shared one.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
import redis

from tests.system.stack import CASHBACK, SystemStack, assert_in_use, concurrently, summary

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

    client = redis.Redis.from_url(system.redis.url, socket_timeout=5)
    try:
        assert client.keys("lootbox:idem:*"), "the fast path should have had the answer"
        client.flushall()  # the stack's own redis-server
    finally:
        client.close()

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

    assert {a.status for a in answers} <= {200, 409}, summary(answers)
    for answer in answers:
        if answer.status == 409:
            assert_in_use(answer)
    oks = [a for a in answers if a.status == 200]
    assert oks, summary(answers)
    assert len({a.body for a in oks}) == 1
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
