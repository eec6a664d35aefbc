"""``flask ops pending``: what an on-call engineer reads when money is in flight."""

from __future__ import annotations

from tests.e2e.conftest import GOLD_CASHBACK_EUR, PLAYER, World


def lose_a_cashout_answer(world: World) -> int:
    item = world.win_item()["inventoryItemId"]
    world.wallet.fault("apply_then_drop", times=1)
    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item)
    assert reply.code == "WALLET_UNAVAILABLE", reply.data
    return int(item)


def test_nothing_pending_is_an_empty_report(world: World) -> None:
    world.win_item()

    result = world.cli("ops", "pending")

    assert result.exit_code == 0, result
    assert result.json == {
        "count": 0,
        "truncated": False,
        "oldestAgeSeconds": None,
        "atRisk": {},
        "operations": [],
    }


def test_a_lost_credit_and_a_lost_debit_are_listed_with_the_money_at_risk(world: World) -> None:
    item = lose_a_cashout_answer(world)
    world.wallet.fault("error", status=503, times=1)
    bought = world.api.purchase(**world.purchase_body("gold"))
    assert bought.code == "WALLET_UNAVAILABLE", bought.data

    report = world.cli("ops", "pending").json

    assert report["count"] == 2 and report["truncated"] is False
    credit, debit = report["operations"]
    assert credit["idempotencyKey"] == f"cashback:inventory:{item}"
    assert (credit["type"], credit["reason"], credit["inventoryItemId"]) == (
        "wallet.credit",
        "cashback",
        item,
    )
    assert (debit["type"], debit["reason"]) == ("wallet.debit", "open")
    assert debit["idempotencyKey"] == f"round:{debit['roundPublicId']}"
    for op in (credit, debit):
        assert op["operator"] == world.operator.slug
        assert op["phase"] == "outcome_unknown"
        assert op["attempts"] == 1 and op["lastError"]
        assert op["ageSeconds"] >= 0 and op["playerExternalId"] == PLAYER
    assert report["atRisk"] == {
        "EUR": {
            "operations": 2,
            "creditsMinor": GOLD_CASHBACK_EUR,
            "debitsMinor": debit["amountMinor"],
        }
    }
    assert report["oldestAgeSeconds"] == max(credit["ageSeconds"], debit["ageSeconds"])

    assert world.cli("reconcile").json["completed"] == 2
    assert world.cli("ops", "pending").json["count"] == 0


def test_the_limit_says_when_the_list_is_cut(world: World) -> None:
    lose_a_cashout_answer(world)
    lose_a_cashout_answer(world)

    report = world.cli("ops", "pending", "--limit", "1").json

    assert (report["count"], report["truncated"]) == (1, True)
    assert report["atRisk"]["EUR"]["operations"] == 1
