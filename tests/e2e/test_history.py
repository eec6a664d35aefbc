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

ENTRY_FIELDS = {
    "entryId",
    "type",
    "status",
    "occurredAt",
    "completedAt",
    "playerExternalId",
    "amountMinor",
    "currency",
    "operatorAmountMinor",
    "operatorCurrency",
    "rate",
    "idempotencyKey",
    "providerTxnRef",
    "balanceAfterMinor",
    "roundPublicId",
    "inventoryItemId",
    "mode",
    "refusalCode",
}


def entries(world: World, **params: Any) -> list[dict[str, Any]]:
    """Every entry, through every page."""
    return [e for page in world.api.pages("/api/s2s/history", **params) for e in page["entries"]]


def summary(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["type"], e["status"], e["amountMinor"], e["idempotencyKey"]) for e in rows]


def test_a_purchase_and_its_cashout_are_two_signed_rows_with_the_wallets_refs(
    world: World,
) -> None:
    bought = world.api.purchase(**world.purchase_body())
    (item,) = bought.json["wonItems"]
    round_id = bought.json["round"]["publicId"]
    world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    reply = world.api.history(playerExternalId=PLAYER)

    assert reply.status == 200
    assert reply.json["nextCursor"] is None
    cashback, purchase = reply.json["entries"]
    assert set(cashback) == ENTRY_FIELDS
    assert summary([cashback, purchase]) == [
        (
            "cashback",
            "accepted",
            GOLD_CASHBACK_EUR,
            f"cashback:inventory:{item['inventoryItemId']}",
        ),
        ("purchase", "accepted", -500, f"round:{round_id}"),
    ]
    assert purchase["mode"] == "open"
    assert purchase["roundPublicId"] == round_id
    assert cashback["inventoryItemId"] == item["inventoryItemId"]
    assert cashback["operatorAmountMinor"] == GOLD_CASHBACK_EUR
    assert (cashback["currency"], cashback["operatorCurrency"], cashback["rate"]) == (
        "EUR",
        "EUR",
        "1",
    )
    by_key = {t["idempotencyKey"]: t for t in world.wallet.transactions()}
    for entry in (cashback, purchase):
        applied = by_key[entry["idempotencyKey"]]
        assert entry["providerTxnRef"] == applied["providerTxnRef"]
        assert entry["balanceAfterMinor"] == applied["balanceAfterMinor"]
        assert entry["completedAt"] is not None
    assert purchase["entryId"].startswith("mm_")


def test_a_converted_cashback_shows_both_currencies_and_the_rate(world: World) -> None:
    item = world.win_item()
    world.api.cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"], currency="USD"
    )

    (cashback,) = entries(world, types="cashback")

    assert (cashback["amountMinor"], cashback["currency"]) == (347, "USD")  # 320 × 1.0842
    assert (cashback["operatorAmountMinor"], cashback["operatorCurrency"]) == (320, "EUR")
    assert cashback["rate"] == "1.0842"


def test_prepay_then_cancel_and_prepay_then_open(world: World) -> None:
    refunded = world.hold_round()
    opened = world.hold_round()
    assert world.api.cancel(playerExternalId=PLAYER, roundPublicId=refunded).status == 200
    assert world.api.open(playerExternalId=PLAYER, roundPublicId=opened).status == 200

    rows = entries(world)

    assert summary(rows) == [
        ("open", "completed", 0, None),
        ("refund", "accepted", 500, f"refund:round:{refunded}"),
        ("purchase", "accepted", -500, f"round:{opened}"),
        ("purchase", "accepted", -500, f"round:{refunded}"),
    ]
    opening = rows[0]
    assert opening["roundPublicId"] == opened
    assert opening["entryId"].startswith("op_")
    assert (opening["providerTxnRef"], opening["operatorCurrency"], opening["rate"]) == (
        None,
        None,
        None,
    )
    assert [r["mode"] for r in rows] == ["prepay", None, "prepay", "prepay"]


def test_types_and_player_filters(world: World) -> None:
    mine = world.win_item()
    world.win_item(player=OTHER_PLAYER)
    world.api.cashout(playerExternalId=PLAYER, inventoryItemId=mine["inventoryItemId"])
    held = world.hold_round()
    world.api.cancel(playerExternalId=PLAYER, roundPublicId=held)

    everyone = entries(world)
    just_me = entries(world, playerExternalId=PLAYER)
    credits = entries(world, playerExternalId=PLAYER, types="cashback,refund")

    assert len(everyone) == 5
    assert {e["playerExternalId"] for e in everyone} == {PLAYER, OTHER_PLAYER}
    assert len(just_me) == 4
    assert {e["playerExternalId"] for e in just_me} == {PLAYER}
    assert [e["type"] for e in credits] == ["refund", "cashback"]
    assert entries(world, types="open") == []


def test_from_and_to_are_inclusive(world: World) -> None:
    for _ in range(3):
        world.win_item()
    newest, middle, oldest = entries(world)

    exactly_middle = entries(world, **{"from": middle["occurredAt"], "to": middle["occurredAt"]})
    from_middle = entries(world, **{"from": middle["occurredAt"]})
    to_middle = entries(world, to=middle["occurredAt"])

    assert [e["entryId"] for e in exactly_middle] == [middle["entryId"]]
    assert [e["entryId"] for e in from_middle] == [newest["entryId"], middle["entryId"]]
    assert [e["entryId"] for e in to_middle] == [middle["entryId"], oldest["entryId"]]


