"""Exactly-once money movement (contract section 7) through HTTP, with the wallet's own
transaction list as the witness: replays, key reuse, refusals, lost answers, Redis lost or
down, concurrent attempts, and operators kept apart."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from lootbox.services.purchase import purchase_key
from tests.e2e.conftest import (
    CATALOG,
    PLAYER,
    Reply,
    SignedClient,
    WalletAdmin,
    World,
    WorldFactory,
)
from tests.processes import wait_until

ENDPOINTS = ("cashout", "cancel", "open", "purchase")


def prepare(world: World, endpoint: str) -> tuple[str, dict[str, Any], str]:
    """A request that succeeds on ``endpoint``: (path, body, its idempotency key)."""
    if endpoint == "cashout":
        item = world.win_item("gold")
        item_id = item["inventoryItemId"]
        body = {"playerExternalId": PLAYER, "inventoryItemId": item_id}
        return "/api/s2s/cashout", body, f"cashback:inventory:{item_id}"
    if endpoint in ("cancel", "open"):
        public_id = world.hold_round("gold")
        body = {"playerExternalId": PLAYER, "roundPublicId": public_id}
        key = f"refund:round:{public_id}" if endpoint == "cancel" else f"open:round:{public_id}"
        return f"/api/s2s/{endpoint}", body, key
    body = world.purchase_body("gold", "silver")
    return "/api/s2s/purchase", body, purchase_key(PLAYER, body["clientActionId"])


def short_timeout_world(make_world: WorldFactory) -> World:
    return make_world(
        wallet_read_timeout_seconds=0.5,
        wallet_connect_timeout_seconds=0.5,
        movement_lease_seconds=2,
    )


# --- replays ------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_retry_replays_the_identical_body_with_the_replayed_header(
    world: World, endpoint: str
) -> None:
    path, body, _ = prepare(world, endpoint)
    first = world.api.post(path, body)
    assert first.status == 200, first.data
    wallet_after_first = world.wallet.transactions()

    second = world.api.post(path, body)

    assert second.status == 200
    assert second.data == first.data
    assert second.replayed
    assert not first.replayed
    assert world.wallet.transactions() == wallet_after_first


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_replay_after_redis_lost_the_key_comes_byte_for_byte_from_the_database(
    make_world: WorldFactory, endpoint: str
) -> None:
    world = make_world(controllable_redis=True)
    path, body, key = prepare(world, endpoint)
    first = world.api.post(path, body)
    assert first.status == 200
    assert world.redis_record(key) is not None
    wallet_after_first = world.wallet.transactions()

    world.lose_redis_keys()
    assert world.redis_record(key) is None
    second = world.api.post(path, body)

    assert second.status == 200
    assert second.data == first.data
    assert second.replayed
    assert world.wallet.transactions() == wallet_after_first
    # The fast path is filled again from the durable record.
    backfilled = world.redis_record(key)
    assert backfilled is not None
    assert backfilled["state"] == "completed"
    assert backfilled["body"] == first.data.decode()


def test_a_key_reused_for_another_item_after_redis_lost_it_is_still_refused(
    make_world: WorldFactory,
) -> None:
    world = make_world(controllable_redis=True)
    first_item = world.win_item("gold")
    second_item = world.win_item("gold")
    done = world.api.cashout(
        playerExternalId=PLAYER,
        inventoryItemId=first_item["inventoryItemId"],
        idempotencyKey="payout-77",
    )
    assert done.status == 200
    world.lose_redis_keys()

    reply = world.api.cashout(
        playerExternalId=PLAYER,
        inventoryItemId=second_item["inventoryItemId"],
        idempotencyKey="payout-77",
    )

    assert reply.status == 422
    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.wallet.credits()) == 1


def test_the_redis_record_is_readable_by_an_on_call_engineer(world: World) -> None:
    item = world.win_item("gold")

    reply = world.api.post(
        "/api/s2s/cashout",
        {
            "playerExternalId": PLAYER,
            "inventoryItemId": item["inventoryItemId"],
            "idempotencyKey": "oncall-1",
        },
        headers={"X-Request-Id": "req-oncall-1"},
    )

    assert reply.status == 200
    record = world.redis_record("oncall-1")
    assert record is not None
    assert record["state"] == "completed"
    assert record["status"] == 200
    assert record["body"] == reply.data.decode()
    assert isinstance(record["fingerprint"], str) and record["fingerprint"]
    assert isinstance(record["createdAt"], str) and record["createdAt"]
    assert "cashout" in record["endpoint"]
    # Who answered: the database record keeps it (the Redis value does not, to stay small).
    shown = world.cli("idem", "show", world.operator.slug, "oncall-1", "--json").json
    assert shown["database"]["requestId"] == "req-oncall-1"


def test_omitted_defaults_and_their_explicit_values_are_the_same_request(world: World) -> None:
    item = world.win_item("gold")
    item_id = item["inventoryItemId"]
    first = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item_id)

    explicit = world.api.cashout(
        playerExternalId=PLAYER,
        inventoryItemId=item_id,
        currency="EUR",
        idempotencyKey=f"cashback:inventory:{item_id}",
    )

    assert explicit.status == 200
    assert explicit.replayed
    assert explicit.data == first.data
    assert len(world.wallet.credits()) == 1


def test_a_purchase_retried_with_its_reels_in_another_order_is_the_same_purchase(
    world: World,
) -> None:
    body = world.purchase_body("gold", "silver")
    first = world.api.purchase(**body)
    reordered = {**body, "reels": list(reversed(body["reels"])), "mode": "open"}

    second = world.api.purchase(**reordered)

    assert second.status == 200
    assert second.replayed
    assert second.data == first.data
    assert len(world.wallet.debits()) == 1


def test_a_completed_success_is_replayed_even_after_the_rules_changed(world: World) -> None:
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    first = world.api.cashout(**body)
    assert world.cli("operators", "update", world.operator.slug, "--no-cashback").exit_code == 0

    again = world.api.cashout(**body)

    assert again.status == 200
    assert again.data == first.data
    assert again.replayed


# --- key reuse ----------------------------------------------------------------------------------


def test_the_same_key_for_another_item_is_refused_and_nothing_is_executed(world: World) -> None:
    first_item = world.win_item("gold")
    second_item = world.win_item("silver")
    done = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=first_item["inventoryItemId"], idempotencyKey="k-1"
    )
    assert done.status == 200

    reply = world.api.cashout(
        playerExternalId=PLAYER,
        inventoryItemId=second_item["inventoryItemId"],
        idempotencyKey="k-1",
    )

    assert reply.status == 422
    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    (credit,) = world.wallet.credits()
    assert credit["inventoryItemId"] == first_item["inventoryItemId"]
    # The second item was not touched: it still cashes out under its own key.
    own = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=second_item["inventoryItemId"])
    assert own.status == 200
    assert own.json["item"]["cashbackMinor"] == 200


def test_the_same_key_with_another_currency_is_refused(world: World) -> None:
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    assert world.api.cashout(**body).status == 200

    reply = world.api.cashout(**body, currency="USD")

    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.wallet.credits()) == 1


def test_the_same_client_action_with_other_reels_is_refused_with_one_debit(world: World) -> None:
    body = world.purchase_body("gold")
    assert world.api.purchase(**body).status == 200

    reply = world.api.purchase(
        **{**world.purchase_body("silver"), "clientActionId": body["clientActionId"]}
    )

    assert reply.status == 422
    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.wallet.debits()) == 1


def test_the_same_cancel_key_for_another_round_is_refused_and_that_round_stays_held(
    world: World,
) -> None:
    first = world.hold_round("gold")
    second = world.hold_round("gold")
    assert (
        world.api.cancel(playerExternalId=PLAYER, roundPublicId=first, idempotencyKey="rk").status
        == 200
    )

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=second, idempotencyKey="rk")

    assert reply.status == 422
    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.wallet.credits()) == 1
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=second).status == 200


def test_a_key_used_by_one_endpoint_is_refused_by_another(world: World) -> None:
    public_id = world.hold_round("gold")
    opened = world.api.open(playerExternalId=PLAYER, roundPublicId=public_id, idempotencyKey="x-1")
    assert opened.status == 200
    item = opened.json["wonItems"][0]

    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], idempotencyKey="x-1"
    )

    assert reply.status == 422
    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert world.wallet.credits() == []


def test_a_cashout_cannot_borrow_a_rounds_debit_key_for_its_credit(world: World) -> None:
    bought = world.api.purchase(**world.purchase_body("gold"))
    public_id = bought.json["round"]["publicId"]
    item = bought.json["wonItems"][0]

    reply = world.api.cashout(
        playerExternalId=PLAYER,
        inventoryItemId=item["inventoryItemId"],
        idempotencyKey=f"round:{public_id}",
    )

    assert reply.status == 422
    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert world.wallet.credits() == []
    assert len(world.wallet.debits()) == 1


def test_a_new_key_for_an_item_already_cashed_back_moves_no_more_money(world: World) -> None:
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    assert world.api.cashout(**body).status == 200

    replies = [world.api.cashout(**body, idempotencyKey=f"fresh-{n}") for n in range(3)]

    assert [(r.status, r.code) for r in replies] == [(422, "CASHBACK_NOT_AVAILABLE")] * 3
    assert len(world.wallet.credits()) == 1


def test_two_players_purchase_keys_never_collide(world: World) -> None:
    first = world.api.purchase(**world.purchase_body("gold", player="acct:7", client_action_id="x"))
    assert first.status == 200

    second = world.api.purchase(
        **world.purchase_body("gold", player="acct", client_action_id="7:x")
    )

    assert second.status == 200, second.data
    assert len(world.wallet.debits()) == 2


# --- refusals and lost answers --------------------------------------------------------------------


def test_a_refused_cashout_retried_with_the_same_key_credits_exactly_once(world: World) -> None:
    item = world.win_item("gold")
    body = {
        "playerExternalId": PLAYER,
        "inventoryItemId": item["inventoryItemId"],
        "idempotencyKey": "retry-me",
    }
    world.wallet.fault("refuse", code="TRY_LATER", times=1, types=["wallet.credit"])
    refused = world.api.cashout(**body)
    assert (refused.status, refused.code) == (422, "TRY_LATER")

    retry = world.api.cashout(**body)

    assert retry.status == 200
    assert not retry.replayed
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == "retry-me"
    assert credit["amountMinor"] == 320


@pytest.mark.parametrize("mode", ["apply_then_delay", "apply_then_drop"])
def test_a_cashout_whose_answer_was_lost_credits_once_on_retry_with_the_same_key(
    make_world: WorldFactory, mode: str
) -> None:
    world = short_timeout_world(make_world)
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    world.wallet.fault(mode, delayMs=1500, times=1, types=["wallet.credit"])

    lost = world.api.cashout(**body)
    assert (lost.status, lost.code) == (503, "WALLET_UNAVAILABLE")
    assert len(world.wallet.credits()) == 1  # the wallet did apply it

    retry = world.api.cashout(**body)

    assert retry.status == 200, retry.data
    assert retry.json["item"] == {
        "inventoryItemId": item["inventoryItemId"],
        "state": "cashed_back",
        "cashbackMinor": 320,
        "currency": "EUR",
    }
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == f"cashback:inventory:{item['inventoryItemId']}"
    assert retry.json["balanceAfterMinor"] == credit["balanceAfterMinor"]


@pytest.mark.parametrize("mode", ["apply_then_delay", "apply_then_drop"])
def test_a_cashout_whose_answer_was_lost_is_not_paid_again_under_a_new_key(
    make_world: WorldFactory, mode: str
) -> None:
    world = short_timeout_world(make_world)
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    world.wallet.fault(mode, delayMs=1500, times=1, types=["wallet.credit"])
    assert world.api.cashout(**body).status == 503

    other_key = world.api.cashout(**body, idempotencyKey="another-key")

    assert (other_key.status, other_key.code) == (422, "CASHBACK_NOT_AVAILABLE")
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == f"cashback:inventory:{item['inventoryItemId']}"
    # The original request still gets its answer.
    original = world.api.cashout(**body)
    assert original.status == 200
    assert len(world.wallet.credits()) == 1


def test_a_cashout_that_timed_out_before_the_wallet_applied_it_credits_once(
    make_world: WorldFactory,
) -> None:
    world = short_timeout_world(make_world)
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    world.wallet.fault("delay", delayMs=1200, times=1, types=["wallet.credit"])
    assert world.api.cashout(**body).status == 503
    # The slow first copy is still being handled: the wallet decides one copy of a key at
    # a time, so it applies the credit, and the retry's re-send is answered as a replay.
    wait_until(lambda: len(world.wallet.credits()) == 1)

    retry = world.api.cashout(**body)

    assert retry.status == 200
    assert world.wallet.stats()["replayed"] >= 1
    assert len(world.wallet.credits()) == 1


def test_a_cancel_whose_answer_was_lost_refunds_exactly_once(make_world: WorldFactory) -> None:
    world = short_timeout_world(make_world)
    public_id = world.hold_round("gold")
    body = {"playerExternalId": PLAYER, "roundPublicId": public_id}
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])
    assert world.api.cancel(**body).code == "WALLET_UNAVAILABLE"

    other_key = world.api.cancel(**body, idempotencyKey="cancel-other")
    retry = world.api.cancel(**body)

    assert (other_key.status, other_key.code) == (409, "ROUND_NOT_REFUNDABLE")
    assert retry.status == 200
    assert retry.json["round"]["status"] == "refunded"
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == f"refund:round:{public_id}"
    assert world.api.open(**body).code == "ROUND_NOT_HELD"


def test_a_purchase_whose_answer_was_lost_debits_exactly_once_on_retry(
    make_world: WorldFactory,
) -> None:
    world = short_timeout_world(make_world)
    body = world.purchase_body("gold", "silver")
    world.wallet.fault("apply_then_delay", delayMs=1500, times=1, types=["wallet.debit"])
    assert world.api.purchase(**body).code == "WALLET_UNAVAILABLE"

    retry = world.api.purchase(**body)

    assert retry.status == 200
    assert retry.json["round"]["status"] == "settled"
    assert len(retry.json["wonItems"]) == 2
    (debit,) = world.wallet.debits()
    assert debit["amountMinor"] == 800
    assert debit["idempotencyKey"] == f"round:{retry.json['round']['publicId']}"


def test_a_cashout_still_pending_is_finished_by_an_attempt_with_another_key_first(
    world: World,
) -> None:
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    world.wallet.fault("error", status=503, times=1, types=["wallet.credit"])
    assert world.api.cashout(**body, idempotencyKey="first-key").status == 503
    assert world.wallet.credits() == []

    second = world.api.cashout(**body, idempotencyKey="second-key")

    # The pending credit is re-driven with its own key; this request gets "already done".
    assert (second.status, second.code) == (422, "CASHBACK_NOT_AVAILABLE")
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == "first-key"


# --- Redis down -----------------------------------------------------------------------------------


def test_with_redis_down_every_endpoint_still_works_exactly_once(make_world: WorldFactory) -> None:
    world = make_world(controllable_redis=True)
    world.stop_redis()

    bought = world.api.purchase(**world.purchase_body("gold"))
    assert bought.status == 200
    item_id = bought.json["wonItems"][0]["inventoryItemId"]
    cash_body = {"playerExternalId": PLAYER, "inventoryItemId": item_id}
    cashed = world.api.cashout(**cash_body)
    replay = world.api.cashout(**cash_body)
    other_key = world.api.cashout(**cash_body, idempotencyKey="while-redis-down")
    held = world.hold_round("gold")
    cancelled = world.api.cancel(playerExternalId=PLAYER, roundPublicId=held)
    cancel_replay = world.api.cancel(playerExternalId=PLAYER, roundPublicId=held)

    assert cashed.status == 200
    assert replay.status == 200 and replay.replayed and replay.data == cashed.data
    assert other_key.code == "CASHBACK_NOT_AVAILABLE"
    assert cancelled.status == 200
    assert cancel_replay.replayed and cancel_replay.data == cancelled.data
    assert len(world.wallet.credits()) == 2
    assert len(world.wallet.debits()) == 2

    world.start_redis()
    after = world.api.cashout(**cash_body)
    assert after.replayed and after.data == cashed.data
    assert len(world.wallet.credits()) == 2


def test_with_redis_down_a_reused_key_is_still_refused(make_world: WorldFactory) -> None:
    world = make_world(controllable_redis=True)
    first_item = world.win_item("gold")
    second_item = world.win_item("gold")
    world.stop_redis()
    assert (
        world.api.cashout(
            playerExternalId=PLAYER,
            inventoryItemId=first_item["inventoryItemId"],
            idempotencyKey="rd",
        ).status
        == 200
    )

    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=second_item["inventoryItemId"], idempotencyKey="rd"
    )

    assert reply.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(world.wallet.credits()) == 1


# --- concurrent attempts ------------------------------------------------------------------------


def run_in_thread(call: Callable[[], Reply]) -> tuple[threading.Thread, list[Reply]]:
    out: list[Reply] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


def test_a_second_attempt_while_the_first_is_in_flight_is_told_to_retry(
    make_world: WorldFactory,
) -> None:
    world = make_world(wallet_read_timeout_seconds=4, movement_lease_seconds=6)
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    world.wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])
    client = SignedClient(world.app, world.operator)
    thread, first = run_in_thread(lambda: client.cashout(**body))
    wait_until(lambda: world.wallet.fault_count() == 0)  # the slow call reached the wallet

    same_key = world.api.cashout(**body)
    other_key = world.api.cashout(**body, idempotencyKey="impatient")
    thread.join(timeout=10)

    assert (same_key.status, same_key.code) == (409, "IDEMPOTENCY_KEY_IN_USE")
    assert int(same_key.headers["Retry-After"]) >= 1
    assert (other_key.status, other_key.code) == (409, "IDEMPOTENCY_KEY_IN_USE")
    assert first and first[0].status == 200
    replay = world.api.cashout(**body)
    assert replay.replayed and replay.data == first[0].data
    assert len(world.wallet.credits()) == 1


def test_a_second_attempt_waits_briefly_and_replays_the_first_answer(
    make_world: WorldFactory,
) -> None:
    world = make_world(idempotency_wait_seconds=3, movement_lease_seconds=6)
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    world.wallet.fault("delay", delayMs=600, times=1, types=["wallet.credit"])
    client = SignedClient(world.app, world.operator)
    thread, first = run_in_thread(lambda: client.cashout(**body))
    wait_until(lambda: world.wallet.fault_count() == 0)

    second = world.api.cashout(**body)
    thread.join(timeout=10)

    assert first and first[0].status == 200
    assert second.status == 200
    assert second.replayed
    assert second.data == first[0].data
    assert len(world.wallet.credits()) == 1


def test_concurrent_duplicate_purchases_debit_once(world: World) -> None:
    body = world.purchase_body("gold")
    threads = [
        run_in_thread(lambda: SignedClient(world.app, world.operator).purchase(**body))
        for _ in range(4)
    ]
    replies = []
    for thread, out in threads:
        thread.join(timeout=15)
        replies.extend(out)

    assert len(replies) == 4
    ok = [r for r in replies if r.status == 200]
    assert ok, [r.data for r in replies]
    assert all(r.status in (200, 409) for r in replies), [r.data for r in replies]
    assert len({r.data for r in ok}) == 1
    assert len(world.wallet.debits()) == 1


# --- operators kept apart -----------------------------------------------------------------------


def onboard_other(world: World, wallet: WalletAdmin) -> tuple[SignedClient, dict[str, int]]:
    creds = world.onboard(wallet_url=wallet.url)
    return world.client_for(creds), world.import_catalog(CATALOG, slug=creds.slug)


def test_another_operator_cannot_cash_out_cancel_or_open_what_is_not_theirs(
    world: World, other_wallet: WalletAdmin
) -> None:
    item = world.win_item("gold")
    held = world.hold_round("gold")
    other, _ = onboard_other(world, other_wallet)

    cashout = other.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    cancel = other.cancel(playerExternalId=PLAYER, roundPublicId=held)
    opened = other.open(playerExternalId=PLAYER, roundPublicId=held)

    missing_item = other.cashout(playerExternalId=PLAYER, inventoryItemId=10**9)
    missing_round = other.cancel(
        playerExternalId=PLAYER, roundPublicId="r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"
    )
    assert (cashout.status, cashout.error) == (404, missing_item.error)
    assert (cancel.status, cancel.error) == (404, missing_round.error)
    assert (opened.status, opened.code) == (404, "ROUND_NOT_FOUND")
    assert world.wallet.credits() == [] and other_wallet.transactions() == []
    # Untouched for its owner.
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=held).status == 200
    assert (
        world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"]).status
        == 200
    )


def test_idempotency_keys_are_scoped_per_operator(world: World, other_wallet: WalletAdmin) -> None:
    other, other_boxes = onboard_other(world, other_wallet)
    mine = world.win_item("gold")
    theirs = world.win_item("silver", client=other, box_ids=other_boxes)

    a = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=mine["inventoryItemId"], idempotencyKey="shared"
    )
    b = other.cashout(
        playerExternalId=PLAYER, inventoryItemId=theirs["inventoryItemId"], idempotencyKey="shared"
    )

    assert a.status == 200 and b.status == 200
    assert not b.replayed
    assert b.json["item"]["inventoryItemId"] == theirs["inventoryItemId"]
    assert [c["amountMinor"] for c in world.wallet.credits()] == [320]
    assert [c["amountMinor"] for c in other_wallet.credits()] == [200]


def test_the_same_client_action_id_for_two_operators_is_two_purchases(
    world: World, other_wallet: WalletAdmin
) -> None:
    other, other_boxes = onboard_other(world, other_wallet)

    a = world.api.purchase(**world.purchase_body("gold", client_action_id="same-action"))
    b = other.purchase(
        **world.purchase_body("gold", client_action_id="same-action", box_ids=other_boxes)
    )

    assert a.status == 200 and b.status == 200
    assert not b.replayed
    assert a.json["round"]["publicId"] != b.json["round"]["publicId"]
    assert len(world.wallet.debits()) == 1 and len(other_wallet.debits()) == 1


# --- unknown outcomes hold on to their key and their subject ----------------------------------


def test_a_key_whose_outcome_is_unknown_cannot_be_reused_for_another_item(world: World) -> None:
    first_item = world.win_item("gold")
    second_item = world.win_item("silver")
    world.wallet.fault("error", status=503, times=1, types=["wallet.credit"])
    lost = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=first_item["inventoryItemId"], idempotencyKey="u-1"
    )
    assert lost.code == "WALLET_UNAVAILABLE"

    reused = world.api.cashout(
        playerExternalId=PLAYER,
        inventoryItemId=second_item["inventoryItemId"],
        idempotencyKey="u-1",
    )

    assert (reused.status, reused.code) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert world.wallet.credits() == []
    # The original request, retried, finishes its own credit.
    retry = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=first_item["inventoryItemId"], idempotencyKey="u-1"
    )
    assert retry.status == 200
    (credit,) = world.wallet.credits()
    assert credit["inventoryItemId"] == first_item["inventoryItemId"]


def test_a_purchase_whose_outcome_is_unknown_keeps_its_client_action_id(world: World) -> None:
    body = world.purchase_body("gold")
    world.wallet.fault("error", status=503, times=1, types=["wallet.debit"])
    assert world.api.purchase(**body).code == "WALLET_UNAVAILABLE"

    other_reels = world.api.purchase(
        **{**body, "reels": [{"reelIndex": 0, "boxVersionId": world.boxes["silver"]}]}
    )
    retry = world.api.purchase(**body)

    assert (other_reels.status, other_reels.code) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert retry.status == 200
    (debit,) = world.wallet.debits()
    assert debit["amountMinor"] == 500


def test_opening_a_round_whose_refund_outcome_is_unknown_finishes_the_refund_first(
    make_world: WorldFactory,
) -> None:
    world = short_timeout_world(make_world)
    public_id = world.hold_round("gold")
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id).status == 503

    opened = world.api.open(playerExternalId=PLAYER, roundPublicId=public_id)

    assert (opened.status, opened.code) == (409, "ROUND_NOT_HELD")
    (credit,) = world.wallet.credits()
    assert credit["roundPublicId"] == public_id
    cancel = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)
    assert cancel.status == 200
    assert len(world.wallet.credits()) == 1


def test_concurrent_cashouts_of_one_item_with_different_keys_credit_once(world: World) -> None:
    item = world.win_item("gold")

    def attempt(n: int) -> Callable[[], Reply]:
        client = SignedClient(world.app, world.operator)
        return lambda: client.cashout(
            playerExternalId=PLAYER,
            inventoryItemId=item["inventoryItemId"],
            idempotencyKey=f"race-{n}",
        )

    threads = [run_in_thread(attempt(n)) for n in range(4)]
    replies: list[Reply] = []
    for thread, out in threads:
        thread.join(timeout=15)
        replies.extend(out)

    assert len(replies) == 4
    codes = sorted(r.code if r.status != 200 else "OK" for r in replies)
    assert codes.count("OK") == 1, codes
    assert set(codes) <= {"OK", "CASHBACK_NOT_AVAILABLE", "IDEMPOTENCY_KEY_IN_USE"}, codes
    assert len(world.wallet.credits()) == 1


# --- storage failures -------------------------------------------------------------------------


@contextmanager
def table_unavailable(world: World, table: str) -> Iterator[None]:
    """Make one table vanish for a moment (a storage failure the app must survive)."""
    engine = world.app.extensions["lootbox"].engine
    with engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def test_a_storage_failure_is_a_503_that_moves_no_money(world: World) -> None:
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}

    with table_unavailable(world, "idempotency_records"):
        reply = world.api.cashout(**body)

    assert (reply.status, reply.code) == (503, "SERVICE_UNAVAILABLE")
    assert world.wallet.credits() == []


def test_a_retry_after_a_storage_failure_is_executed(world: World) -> None:
    item = world.win_item("gold")
    body = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    with table_unavailable(world, "idempotency_records"):
        assert world.api.cashout(**body).code == "SERVICE_UNAVAILABLE"

    retry = world.api.cashout(**body)

    assert retry.status == 200, retry.data
    assert len(world.wallet.credits()) == 1
