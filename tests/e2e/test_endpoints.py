"""Every endpoint's documented request and response (contract section 5), checked against
the wallet's own record of what moved."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import (
    GOLD_CASHBACK_EUR,
    OTHER_PLAYER,
    PLAYER,
    STARTING_BALANCE,
    World,
)

PUBLIC_ID = re.compile(r"^r_[0-9A-HJKMNP-TV-Z]{26}$")


def assert_recent_utc(stamp: str) -> None:
    assert stamp.endswith("Z"), stamp
    created = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


# --- health and request ids -------------------------------------------------------------


def test_health_answers_ok_to_a_signed_request(world: World) -> None:
    reply = world.api.health()

    assert reply.status == 200
    assert set(reply.json) == {"status", "time"}
    assert reply.json["status"] == "ok"
    assert_recent_utc(reply.json["time"])
    assert reply.headers["Content-Type"].startswith("application/json")


def test_health_refuses_an_unsigned_request(world: World) -> None:
    reply = world.api.health(signed=False)

    assert reply.status == 401
    assert reply.code == "MISSING_HEADERS"


def test_the_callers_request_id_is_echoed(world: World) -> None:
    reply = world.api.health(headers={"X-Request-Id": "req-7f3a-42"})

    assert reply.headers["X-Request-Id"] == "req-7f3a-42"


def test_a_request_id_is_generated_when_the_caller_sends_none(world: World) -> None:
    first = world.api.health()
    second = world.api.health()

    assert first.headers.get("X-Request-Id")
    assert second.headers.get("X-Request-Id")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_an_unusable_request_id_is_replaced_by_a_generated_one(world: World) -> None:
    for bad in ("has space", "x" * 129, "", "tab\there"):
        reply = world.api.health(headers={"X-Request-Id": bad})

        assert reply.headers.get("X-Request-Id"), bad
        assert reply.headers["X-Request-Id"] != bad
        assert re.fullmatch(r"[\x21-\x7e]{1,128}", reply.headers["X-Request-Id"])


def test_error_responses_carry_the_request_id_too(world: World) -> None:
    headers = {"X-Request-Id": "req-err-1"}
    for reply in (
        world.api.health(signed=False, headers=headers),
        world.api.get("/api/s2s/no-such-route", headers=headers),
        world.api.get("/api/s2s/cashout", headers=headers),
        world.api.post("/api/s2s/cashout", {"inventoryItemId": "x"}, headers=headers),
        world.api.post(
            "/api/s2s/cashout",
            {"playerExternalId": PLAYER, "inventoryItemId": 999},
            headers=headers,
        ),
    ):
        assert reply.status >= 400
        assert reply.headers["X-Request-Id"] == "req-err-1"


# --- purchase: atomic open ----------------------------------------------------------------


def test_an_atomic_purchase_debits_once_and_returns_the_settled_round_and_won_item(
    world: World,
) -> None:
    body = world.purchase_body("gold")

    reply = world.api.purchase(**body)

    assert reply.status == 200
    doc = reply.json
    round_ = doc["round"]
    assert PUBLIC_ID.match(round_["publicId"])
    assert round_["status"] == "settled"
    assert round_["mode"] == "open"
    assert round_["betMinor"] == 500
    assert round_["payoutMinor"] == 400
    assert round_["currency"] == "EUR"
    assert_recent_utc(round_["createdAt"])
    (reel,) = round_["reels"]
    assert reel["reelIndex"] == 0
    assert reel["boxVersionId"] == world.boxes["gold"]
    assert reel["priceMinor"] == 500
    assert reel["prize"]["name"] == "Gold Coin"
    assert reel["prize"]["valueMinor"] == 400
    assert reel["prize"]["currency"] == "EUR"
    (item,) = doc["wonItems"]
    assert isinstance(item["inventoryItemId"], int) and item["inventoryItemId"] >= 1
    assert item["itemId"] == reel["prize"]["itemId"]
    assert item["reelIndex"] == 0
    assert item["name"] == "Gold Coin"
    assert item["valueMinor"] == 400
    assert item["currency"] == "EUR"
    assert item["cashbackMinor"] == GOLD_CASHBACK_EUR
    assert item["state"] == "unresolved"
    assert doc["balanceAfterMinor"] == STARTING_BALANCE - 500
    assert "Idempotent-Replayed" not in reply.headers

    (debit,) = world.wallet.transactions()
    assert debit["type"] == "wallet.debit"
    assert debit["idempotencyKey"] == f"round:{round_['publicId']}"
    assert debit["roundPublicId"] == round_["publicId"]
    assert debit["playerExternalId"] == PLAYER
    assert debit["amountMinor"] == 500
    assert debit["currency"] == "EUR"
    assert debit["reason"] == "open"
    assert debit["balanceAfterMinor"] == doc["balanceAfterMinor"]


def test_an_atomic_purchase_of_three_reels_is_one_debit_for_the_total(world: World) -> None:
    body = world.purchase_body("gold", "silver", "gold")

    reply = world.api.purchase(**body)

    assert reply.status == 200
    round_ = reply.json["round"]
    assert round_["betMinor"] == 500 + 300 + 500
    assert round_["payoutMinor"] == 400 + 250 + 400
    assert [r["reelIndex"] for r in round_["reels"]] == [0, 1, 2]
    assert [r["priceMinor"] for r in round_["reels"]] == [500, 300, 500]
    assert [r["prize"]["name"] for r in round_["reels"]] == [
        "Gold Coin",
        "Silver Coin",
        "Gold Coin",
    ]
    items = sorted(reply.json["wonItems"], key=lambda i: i["reelIndex"])
    assert [i["reelIndex"] for i in items] == [0, 1, 2]
    assert [i["cashbackMinor"] for i in items] == [320, 200, 320]
    assert len({i["inventoryItemId"] for i in items}) == 3
    assert all(i["state"] == "unresolved" for i in items)

    (debit,) = world.wallet.transactions()
    assert debit["type"] == "wallet.debit"
    assert debit["amountMinor"] == 1300
    assert debit["idempotencyKey"] == f"round:{round_['publicId']}"


def test_a_draw_with_real_odds_yields_one_of_the_boxs_prizes(world: World) -> None:
    for _ in range(5):
        reply = world.api.purchase(**world.purchase_body("mixed"))
        assert reply.status == 200
        (item,) = reply.json["wonItems"]
        assert (item["name"], item["valueMinor"]) in {("Common Sticker", 50), ("Rare Poster", 500)}
        assert reply.json["round"]["payoutMinor"] == item["valueMinor"]
    assert len(world.wallet.debits()) == 5


PURCHASE_CONVERSIONS = [
    # 5.00 EUR x 1.0842 = 5.421 USD; the 4.00 EUR prize -> 4.3368 USD
    ("USD", 542, 434),
    # 5.00 EUR x 162.5 = 812.5 JPY (no minor unit) -> half up 813; 4.00 -> 650
    ("JPY", 813, 650),
    # 5.00 EUR x 0.3312 = 1.656 KWD (3 decimals) -> 1656; 4.00 -> 1.3248 -> 1325
    ("KWD", 1656, 1325),
    ("EUR", 500, 400),
]


def test_a_purchase_in_a_wallet_currency_debits_the_converted_price(world: World) -> None:
    for currency, bet, payout in PURCHASE_CONVERSIONS:
        reply = world.api.purchase(**world.purchase_body("gold", currency=currency))

        assert reply.status == 200, (currency, reply.data)
        round_ = reply.json["round"]
        assert (currency, round_["currency"], round_["betMinor"], round_["payoutMinor"]) == (
            currency,
            currency,
            bet,
            payout,
        )
        # Prices and prizes stay in the operator currency; the round is in the wallet's.
        assert round_["reels"][0]["priceMinor"] == 500
        assert reply.json["wonItems"][0]["currency"] == "EUR"
        assert reply.json["balanceAfterMinor"] == STARTING_BALANCE - bet
        (debit,) = world.wallet.debits(roundPublicId=round_["publicId"])
        assert (debit["amountMinor"], debit["currency"]) == (bet, currency)
    assert len(world.wallet.debits()) == len(PURCHASE_CONVERSIONS)


def test_won_items_show_the_cashback_of_the_most_specific_rule(world: World) -> None:
    """Prize rule, else box rule, else the operator's 8000 bps; none when disabled."""
    for box, cashback in (
        ("gold", 320),
        ("box-rule", 500),
        ("prize-rule", 250),
        ("no-cashback", None),
    ):
        item = world.win_item(box)
        assert (box, item["cashbackMinor"]) == (box, cashback)


