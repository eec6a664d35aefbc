"""GET /api/s2s/history: the money ledger an operator's finance team reconciles from.

The reference wallet's own transaction list is the other side of every check here.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.e2e.conftest import GOLD_CASHBACK_EUR, OTHER_PLAYER, PLAYER, World

# LootBox's documented fields, then ours.
ROW_FIELDS = {
    "id",
    "type",
    "roundPublicId",
    "inventoryItemId",
    "amountMinor",
    "payoutMinor",
    "currency",
    "status",
    "idempotencyKey",
    "providerTxnRef",
    "occurredAt",
    "completedAt",
    "playerExternalId",
    "operatorAmountMinor",
    "operatorCurrency",
    "rate",
    "balanceAfterMinor",
    "mode",
    "refusalCode",
}
EMPTY_PAGE = {"items": [], "cursor": {"next": None, "prev": None}}
# What 400 EUR cents of prizes are worth in USD at 1.0842 (433.68, half-up).
GOLD_VALUE_USD = 434
GOLD_PRICE_USD = 542  # 500 × 1.0842 = 542.1


def rows(world: World, **params: Any) -> list[dict[str, Any]]:
    """Every row, through every page."""
    return [e for page in world.api.pages("/api/s2s/history", **params) for e in page["items"]]


def page(world: World, **params: Any) -> dict[str, Any]:
    reply = world.api.history(**params)
    assert reply.status == 200, reply.data
    return dict(reply.json)


def ids(rows_: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in rows_]


def summary(rows_: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["type"], e["status"], e["amountMinor"], e["payoutMinor"], e["idempotencyKey"])
        for e in rows_
    ]


def test_an_atomic_open_and_its_cashout_are_two_signed_rows_with_the_wallets_refs(
    world: World,
) -> None:
    bought = world.api.purchase(**world.purchase_body())
    (item,) = bought.json["wonItems"]
    round_id = bought.json["round"]["publicId"]
    world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    reply = world.api.history(playerExternalId=PLAYER)

    assert reply.status == 200
    assert reply.json["cursor"] == {"next": None, "prev": None}
    cashback, opened = reply.json["items"]
    assert set(cashback) == set(opened) == ROW_FIELDS
    assert summary([cashback, opened]) == [
        (
            "cashback",
            "completed",
            GOLD_CASHBACK_EUR,
            None,
            f"cashback:inventory:{item['inventoryItemId']}",
        ),
        ("open", "settled", -500, 400, f"round:{round_id}"),
    ]
    assert opened["payoutMinor"] == bought.json["round"]["payoutMinor"]
    assert (opened["mode"], opened["roundPublicId"], opened["inventoryItemId"]) == (
        "open",
        round_id,
        None,
    )
    assert (cashback["inventoryItemId"], cashback["roundPublicId"]) == (
        item["inventoryItemId"],
        None,
    )
    assert cashback["operatorAmountMinor"] == GOLD_CASHBACK_EUR
    assert (cashback["currency"], cashback["operatorCurrency"], cashback["rate"]) == (
        "EUR",
        "EUR",
        "1",
    )
    by_key = {t["idempotencyKey"]: t for t in world.wallet.transactions()}
    for row in (cashback, opened):
        applied = by_key[row["idempotencyKey"]]
        assert row["providerTxnRef"] == applied["providerTxnRef"]
        assert row["balanceAfterMinor"] == applied["balanceAfterMinor"]
        assert row["completedAt"] is not None
        assert row["id"].startswith("txn_")
    assert cashback["id"] != opened["id"]


def test_a_converted_cashback_shows_both_currencies_and_the_rate(world: World) -> None:
    item = world.win_item()
    world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], currency="USD"
    )

    (cashback,) = rows(world, types="cashback")

    assert (cashback["amountMinor"], cashback["currency"]) == (347, "USD")  # 320 × 1.0842
    assert (cashback["operatorAmountMinor"], cashback["operatorCurrency"]) == (320, "EUR")
    assert cashback["rate"] == "1.0842"
    assert cashback["payoutMinor"] is None


def test_the_payout_is_in_the_rows_currency_like_the_rounds_own(world: World) -> None:
    bought = world.api.purchase(**world.purchase_body(currency="USD")).json
    held = world.hold_round(currency="USD")
    opened = world.api.open(playerExternalId=PLAYER, roundPublicId=held).json

    opening, purchase, atomic = rows(world)

    assert (atomic["type"], atomic["amountMinor"], atomic["currency"]) == (
        "open",
        -GOLD_PRICE_USD,
        "USD",
    )
    assert atomic["payoutMinor"] == bought["round"]["payoutMinor"] == GOLD_VALUE_USD
    assert (opening["type"], opening["amountMinor"], opening["currency"]) == ("open", 0, "USD")
    assert opening["payoutMinor"] == opened["round"]["payoutMinor"] == GOLD_VALUE_USD
    assert (purchase["type"], purchase["payoutMinor"]) == ("purchase", None)


def test_prepay_rows_follow_their_round_held_refunded_or_opened(world: World) -> None:
    kept = world.hold_round()
    refunded = world.hold_round()
    opened = world.hold_round()
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=refunded).status == 200
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=opened).status == 200

    listed = rows(world)

    assert summary(listed) == [
        ("open", "settled", 0, 400, None),
        ("refund", "refunded", 500, None, f"refund:round:{refunded}"),
        ("purchase", "settled", -500, None, f"round:{opened}"),
        ("purchase", "refunded", -500, None, f"round:{refunded}"),
        ("purchase", "held", -500, None, f"round:{kept}"),
    ]
    opening = listed[0]
    assert opening["roundPublicId"] == opened
    assert opening["id"].startswith("txn_") and opening["id"] != listed[2]["id"]
    assert (opening["providerTxnRef"], opening["operatorCurrency"], opening["rate"]) == (
        None,
        None,
        None,
    )
    assert [r["mode"] for r in listed] == ["prepay", None, "prepay", "prepay", "prepay"]


def test_types_filter_open_is_every_draw_and_purchase_every_prepay(world: World) -> None:
    atomic = world.win_item()
    world.win_item(player=OTHER_PLAYER)
    world.api.cashout(playerExternalId=PLAYER, inventoryItemId=atomic["inventoryItemId"])
    refunded = world.hold_round()
    world.api.cancel(playerExternalId=PLAYER, roundPublicId=refunded)
    opened = world.hold_round()
    world.api.open(playerExternalId=PLAYER, roundPublicId=opened)

    everyone = rows(world)
    just_me = rows(world, playerExternalId=PLAYER)
    opens = rows(world, playerExternalId=PLAYER, types="open")
    purchases = rows(world, playerExternalId=PLAYER, types="purchase")
    credits = rows(world, playerExternalId=PLAYER, types="cashback,refund")

    assert len(everyone) == 7
    assert {e["playerExternalId"] for e in everyone} == {PLAYER, OTHER_PLAYER}
    assert len(just_me) == 6
    assert {e["playerExternalId"] for e in just_me} == {PLAYER}
    assert [(e["amountMinor"], e["mode"]) for e in opens] == [(0, "prepay"), (-500, "open")]
    assert [(e["roundPublicId"], e["status"]) for e in purchases] == [
        (opened, "settled"),
        (refunded, "refunded"),
    ]
    assert [e["type"] for e in credits] == ["refund", "cashback"]
    assert rows(world, types="open,purchase,refund,cashback") == everyone


def test_from_and_to_are_inclusive(world: World) -> None:
    for _ in range(3):
        world.win_item()
    newest, middle, oldest = rows(world)

    exactly_middle = rows(world, **{"from": middle["occurredAt"], "to": middle["occurredAt"]})
    from_middle = rows(world, **{"from": middle["occurredAt"]})
    to_middle = rows(world, to=middle["occurredAt"])

    assert ids(exactly_middle) == [middle["id"]]
    assert ids(from_middle) == [newest["id"], middle["id"]]
    assert ids(to_middle) == [middle["id"], oldest["id"]]


def test_a_window_without_an_offset_is_read_as_utc(world: World) -> None:
    world.win_item()
    (row,) = rows(world)
    naive = row["occurredAt"].removesuffix("Z")

    assert ids(rows(world, **{"from": naive, "to": naive})) == [row["id"]]
    plus_one = (
        datetime.fromisoformat(naive) + timedelta(hours=1)
    ).isoformat() + "+01:00"  # the same instant, written in another zone
    assert ids(rows(world, **{"from": plus_one})) == [row["id"]]


@pytest.mark.parametrize("mode, type_", [("open", "open"), ("prepay", "purchase")])
def test_a_refused_debit_is_a_voided_row_with_the_wallets_code(
    world: World, mode: str, type_: str
) -> None:
    world.wallet.set_balance(PLAYER, "EUR", 100)
    assert world.api.purchase(**world.purchase_body(mode=mode)).code == "INSUFFICIENT_FUNDS"

    (row,) = rows(world)

    assert (row["type"], row["status"], row["refusalCode"]) == (
        type_,
        "voided",
        "INSUFFICIENT_FUNDS",
    )
    assert (row["providerTxnRef"], row["payoutMinor"], row["amountMinor"]) == (None, None, -500)
    assert world.wallet.debits() == []


def test_a_refused_credit_is_voided_until_a_retry_is_accepted_in_its_place(
    world: World,
) -> None:
    item = world.win_item()["inventoryItemId"]
    held = world.hold_round()
    world.wallet.fault("refuse", code="TRY_LATER", times=2, types=["wallet.credit"])
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item).code == "TRY_LATER"
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=held).code == "TRY_LATER"

    refund, cashback = rows(world, types="refund,cashback")
    (purchase,) = rows(world, types="purchase")
    assert [(r["type"], r["status"], r["refusalCode"]) for r in (refund, cashback)] == [
        ("refund", "voided", "TRY_LATER"),
        ("cashback", "voided", "TRY_LATER"),
    ]
    assert purchase["status"] == "held"  # the box was not returned

    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item).status == 200
    (accepted,) = rows(world, types="cashback")
    assert (accepted["id"], accepted["status"]) == (cashback["id"], "completed")


def test_an_unknown_credit_outcome_is_a_pending_row_until_it_is_re_driven(
    world: World,
) -> None:
    item = world.win_item()
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])
    cashout = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    assert world.api.cashout(**cashout).status == 503

    (pending,) = rows(world, types="cashback")
    assert (pending["status"], pending["completedAt"], pending["providerTxnRef"]) == (
        "pending",
        None,
        None,
    )

    assert world.api.cashout(**cashout).status == 200
    (settled,) = rows(world, types="cashback")
    assert settled["id"] == pending["id"]
    assert settled["occurredAt"] == pending["occurredAt"]  # the row kept its place
    (applied,) = world.wallet.credits()
    assert settled["status"] == "completed"
    assert settled["providerTxnRef"] == applied["providerTxnRef"]


def test_a_pending_refund_leaves_its_purchase_held(world: World) -> None:
    held = world.hold_round()
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=held).status == 503

    assert [(r["type"], r["status"]) for r in rows(world)] == [
        ("refund", "pending"),
        ("purchase", "held"),
    ]

    assert world.cli("reconcile").exit_code == 0
    assert [(r["type"], r["status"]) for r in rows(world)] == [
        ("refund", "refunded"),
        ("purchase", "refunded"),
    ]


def test_a_pending_atomic_debit_is_a_pending_open_row_then_settled_with_its_payout(
    world: World,
) -> None:
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.debit"])
    assert world.api.purchase(**world.purchase_body()).status == 503

    (pending,) = rows(world)
    assert (pending["type"], pending["status"], pending["payoutMinor"]) == ("open", "pending", None)

    assert world.cli("reconcile").exit_code == 0
    (settled,) = rows(world)
    assert (settled["id"], settled["status"], settled["payoutMinor"]) == (
        pending["id"],
        "settled",
        400,
    )


def test_pages_keep_their_order_when_rows_share_a_timestamp(world: World) -> None:
    for _ in range(3):
        world.win_item()
    held = world.hold_round()
    world.api.open(playerExternalId=PLAYER, roundPublicId=held)
    same_moment = datetime(2026, 11, 21, 12, 0, 0, 123456)
    with world.app.extensions["lootbox"].engine.begin() as conn:
        conn.execute(text("UPDATE money_movements SET created_at = :t"), {"t": same_moment})
        conn.execute(text("UPDATE rounds SET updated_at = :t"), {"t": same_moment})

    unpaged = rows(world, limit=200)
    paged = [rows(world, limit=size) for size in (1, 2, 3)]

    # Movements before openings at equal times, then newest row first.
    assert [(e["type"], e["amountMinor"]) for e in unpaged] == [
        ("purchase", -500),
        *[("open", -500)] * 3,
        ("open", 0),
    ]
    row_ids = ids(unpaged)
    numbers = [int(i.rsplit("_", 1)[1]) for i in row_ids[:4]]
    assert numbers == sorted(numbers, reverse=True)
    for walk in paged:
        assert ids(walk) == row_ids
    # ... and backwards, page by page, from the last page.
    for size in (1, 2, 3):
        pages = world.api.pages("/api/s2s/history", limit=size)
        back = [pages[-1]]
        while back[-1]["cursor"]["prev"] is not None:
            back.append(page(world, limit=size, cursor=back[-1]["cursor"]["prev"]))
        assert [ids(p["items"]) for p in back] == [ids(p["items"]) for p in pages[::-1]]


def test_prev_and_next_pages_stay_put_while_rows_are_added(world: World) -> None:
    for _ in range(4):
        world.win_item()
    before = ids(rows(world))
    first = page(world, limit=2)

    item = world.win_item()["inventoryItemId"]  # two new rows: an open and a cashback
    world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item)
    second = page(world, limit=2, cursor=first["cursor"]["next"])
    back = page(world, limit=2, cursor=second["cursor"]["prev"])
    newest = page(world, limit=2, cursor=back["cursor"]["prev"])
    after = ids(rows(world))

    assert ids(first["items"]) == before[0:2]
    assert ids(second["items"]) == before[2:4]  # no new row, no repeat
    assert second["cursor"]["next"] is None
    assert ids(back["items"]) == before[0:2]  # the same page as before
    assert ids(newest["items"]) == after[0:2]
    assert [r["type"] for r in newest["items"]] == ["cashback", "open"]
    assert newest["cursor"]["prev"] is None  # the first page again
    assert ids(page(world, limit=2, cursor=newest["cursor"]["next"])["items"]) == before[0:2]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"types": "purchase,withdrawal"}, "types"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01T00:00:00Z"}, "to"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"limit": 500}, "limit"),
        ({"cursor": "eyJ2IjoyfQ"}, "cursor"),
        # A cursor of the first version of this API (no direction): refused, not misread.
        ({"cursor": "eyJ2IjoxLCJxIjoiMDAwMDAwMDAwMDAwMDAwMCIsInAiOls3XX0"}, "cursor"),
        ({"player": PLAYER}, "player"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_the_field(
    world: World, params: dict[str, Any], field: str
) -> None:
    reply = world.api.history(**params)

    assert reply.status == 400
    assert reply.code == "VALIDATION_ERROR"
    assert field in reply.fields


def test_a_cursor_is_refused_with_another_window(world: World) -> None:
    for _ in range(2):
        world.win_item()
    cursor = page(world, limit=1)["cursor"]["next"]

    reply = world.api.history(limit=1, cursor=cursor, types="purchase")

    assert reply.status == 400
    assert "cursor" in reply.fields


def documented_example_query(world: World) -> dict[str, Any]:
    document = world.app.test_client().get("/openapi.json").get_json()
    parameters = document["paths"]["/api/s2s/history"]["get"]["parameters"]
    return {p["name"]: p["schema"]["example"] for p in parameters if p["in"] == "query"}


def test_the_documented_example_request_is_answered(world: World) -> None:
    query = documented_example_query(world)

    reply = world.api.history(**query)

    assert "cursor" in query  # a real cursor, for the example's own filters
    assert reply.status == 200, reply.data
    assert reply.json["items"] == [] and reply.json["cursor"]["next"] is None


def test_history_is_per_operator(world: World) -> None:
    world.win_item()
    other = world.client_for(world.onboard())

    assert other.history().json == EMPTY_PAGE


# --- reconciling the wallet from history alone ------------------------------------------------

# The statuses of a row whose wallet call was applied (docs/reconciling.md).
MOVED = {"held", "settled", "refunded", "completed"}


def test_every_call_the_wallet_applied_appears_in_history_exactly_once(world: World) -> None:
    """What docs/reconciling.md tells a finance team to do, done against the reference
    wallet's own ledger after a day with refusals, lost answers, retries and replays."""
    start_balance = world.wallet.balance(PLAYER)
    items = [world.win_item()["inventoryItemId"] for _ in range(4)]
    held = [world.hold_round() for _ in range(3)]

    # A lost answer, retried: applied once, settled by the retry.
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=items[0]).status == 503
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=items[0]).status == 200
    # A replay: no second wallet call.
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=items[0]).replayed
    # A refusal, then the player's retry with the same key succeeds.
    world.wallet.fault("refuse", code="TRY_LATER", times=1, types=["wallet.credit"])
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=items[1]).status == 422
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=items[1]).status == 200
    # A caller key, converted to another currency.
    assert (
        world.api.cashout(
            playerExternalId=PLAYER,
            inventoryItemId=items[2],
            currency="USD",
            idempotencyKey="fin-team-check-1",
        ).status
        == 200
    )
    # Refunds and an opening; a refused debit.
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=held[0]).status == 200
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=held[1]).status == 200
    world.wallet.fault("refuse", code="LIMIT_REACHED", times=1, types=["wallet.debit"])
    assert world.api.purchase(**world.purchase_body()).status == 422
    # A pending refund whose answer was lost: re-driven by the reconciler.
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=held[2]).status == 503
    reconciled = world.cli("reconcile")
    assert reconciled.exit_code == 0, reconciled
    assert reconciled.json["completed"] == 1

    history = rows(world, limit=3)
    applied = world.wallet.transactions()

    money = [e for e in history if e["idempotencyKey"] is not None]
    assert [e for e in history if e not in money] == [
        e for e in history if e["type"] == "open" and e["amountMinor"] == 0
    ]
    moved = [e for e in money if e["status"] in MOVED]
    keys = Counter(e["idempotencyKey"] for e in money)
    assert max(keys.values()) == 1, keys  # one row per wallet key
    assert {e["idempotencyKey"] for e in moved} == {t["idempotencyKey"] for t in applied}
    by_key = {t["idempotencyKey"]: t for t in applied}
    for row in moved:
        wallet_side = by_key[row["idempotencyKey"]]
        sign = -1 if wallet_side["type"] == "wallet.debit" else 1
        assert row["amountMinor"] == sign * wallet_side["amountMinor"]
        assert row["currency"] == wallet_side["currency"]
        assert row["providerTxnRef"] == wallet_side["providerTxnRef"]
    assert [e["status"] for e in money if e["status"] not in MOVED] == ["voided"]
    eur = sum(e["amountMinor"] for e in moved if e["currency"] == "EUR")
    assert world.wallet.balance(PLAYER) == start_balance + eur
