"""Errors the framework decides (routing, media type, size, validation): always the JSON
envelope, never HTML, with per-field details for invalid input (contract section 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import PLAYER, Reply, World, WorldFactory

ENDPOINTS = ("/api/s2s/cashout", "/api/s2s/cancel", "/api/s2s/purchase", "/api/s2s/open")


def assert_field_error(reply: Reply, field: str, case: object) -> None:
    assert reply.status == 400, (case, reply.status, reply.data)
    assert reply.code == "VALIDATION_ERROR", (case, reply.data)
    assert field in reply.fields, (case, reply.fields)
    assert all(isinstance(m, str) for m in reply.fields[field]) or isinstance(
        reply.fields[field], dict
    ), (case, reply.fields)


# --- routing, methods, media type, size ---------------------------------------------------------


def test_an_unknown_route_is_not_found_in_the_json_envelope(world: World) -> None:
    for path in ("/api/s2s/withdraw", "/api/s2s/", "/nope", "/api/s2s/cashout/1"):
        reply = world.api.post(path, {})
        assert reply.status == 404, path
        assert reply.code == "NOT_FOUND", path
        assert b"<html" not in reply.data.lower()


def test_a_wrong_method_is_method_not_allowed_with_an_allow_header(world: World) -> None:
    for method, path in (
        ("GET", "/api/s2s/cashout"),
        ("PUT", "/api/s2s/purchase"),
        ("DELETE", "/api/s2s/cancel"),
        ("POST", "/api/s2s/health"),
    ):
        reply = world.api.request(method, path, {} if method != "GET" else None)
        assert reply.status == 405, (method, path)
        assert reply.code == "METHOD_NOT_ALLOWED", (method, path)
        assert reply.headers.get("Allow"), (method, path)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", None], ids=str
)
def test_a_non_json_content_type_is_unsupported_media_type_415(
    world: World, content_type: str | None
) -> None:
    raw = json.dumps({"playerExternalId": PLAYER, "inventoryItemId": 1}).encode()
    for path in ENDPOINTS:
        reply = world.api.post(path, raw=raw, content_type=content_type)
        assert reply.code == "UNSUPPORTED_MEDIA_TYPE", (path, reply.data)
        assert reply.status == 415, (path, reply.status)


def test_a_non_json_content_type_is_refused_before_anything_runs(world: World) -> None:
    """What holds today despite the status bug above: the code, and no money moved."""
    item = world.win_item("gold")
    raw = json.dumps({"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]})

    reply = world.api.post("/api/s2s/cashout", raw=raw.encode(), content_type="text/plain")

    assert reply.code == "UNSUPPORTED_MEDIA_TYPE"
    assert world.wallet.credits() == []


def test_an_unsigned_non_json_request_is_refused_as_unauthenticated_first(world: World) -> None:
    reply = world.api.post(
        "/api/s2s/cashout", raw=b"hello", content_type="text/plain", signed=False
    )

    assert reply.status == 401
    assert reply.code == "MISSING_HEADERS"


def test_json_with_a_charset_parameter_is_accepted(world: World) -> None:
    raw = json.dumps({"playerExternalId": PLAYER, "inventoryItemId": 424242}).encode()

    reply = world.api.post(
        "/api/s2s/cashout", raw=raw, content_type="application/json; charset=utf-8"
    )

    assert reply.status == 404
    assert reply.code == "INVENTORY_ITEM_NOT_FOUND"


def test_a_body_over_the_size_limit_is_payload_too_large(make_world: WorldFactory) -> None:
    world = make_world(max_content_length=2048)
    big = {"playerExternalId": PLAYER, "inventoryItemId": 1, "padding": "x" * 4096}

    for path in ENDPOINTS:
        reply = world.api.post(path, big)
        assert reply.status == 413, (path, reply.data)
        assert reply.code == "PAYLOAD_TOO_LARGE"
    assert world.wallet.transactions() == []


def test_a_body_under_the_size_limit_is_processed(make_world: WorldFactory) -> None:
    world = make_world(max_content_length=2048)

    reply = world.api.purchase(**world.purchase_body("gold"))

    assert reply.status == 200


# --- malformed bodies ---------------------------------------------------------------------------


MALFORMED = [
    b'{"playerExternalId": ',
    b"{'single': 'quotes'}",
    b"\xff\xfe\x00",
    b"",
    b"{}{}",
    b"NaN",
]
NOT_OBJECTS = [b"[]", b'[{"playerExternalId": "u"}]', b'"text"', b"null", b"42", b"true"]


def test_malformed_json_is_a_validation_error_on_every_endpoint(world: World) -> None:
    for path in ENDPOINTS:
        for raw in MALFORMED:
            reply = world.api.post(path, raw=raw)
            assert reply.status == 400, (path, raw, reply.data)
            assert reply.code == "VALIDATION_ERROR", (path, raw)
            assert reply.error.get("details"), (path, raw, reply.data)


def test_a_json_body_that_is_not_an_object_is_a_validation_error_on_every_endpoint(
    world: World,
) -> None:
    for path in ENDPOINTS:
        for raw in NOT_OBJECTS:
            reply = world.api.post(path, raw=raw)
            assert reply.status == 400, (path, raw, reply.data)
            assert reply.code == "VALIDATION_ERROR", (path, raw)
            assert reply.fields, (path, raw)


# --- cashout fields -----------------------------------------------------------------------------


def test_cashout_without_required_fields_names_each_missing_field(world: World) -> None:
    reply = world.api.cashout()

    assert reply.status == 400
    assert set(reply.fields) == {"playerExternalId", "inventoryItemId"}


def test_cashout_with_an_unknown_field_names_it(world: World) -> None:
    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=1, amountMinor=10_000)

    assert_field_error(reply, "amountMinor", "unknown field")
    assert world.wallet.credits() == []


BAD_ITEM_IDS = ["5", 5.0, 5.5, True, False, -1, 0, None, [5], {"id": 5}, 2**63]
BAD_CURRENCIES = ["usd", "XYZ", "US", "EURO", "", 978, "eur ", "XAU"]


def test_cashout_with_a_bad_inventory_item_id_is_a_field_error(world: World) -> None:
    """Strings, floats (even 5.0), booleans, negatives, zero, null, containers, 2^63."""
    for value in BAD_ITEM_IDS:
        reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=value)
        assert_field_error(reply, "inventoryItemId", value)


def test_cashout_with_a_lowercase_unknown_or_mistyped_currency_is_a_field_error(
    world: World,
) -> None:
    for currency in BAD_CURRENCIES:
        reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=1, currency=currency)
        assert_field_error(reply, "currency", currency)


BAD_KEYS = ["has space", "k" * 256, "ключ", "tab\tkey", "", "line\nbreak", 12345]


def test_a_bad_idempotency_key_is_a_field_error(world: World) -> None:
    """Whitespace, 256 characters, non-ASCII, empty, not a string."""
    for path in ("/api/s2s/cashout", "/api/s2s/cancel", "/api/s2s/open"):
        for key in BAD_KEYS:
            reply = world.api.post(path, {**_valid_body(world, path), "idempotencyKey": key})
            assert_field_error(reply, "idempotencyKey", (path, key))


def test_an_idempotency_key_of_255_printable_characters_is_accepted(world: World) -> None:
    key = "K" * 254 + "~"

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=4242, idempotencyKey=key)

    assert reply.status == 404
    assert reply.code == "INVENTORY_ITEM_NOT_FOUND"


def test_a_player_id_over_190_characters_is_a_field_error_on_every_endpoint(
    world: World,
) -> None:
    for path in ENDPOINTS:
        reply = world.api.post(path, {**_valid_body(world, path), "playerExternalId": "p" * 191})
        assert_field_error(reply, "playerExternalId", path)


def test_an_empty_control_character_or_non_string_player_id_is_a_field_error(
    world: World,
) -> None:
    for player in ("", "new\nline", "nul\x00byte", "del\x7f", 42, None, ["u"]):
        reply = world.api.cashout(playerExternalId=player, inventoryItemId=1)
        assert_field_error(reply, "playerExternalId", player)


def test_a_player_id_of_190_characters_is_accepted(world: World) -> None:
    reply = world.api.purchase(**world.purchase_body("gold", player="é" * 190))

    assert reply.status == 200
    assert world.wallet.debits()[0]["playerExternalId"] == "é" * 190


def _valid_body(world: World, path: str) -> dict[str, Any]:
    if path.endswith("cashout"):
        return {"playerExternalId": PLAYER, "inventoryItemId": 1}
    if path.endswith("purchase"):
        return world.purchase_body("gold")
    return {"playerExternalId": PLAYER, "roundPublicId": "r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"}


# --- cancel and open fields -------------------------------------------------------------------


def test_round_requests_name_missing_unknown_and_mistyped_fields(world: World) -> None:
    for path in ("/api/s2s/cancel", "/api/s2s/open"):
        missing = world.api.post(path, {})
        assert missing.status == 400
        assert set(missing.fields) == {"playerExternalId", "roundPublicId"}

        extra = {"playerExternalId": PLAYER, "roundPublicId": "r_1", "x": 1}
        assert_field_error(world.api.post(path, extra), "x", (path, "unknown"))

        for bad in (17, "", "r" * 65, None, ["r_1"]):
            reply = world.api.post(path, {"playerExternalId": PLAYER, "roundPublicId": bad})
            assert_field_error(reply, "roundPublicId", (path, bad))


# --- purchase fields ---------------------------------------------------------------------------


def test_purchase_without_required_fields_names_each_missing_field(world: World) -> None:
    reply = world.api.purchase()

    assert reply.status == 400
    assert {"playerExternalId", "gameKey", "clientActionId", "reels"} <= set(reply.fields)
    assert "mode" not in reply.fields  # defaults to "open"
    assert "currency" not in reply.fields


BAD_PURCHASE_FIELDS: list[tuple[str, Any]] = [
    ("gameKey", "slots"),
    ("gameKey", 1),
    ("mode", "later"),
    ("mode", None),
    ("clientActionId", "a" * 81),
    ("clientActionId", "has space"),
    ("clientActionId", ""),
    ("clientActionId", 7),
    ("currency", "jpy"),
    ("currency", "ABC"),
    ("reels", []),
    ("reels", [{"reelIndex": i, "boxVersionId": 1} for i in range(11)]),
    ("reels", [{"reelIndex": 0, "boxVersionId": 1}, {"reelIndex": 0, "boxVersionId": 1}]),
    ("reels", [{"reelIndex": -1, "boxVersionId": 1}]),
    ("reels", [{"reelIndex": 0, "boxVersionId": 0}]),
    ("reels", [{"reelIndex": 0, "boxVersionId": "1"}]),
    ("reels", [{"reelIndex": 0.0, "boxVersionId": 1}]),
    ("reels", [{"reelIndex": 0}]),
    ("reels", [{"reelIndex": 0, "boxVersionId": 1, "priceMinor": 1}]),
    ("reels", [7]),
    ("reels", {"reelIndex": 0, "boxVersionId": 1}),
    ("priceMinor", 1),
]


def test_purchase_with_a_bad_field_is_a_field_error(world: World) -> None:
    """Game key, mode, clientActionId (<= 80 printable), currency, and the reels: 1 to 10,
    distinct reelIndex >= 0, boxVersionId >= 1, integers only, no extra fields."""
    for field, value in BAD_PURCHASE_FIELDS:
        body = {**world.purchase_body("gold"), field: value}
        reply = world.api.purchase(**body)
        assert_field_error(reply, field, (field, value))
    assert world.wallet.transactions() == []


def test_a_purchase_client_action_id_of_80_characters_is_accepted(world: World) -> None:
    reply = world.api.purchase(**world.purchase_body("gold", client_action_id="c" * 80))

    assert reply.status == 200


def test_validation_errors_are_decided_before_anything_is_stored(world: World) -> None:
    body = world.purchase_body("gold", client_action_id="act-validate-1")

    bad = world.api.purchase(**{**body, "currency": "eur"})
    good = world.api.purchase(**body)

    assert bad.status == 400
    assert good.status == 200
    assert not good.replayed