# --- purchase: prepay and open --------------------------------------------------------------


def test_a_prepay_purchase_debits_once_and_holds_the_round_unopened(world: World) -> None:
    reply = world.api.purchase(**world.purchase_body("gold", mode="prepay"))

    assert reply.status == 200
    round_ = reply.json["round"]
    assert round_["status"] == "held"
    assert round_["mode"] == "prepay"
    assert round_["betMinor"] == 500
    assert round_["payoutMinor"] is None
    assert round_["reels"][0]["prize"] is None
    assert reply.json["wonItems"] == []
    assert reply.json["balanceAfterMinor"] == STARTING_BALANCE - 500
    (debit,) = world.wallet.transactions()
    assert debit["reason"] == "prepay"
    assert debit["amountMinor"] == 500
    assert debit["idempotencyKey"] == f"round:{round_['publicId']}"


def test_opening_a_held_round_settles_it_with_a_draw_and_no_wallet_call(world: World) -> None:
    public_id = world.hold_round("gold")
    calls_before = world.wallet.transactions()

    reply = world.api.open(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 200
    round_ = reply.json["round"]
    assert round_["publicId"] == public_id
    assert round_["status"] == "settled"
    assert round_["mode"] == "prepay"
    assert round_["betMinor"] == 500
    assert round_["payoutMinor"] == 400
    assert round_["reels"][0]["prize"]["name"] == "Gold Coin"
    (item,) = reply.json["wonItems"]
    assert item["state"] == "unresolved"
    assert item["cashbackMinor"] == GOLD_CASHBACK_EUR
    assert reply.json["balanceAfterMinor"] == STARTING_BALANCE - 500
    assert world.wallet.transactions() == calls_before


def test_opening_a_held_round_bought_in_yen_pays_out_in_yen(world: World) -> None:
    public_id = world.hold_round("gold", currency="JPY")

    reply = world.api.open(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 200
    assert reply.json["round"]["currency"] == "JPY"
    assert reply.json["round"]["betMinor"] == 813
    assert reply.json["round"]["payoutMinor"] == 650


def test_a_held_round_bought_before_a_catalog_change_still_opens_with_its_version(
    world: World,
) -> None:
    public_id = world.hold_round("gold")
    changed = {"boxes": [{**_gold_box(), "priceMinor": 900}]}
    new_ids = world.import_catalog(changed)
    assert new_ids["gold"] != world.boxes["gold"]

    reply = world.api.open(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 200
    assert reply.json["round"]["reels"][0]["boxVersionId"] == world.boxes["gold"]
    assert reply.json["round"]["betMinor"] == 500


def _gold_box() -> dict[str, object]:
    return {
        "slug": "gold",
        "name": "Gold Box",
        "priceMinor": 500,
        "prizes": [{"name": "Gold Coin", "valueMinor": 400, "odds": 1}],
    }


# --- cashout --------------------------------------------------------------------------------


def test_cashout_credits_the_items_cashback_once_and_marks_it_cashed_back(world: World) -> None:
    item = world.win_item("gold")

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 200
    assert reply.json == {
        "item": {
            "inventoryItemId": item["inventoryItemId"],
            "state": "cashed_back",
            "cashbackMinor": 320,
            "currency": "EUR",
        },
        "balanceAfterMinor": STARTING_BALANCE - 500 + 320,
    }
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == f"cashback:inventory:{item['inventoryItemId']}"
    assert credit["inventoryItemId"] == item["inventoryItemId"]
    assert credit["playerExternalId"] == PLAYER
    assert credit["reason"] == "cashback"
    assert (credit["amountMinor"], credit["currency"]) == (320, "EUR")
    assert credit["reference"] == {
        "operatorAmountMinor": 320,
        "operatorCurrency": "EUR",
        "rate": "1",
    }
    assert world.wallet.balance(PLAYER, "EUR") == STARTING_BALANCE - 500 + 320


CASHOUT_CONVERSIONS = [
    # floor first in EUR (320), then convert: 3.20 x 1.0842 = 3.46944 -> 347
    ("USD", 347, "1.0842"),
    ("JPY", 520, "162.5"),  # 3.20 x 162.5 = 520
    ("KWD", 1060, "0.3312"),  # 3.20 x 0.3312 = 1.05984 -> 1.060
]


def test_cashout_in_a_wallet_currency_credits_the_converted_amount_with_its_reference(
    world: World,
) -> None:
    for currency, credited, rate in CASHOUT_CONVERSIONS:
        item = world.win_item("gold")

        reply = world.api.cashout(
            playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], currency=currency
        )

        assert reply.status == 200, (currency, reply.data)
        assert reply.json["item"]["cashbackMinor"] == credited, currency
        assert reply.json["item"]["currency"] == currency
        assert reply.json["balanceAfterMinor"] == STARTING_BALANCE + credited
        (credit,) = world.wallet.credits(inventoryItemId=item["inventoryItemId"])
        assert (credit["amountMinor"], credit["currency"]) == (credited, currency)
        assert credit["reference"] == {
            "operatorAmountMinor": 320,
            "operatorCurrency": "EUR",
            "rate": rate,
        }


def test_cashout_in_the_operator_currency_named_explicitly_is_unconverted(world: World) -> None:
    item = world.win_item("gold")

    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], currency="EUR"
    )

    assert reply.status == 200
    assert reply.json["item"]["cashbackMinor"] == 320
    assert reply.json["item"]["currency"] == "EUR"


