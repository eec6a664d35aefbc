"""Exactly-once money movement in the real deployment shape (contract sections 5 to 7).

Four gunicorn workers with eight threads each, PostgreSQL, a private redis-server and the
reference wallet as its own process; callers hammer one item or round at once, the wallet
applies and then goes silent, a worker dies mid-call. Whatever happens, the wallet's own
ledger (``/_admin/transactions``) must show each credit or debit exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import pytest

from tests.concurrency import concurrently
from tests.processes import wait_until
from tests.system.stack import (
    BOX_PRICE,
    CASHBACK,
    REQUEST_TIMEOUT,
    RawRequest,
    Response,
    SystemStack,
    assert_in_use,
    assert_one_answer,
    summary,
)

pytestmark = pytest.mark.system

T = TypeVar("T")

# How long a retry keeps going while the leases a dead worker left behind expire
# (IDEMPOTENCY_LEASE_SECONDS=5; the movement lease is a few seconds).
RECOVERY_TIMEOUT = 20.0
# Above the app's 1 s read timeout: the wallet's answer comes too late for it.
LATE_MS = 2500


def movement(system: SystemStack, item_id: int) -> tuple[Any, ...]:
    rows = system.query(
        "SELECT status, attempts, idempotency_key, last_error FROM money_movements"
        " WHERE inventory_item_id = :item AND reason = 'cashback'",
        item=item_id,
    )
    assert len(rows) == 1, rows
    return tuple(rows[0])


def item_state(system: SystemStack, item_id: int) -> str:
    return str(system.query("SELECT state FROM inventory_items WHERE id = :id", id=item_id)[0][0])


# --- cashout ----------------------------------------------------------------------------------


def test_fifty_identical_cashouts_credit_once_and_answer_alike(system: SystemStack) -> None:
    player = system.new_player("same-key")
    item = system.won_item(player)
    key = f"cashout-{player}"

    answers = concurrently([partial(system.cashout, player, item, key)] * 50)

    oks = assert_one_answer(answers)
    assert [a.replayed for a in oks].count(False) == 1, "one fresh answer, the rest replays"

    credits = system.wallet_transactions(type="wallet.credit", inventoryItemId=item)
    assert len(credits) == 1, credits
    assert credits[0]["idempotencyKey"] == key
    assert credits[0]["amountMinor"] == CASHBACK
    assert oks[0].json == {
        "item": {
            "inventoryItemId": item,
            "state": "cashed_back",
            "cashbackMinor": CASHBACK,
            "currency": "EUR",
        },
        "balanceAfterMinor": credits[0]["balanceAfterMinor"],
    }
    assert item_state(system, item) == "cashed_back"


def test_fifty_cashouts_with_different_keys_credit_the_item_once(system: SystemStack) -> None:
    player = system.new_player("many-keys")
    item = system.won_item(player)
    keys = [f"cashout-{player}-{n}" for n in range(50)]

    answers = concurrently([partial(system.cashout, player, item, key) for key in keys])

    winners = [key for key, a in zip(keys, answers, strict=True) if a.status == 200]
    assert len(winners) == 1, summary(answers)
    for answer in answers:
        if answer.status == 422:
            assert answer.code == "CASHBACK_NOT_AVAILABLE", answer.body
        elif answer.status == 409:
            assert_in_use(answer)
        else:
            assert answer.status == 200, summary(answers)

    credits = system.wallet_transactions(type="wallet.credit", inventoryItemId=item)
    assert len(credits) == 1, credits
    assert credits[0]["idempotencyKey"] == winners[0]
    assert movement(system, item)[:3] == ("accepted", 1, winners[0])
    assert item_state(system, item) == "cashed_back"

    # Afterwards, any key: the item is cashed back, and the answer says so.
    later = system.cashout(player, item, f"cashout-{player}-later")
    assert (later.status, later.code) == (422, "CASHBACK_NOT_AVAILABLE")
    assert len(system.wallet_transactions(type="wallet.credit", inventoryItemId=item)) == 1


# --- cancel -----------------------------------------------------------------------------------


def test_fifty_cancels_of_one_held_round_refund_it_once(system: SystemStack) -> None:
    player = system.new_player("cancel")
    round_id = system.held_round(player)
    # The default key, one shared custom key, and keys of their own: all at once.
    keys: list[str | None] = [None] * 20 + ["cancel-shared"] * 10
    keys += [f"cancel-{n}" for n in range(20)]
    random.Random(7).shuffle(keys)

    answers = concurrently([partial(system.cancel, player, round_id, key) for key in keys])

    assert {a.status for a in answers} <= {200, 409}, summary(answers)
    for answer in answers:
        if answer.status == 409 and answer.code != "ROUND_NOT_REFUNDABLE":
            assert_in_use(answer)
    winning = {
        key or f"refund:round:{round_id}"
        for key, answer in zip(keys, answers, strict=True)
        if answer.status == 200
    }
    assert len(winning) == 1, summary(answers)
    oks = [a for a in answers if a.status == 200]
    assert len({a.body for a in oks}) == 1

    refunds = system.wallet_transactions(type="wallet.credit", roundPublicId=round_id)
    assert len(refunds) == 1, refunds
    assert refunds[0]["reason"] == "refund"
    assert refunds[0]["amountMinor"] == BOX_PRICE
    assert refunds[0]["idempotencyKey"] == winning.pop()
    assert oks[0].json == {
        "round": {
            "publicId": round_id,
            "status": "refunded",
            "refundedMinor": BOX_PRICE,
            "currency": "EUR",
        },
        "balanceAfterMinor": refunds[0]["balanceAfterMinor"],
    }
    status = system.query("SELECT status FROM rounds WHERE public_id = :id", id=round_id)
    assert status == [("refunded",)]


def test_cancels_racing_opens_of_one_held_round_refund_or_open_never_both(
    system: SystemStack,
) -> None:
    player = system.new_player("cancel-or-open")
    round_id = system.held_round(player)
    calls: list[Callable[[], Response]] = [partial(system.cancel, player, round_id)] * 20
    open_body = {"playerExternalId": player, "roundPublicId": round_id}
    calls += [partial(system.post, "/api/s2s/open", open_body)] * 20
    random.Random(11).shuffle(calls)

    answers = concurrently(calls)

    assert {a.status for a in answers} <= {200, 409}, summary(answers)
    statuses = {a.json["round"]["status"] for a in answers if a.status == 200}
    assert len(statuses) == 1, summary(answers)
    refunds = system.wallet_transactions(type="wallet.credit", roundPublicId=round_id)
    items = system.query(
        "SELECT i.id FROM inventory_items i JOIN rounds r ON r.id = i.round_id"
        " WHERE r.public_id = :id",
        id=round_id,
    )
    stored = system.query("SELECT status FROM rounds WHERE public_id = :id", id=round_id)
    if statuses == {"refunded"}:
        assert (len(refunds), len(items), stored) == (1, 0, [("refunded",)])
    else:
        assert statuses == {"settled"}
        assert (len(refunds), len(items), stored) == (0, 1, [("settled",)])


# --- purchase ---------------------------------------------------------------------------------


def test_twenty_identical_purchases_debit_once(system: SystemStack) -> None:
    player = system.new_player("buyer")
    action = f"action-{player}"

    answers = concurrently([partial(system.purchase, player, action)] * 20)

    oks = assert_one_answer(answers)
    round_id = oks[0].json["round"]["publicId"]

    debits = system.wallet_transactions(type="wallet.debit", playerExternalId=player)
    assert len(debits) == 1, debits
    assert debits[0]["idempotencyKey"] == f"round:{round_id}"
    assert debits[0]["amountMinor"] == BOX_PRICE
    rounds = system.query("SELECT public_id FROM rounds WHERE player_external_id = :p", p=player)
    assert rounds == [(round_id,)]


# --- the wallet applies, then goes silent -----------------------------------------------------


def test_retry_after_wallet_timeout_credits_once(system: SystemStack) -> None:
    player = system.new_player("timeout")
    item = system.won_item(player)
    key = f"cashout-{player}"
    system.add_fault({"mode": "apply_then_delay", "delayMs": LATE_MS, "types": ["wallet.credit"]})

    first = system.cashout(player, item, key)

    assert (first.status, first.code) == (503, "WALLET_UNAVAILABLE"), first.body
    # The wallet did move the money; we only lost its answer.
    assert len(system.wallet_transactions(type="wallet.credit", inventoryItemId=item)) == 1
    status, attempts, stored_key, _ = movement(system, item)
    assert (status, attempts, stored_key) == ("pending", 1, key)

    system.clear_faults()
    retry = system.cashout(player, item, key)

    assert retry.status == 200, retry.body
    assert not retry.replayed  # a 503 is never stored as the final answer
    credits = system.wallet_transactions(type="wallet.credit", inventoryItemId=item)
    assert len(credits) == 1, credits
    assert retry.json["item"] == {
        "inventoryItemId": item,
        "state": "cashed_back",
        "cashbackMinor": CASHBACK,
        "currency": "EUR",
    }
    assert retry.json["balanceAfterMinor"] == credits[0]["balanceAfterMinor"]
    # Re-driven: the same movement, with the same key, sent a second time.
    assert movement(system, item)[:3] == ("accepted", 2, key)


def test_purchase_retry_after_wallet_timeout_debits_once(system: SystemStack) -> None:
    player = system.new_player("buy-timeout")
    action = f"action-{player}"
    system.add_fault({"mode": "apply_then_delay", "delayMs": LATE_MS, "types": ["wallet.debit"]})

    first = system.purchase(player, action)

    assert (first.status, first.code) == (503, "WALLET_UNAVAILABLE"), first.body
    assert len(system.wallet_transactions(type="wallet.debit", playerExternalId=player)) == 1

    system.clear_faults()
    retry = system.purchase(player, action)

    assert retry.status == 200, retry.body
    round_ = retry.json["round"]
    assert round_["status"] == "settled" and len(retry.json["wonItems"]) == 1
    debits = system.wallet_transactions(type="wallet.debit", playerExternalId=player)
    assert len(debits) == 1, debits
    assert debits[0]["idempotencyKey"] == f"round:{round_['publicId']}"
    assert retry.json["balanceAfterMinor"] == debits[0]["balanceAfterMinor"]
    rounds = system.query(
        "SELECT public_id, status FROM rounds WHERE player_external_id = :p", p=player
    )
    assert rounds == [(round_["publicId"], "settled")]


# --- a worker dies with the wallet call in flight ---------------------------------------------


def kill_worker_mid_cashout(system: SystemStack, mode: str) -> tuple[str, int, str]:
    """Start a cashout, SIGKILL the gunicorn worker serving it while its wallet call is in
    flight, and return ``(player, item, key)``.

    ``delay``: the wallet is still sleeping before it applies (it applies after the worker
    died). ``apply_then_delay``: the wallet has applied and is sitting on its answer.
    """
    player = system.new_player(f"kill-{mode}")
    item = system.won_item(player)
    key = f"cashout-{player}"
    faulted = system.wallet_stats()["faulted"]
    system.add_fault({"mode": mode, "delayMs": LATE_MS, "times": 1, "types": ["wallet.credit"]})
    request = RawRequest(
        system,
        "/api/s2s/cashout",
        {"playerExternalId": player, "inventoryItemId": item, "idempotencyKey": key},
    )
    with ThreadPoolExecutor(1) as pool:
        sent = pool.submit(request.send)
        worker = wait_until(
            lambda: system.worker_serving(request.client_port), 5, "a worker to accept"
        )
        if mode == "apply_then_delay":
            wait_until(lambda: system.wallet_transactions(inventoryItemId=item), 2, "the credit")
        else:
            wait_until(lambda: system.wallet_stats()["faulted"] > faulted, 2, "the wallet call")
        os.kill(worker, signal.SIGKILL)
        outcome = sent.result(timeout=REQUEST_TIMEOUT)

    assert not isinstance(outcome, int), f"the request was answered ({outcome}), not cut off"
    # The worker died before it could settle or even release the movement.
    assert movement(system, item) == ("pending", 1, key, None)
    return player, item, key


def retry_until_answered(system: SystemStack, player: str, item: int, key: str) -> Response:
    """Retry the same request while the dead worker's leases run out (409 meanwhile)."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        answer = system.cashout(player, item, key)
        if answer.status != 409 or time.monotonic() > deadline:
            return answer
        assert_in_use(answer)
        time.sleep(0.25)


