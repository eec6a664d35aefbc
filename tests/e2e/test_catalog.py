"""The catalog reads (GET /api/s2s/boxes, /boxes/{boxId}, /boxes/{boxId}/version) and the
public snapshot of a box version: every answer and error code, as an operator's backend and
a player checking a draw would see them."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any
from urllib.parse import urlencode

import pytest
import simplejson

from tests.e2e.conftest import CATALOG, Reply, SignedClient, World

BOX_FIELDS = {
    "boxId",
    "name",
    "slug",
    "isActive",
    "isPublished",
    "versionNumber",
    "boxVersionId",
    "priceMinor",
    "currency",
    "houseEdgeBps",
    "image",
    "customAttributes",
}
# The e2e catalog (tests/e2e/conftest.py) by name: slug and price (EUR minor).
BY_NAME = [
    ("Box Rule Box", "box-rule", 1200),
    ("Final Sale Box", "final-sale", 200),
    ("Gold Box", "gold", 500),
    ("Keepsake Box", "no-cashback", 400),
    ("Mixed Box", "mixed", 100),
    ("Prize Rule Box", "prize-rule", 1200),
    ("Silver Box", "silver", 300),
]

# A box whose odds a binary float cannot hold, and a known house edge:
# 0.05 × 5000 + 0.25 × 1000 + 0.7 × 400 = 780 of 1000, so 10000 × (1 − 0.78) = 2200.
DRAGON: dict[str, Any] = {
    "slug": "dragon",
    "name": "Dragon Box",
    "priceMinor": 1000,
    "image": {"url": "https://cdn.example/dragon.png", "width": 512},
    "customAttributes": {"tier": "legendary", "tags": ["fire", "new"]},
    "prizes": [
        {
            "name": "Golden Sword",
            "valueMinor": 5000,
            "odds": "0.05",
            "type": "physical",
            "imageUrl": "https://cdn.example/sword.png",
        },
        {
            "name": "Silver Shield",
            "valueMinor": 1000,
            "odds": "0.25",
            "type": "physical",
            "shippable": False,
        },
        {"name": "Dragon Scale", "valueMinor": 400, "odds": "0.70", "type": "bonus"},
    ],
}
LONG_ODDS: dict[str, Any] = {
    "slug": "long-odds",
    "name": "Long Odds Box",
    "priceMinor": 300,
    "prizes": [
        {"name": "Rare", "valueMinor": 100, "odds": "0.1234567890123456789"},
        {"name": "Common", "valueMinor": 1, "odds": "0.8765432109876543211"},
    ],
}


def listing(client: SignedClient, **params: Any) -> Reply:
    return client.get("/api/s2s/boxes", query_string=urlencode(params))


def boxes_of(reply: Reply) -> list[dict[str, Any]]:
    assert reply.status == 200, reply.data
    return list(reply.json["boxes"])


def slugs(reply: Reply) -> list[str]:
    return [box["slug"] for box in boxes_of(reply)]


def box_ids(world: World, operator_slug: str | None = None) -> dict[str, int]:
    rows = world.query(
        "SELECT b.slug, b.id FROM boxes b JOIN operators o ON o.id = b.operator_id"
        " WHERE o.slug = :s",
        s=operator_slug or world.operator.slug,
    )
    return {row.slug: int(row.id) for row in rows}


def get_box(client: SignedClient, box_id: Any, **params: Any) -> Reply:
    return client.get(f"/api/s2s/boxes/{box_id}", query_string=urlencode(params))


def get_version(client: SignedClient, box_id: Any, **params: Any) -> Reply:
    return client.get(f"/api/s2s/boxes/{box_id}/version", query_string=urlencode(params))


def snapshot(world: World, box_version_id: Any) -> Reply:
    response = world.app.test_client().get(f"/fairness/box-version/{box_version_id}/snapshot")
    return Reply(response.status_code, response.headers, response.get_data())


def with_box(slug: str, **changes: Any) -> dict[str, Any]:
    """The e2e catalog with one box changed."""
    document = copy.deepcopy(CATALOG)
    for box in document["boxes"]:
        if box["slug"] == slug:
            box.update(changes)
    return document


# --- the listing -------------------------------------------------------------------------------


def test_lists_the_active_boxes_by_name_with_their_current_version(world: World) -> None:
    reply = listing(world.api)

    boxes = boxes_of(reply)
    assert [(b["name"], b["slug"], b["priceMinor"]) for b in boxes] == BY_NAME
    assert reply.json["pagination"] == {"page": 1, "perPage": 100, "total": 7, "lastPage": 1}
    gold = next(b for b in boxes if b["slug"] == "gold")
    assert gold == {
        "boxId": box_ids(world)["gold"],
        "name": "Gold Box",
        "slug": "gold",
        "isActive": True,
        "isPublished": True,
        "versionNumber": 1,
        "boxVersionId": world.boxes["gold"],
        "priceMinor": 500,
        "currency": "EUR",
        "houseEdgeBps": 2000,  # a 400 prize for 500, for sure
        "image": None,
        "customAttributes": {},
    }
    assert all(set(box) == BOX_FIELDS for box in boxes)


def test_pages_are_numbered_and_say_where_they_are(world: World) -> None:
    pages = [listing(world.api, perPage=3, page=n) for n in (1, 2, 3, 4)]

    assert [slugs(p) for p in pages] == [
        ["box-rule", "final-sale", "gold"],
        ["no-cashback", "mixed", "prize-rule"],
        ["silver"],
        [],  # past the last page: empty, not an error
    ]
    assert [p.json["pagination"] for p in pages] == [
        {"page": n, "perPage": 3, "total": 7, "lastPage": 3} for n in (1, 2, 3, 4)
    ]
    assert listing(world.api, limit=3, page=2).json == pages[1].json  # the alias
    assert listing(world.api, perPage=200).json["pagination"]["lastPage"] == 1


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", [slug for _, slug, _ in BY_NAME]),
        ("-name", [slug for _, slug, _ in reversed(BY_NAME)]),
        # box-rule and prize-rule cost the same: the older box (smaller id) first, both ways.
        (
            "price",
            ["mixed", "final-sale", "silver", "no-cashback", "gold", "box-rule", "prize-rule"],
        ),
        (
            "-price",
            ["box-rule", "prize-rule", "gold", "no-cashback", "silver", "final-sale", "mixed"],
        ),
    ],
)
def test_sorts_by_name_or_price_both_ways_ties_by_box_id(
    world: World, sort: str, expected: list[str]
) -> None:
    assert slugs(listing(world.api, sort=sort)) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"filter[name]": "gold"}, ["gold"]),
        ({"filter[name]": "GOLD,silver"}, ["gold", "silver"]),  # any of them, any case
        ({"filter[name]": "rule box"}, ["box-rule", "prize-rule"]),  # a substring
        ({"filter[name]": "%"}, []),  # a character, not a wildcard
        ({"filter[name]": "_"}, []),
        (
            {"filter[name]": "Gold Box,Silver Box,Mixed Box,Keepsake"},
            ["gold", "no-cashback", "mixed", "silver"],
        ),
        ({"filter[slug]": "mixed,gold"}, ["gold", "mixed"]),
        ({"filter[slug]": "Gold"}, []),  # slugs match exactly
        ({"filter[name]": "box", "filter[slug]": "silver,final-sale"}, ["final-sale", "silver"]),
        ({"filter[isActive]": "true"}, [slug for _, slug, _ in BY_NAME]),
        ({"filter[isActive]": "false"}, []),  # only active boxes without ids
    ],
)
def test_filters_are_alternatives_within_a_key_and_all_must_match(
    world: World, params: dict[str, str], expected: list[str]
) -> None:
    reply = listing(world.api, **params)

    assert slugs(reply) == expected
    assert reply.json["pagination"]["total"] == len(expected)


def test_ids_return_exactly_those_boxes_inactive_ones_included(world: World) -> None:
    ids = box_ids(world)
    before = listing(world.api, ids=f"{ids['gold']}").json["boxes"][0]
    world.import_catalog(with_box("gold", isActive=False))

    reply = listing(world.api, ids=f"{ids['silver']},{ids['gold']},{10**12}")
    inactive = listing(
        world.api, ids=f"{ids['silver']},{ids['gold']}", **{"filter[isActive]": "false"}
    )

    assert slugs(reply) == ["gold", "silver"]  # the unknown id is left out
    gold = boxes_of(reply)[0]
    assert gold == {**before, "isActive": False}  # same version: deactivation is in place
    assert slugs(inactive) == ["gold"]
    assert "gold" not in slugs(listing(world.api))  # no longer adoptable
    assert listing(world.api).json["pagination"]["total"] == 6


def test_reactivating_restores_the_same_version_and_its_purchases(world: World) -> None:
    version = world.boxes["gold"]
    world.import_catalog(with_box("gold", isActive=False))
    refused = world.api.purchase(**world.purchase_body("gold"))
    again = world.import_catalog(CATALOG)

    assert refused.status == 409 and refused.code == "BOX_NOT_PLAYABLE"
    assert again["gold"] == version
    assert world.api.purchase(**world.purchase_body("gold")).status == 200
    assert boxes_of(listing(world.api, **{"filter[slug]": "gold"}))[0]["versionNumber"] == 1


def test_a_changed_offer_is_a_new_version_and_presentation_is_not(world: World) -> None:
    world.import_catalog(
        with_box("gold", image={"url": "https://cdn.example/gold.png"}, customAttributes={"a": 1})
    )
    same = boxes_of(listing(world.api, **{"filter[slug]": "gold"}))[0]
    world.import_catalog(with_box("gold", priceMinor=600))
    changed = boxes_of(listing(world.api, **{"filter[slug]": "gold"}))[0]

    assert (same["versionNumber"], same["boxVersionId"]) == (1, world.boxes["gold"])
    assert same["image"] == {"url": "https://cdn.example/gold.png"}
    assert same["customAttributes"] == {"a": 1}
    assert (changed["versionNumber"], changed["priceMinor"]) == (2, 600)
    assert changed["boxVersionId"] != world.boxes["gold"]
    assert (changed["image"], changed["customAttributes"]) == (None, {})  # as imported now


def test_another_operators_boxes_are_never_listed(world: World) -> None:
    other = world.onboard()
    theirs = world.import_catalog({"boxes": [DRAGON]}, slug=other.slug)
    their_box = box_ids(world, other.slug)["dragon"]

    mine = listing(world.api, ids=f"{their_box},{box_ids(world)['gold']}")

    assert slugs(mine) == ["gold"]
    assert "dragon" not in slugs(listing(world.api))
    assert slugs(listing(world.client_for(other))) == ["dragon"]
    assert theirs["dragon"] not in {b["boxVersionId"] for b in boxes_of(listing(world.api))}


@pytest.mark.parametrize(
    ("currency", "gold", "mixed"),
    [
        ("EUR", 500, 100),
        ("USD", 542, 108),  # 5.00 × 1.0842 = 5.421 → 542; 1.00 × 1.0842 → 108
        ("JPY", 813, 163),  # 5.00 × 162.5 = 812.5 → 813, half-up like a purchase
        ("KWD", 1656, 331),  # three decimals: 5.00 × 0.3312 = 1.656
    ],
)
def test_prices_are_converted_half_up_and_the_house_edge_is_not(
    world: World, currency: str, gold: int, mixed: int
) -> None:
    boxes = {b["slug"]: b for b in boxes_of(listing(world.api, currency=currency))}

    assert (boxes["gold"]["priceMinor"], boxes["mixed"]["priceMinor"]) == (gold, mixed)
    assert {b["currency"] for b in boxes.values()} == {currency}
    # Mixed: 0.7 × 50 + 0.3 × 500 = 185 of 100 in EUR, in every currency.
    assert (boxes["gold"]["houseEdgeBps"], boxes["mixed"]["houseEdgeBps"]) == (2000, -8500)


def test_a_currency_without_a_rate_is_unsupported(world: World) -> None:
    reply = listing(world.api, currency="GBP")

    assert reply.status == 422
    assert reply.code == "UNSUPPORTED_CURRENCY"


@pytest.mark.parametrize(
    "params",
    [
        {"foo": "1"},
        {"filter[price]": "100"},  # an unknown filter would silently list everything
        {"filter": "gold"},
        {"sort": "date"},
        {"sort": "+price"},
        {"page": "0"},
        {"page": "x"},
        {"perPage": "0"},
        {"perPage": "201"},
        {"limit": "201"},
        {"perPage": "10", "limit": "10"},
        {"ids": ""},
        {"ids": "1,x"},
        {"ids": "0"},
        {"ids": ",".join(str(i) for i in range(1, 102))},  # over 100
        {"ids": str(2**63)},
        {"filter[name]": ""},
        {"filter[name]": "a,b,c,d,e"},  # over 4 alternatives
        {"filter[name]": "x" * 51},
        {"filter[name]": "gold\x00"},
        {"filter[slug]": "gold\nsilver"},
        {"filter[isActive]": "yes"},
        {"currency": "usd"},
        {"currency": "XXX"},
    ],
)
def test_bad_queries_are_validation_errors(world: World, params: dict[str, str]) -> None:
    reply = listing(world.api, **params)

    assert reply.status == 400, reply.data
    assert reply.fields


def test_up_to_100_ids_are_accepted(world: World) -> None:
    gold = box_ids(world)["gold"]
    ids = ",".join(str(i) for i in [gold, *range(10**9, 10**9 + 99)])

    assert slugs(listing(world.api, ids=ids)) == ["gold"]


def test_the_listing_is_signed(world: World) -> None:
    reply = world.api.get("/api/s2s/boxes", signed=False)

    assert reply.status == 401
    assert reply.code == "MISSING_HEADERS"


# --- one box -----------------------------------------------------------------------------------


@pytest.fixture
def dragon(world: World) -> dict[str, int]:
    """The dragon and long-odds boxes imported next to the e2e catalog: their box ids."""
    world.boxes.update(world.import_catalog({"boxes": [*CATALOG["boxes"], DRAGON, LONG_ODDS]}))
    return box_ids(world)


def test_a_box_shows_its_prize_table_with_exact_odds(world: World, dragon: dict[str, int]) -> None:
    reply = get_box(world.api, dragon["dragon"])

    assert reply.status == 200, reply.data
    box = reply.json["box"]
    version = world.boxes["dragon"]
    prizes = box.pop("prizes")
    assert box == {
        "boxId": dragon["dragon"],
        "boxVersionId": version,
        "versionNumber": 1,
        "name": "Dragon Box",
        "slug": "dragon",
        "priceMinor": 1000,
        "currency": "EUR",
        "houseEdgeBps": 2200,
        "snapshotUrl": f"/fairness/box-version/{version}/snapshot",
        "image": {"url": "https://cdn.example/dragon.png", "width": 512},
        "customAttributes": {"tier": "legendary", "tags": ["fire", "new"]},
    }
    assert [
        (p["name"], p["type"], p["valueMinor"], p["currency"], p["imageUrl"], p["shippable"])
        for p in prizes
    ] == [
        ("Golden Sword", "physical", 5000, "EUR", "https://cdn.example/sword.png", True),
        ("Silver Shield", "physical", 1000, "EUR", None, False),  # as the catalog says
        ("Dragon Scale", "bonus", 400, "EUR", None, False),
    ]
    assert len({p["itemId"] for p in prizes}) == 3
    # JSON numbers with exactly the catalog's digits, trailing zero included.
    text = reply.data.decode()
    for odds in ('"odds":0.05', '"odds":0.25', '"odds":0.70'):
        assert odds in text, text


def test_odds_a_binary_float_cannot_hold_keep_every_digit(
    world: World, dragon: dict[str, int]
) -> None:
    reply = get_box(world.api, dragon["long-odds"])

    assert reply.status == 200
    assert '"odds":0.1234567890123456789' in reply.data.decode()
    assert '"odds":0.8765432109876543211' in reply.data.decode()
    odds = simplejson.loads(reply.data, use_decimal=True)["box"]["prizes"]
    assert sum(p["odds"] for p in odds) == 1
    # 10000 × (1 − (0.1234567890123456789 × 100 + 0.8765432109876543211) / 300) = 9559.2…
    assert reply.json["box"]["houseEdgeBps"] == 9559


def test_prize_values_are_converted_and_the_house_edge_stays_in_euros(
    world: World, dragon: dict[str, int]
) -> None:
    box = get_box(world.api, dragon["dragon"], currency="JPY").json["box"]

    assert (box["priceMinor"], box["currency"]) == (1625, "JPY")  # 10.00 × 162.5
    assert [p["valueMinor"] for p in box["prizes"]] == [8125, 1625, 650]
    assert {p["currency"] for p in box["prizes"]} == {"JPY"}
    assert box["houseEdgeBps"] == 2200


def test_the_version_to_buy_is_answered_alone(world: World, dragon: dict[str, int]) -> None:
    reply = get_version(world.api, dragon["dragon"], currency="USD")

    assert reply.status == 200
    assert reply.json == {
        "boxId": dragon["dragon"],
        "boxVersionId": world.boxes["dragon"],
        "versionNumber": 1,
        "priceMinor": 1084,  # 10.00 × 1.0842 = 10.842
        "currency": "USD",
    }


def test_the_box_version_id_it_shows_buys_that_box(world: World, dragon: dict[str, int]) -> None:
    box = get_box(world.api, dragon["dragon"]).json["box"]
    body = world.purchase_body("dragon", box_ids={"dragon": box["boxVersionId"]})

    reply = world.api.purchase(**body)

    assert reply.status == 200, reply.data
    (item,) = reply.json["wonItems"]
    assert item["itemId"] in {p["itemId"] for p in box["prizes"]}
    assert reply.json["round"]["betMinor"] == box["priceMinor"]


@pytest.mark.parametrize("read", [get_box, get_version])
def test_a_box_no_one_has_is_unknown(world: World, read: Any) -> None:
    reply = read(world.api, 10**12)

    assert reply.status == 404
    assert reply.code == "UNKNOWN_BOX"


@pytest.mark.parametrize("read", [get_box, get_version])
def test_another_operators_box_is_unknown_too(world: World, read: Any) -> None:
    other = world.onboard()
    world.import_catalog({"boxes": [DRAGON]}, slug=other.slug)
    theirs = box_ids(world, other.slug)["dragon"]

    mine = read(world.api, theirs)
    their_own = read(world.client_for(other), theirs)

    assert (mine.status, mine.code) == (404, "UNKNOWN_BOX")
    assert their_own.status == 200


@pytest.mark.parametrize("read", [get_box, get_version])
def test_an_inactive_box_is_not_playable(world: World, read: Any) -> None:
    world.import_catalog(with_box("silver", isActive=False))

    reply = read(world.api, box_ids(world)["silver"])

    assert reply.status == 409
    assert reply.code == "BOX_NOT_PLAYABLE"


@pytest.mark.parametrize("read", [get_box, get_version])
def test_one_box_in_a_currency_without_a_rate_is_unsupported(world: World, read: Any) -> None:
    reply = read(world.api, box_ids(world)["gold"], currency="GBP")

    assert (reply.status, reply.code) == (422, "UNSUPPORTED_CURRENCY")


@pytest.mark.parametrize("read", [get_box, get_version])
@pytest.mark.parametrize(
    ("box_id", "params", "named"),
    [
        ("abc", {}, "boxId"),
        ("0", {}, "boxId"),
        ("-1", {}, "boxId"),
        (str(2**63), {}, "boxId"),
        ("1", {"foo": "1"}, "foo"),
        ("1", {"currency": "eur"}, "currency"),
    ],
)
def test_bad_box_ids_and_queries_are_validation_errors(
    world: World, read: Any, box_id: str, params: dict[str, str], named: str
) -> None:
    reply = read(world.api, box_id, **params)

    assert reply.status == 400, reply.data
    assert named in json.dumps(reply.fields)  # the details name the bad parameter


@pytest.mark.parametrize("path", ["/api/s2s/boxes/1", "/api/s2s/boxes/1/version"])
def test_one_box_is_signed(world: World, path: str) -> None:
    reply = world.api.get(path, signed=False)

    assert (reply.status, reply.code) == (401, "MISSING_HEADERS")


# --- the public snapshot --------------------------------------------------------------------------


def test_the_snapshot_is_public_and_is_the_offer_as_published(
    world: World, dragon: dict[str, int]
) -> None:
    version = world.boxes["dragon"]
    offer = get_box(world.api, dragon["dragon"]).json["box"]

    reply = snapshot(world, version)

    assert reply.status == 200, reply.data
    body = reply.json
    assert body["boxVersionId"] == version
    assert body["boxId"] == dragon["dragon"]
    assert (body["versionNumber"], body["name"]) == (1, "Dragon Box")
    assert (body["priceMinor"], body["currency"], body["houseEdgeBps"]) == (1000, "EUR", 2200)
    assert [
        (p["itemId"], p["name"], p["type"], p["valueMinor"], p["imageUrl"]) for p in body["prizes"]
    ] == [
        (p["itemId"], p["name"], p["type"], p["valueMinor"], p["imageUrl"]) for p in offer["prizes"]
    ]
    assert '"odds":0.70' in reply.data.decode()
    # Nothing of the operator's beyond the offer itself.
    assert not {"slug", "customAttributes", "image"} & set(body)
    assert world.operator.slug not in reply.data.decode()


def test_the_snapshot_hash_is_the_sha256_of_the_rest_as_canonical_json(
    world: World, dragon: dict[str, int]
) -> None:
    body = simplejson.loads(snapshot(world, world.boxes["long-odds"]).data, use_decimal=True)
    claimed = body.pop("snapshotHash")

    canonical = simplejson.dumps(body, sort_keys=True, separators=(",", ":"), use_decimal=True)

    assert "0.1234567890123456789" in canonical
    assert claimed == hashlib.sha256(canonical.encode()).hexdigest()


def test_a_superseded_version_is_still_served_as_it_was(world: World) -> None:
    old = world.boxes["gold"]
    before = snapshot(world, old)
    new = world.import_catalog(with_box("gold", priceMinor=900))["gold"]

    after = snapshot(world, old)

    assert new != old
    assert after.status == 200
    assert after.data == before.data
    assert after.json["priceMinor"] == 500
    assert snapshot(world, new).json["priceMinor"] == 900
    assert world.api.purchase(**world.purchase_body("gold")).code == "BOX_NOT_PLAYABLE"


def test_an_unknown_version_has_no_snapshot(world: World) -> None:
    reply = snapshot(world, 10**12)

    assert reply.status == 404
    assert reply.code == "UNKNOWN_BOX"


@pytest.mark.parametrize("version", ["abc", "0", str(2**63)])
def test_a_malformed_version_id_is_a_validation_error(world: World, version: str) -> None:
    reply = snapshot(world, version)

    assert (reply.status, reply.code) == (400, "VALIDATION_ERROR")
    assert "boxVersionId" in json.dumps(reply.fields)


# --- the document ---------------------------------------------------------------------------------

EXPECTED_ERRORS = {
    ("/api/s2s/boxes", "get"): {
        "400": {"VALIDATION_ERROR"},
        "401": {"MISSING_HEADERS", "INVALID_SIGNATURE", "TIMESTAMP_SKEW"},
        "413": {"PAYLOAD_TOO_LARGE"},
        "422": {"UNSUPPORTED_CURRENCY"},
        "503": {"SERVICE_UNAVAILABLE"},
    },
    **{
        (path, "get"): {
            "400": {"VALIDATION_ERROR"},
            "401": {"MISSING_HEADERS", "INVALID_SIGNATURE", "TIMESTAMP_SKEW"},
            "404": {"UNKNOWN_BOX"},
            "409": {"BOX_NOT_PLAYABLE"},
            "413": {"PAYLOAD_TOO_LARGE"},
            "422": {"UNSUPPORTED_CURRENCY"},
            "503": {"SERVICE_UNAVAILABLE"},
        }
        for path in ("/api/s2s/boxes/{boxId}", "/api/s2s/boxes/{boxId}/version")
    },
    ("/fairness/box-version/{boxVersionId}/snapshot", "get"): {
        "400": {"VALIDATION_ERROR"},
        "404": {"UNKNOWN_BOX"},
        "503": {"SERVICE_UNAVAILABLE"},
    },
}


def test_the_document_lists_exactly_the_codes_each_operation_answers(world: World) -> None:
    document = json.loads(world.app.test_client().get("/openapi.json").get_data())

    for (path, method), expected in EXPECTED_ERRORS.items():
        operation = document["paths"][path][method]
        documented = {
            status: set(
                response["content"]["application/json"]["schema"]["allOf"][1]["properties"][
                    "error"
                ]["properties"]["code"]["enum"]
            )
            for status, response in operation["responses"].items()
            if status.startswith(("4", "5"))
        }
        assert documented == expected, path
    public = document["paths"]["/fairness/box-version/{boxVersionId}/snapshot"]["get"]
    assert public["security"] == []