def test_cashout_uses_the_most_specific_cashback_rule(world: World) -> None:
    for box, credited in (("box-rule", 500), ("prize-rule", 250)):
        item = world.win_item(box)

        reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

        assert (box, reply.status, reply.json["item"]["cashbackMinor"]) == (box, 200, credited)
        (credit,) = world.wallet.credits(inventoryItemId=item["inventoryItemId"])
        assert credit["amountMinor"] == credited


def test_cashout_uses_the_rate_and_rule_in_force_at_cashout_time(world: World) -> None:
    item = world.win_item("gold")
    updated = world.cli(
        "operators", "update", world.operator.slug, "--rate", "USD=1.2", "--cashback-bps", "5000"
    )
    assert updated.exit_code == 0, updated

    reply = world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], currency="USD"
    )

    # floor(400 x 5000 / 10000) = 200 EUR minor -> x 1.2 = 240 USD minor
    assert reply.status == 200
    assert reply.json["item"]["cashbackMinor"] == 240
    assert world.wallet.credits()[0]["reference"] == {
        "operatorAmountMinor": 200,
        "operatorCurrency": "EUR",
        "rate": "1.2",
    }


def test_cashout_with_an_explicit_idempotency_key_sends_that_key_to_the_wallet(
    world: World,
) -> None:
    item = world.win_item("gold")

    reply = world.api.cashout(
        playerExternalId=PLAYER,
        inventoryItemId=item["inventoryItemId"],
        idempotencyKey="op-cashout-0001",
    )

    assert reply.status == 200
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == "op-cashout-0001"


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_refunds_a_held_round_once_for_its_original_amount(world: World) -> None:
    public_id = world.hold_round("gold")

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 200
    assert reply.json == {
        "round": {
            "publicId": public_id,
            "status": "refunded",
            "refundedMinor": 500,
            "currency": "EUR",
        },
        "balanceAfterMinor": STARTING_BALANCE,
    }
    (credit,) = world.wallet.credits()
    assert credit["idempotencyKey"] == f"refund:round:{public_id}"
    assert credit["roundPublicId"] == public_id
    assert credit["reason"] == "refund"
    assert (credit["amountMinor"], credit["currency"]) == (500, "EUR")
    assert world.wallet.balance(PLAYER, "EUR") == STARTING_BALANCE


