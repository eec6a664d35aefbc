"""Inbound HMAC authentication (contract section 3): headers, signature, clock, key
rotation and revocation, all through the real CLI and the real HTTP stack."""

from __future__ import annotations

import json
import time

from lootbox.signing import sign, signed_headers
from tests.e2e.conftest import PLAYER, Creds, World

CASHOUT = "/api/s2s/cashout"


def cashout_body(item_id: int = 1) -> dict[str, object]:
    return {"playerExternalId": PLAYER, "inventoryItemId": item_id}


def test_a_request_without_one_signing_header_is_missing_headers(world: World) -> None:
    client = world.api
    body = json.dumps(cashout_body()).encode()
    for missing in ("X-Key-Id", "X-Timestamp", "X-Signature"):
        headers = signed_headers(
            client.creds.secret, int(time.time()), "POST", CASHOUT, body, key_id=client.creds.key_id
        )
        del headers[missing]

        reply = client.post(CASHOUT, raw=body, signed=False, headers=headers)

        assert (missing, reply.status, reply.code) == (missing, 401, "MISSING_HEADERS")


def test_a_request_with_no_signing_headers_at_all_is_missing_headers(world: World) -> None:
    for reply in (
        world.api.post(CASHOUT, cashout_body(), signed=False),
        world.api.get("/api/s2s/health", signed=False),
    ):
        assert reply.status == 401
        assert reply.code == "MISSING_HEADERS"


def test_a_wrong_signature_is_invalid_signature(world: World) -> None:
    reply = world.api.post(CASHOUT, cashout_body(), secret="not-the-secret")

    assert reply.status == 401
    assert reply.code == "INVALID_SIGNATURE"


def test_an_unknown_key_id_is_invalid_signature(world: World) -> None:
    reply = world.api.post(CASHOUT, cashout_body(), key_id="lk_0000000000000000")

    assert reply.status == 401
    assert reply.code == "INVALID_SIGNATURE"


def test_unknown_key_and_wrong_signature_answer_alike(world: World) -> None:
    unknown = world.api.post(CASHOUT, cashout_body(), key_id="lk_ffffffffffffffff")
    wrong = world.api.post(CASHOUT, cashout_body(), secret="wrong")

    assert unknown.error == wrong.error


def test_a_tampered_body_fails_the_signature(world: World) -> None:
    signed_for = json.dumps(cashout_body(1)).encode()
    sent = json.dumps(cashout_body(2)).encode()

    reply = world.api.post(CASHOUT, raw=sent, sign_body=signed_for)

    assert reply.status == 401
    assert reply.code == "INVALID_SIGNATURE"


def test_a_whitespace_change_to_the_signed_body_fails_the_signature(world: World) -> None:
    signed_for = b'{"playerExternalId":"u_8431","inventoryItemId":1}'
    sent = b'{"playerExternalId": "u_8431", "inventoryItemId": 1}'

    reply = world.api.post(CASHOUT, raw=sent, sign_body=signed_for)

    assert reply.code == "INVALID_SIGNATURE"


def test_a_signature_for_another_path_fails(world: World) -> None:
    reply = world.api.post(
        "/api/s2s/cancel",
        {"playerExternalId": PLAYER, "roundPublicId": "r_x"},
        sign_path="/api/s2s/open",
    )

    assert reply.status == 401
    assert reply.code == "INVALID_SIGNATURE"


def test_a_signature_for_another_method_fails(world: World) -> None:
    body = b""
    creds = world.operator
    headers = signed_headers(
        creds.secret, int(time.time()), "POST", "/api/s2s/health", body, key_id=creds.key_id
    )

    reply = world.api.get("/api/s2s/health", signed=False, headers=headers)

    assert reply.status == 401
    assert reply.code == "INVALID_SIGNATURE"


def test_the_query_string_is_not_part_of_the_signed_path(world: World) -> None:
    reply = world.api.get("/api/s2s/health", query_string="probe=1")

    assert reply.status == 200
    assert reply.json["status"] == "ok"


def test_another_operators_secret_does_not_sign_for_this_key(world: World) -> None:
    other = world.onboard()

    reply = world.api.post(CASHOUT, cashout_body(), secret=other.secret)

    assert reply.status == 401
    assert reply.code == "INVALID_SIGNATURE"


