"""Every documented error code of cashout, cancel, purchase and open, and what the wallet
saw (or did not see) when it was returned."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    CATALOG,
    OTHER_PLAYER,
    PLAYER,
    STARTING_BALANCE,
    SignedClient,
    WalletAdmin,
    World,
    WorldFactory,
    running_wallet,
)
from tests.processes import wait_until

NO_SUCH_ROUND = "r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"
NO_SUCH_ITEM = 987_654_321


def second_operator(world: World, wallet: WalletAdmin, **onboard: Any) -> tuple[SignedClient, Any]:
    creds = world.onboard(wallet_url=wallet.url, **onboard)
    boxes = world.import_catalog(CATALOG, slug=creds.slug)
    return world.client_for(creds), boxes


def short_timeout_world(make_world: WorldFactory) -> World:
    return make_world(
        wallet_read_timeout_seconds=0.5,
        wallet_connect_timeout_seconds=0.5,
        movement_lease_seconds=2,
    )


# --- cashout --------------------------------------------------------------------------------


def test_cashout_of_an_item_that_does_not_exist_is_inventory_item_not_found(world: World) -> None:
    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=NO_SUCH_ITEM)

    assert reply.status == 404
    assert reply.code == "INVENTORY_ITEM_NOT_FOUND"
    assert world.wallet.credits() == []


def test_cashout_of_another_players_item_is_indistinguishable_from_a_missing_one(
    world: World,
) -> None:
    item = world.win_item("gold", player=PLAYER)
    missing = world.api.cashout(playerExternalId=OTHER_PLAYER, inventoryItemId=NO_SUCH_ITEM)

    reply = world.api.cashout(
        playerExternalId=OTHER_PLAYER, inventoryItemId=item["inventoryItemId"]
    )

    assert reply.status == 404
    assert reply.error == missing.error
    assert world.wallet.credits() == []
    owner = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert owner.status == 200


def test_cashout_of_another_operators_item_is_indistinguishable_from_a_missing_one(
    world: World, other_wallet: WalletAdmin
) -> None:
    item = world.win_item("gold")
    other, _ = second_operator(world, other_wallet)
    missing = other.cashout(playerExternalId=PLAYER, inventoryItemId=NO_SUCH_ITEM)

    reply = other.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 404
    assert reply.error == missing.error
    assert reply.code == "INVENTORY_ITEM_NOT_FOUND"
    assert world.wallet.credits() == []
    assert other_wallet.transactions() == []


def test_cashout_of_an_item_already_cashed_back_is_not_available(world: World) -> None:
    item = world.win_item("gold")
    first = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert first.status == 200

    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], idempotencyKey="again-1"
    )

    assert reply.status == 422
    assert reply.code == "CASHBACK_NOT_AVAILABLE"
    assert len(world.wallet.credits()) == 1


def test_cashout_to_a_currency_without_a_rate_is_not_available(world: World) -> None:
    item = world.win_item("gold")

    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], currency="GBP"
    )

    assert reply.status == 422
    assert reply.code == "CASHBACK_NOT_AVAILABLE"
    assert world.wallet.credits() == []
    still = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert still.status == 200


def test_cashout_is_not_available_once_the_operator_disables_cashback(world: World) -> None:
    item = world.win_item("gold")
    updated = world.cli("operators", "update", world.operator.slug, "--no-cashback")
    assert updated.exit_code == 0 and updated.json["cashback"] is False

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 422
    assert reply.code == "CASHBACK_NOT_AVAILABLE"
    assert world.wallet.credits() == []


def test_cashout_is_not_available_for_a_box_with_cashback_disabled(world: World) -> None:
    item = world.win_item("no-cashback")

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 422
    assert reply.code == "CASHBACK_NOT_AVAILABLE"
    assert world.wallet.credits() == []


def test_cashout_is_not_available_when_no_rule_exists_anywhere(
    world: World, other_wallet: WalletAdmin
) -> None:
    client, boxes = second_operator(world, other_wallet, cashback_bps=None)
    item = world.win_item("gold", client=client, box_ids=boxes)
    assert item["cashbackMinor"] is None

    reply = client.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 422
    assert reply.code == "CASHBACK_NOT_AVAILABLE"
    assert other_wallet.credits() == []


def test_cashout_answers_wallet_unavailable_when_the_wallet_fails_with_a_5xx(
    world: World,
) -> None:
    item = world.win_item("gold")
    world.wallet.fault("error", status=503, times=1, types=["wallet.credit"])

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 503
    assert reply.code == "WALLET_UNAVAILABLE"
    assert world.wallet.credits() == []
    # The item stays unresolved for the caller: the retry succeeds.
    retry = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert retry.status == 200
    assert len(world.wallet.credits()) == 1


def test_cashout_answers_wallet_unavailable_when_the_wallet_is_slower_than_the_read_timeout(
    make_world: WorldFactory,
) -> None:
    world = short_timeout_world(make_world)
    item = world.win_item("gold")
    world.wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 503
    assert reply.code == "WALLET_UNAVAILABLE"
    wait_until(lambda: len(world.wallet.credits()) == 1)  # the slow call finishes
    retry = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert retry.status == 200
    assert len(world.wallet.credits()) == 1


def test_cashout_answers_wallet_unavailable_when_the_wallet_cannot_be_reached(
    world: World,
) -> None:
    with running_wallet() as short_lived:
        client, boxes = second_operator(world, short_lived)
        item = world.win_item("gold", client=client, box_ids=boxes)

    reply = client.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 503
    assert reply.code == "WALLET_UNAVAILABLE"


def test_cashout_returns_the_wallets_refusal_code_verbatim(world: World) -> None:
    item = world.win_item("gold")
    world.wallet.fault(
        "refuse", code="LIMIT_EXCEEDED_42", message="daily limit", times=1, types=["wallet.credit"]
    )

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 422
    assert reply.code == "LIMIT_EXCEEDED_42"
    assert world.wallet.credits() == []


def test_cashout_for_a_blocked_player_is_player_blocked_403(world: World) -> None:
    item = world.win_item("gold")
    world.wallet.block(PLAYER)

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 403
    assert reply.code == "PLAYER_BLOCKED"
    assert world.wallet.credits() == []
    world.wallet.unblock(PLAYER)
    assert (
        world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"]).status
        == 200
    )


def test_cashout_maps_a_malformed_refusal_code_to_wallet_refused(world: World) -> None:
    item = world.win_item("gold")
    for odd_code in ("bad code!", "lower_case", "X" * 65, "CODE-WITH-DASH"):
        world.wallet.fault("refuse", code=odd_code, times=1, types=["wallet.credit"])

        reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

        assert (odd_code, reply.status, reply.code) == (odd_code, 422, "WALLET_REFUSED")
    assert world.wallet.credits() == []


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_of_a_round_that_does_not_exist_is_round_not_found(world: World) -> None:
    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=NO_SUCH_ROUND)

    assert reply.status == 404
    assert reply.code == "ROUND_NOT_FOUND"


def test_cancel_of_another_players_round_is_round_not_found(world: World) -> None:
    public_id = world.hold_round("gold", player=PLAYER)
    missing = world.api.cancel(playerExternalId=OTHER_PLAYER, roundPublicId=NO_SUCH_ROUND)

    reply = world.api.cancel(playerExternalId=OTHER_PLAYER, roundPublicId=public_id)

    assert reply.status == 404
    assert reply.error == missing.error
    assert world.wallet.credits() == []


def test_cancel_of_an_atomic_round_is_not_refundable(world: World) -> None:
    bought = world.api.purchase(**world.purchase_body("gold"))
    public_id = bought.json["round"]["publicId"]

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 409
    assert reply.code == "ROUND_NOT_REFUNDABLE"
    assert world.wallet.credits() == []


def test_cancel_of_an_opened_round_is_not_refundable(world: World) -> None:
    public_id = world.hold_round("gold")
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=public_id).status == 200

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 409
    assert reply.code == "ROUND_NOT_REFUNDABLE"
    assert world.wallet.credits() == []


def test_cancel_of_an_already_refunded_round_with_a_new_key_is_not_refundable(
    world: World,
) -> None:
    public_id = world.hold_round("gold")
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id).status == 200

    reply = world.api.cancel(
        playerExternalId=PLAYER, roundPublicId=public_id, idempotencyKey="second-refund"
    )

    assert reply.status == 409
    assert reply.code == "ROUND_NOT_REFUNDABLE"
    assert len(world.wallet.credits()) == 1


def test_cancel_is_not_allowed_once_the_operator_disables_refunds(world: World) -> None:
    public_id = world.hold_round("gold")
    updated = world.cli("operators", "update", world.operator.slug, "--no-refunds")
    assert updated.exit_code == 0 and updated.json["refunds"] is False

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 403
    assert reply.code == "REFUND_NOT_ALLOWED"
    assert world.wallet.credits() == []
    # Still held: it can be opened.
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=public_id).status == 200


def test_cancel_is_not_allowed_for_an_operator_created_without_refunds(
    world: World, other_wallet: WalletAdmin
) -> None:
    client, boxes = second_operator(world, other_wallet, extra=("--no-refunds",))
    public_id = world.hold_round("gold", client=client, box_ids=boxes)

    reply = client.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 403
    assert reply.code == "REFUND_NOT_ALLOWED"


def test_cancel_is_not_allowed_for_a_box_that_is_not_refundable(world: World) -> None:
    public_id = world.hold_round("final-sale")

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 403
    assert reply.code == "REFUND_NOT_ALLOWED"
    assert world.wallet.credits() == []


def test_cancel_is_not_allowed_when_any_reel_of_the_round_is_not_refundable(
    world: World,
) -> None:
    bought = world.api.purchase(**world.purchase_body("gold", "final-sale", mode="prepay"))
    assert bought.status == 200

    reply = world.api.cancel(
        playerExternalId=PLAYER, roundPublicId=bought.json["round"]["publicId"]
    )

    assert reply.status == 403
    assert reply.code == "REFUND_NOT_ALLOWED"


def test_cancel_answers_wallet_unavailable_and_leaves_the_round_held(world: World) -> None:
    public_id = world.hold_round("gold")
    world.wallet.fault("error", status=500, times=1, types=["wallet.credit"])

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 503
    assert reply.code == "WALLET_UNAVAILABLE"
    assert world.wallet.credits() == []
    retry = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)
    assert retry.status == 200
    assert retry.json["round"]["status"] == "refunded"
    assert len(world.wallet.credits()) == 1


def test_cancel_answers_wallet_unavailable_on_a_read_timeout(make_world: WorldFactory) -> None:
    world = short_timeout_world(make_world)
    public_id = world.hold_round("gold")
    world.wallet.fault("delay", delayMs=1500, times=1, types=["wallet.credit"])

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 503
    assert reply.code == "WALLET_UNAVAILABLE"


def test_cancel_returns_the_wallets_refusal_and_leaves_the_round_held(world: World) -> None:
    public_id = world.hold_round("gold")
    world.wallet.fault("refuse", code="ACCOUNT_FROZEN", times=1, types=["wallet.credit"])

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 422
    assert reply.code == "ACCOUNT_FROZEN"
    assert world.wallet.credits() == []
    opened = world.api.open(playerExternalId=PLAYER, roundPublicId=public_id)
    assert opened.status == 200


def test_cancel_for_a_blocked_player_is_player_blocked_403(world: World) -> None:
    public_id = world.hold_round("gold")
    world.wallet.block(PLAYER)

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 403
    assert reply.code == "PLAYER_BLOCKED"


def test_cancel_maps_a_malformed_refusal_code_to_wallet_refused(world: World) -> None:
    public_id = world.hold_round("gold")
    world.wallet.fault("refuse", code="bad code!", times=1, types=["wallet.credit"])

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 422
    assert reply.code == "WALLET_REFUSED"


# --- purchase -------------------------------------------------------------------------------


def round_statuses(world: World, client_action_id: str) -> list[str]:
    rows = world.query(
        "SELECT status FROM rounds WHERE client_action_id = :c ORDER BY id", c=client_action_id
    )
    return [row[0] for row in rows]


def test_purchase_with_insufficient_funds_is_refused_and_the_round_voided(world: World) -> None:
    world.wallet.set_balance(PLAYER, "EUR", 499)
    body = world.purchase_body("gold", client_action_id="buy-broke-1")

    reply = world.api.purchase(**body)

    assert reply.status == 422
    assert reply.code == "INSUFFICIENT_FUNDS"
    assert world.wallet.transactions() == []
    assert world.wallet.balance(PLAYER) == 499
    assert round_statuses(world, "buy-broke-1") == ["voided"]


def test_a_refused_purchase_goes_through_on_retry_after_a_top_up_with_one_debit(
    world: World,
) -> None:
    world.wallet.set_balance(PLAYER, "EUR", 100)
    body = world.purchase_body("gold", client_action_id="buy-later-1")
    assert world.api.purchase(**body).code == "INSUFFICIENT_FUNDS"
    world.wallet.set_balance(PLAYER, "EUR", 5000)

    reply = world.api.purchase(**body)

    assert reply.status == 200
    assert reply.json["round"]["status"] == "settled"
    assert reply.json["balanceAfterMinor"] == 4500
    assert len(world.wallet.debits()) == 1
    assert round_statuses(world, "buy-later-1") == ["voided", "settled"]


def test_purchase_for_a_blocked_player_is_player_blocked_403_and_voided(world: World) -> None:
    world.wallet.block(PLAYER)
    body = world.purchase_body("gold", mode="prepay", client_action_id="buy-blocked-1")

    reply = world.api.purchase(**body)

    assert reply.status == 403
    assert reply.code == "PLAYER_BLOCKED"
    assert world.wallet.transactions() == []
    assert round_statuses(world, "buy-blocked-1") == ["voided"]


def test_purchase_returns_any_other_wallet_refusal_code_verbatim(world: World) -> None:
    world.wallet.fault("refuse", code="SELF_EXCLUDED", times=1, types=["wallet.debit"])

    reply = world.api.purchase(**world.purchase_body("gold"))

    assert reply.status == 422
    assert reply.code == "SELF_EXCLUDED"


def test_purchase_of_a_superseded_box_version_is_not_playable(world: World) -> None:
    old = world.boxes["gold"]
    new_ids = world.import_catalog(
        {
            "boxes": [
                {
                    "slug": "gold",
                    "name": "Gold Box",
                    "priceMinor": 650,
                    "prizes": [{"name": "Gold Coin", "valueMinor": 400, "odds": 1}],
                }
            ]
        }
    )
    assert new_ids["gold"] != old

    reply = world.api.purchase(**world.purchase_body("gold"))

    assert reply.status == 409
    assert reply.code == "BOX_NOT_PLAYABLE"
    assert world.wallet.transactions() == []
    fresh = world.api.purchase(**world.purchase_body("gold", box_ids=new_ids))
    assert fresh.status == 200
    assert fresh.json["round"]["betMinor"] == 650


def test_purchase_of_an_unknown_box_version_is_unknown_box(world: World) -> None:
    body = world.purchase_body("gold")
    body["reels"][0]["boxVersionId"] = 987_654

    reply = world.api.purchase(**body)

    assert reply.status == 404
    assert reply.code == "UNKNOWN_BOX"
    assert world.wallet.transactions() == []


def test_purchase_of_another_operators_box_is_unknown_box(
    world: World, other_wallet: WalletAdmin
) -> None:
    client, _ = second_operator(world, other_wallet)

    reply = client.purchase(**world.purchase_body("gold"))  # operator A's box version

    assert reply.status == 404
    assert reply.code == "UNKNOWN_BOX"
    assert other_wallet.transactions() == []


def test_purchase_in_a_currency_without_a_rate_is_not_supported(world: World) -> None:
    reply = world.api.purchase(**world.purchase_body("gold", currency="GBP"))

    assert reply.status == 422
    assert reply.code == "CURRENCY_NOT_SUPPORTED"
    assert world.wallet.transactions() == []


def test_purchase_answers_wallet_unavailable_and_the_same_action_later_debits_once(
    world: World,
) -> None:
    world.wallet.fault("error", status=502, times=1, types=["wallet.debit"])
    body = world.purchase_body("gold")

    reply = world.api.purchase(**body)

    assert reply.status == 503
    assert reply.code == "WALLET_UNAVAILABLE"
    retry = world.api.purchase(**body)
    assert retry.status == 200
    assert retry.json["round"]["status"] == "settled"
    assert len(world.wallet.debits()) == 1


# --- open -----------------------------------------------------------------------------------


def test_open_of_a_round_that_does_not_exist_is_round_not_found(world: World) -> None:
    reply = world.api.open(playerExternalId=PLAYER, roundPublicId=NO_SUCH_ROUND)

    assert reply.status == 404
    assert reply.code == "ROUND_NOT_FOUND"


def test_open_of_another_players_round_is_round_not_found(world: World) -> None:
    public_id = world.hold_round("gold", player=PLAYER)

    reply = world.api.open(playerExternalId=OTHER_PLAYER, roundPublicId=public_id)

    assert reply.status == 404
    assert reply.code == "ROUND_NOT_FOUND"
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=public_id).status == 200


def test_open_of_an_atomic_round_is_round_not_held(world: World) -> None:
    bought = world.api.purchase(**world.purchase_body("gold"))

    reply = world.api.open(playerExternalId=PLAYER, roundPublicId=bought.json["round"]["publicId"])

    assert reply.status == 409
    assert reply.code == "ROUND_NOT_HELD"


def test_open_of_a_refunded_round_is_round_not_held(world: World) -> None:
    public_id = world.hold_round("gold")
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id).status == 200

    reply = world.api.open(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 409
    assert reply.code == "ROUND_NOT_HELD"


def test_opening_a_round_twice_with_a_new_key_is_round_not_held(world: World) -> None:
    public_id = world.hold_round("gold")
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=public_id).status == 200

    reply = world.api.open(
        playerExternalId=PLAYER, roundPublicId=public_id, idempotencyKey="open-again"
    )

    assert reply.status == 409
    assert reply.code == "ROUND_NOT_HELD"


def test_the_wallet_balance_is_untouched_by_every_rejected_request(world: World) -> None:
    item = world.win_item("gold")
    balance = world.wallet.balance(PLAYER)
    rejected = [
        world.api.cashout(playerExternalId=OTHER_PLAYER, inventoryItemId=item["inventoryItemId"]),
        world.api.cancel(playerExternalId=PLAYER, roundPublicId=NO_SUCH_ROUND),
        world.api.purchase(**world.purchase_body("gold", currency="GBP")),
    ]

    assert [r.status for r in rejected] == [404, 404, 422]
    assert world.wallet.balance(PLAYER) == balance == STARTING_BALANCE - 500
