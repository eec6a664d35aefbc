"""No input ever yields a 5xx or an HTML page (contract section 2): correctly signed
requests with arbitrary JSON values and arbitrary bytes as bodies, on every POST endpoint.

Lone UTF-16 surrogates (``"\\ud800"``) and NUL once broke the service (a 500 from the
Redis key encoding, a 503 from PostgreSQL); they are generated here and pinned by the
regression tests at the bottom.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import PLAYER, World, assert_error_envelope

ENDPOINTS = ("/api/s2s/cashout", "/api/s2s/cancel", "/api/s2s/purchase", "/api/s2s/open")

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Any character, lone surrogates and NUL included.
text = st.text(st.characters(), max_size=40)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=10,
)

# Plausible values, so that many examples get past the schema and into the use cases.
player_ids = st.sampled_from([PLAYER, "u_1", "", "p" * 190, "p" * 191]) | text
ids = st.integers(min_value=-2, max_value=12) | st.sampled_from([2**63 - 1, 2**63]) | json_values
currencies = st.sampled_from(["EUR", "USD", "JPY", "KWD", "GBP", "eur", "XAU", "XXX"]) | text
keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
round_ids = st.sampled_from(["r_01JD3ZQ5X4G8W9V2K7M6N5P4R3", "r_", "x" * 64]) | text | json_values
reels = st.lists(
    st.fixed_dictionaries({"reelIndex": st.integers(-1, 3) | json_values, "boxVersionId": ids}),
    max_size=3,
)

SHAPED: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "/api/s2s/cashout": st.fixed_dictionaries(
        {"playerExternalId": player_ids, "inventoryItemId": ids},
        optional={
            "currency": currencies,
            "idempotencyKey": keys | json_values,
            "extra": json_values,
        },
    ),
    "/api/s2s/cancel": st.fixed_dictionaries(
        {"playerExternalId": player_ids, "roundPublicId": round_ids},
        optional={"idempotencyKey": keys | json_values},
    ),
    "/api/s2s/open": st.fixed_dictionaries(
        {"playerExternalId": player_ids, "roundPublicId": round_ids},
        optional={"idempotencyKey": keys | json_values},
    ),
    "/api/s2s/purchase": st.fixed_dictionaries(
        {
            "playerExternalId": player_ids,
            "gameKey": st.sampled_from(["mystery_box", "slots"]) | json_values,
            "clientActionId": keys | json_values,
            "reels": reels | json_values,
        },
        optional={
            "mode": st.sampled_from(["open", "prepay", "later"]) | json_values,
            "currency": currencies,
        },
    ),
}


def check(world: World, path: str, raw: bytes) -> None:
    reply = world.api.post(path, raw=raw)
    assert reply.status < 500, (path, raw[:300], reply.status, reply.data[:300])
    assert b"<html" not in reply.data.lower()
    if reply.status >= 400:
        assert_error_envelope(reply)
    else:
        assert isinstance(json.loads(reply.data), dict)


@FUZZ
@given(data=st.data())
def test_arbitrary_json_values_never_cause_a_server_error(world: World, data: Any) -> None:
    path = data.draw(st.sampled_from(ENDPOINTS), label="path")
    body = data.draw(json_values | SHAPED[path], label="body")

    check(world, path, json.dumps(body).encode())


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_cause_a_server_error(world: World, path: str, raw: bytes) -> None:
    check(world, path, raw)


@pytest.fixture
def seeded_world(world: World) -> World:
    """A world with a won item and a held round for the fuzzed ids to hit."""
    world.win_item("gold")
    world.hold_round("gold")
    return world


@FUZZ
@given(data=st.data())
def test_requests_near_the_contract_never_cause_a_server_error(
    seeded_world: World, data: Any
) -> None:
    """Mostly well-formed requests against real items, rounds and boxes."""
    world = seeded_world
    path = data.draw(st.sampled_from(ENDPOINTS), label="path")
    body = data.draw(SHAPED[path], label="body")

    check(world, path, json.dumps(body).encode())


# --- regressions ----------------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_round_id_is_a_client_error_not_a_500(world: World) -> None:
    for path in ("/api/s2s/cancel", "/api/s2s/open"):
        raw = b'{"playerExternalId": "u_8431", "roundPublicId": "r_\\ud800"}'
        reply = world.api.post(path, raw=raw)
        assert reply.status < 500, (path, reply.status, reply.data)


def test_a_lone_surrogate_in_a_purchasing_player_id_is_a_client_error_not_a_500(
    world: World,
) -> None:
    body = json.dumps(world.purchase_body("gold", player="u_\ud800")).encode()

    reply = world.api.post("/api/s2s/purchase", raw=body)

    assert reply.status < 500, (reply.status, reply.data)
    assert world.wallet.transactions() == []


def test_a_nul_character_in_a_round_id_is_a_client_error_not_a_5xx(world: World) -> None:
    for path in ("/api/s2s/cancel", "/api/s2s/open"):
        raw = b'{"playerExternalId": "u_8431", "roundPublicId": "r_\\u0000"}'
        reply = world.api.post(path, raw=raw)
        assert reply.status < 500, (path, reply.status, reply.data)


WITH_A_TRAILING_NEWLINE = {
    "idempotencyKey": "k1\n",
    "playerExternalId": f"{PLAYER}\n",
    "currency": "EUR\n",
}


@pytest.mark.parametrize("field", sorted(WITH_A_TRAILING_NEWLINE))
def test_a_trailing_newline_is_a_400_not_a_key_the_wallet_header_refuses(
    world: World, field: str
) -> None:
    """``$`` matches before a final newline: ``"k1\\n"`` once passed validation, became
    the wallet call's Idempotency-Key header, which requests refuses, and the credit stayed
    pending for ever."""
    item = world.win_item("gold")
    body: dict[str, Any] = {"playerExternalId": PLAYER, "inventoryItemId": item["inventoryItemId"]}
    body[field] = {
        "idempotencyKey": "k1\n",
        "playerExternalId": f"{PLAYER}\n",
        "currency": "EUR\n",
    }[field]

    reply = world.api.cashout(**body)

    assert reply.status == 400, reply.data
    assert_error_envelope(reply)
    assert world.wallet.credits() == []


def test_a_trailing_newline_in_a_client_action_id_is_a_400(world: World) -> None:
    reply = world.api.purchase(**world.purchase_body("gold", client_action_id="act-1\n"))

    assert reply.status == 400, reply.data
    assert world.wallet.transactions() == []
