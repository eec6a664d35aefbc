"""GET /api/s2s/inventory: a player's items, filters, keyset pages and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import GOLD_CASHBACK_EUR, OTHER_PLAYER, PLAYER, Reply, World

# LootBox's documented fields, then ours.
ITEM_FIELDS = {
    "id",
    "itemId",
    "name",
    "type",
    "imageUrl",
    "valueMinor",
    "currency",
    "state",
    "cashbackMinor",
    "shippable",
    "wonAtRoundPublicId",
    "createdAt",
    "reelIndex",
    "boxVersionId",
    "updatedAt",
}
EMPTY_PAGE = {"items": [], "cursor": {"next": None, "prev": None}}


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


def all_ids(world: World, **params: Any) -> list[int]:
    return [i for page in world.api.pages("/api/s2s/inventory", **params) for i in ids(page)]


def page(world: World, **params: Any) -> dict[str, Any]:
    reply = world.api.inventory(playerExternalId=PLAYER, **params)
    assert reply.status == 200, reply.data
    return dict(reply.json)


def test_lists_a_players_won_items_newest_first_with_their_cashback(world: World) -> None:
    first = world.win_item()
    second = world.win_item()
    bought = world.api.purchase(**world.purchase_body()).json

    reply = world.api.inventory(playerExternalId=PLAYER)

    assert reply.status == 200
    assert reply.json["cursor"] == {"next": None, "prev": None}
    items = reply.json["items"]
    assert [i["id"] for i in items] == [
        bought["wonItems"][0]["inventoryItemId"],
        second["inventoryItemId"],
        first["inventoryItemId"],
    ]
    assert set(items[0]) == ITEM_FIELDS
    oldest = items[-1]
    assert oldest["name"] == first["name"] == "Gold Coin"
    assert oldest["itemId"] == first["itemId"]
    assert (oldest["valueMinor"], oldest["currency"]) == (400, "EUR")
    assert oldest["state"] == "unresolved"
    assert oldest["cashbackMinor"] == GOLD_CASHBACK_EUR
    # A catalog prize without a type is digital, has no image and is not shippable.
    assert (oldest["type"], oldest["imageUrl"], oldest["shippable"]) == ("digital", None, False)
    assert oldest["reelIndex"] == 0
    assert oldest["createdAt"].endswith("Z")
    assert items[0]["wonAtRoundPublicId"] == bought["round"]["publicId"]
    assert items[0]["boxVersionId"] == world.boxes["gold"]


def test_a_prizes_type_image_and_shippability_come_from_the_catalog(world: World) -> None:
    boxes = world.import_catalog(
        {
            "boxes": [
                {
                    "slug": "sword",
                    "name": "Sword Box",
                    "priceMinor": 500,
                    "prizes": [
                        {
                            "name": "Golden Sword",
                            "valueMinor": 320,
                            "odds": 1,
                            "type": "physical",
                            "imageUrl": "https://cdn.example/sword.png",
                        }
                    ],
                },
                {
                    "slug": "spins",
                    "name": "Spins Box",
                    "priceMinor": 100,
                    "prizes": [{"name": "10 Spins", "valueMinor": 50, "odds": 1, "type": "bonus"}],
                },
            ]
        }
    )
    world.win_item("sword", box_ids=boxes)
    world.win_item("spins", box_ids=boxes)

    spins, sword = page(world)["items"]

    assert (sword["name"], sword["type"], sword["imageUrl"], sword["shippable"]) == (
        "Golden Sword",
        "physical",
        "https://cdn.example/sword.png",
        True,  # a physical prize ships unless the catalog says otherwise
    )
    assert (spins["type"], spins["imageUrl"], spins["shippable"]) == ("bonus", None, False)


def test_state_is_a_comma_list_following_the_item_through_its_cashout(world: World) -> None:
    kept = world.win_item()["inventoryItemId"]
    cashed = world.win_item()["inventoryItemId"]
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=cashed).status == 200

    unresolved = page(world)
    done = page(world, state="cashed_back")
    both = page(world, state="unresolved,cashed_back")
    everything = page(world, state="all")

    assert ids(unresolved) == [kept]
    assert ids(done) == [cashed]
    assert done["items"][0]["state"] == "cashed_back"
    assert done["items"][0]["cashbackMinor"] is None  # nothing left to cash out
    assert ids(both) == ids(everything) == [cashed, kept]
    assert page(world, state="ship_requested,fulfilled,expired") == EMPTY_PAGE


@pytest.mark.parametrize(
    "state, listed",
    [
        ("cashed_back,shipped,UNRESOLVED", "cashed_back"),  # unknown tokens are ignored
        ("cashed_back,,", "cashed_back"),
        ("bogus", "unresolved"),  # no known token left: the default
        ("", "unresolved"),
        (",", "unresolved"),
        ("cashback_pending", "unresolved"),  # an internal state is not a caller's word
        ("expired,all", "all"),  # ours: every state
    ],
)
def test_unknown_states_are_ignored_and_nothing_known_means_the_default(
    world: World, state: str, listed: str
) -> None:
    kept = world.win_item()["inventoryItemId"]
    cashed = world.win_item()["inventoryItemId"]
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=cashed).status == 200
    expected = {"unresolved": [kept], "cashed_back": [cashed], "all": [cashed, kept]}

    reply = world.api.inventory(playerExternalId=PLAYER, state=state)

    assert reply.status == 200
    assert ids(reply.json) == expected[listed]


def test_an_item_whose_cashout_is_in_flight_still_reads_unresolved(world: World) -> None:
    item = world.win_item()
    world.wallet.fault("error", times=1)
    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])
    assert reply.status == 503

    listed = page(world)["items"]

    assert [(i["id"], i["state"], i["cashbackMinor"]) for i in listed] == [
        (item["inventoryItemId"], "unresolved", GOLD_CASHBACK_EUR)
    ]


def test_pages_walk_every_item_once_in_order(world: World) -> None:
    won = [world.win_item()["inventoryItemId"] for _ in range(5)]

    pages = world.api.pages("/api/s2s/inventory", playerExternalId=PLAYER, limit=2)

    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert [i for p in pages for i in ids(p)] == won[::-1]
    assert pages[0]["cursor"]["prev"] is None  # the first page
    assert all(p["cursor"]["prev"] is not None for p in pages[1:])


def test_prev_walks_back_to_the_first_page(world: World) -> None:
    won = [world.win_item()["inventoryItemId"] for _ in range(5)][::-1]  # newest first
    first = page(world, limit=2)
    second = page(world, limit=2, cursor=first["cursor"]["next"])
    third = page(world, limit=2, cursor=second["cursor"]["next"])

    back_to_second = page(world, limit=2, cursor=third["cursor"]["prev"])
    back_to_first = page(world, limit=2, cursor=back_to_second["cursor"]["prev"])

    assert [ids(p) for p in (first, second, third)] == [won[0:2], won[2:4], won[4:]]
    assert third["cursor"]["next"] is None
    assert ids(back_to_second) == won[2:4]
    assert ids(back_to_first) == won[0:2]
    assert back_to_first["cursor"]["prev"] is None  # nothing newer: the first page
    # ... and forward again from a page reached backwards.
    assert ids(page(world, limit=2, cursor=back_to_first["cursor"]["next"])) == won[2:4]


def test_pages_stay_put_in_both_directions_while_new_items_arrive(world: World) -> None:
    won = [world.win_item()["inventoryItemId"] for _ in range(4)][::-1]
    first = page(world, limit=2)

    newer = [world.win_item()["inventoryItemId"] for _ in range(3)][::-1]
    second = page(world, limit=2, cursor=first["cursor"]["next"])
    back = page(world, limit=2, cursor=second["cursor"]["prev"])
    newest = page(world, limit=2, cursor=back["cursor"]["prev"])
    top = page(world, limit=2, cursor=newest["cursor"]["prev"])

    assert ids(first) == won[0:2]
    assert ids(second) == won[2:4]  # neither a new item nor a repeat
    assert second["cursor"]["next"] is None
    assert ids(back) == won[0:2]  # the same page as before the inserts
    assert back["cursor"]["prev"] is not None  # the new items are before it now
    assert ids(newest) == newer[1:3]
    assert ids(top) == newer[0:1]
    assert top["cursor"]["prev"] is None
    assert all_ids(world, playerExternalId=PLAYER) == newer + won


def test_a_page_emptied_by_state_changes_still_leads_back(world: World) -> None:
    won = [world.win_item()["inventoryItemId"] for _ in range(3)][::-1]
    first = page(world, limit=2)
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=won[2]).status == 200

    rest = page(world, limit=2, cursor=first["cursor"]["next"])
    back = page(world, limit=2, cursor=rest["cursor"]["prev"])

    assert rest["items"] == [] and rest["cursor"]["next"] is None
    assert ids(back) == won[0:2]  # the page's own last row included
    assert back["cursor"]["prev"] is None


def test_a_page_before_rows_that_left_the_filter_is_empty_and_leads_forward(
    world: World,
) -> None:
    won = [world.win_item()["inventoryItemId"] for _ in range(3)][::-1]
    first = page(world, limit=1)
    second = page(world, limit=1, cursor=first["cursor"]["next"])
    assert world.api.cashout(playerExternalId=PLAYER, inventoryItemId=won[0]).status == 200

    before = page(world, limit=1, cursor=second["cursor"]["prev"])
    forward = page(world, limit=1, cursor=before["cursor"]["next"])

    assert before["items"] == [] and before["cursor"]["prev"] is None
    assert ids(forward) == won[1:2]  # starting with the row the cursor was issued at


def test_a_limit_of_exactly_the_item_count_has_no_next_page(world: World) -> None:
    for _ in range(2):
        world.win_item()

    reply = page(world, limit=2)

    assert len(reply["items"]) == 2
    assert reply["cursor"] == {"next": None, "prev": None}


def test_only_the_players_own_items_are_listed(world: World) -> None:
    mine = world.win_item()
    world.win_item(player=OTHER_PLAYER)
    other_operator = world.onboard()
    other_client = world.client_for(other_operator)

    assert all_ids(world, playerExternalId=PLAYER) == [mine["inventoryItemId"]]
    assert other_client.inventory(playerExternalId=PLAYER).json == EMPTY_PAGE
    assert world.api.inventory(playerExternalId="u_nobody").json == EMPTY_PAGE


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "playerExternalId"),
        ({"playerExternalId": PLAYER, "limit": 0}, "limit"),
        ({"playerExternalId": PLAYER, "limit": 201}, "limit"),
        ({"playerExternalId": PLAYER, "limit": "ten"}, "limit"),
        ({"playerExternalId": PLAYER, "cursor": "not-a-cursor"}, "cursor"),
        ({"playerExternalId": PLAYER, "cursor": "x" * 513}, "cursor"),
        ({"playerExternalId": PLAYER, "status": "unresolved"}, "status"),
        ({"playerExternalId": PLAYER, "states": "unresolved"}, "states"),
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
    cursor = page(world, limit=1)["cursor"]["next"]

    other_state = world.api.inventory(playerExternalId=PLAYER, state="all", cursor=cursor)
    other_player = world.api.inventory(playerExternalId=OTHER_PLAYER, cursor=cursor)
    other_limit = world.api.inventory(playerExternalId=PLAYER, limit=5, cursor=cursor)
    same_list = world.api.inventory(playerExternalId=PLAYER, state="unresolved,x", cursor=cursor)

    for reply in (other_state, other_player):
        assert reply.status == 400
        assert "cursor" in reply.fields
    assert other_limit.status == 200  # the page size may change between pages
    assert len(other_limit.json["items"]) == 2
    # The same states, however they are written, are the same list.
    assert same_list.status == 200 and same_list.json == other_limit.json


def test_a_history_cursor_is_not_an_inventory_cursor(world: World) -> None:
    for _ in range(2):
        world.win_item()
    cursor = world.api.history(limit=1).json["cursor"]["next"]

    reply: Reply = world.api.inventory(playerExternalId=PLAYER, cursor=cursor)

    assert reply.status == 400
    assert "cursor" in reply.fields


def documented_example_query(world: World) -> dict[str, Any]:
    document = world.app.test_client().get("/openapi.json").get_json()
    parameters = document["paths"]["/api/s2s/inventory"]["get"]["parameters"]
    return {p["name"]: p["schema"]["example"] for p in parameters if p["in"] == "query"}


def test_the_documented_example_request_is_answered(world: World) -> None:
    query = documented_example_query(world)

    reply = world.api.inventory(**query)

    assert "cursor" in query  # a real cursor, for the example's own filters
    assert reply.status == 200, reply.data
    assert reply.json["items"] == [] and reply.json["cursor"]["next"] is None


def test_inventory_needs_a_signature(world: World) -> None:
    reply = world.api.get("/api/s2s/inventory", query_string="playerExternalId=u_1", signed=False)

    assert reply.status == 401
    assert reply.code == "MISSING_HEADERS"
