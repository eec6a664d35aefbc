"""GET /api/s2s/inventory: a player's items, filters, keyset pages and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import GOLD_CASHBACK_EUR, OTHER_PLAYER, PLAYER, World

ITEM_FIELDS = {
    "inventoryItemId",
    "itemId",
    "name",
    "valueMinor",
    "currency",
    "cashbackMinor",
    "state",
    "roundPublicId",
    "reelIndex",
    "boxVersionId",
    "createdAt",
    "updatedAt",
}


def ids(page: dict[str, Any]) -> list[int]:
    return [item["inventoryItemId"] for item in page["items"]]


def all_ids(world: World, **params: Any) -> list[int]:
    return [i for page in world.api.pages("/api/s2s/inventory", **params) for i in ids(page)]


def test_lists_a_players_won_items_newest_first_with_their_cashback(world: World) -> None:
    first = world.win_item()
    second = world.win_item()

    reply = world.api.inventory(playerExternalId=PLAYER)

    assert reply.status == 200
    assert reply.json["nextCursor"] is None
    items = reply.json["items"]
    assert [i["inventoryItemId"] for i in items] == [
        second["inventoryItemId"],
        first["inventoryItemId"],
    ]
    assert set(items[0]) == ITEM_FIELDS
    assert items[1]["name"] == first["name"] == "Gold Coin"
    assert items[1]["valueMinor"] == 400
    assert items[1]["currency"] == "EUR"
    assert items[1]["state"] == "unresolved"
    assert items[1]["cashbackMinor"] == GOLD_CASHBACK_EUR
    assert items[1]["itemId"] == first["itemId"]
    assert items[1]["reelIndex"] == 0
    assert items[1]["createdAt"].endswith("Z")


def test_state_filter_follows_the_item_through_its_cashout(world: World) -> None:
    kept = world.win_item()
    cashed = world.win_item()
    assert (
        world.api.cashout(playerExternalId=PLAYER, inventoryItemId=cashed["inventoryItemId"]).status
        == 200
    )

    unresolved = world.api.inventory(playerExternalId=PLAYER)
    done = world.api.inventory(playerExternalId=PLAYER, state="cashed_back")
    everything = world.api.inventory(playerExternalId=PLAYER, state="all")

    assert ids(unresolved.json) == [kept["inventoryItemId"]]
    assert ids(done.json) == [cashed["inventoryItemId"]]
    assert done.json["items"][0]["state"] == "cashed_back"
    assert done.json["items"][0]["cashbackMinor"] is None  # nothing left to cash out
    assert ids(everything.json) == [cashed["inventoryItemId"], kept["inventoryItemId"]]
    for state in ("ship_requested", "fulfilled", "expired"):
        assert world.api.inventory(playerExternalId=PLAYER, state=state).json["items"] == []


def test_an_item_whose_cashout_is_in_flight_still_reads_unresolved(world: World) -> None:
    item = world.win_item()
    world.wallet.fault("error", times=1)
    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert reply.status == 503

    listed = world.api.inventory(playerExternalId=PLAYER).json["items"]

    assert [(i["inventoryItemId"], i["state"]) for i in listed] == [
        (item["inventoryItemId"], "unresolved")
    ]


def test_pages_walk_every_item_once_in_order(world: World) -> None:
    won = [world.win_item()["inventoryItemId"] for _ in range(5)]

    pages = world.api.pages("/api/s2s/inventory", playerExternalId=PLAYER, limit=2)

    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert [i for page in pages for i in ids(page)] == won[::-1]


def test_a_cursor_is_stable_while_new_items_arrive(world: World) -> None:
    won = [world.win_item()["inventoryItemId"] for _ in range(3)]
    first = world.api.inventory(playerExternalId=PLAYER, limit=2).json

    newer = world.win_item()["inventoryItemId"]
    rest = world.api.inventory(playerExternalId=PLAYER, limit=2, cursor=first["nextCursor"])

    assert ids(first) == [won[2], won[1]]
    assert ids(rest.json) == [won[0]]  # neither the new item nor a repeat
    assert rest.json["nextCursor"] is None
    assert all_ids(world, playerExternalId=PLAYER)[0] == newer


def test_a_limit_of_exactly_the_item_count_has_no_next_page(world: World) -> None:
    for _ in range(2):
        world.win_item()

    reply = world.api.inventory(playerExternalId=PLAYER, limit=2)

    assert len(reply.json["items"]) == 2
    assert reply.json["nextCursor"] is None


def test_only_the_players_own_items_are_listed(world: World) -> None:
    mine = world.win_item()
    world.win_item(player=OTHER_PLAYER)
    other_operator = world.onboard()
    other_client = world.client_for(other_operator)

    assert all_ids(world, playerExternalId=PLAYER) == [mine["inventoryItemId"]]
    assert other_client.inventory(playerExternalId=PLAYER).json == {
        "items": [],
        "nextCursor": None,
    }
    assert world.api.inventory(playerExternalId="u_nobody").json["items"] == []


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "playerExternalId"),
        ({"playerExternalId": PLAYER, "state": "cashback_pending"}, "state"),
        ({"playerExternalId": PLAYER, "state": "UNRESOLVED"}, "state"),
        ({"playerExternalId": PLAYER, "limit": 0}, "limit"),
        ({"playerExternalId": PLAYER, "limit": 201}, "limit"),
        ({"playerExternalId": PLAYER, "limit": "ten"}, "limit"),
        ({"playerExternalId": PLAYER, "cursor": "not-a-cursor"}, "cursor"),
        ({"playerExternalId": PLAYER, "cursor": "x" * 513}, "cursor"),
        ({"playerExternalId": PLAYER, "status": "unresolved"}, "status"),
        ({"playerExternalId": "a\x01b"}, "playerExternalId"),
    ],
)
def test_bad_query_parameters_are_a_400_naming_the_field(
    world: World, params: dict[str, Any], field: str
) -> None:
    reply = world.api.inventory(**params)

    assert reply.status == 400
    assert reply.code == "VALIDATION_ERROR"
    assert field in reply.fields


def test_a_cursor_is_refused_with_other_filters(world: World) -> None:
    for _ in range(3):
        world.win_item()
    cursor = world.api.inventory(playerExternalId=PLAYER, limit=1).json["nextCursor"]

    other_state = world.api.inventory(playerExternalId=PLAYER, state="all", cursor=cursor)
    other_player = world.api.inventory(playerExternalId=OTHER_PLAYER, cursor=cursor)
    other_limit = world.api.inventory(playerExternalId=PLAYER, limit=5, cursor=cursor)

    for reply in (other_state, other_player):
        assert reply.status == 400
        assert "cursor" in reply.fields
    assert other_limit.status == 200  # the page size may change between pages
    assert len(other_limit.json["items"]) == 2


def test_a_history_cursor_is_not_an_inventory_cursor(world: World) -> None:
    for _ in range(2):
        world.win_item()
    cursor = world.api.history(limit=1).json["nextCursor"]

    reply = world.api.inventory(playerExternalId=PLAYER, cursor=cursor)

    assert reply.status == 400
    assert "cursor" in reply.fields


def test_inventory_needs_a_signature(world: World) -> None:
    reply = world.api.get("/api/s2s/inventory", query_string="playerExternalId=u_1", signed=False)

    assert reply.status == 401
    assert reply.code == "MISSING_HEADERS"