def test_cancel_refunds_in_the_currency_and_amount_the_round_was_bought_in(world: World) -> None:
    public_id = world.hold_round("gold", currency="JPY")
    # A later rate change must not change what the held round is worth.
    assert world.cli("operators", "update", world.operator.slug, "--rate", "JPY=170").exit_code == 0

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 200
    assert reply.json["round"]["refundedMinor"] == 813
    assert reply.json["round"]["currency"] == "JPY"
    (credit,) = world.wallet.credits()
    assert (credit["amountMinor"], credit["currency"]) == (813, "JPY")
    assert credit["reference"] == {
        "operatorAmountMinor": 500,
        "operatorCurrency": "EUR",
        "rate": "162.5",
    }
    assert world.wallet.balance(PLAYER, "JPY") == STARTING_BALANCE


def test_cancel_of_a_three_reel_held_round_refunds_the_whole_debit_once(world: World) -> None:
    body = world.purchase_body("gold", "silver", "gold", mode="prepay")
    bought = world.api.purchase(**body)
    assert bought.status == 200
    public_id = bought.json["round"]["publicId"]

    reply = world.api.cancel(playerExternalId=PLAYER, roundPublicId=public_id)

    assert reply.status == 200
    assert reply.json["round"]["refundedMinor"] == 1300
    (credit,) = world.wallet.credits()
    assert credit["amountMinor"] == 1300


def test_each_player_cashes_out_only_their_own_item_to_their_own_account(world: World) -> None:
    mine = world.win_item("gold", player=PLAYER)
    theirs = world.win_item("silver", player=OTHER_PLAYER)

    reply = world.api.cashout(
        playerExternalId=OTHER_PLAYER, inventoryItemId=theirs["inventoryItemId"]
    )

    assert reply.status == 200
    assert reply.json["item"]["cashbackMinor"] == 200
    (credit,) = world.wallet.credits()
    assert credit["playerExternalId"] == OTHER_PLAYER
    again = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=mine["inventoryItemId"])
    assert again.status == 200
