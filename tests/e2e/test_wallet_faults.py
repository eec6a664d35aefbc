"""Wallet failures that a real wallet produces, through HTTP, on both stacks: a connection
reset before anything was applied, and a wallet that does not replay (it answers a re-sent,
already applied key ``DUPLICATE_TRANSACTION`` instead of the stored answer).

The reference wallet acts them out (faults ``reset`` and ``duplicate``); its own transaction
list is the witness of how much money moved. Contract sections 6 and 7.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import GOLD_CASHBACK_EUR, PLAYER, Reply, World, WorldFactory


def short_timeout_world(make_world: WorldFactory) -> World:
    return make_world(
        wallet_read_timeout_seconds=0.5,
        wallet_connect_timeout_seconds=0.5,
        movement_lease_seconds=2,
    )


def cashout_body(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"], **extra}


def default_key(item: dict[str, Any]) -> str:
    return f"cashback:inventory:{item['inventoryItemId']}"


def item_state(world: World, item: dict[str, Any]) -> str:
    (row,) = world.query(
        "SELECT state FROM inventory_items WHERE id = :id", id=item["inventoryItemId"]
    )
    return str(row[0])


def movement_statuses(world: World, item: dict[str, Any]) -> list[tuple[str, str]]:
    rows = world.query(
        "SELECT idempotency_key, status FROM money_movements"
        " WHERE inventory_item_id = :id ORDER BY id",
        id=item["inventoryItemId"],
    )
    return [(str(row[0]), str(row[1])) for row in rows]


def cashed_back(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "inventoryItemId": item["inventoryItemId"],
        "state": "cashed_back",
        "cashbackMinor": GOLD_CASHBACK_EUR,
        "currency": "EUR",
    }


# --- a wallet that does not replay --------------------------------------------------------------


def test_a_lost_cashout_answered_duplicate_on_the_resend_stays_unknown_until_a_replay(
    make_world: WorldFactory,
) -> None:
    world = short_timeout_world(make_world)
    item = world.win_item("gold")
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])

    lost = world.api.cashout(**cashout_body(item))

    assert (lost.status, lost.code) == (503, "WALLET_UNAVAILABLE")
    assert len(world.wallet.credits()) == 1  # the wallet did apply it
    assert item_state(world, item) == "cashback_pending"

    # The wallet will not replay: the re-sent key gets DUPLICATE_TRANSACTION. It holds some
    # operation under the key and does not say whose, so the outcome is still unknown:
    # neither booked as applied nor freed for a second credit.
    world.wallet.fault("duplicate", times=1, types=["wallet.credit"])
    retry = world.api.cashout(**cashout_body(item))

    assert (retry.status, retry.code) == (503, "WALLET_UNAVAILABLE"), retry.data
    assert world.wallet.fault_count() == 0, "the re-send reached the duplicate fault"
    stats = world.wallet.stats()
    # Faulted: the drop and the duplicate; the re-send was refused, never replayed.
    assert (stats["faulted"], stats["refused"], stats["replayed"]) == (2, 1, 0)
    assert item_state(world, item) == "cashback_pending"
    assert movement_statuses(world, item) == [(default_key(item), "pending")]
    # A fresh key meanwhile re-sends the same pending credit, never a second one.
    fresh = world.api.cashout(**cashout_body(item, idempotencyKey="fresh-key-after-dup"))
    assert (fresh.status, fresh.code) == (422, "CASHBACK_NOT_AVAILABLE"), fresh.data

    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == default_key(item)
    assert credit["amountMinor"] == GOLD_CASHBACK_EUR
    assert item_state(world, item) == "cashed_back"
    assert movement_statuses(world, item) == [(default_key(item), "accepted")]
    # And the original request gets its answer.
    again = world.api.cashout(**cashout_body(item))
    assert again.status == 200, again.data
    assert again.json["item"] == cashed_back(item)
    assert len(world.wallet.credits()) == 1


def test_a_duplicate_answer_to_a_first_send_is_a_refusal_and_the_item_stays_unresolved(
    world: World,
) -> None:
    # A key never sent before cannot be a lost operation of ours: DUPLICATE_TRANSACTION
    # then means someone else's operation holds that key, so it is a plain refusal. (The
    # wallet's duplicate fault only answers replays, so a refuse fault stands in.)
    item = world.win_item("gold")
    world.wallet.fault(
        "refuse",
        code="DUPLICATE_TRANSACTION",
        message="key already used",
        times=1,
        types=["wallet.credit"],
    )

    refused = world.api.cashout(**cashout_body(item))

    # Wallet refusals map to 422 (only PLAYER_BLOCKED is 403), code passed through.
    assert (refused.status, refused.code) == (422, "DUPLICATE_TRANSACTION")
    assert not refused.replayed
    assert world.wallet.credits() == []
    assert item_state(world, item) == "unresolved"
    assert movement_statuses(world, item) == [(default_key(item), "refused")]

    # Not stored as final: a retry re-evaluates, and credits exactly once.
    retry = world.api.cashout(**cashout_body(item))

    assert retry.status == 200, retry.data
    assert retry.json["item"] == cashed_back(item)
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == default_key(item)


# --- a connection reset before anything was applied ----------------------------------------------


def test_a_cashout_whose_connection_was_reset_is_unavailable_and_credits_once_on_retry(
    world: World,
) -> None:
    item = world.win_item("gold")
    world.wallet.fault("reset", times=1, types=["wallet.credit"])

    reset = world.api.cashout(**cashout_body(item))

    assert (reset.status, reset.code) == (503, "WALLET_UNAVAILABLE")
    assert world.wallet.credits() == []
    assert world.wallet.fault_count() == 0, "the call reached the wallet and was reset"
    # Outcome unknown to us: pending, held for the re-drive, not free for another credit.
    assert item_state(world, item) == "cashback_pending"
    assert movement_statuses(world, item) == [(default_key(item), "pending")]

    retry = world.api.cashout(**cashout_body(item))

    assert retry.status == 200, retry.data
    assert not retry.replayed
    assert retry.json["item"] == cashed_back(item)
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == default_key(item)
    assert retry.json["balanceAfterMinor"] == credit["balanceAfterMinor"]
    assert world.wallet.stats()["replayed"] == 0, "the reset call applied nothing to replay"


def test_a_reset_cashout_is_finished_under_its_own_key_by_an_attempt_with_another(
    world: World,
) -> None:
    item = world.win_item("gold")
    world.wallet.fault("reset", times=1, types=["wallet.credit"])
    assert world.api.cashout(**cashout_body(item, idempotencyKey="first-key")).status == 503

    second = world.api.cashout(**cashout_body(item, idempotencyKey="second-key"))

    # The pending credit is re-driven with its own key; this request gets "already done".
    assert (second.status, second.code) == (422, "CASHBACK_NOT_AVAILABLE")
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == "first-key"
    assert item_state(world, item) == "cashed_back"


def test_a_purchase_whose_connection_was_reset_debits_exactly_once_on_retry(
    world: World,
) -> None:
    body = world.purchase_body("gold")
    world.wallet.fault("reset", times=1, types=["wallet.debit"])

    reset = world.api.purchase(**body)

    assert (reset.status, reset.code) == (503, "WALLET_UNAVAILABLE")
    assert world.wallet.debits() == []

    retry = world.api.purchase(**body)

    assert retry.status == 200, retry.data
    assert retry.json["round"]["status"] == "settled"
    (debit,) = world.wallet.debits()
    assert debit["idempotencyKey"] == f"round:{retry.json['round']['publicId']}"


@pytest.mark.parametrize("endpoint", ["cashout", "cancel"])
def test_a_standing_reset_keeps_every_attempt_unavailable_and_moves_no_money(
    world: World, endpoint: str
) -> None:
    if endpoint == "cashout":
        body = cashout_body(world.win_item("gold"))
    else:
        body = {"playerExternalId": PLAYER, "roundPublicId": world.hold_round("gold")}

    def send() -> Reply:
        return world.api.post(f"/api/s2s/{endpoint}", body)

    world.wallet.fault("reset", types=["wallet.credit"])

    codes = [(reply.status, reply.code) for reply in (send(), send(), send())]

    assert codes == [(503, "WALLET_UNAVAILABLE")] * 3
    assert world.wallet.credits() == []
    world.wallet.clear_faults()
    assert send().status == 200
    assert len(world.wallet.credits()) == 1