def test_a_timestamp_more_than_300_seconds_away_is_timestamp_skew(world: World) -> None:
    for offset in (-301, 301, -3600, 86_400):
        reply = world.api.post(CASHOUT, cashout_body(), timestamp=int(time.time()) + offset)
        assert (offset, reply.status, reply.code) == (offset, 401, "TIMESTAMP_SKEW")


def test_a_timestamp_within_300_seconds_is_accepted(world: World) -> None:
    for offset in (-290, 290):
        reply = world.api.health(timestamp=int(time.time()) + offset)
        assert (offset, reply.status) == (offset, 200)


def test_a_timestamp_that_is_not_unix_seconds_is_refused_with_401(world: World) -> None:
    creds = world.operator
    for stamp in ("yesterday", "1.5e9", "", "-"):
        headers = {
            "X-Key-Id": creds.key_id,
            "X-Timestamp": stamp,
            "X-Signature": sign(creds.secret, stamp, "GET", "/api/s2s/health", b""),
        }
        reply = world.api.get("/api/s2s/health", signed=False, headers=headers)
        assert (stamp, reply.status) == (stamp, 401)
        assert reply.code in {"TIMESTAMP_SKEW", "MISSING_HEADERS", "INVALID_SIGNATURE"}


def test_a_second_active_key_works_alongside_the_first(world: World) -> None:
    created = world.cli("operators", "keys", "create", world.operator.slug)
    assert created.exit_code == 0, created
    new = Creds(world.operator.slug, "EUR", created.json["keyId"], created.json["secret"])

    assert world.client_for(new).health().status == 200
    assert world.api.health().status == 200


def test_key_rotation_add_then_revoke_the_old_key(world: World) -> None:
    created = world.cli("operators", "keys", "create", world.operator.slug)
    new = Creds(world.operator.slug, "EUR", created.json["keyId"], created.json["secret"])

    revoked = world.cli("operators", "keys", "revoke", world.operator.key_id)

    assert revoked.exit_code == 0, revoked
    assert revoked.json == {"keyId": world.operator.key_id, "revoked": True}
    old_reply = world.api.health()
    assert old_reply.status == 401
    assert old_reply.code == "INVALID_SIGNATURE"
    assert world.client_for(new).health().status == 200


def test_a_revoked_key_cannot_move_money(world: World) -> None:
    item = world.win_item("gold")
    assert world.cli("operators", "keys", "revoke", world.operator.key_id).exit_code == 0

    reply = world.api.cashout(playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"])

    assert reply.status == 401
    assert reply.code == "INVALID_SIGNATURE"
    assert world.wallet.credits() == []


def test_the_key_id_decides_the_operator_acting(world: World) -> None:
    other = world.onboard()
    item = world.win_item("gold")

    reply = world.client_for(other).cashout(
        playerExternalId=PLAYER, inventoryItemId=item["inventoryItemId"]
    )

    assert reply.status == 404
    assert reply.code == "INVENTORY_ITEM_NOT_FOUND"


def test_every_endpoint_requires_a_signature(world: World) -> None:
    for path in ("/api/s2s/cashout", "/api/s2s/cancel", "/api/s2s/purchase", "/api/s2s/open"):
        reply = world.api.post(path, {}, signed=False)
        assert (path, reply.status, reply.code) == (path, 401, "MISSING_HEADERS")


def test_a_key_id_with_a_nul_character_is_invalid_signature_not_a_5xx(world: World) -> None:
    stamp = str(int(time.time()))
    headers = {
        "X-Key-Id": f"{world.operator.key_id}\x00",
        "X-Timestamp": stamp,
        "X-Signature": sign(world.operator.secret, stamp, "GET", "/api/s2s/health", b""),
    }

    reply = world.api.get("/api/s2s/health", signed=False, headers=headers)

    assert (reply.status, reply.code) == (401, "INVALID_SIGNATURE")


def test_odd_key_ids_and_signatures_are_invalid_signature(world: World) -> None:
    stamp = str(int(time.time()))
    good = sign(world.operator.secret, stamp, "GET", "/api/s2s/health", b"")
    for key_id, signature in (
        ("x" * 5000, good),
        ("é", good),
        (world.operator.key_id, "é" * 64),
        (world.operator.key_id, good.upper()),
        (world.operator.key_id, good[:-1]),
    ):
        headers = {"X-Key-Id": key_id, "X-Timestamp": stamp, "X-Signature": signature}
        reply = world.api.get("/api/s2s/health", signed=False, headers=headers)
        assert (key_id[:8], reply.status, reply.code) == (key_id[:8], 401, "INVALID_SIGNATURE")