@pytest.mark.parametrize("mode", ["apply_then_delay", "delay"])
def test_worker_killed_mid_wallet_call_credits_once_after_the_lease(
    system: SystemStack, mode: str
) -> None:
    player, item, key = kill_worker_mid_cashout(system, mode)

    answer = retry_until_answered(system, player, item, key)

    assert answer.status == 200, answer.body
    assert answer.json["item"]["state"] == "cashed_back"
    assert answer.json["item"]["cashbackMinor"] == CASHBACK
    credits = system.wallet_transactions(type="wallet.credit", inventoryItemId=item)
    assert len(credits) == 1, credits
    assert credits[0]["idempotencyKey"] == key
    assert answer.json["balanceAfterMinor"] == credits[0]["balanceAfterMinor"]
    assert movement(system, item)[:3] == ("accepted", 2, key)
    assert item_state(system, item) == "cashed_back"
    # gunicorn replaced the dead worker.
    system.wait_for_workers(4)


def test_answer_recovered_after_a_worker_died_is_stored_durably(system: SystemStack) -> None:
    """The retry takes over the dead worker's idempotency record; its answer must then be
    stored there, or it replays only while Redis still has it."""
    player, item, key = kill_worker_mid_cashout(system, "apply_then_delay")
    answer = retry_until_answered(system, player, item, key)
    assert answer.status == 200, answer.body

    stored = system.query(
        "SELECT state, status_code FROM idempotency_records WHERE idempotency_key = :key",
        key=key,
    )
    assert stored == [("completed", 200)]