def test_a_window_without_an_offset_is_read_as_utc(world: World) -> None:
    world.win_item()
    (entry,) = entries(world)
    naive = entry["occurredAt"].removesuffix("Z")

    assert [e["entryId"] for e in entries(world, **{"from": naive, "to": naive})] == [
        entry["entryId"]
    ]
    plus_one = (
        datetime.fromisoformat(naive) + timedelta(hours=1)
    ).isoformat() + "+01:00"  # the same instant, written in another zone
    assert [e["entryId"] for e in entries(world, **{"from": plus_one})] == [entry["entryId"]]


def test_a_refused_debit_is_a_refused_row_with_the_wallets_code(world: World) -> None:
    world.wallet.set_balance(PLAYER, "EUR", 100)
    assert world.api.purchase(**world.purchase_body()).code == "INSUFFICIENT_FUNDS"

    (row,) = entries(world)

    assert (row["type"], row["status"], row["refusalCode"]) == (
        "purchase",
        "refused",
        "INSUFFICIENT_FUNDS",
    )
    assert row["providerTxnRef"] is None
    assert world.wallet.debits() == []


def test_an_unknown_outcome_is_a_pending_row_until_it_is_re_driven(world: World) -> None:
    item = world.win_item()
    world.wallet.fault("apply_then_drop", times=1, types=["wallet.credit"])
    cashout = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    assert world.api.cashout(**cashout).status == 503

    (pending,) = entries(world, types="cashback")
    assert (pending["status"], pending["completedAt"], pending["providerTxnRef"]) == (
        "pending",
        None,
        None,
    )

    assert world.api.cashout(**cashout).status == 200
    (settled,) = entries(world, types="cashback")
    assert settled["entryId"] == pending["entryId"]
    assert settled["occurredAt"] == pending["occurredAt"]  # the row kept its place
    (applied,) = world.wallet.credits()
    assert settled["status"] == "accepted"
    assert settled["providerTxnRef"] == applied["providerTxnRef"]


def test_pages_keep_their_order_when_rows_share_a_timestamp(world: World) -> None:
    for _ in range(3):
        world.win_item()
    held = world.hold_round()
    world.api.open(playerExternalId=PLAYER, roundPublicId=held)
    same_moment = datetime(2026, 11, 21, 12, 0, 0, 123456)
    with world.app.extensions["lootbox"].engine.begin() as conn:
        conn.execute(text("UPDATE money_movements SET created_at = :t"), {"t": same_moment})
        conn.execute(text("UPDATE rounds SET updated_at = :t"), {"t": same_moment})

    unpaged = entries(world, limit=200)
    paged = [entries(world, limit=size) for size in (1, 2, 3)]

    # Movements before openings at equal times, then newest row first.
    assert [e["type"] for e in unpaged] == ["purchase"] * 4 + ["open"]
    ids = [e["entryId"] for e in unpaged]
    assert ids[:4] == sorted(ids[:4], key=lambda i: int(i[3:]), reverse=True)
    for walk in paged:
        assert [e["entryId"] for e in walk] == ids


@pytest.mark.parametrize(
    "params, field",
    [
        ({"types": "purchase,withdrawal"}, "types"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01T00:00:00Z"}, "to"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "from"),
        ({"limit": 500}, "limit"),
        ({"cursor": "eyJ2IjoyfQ"}, "cursor"),
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
    cursor = world.api.history(limit=1).json["nextCursor"]

    reply = world.api.history(limit=1, cursor=cursor, types="purchase")

    assert reply.status == 400
    assert "cursor" in reply.fields


def test_history_is_per_operator(world: World) -> None:
    world.win_item()
    other = world.client_for(world.onboard())

    assert other.history().json == {"entries": [], "nextCursor": None}


# --- reconciling the wallet from history alone ------------------------------------------------


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

    history = entries(world, limit=3)
    applied = world.wallet.transactions()

    money = [e for e in history if e["type"] != "open"]
    accepted = [e for e in money if e["status"] == "accepted"]
    keys = Counter(e["idempotencyKey"] for e in money)
    assert max(keys.values()) == 1, keys  # one row per wallet key
    assert {e["idempotencyKey"] for e in accepted} == {t["idempotencyKey"] for t in applied}
    by_key = {t["idempotencyKey"]: t for t in applied}
    for entry in accepted:
        wallet_side = by_key[entry["idempotencyKey"]]
        sign = -1 if wallet_side["type"] == "wallet.debit" else 1
        assert entry["amountMinor"] == sign * wallet_side["amountMinor"]
        assert entry["currency"] == wallet_side["currency"]
        assert entry["providerTxnRef"] == wallet_side["providerTxnRef"]
    assert [e for e in money if e["status"] == "pending"] == []
    eur = sum(e["amountMinor"] for e in accepted if e["currency"] == "EUR")
    assert world.wallet.balance(PLAYER) == start_balance + eur
