"""No input ever yields a 5xx or an HTML page (contract section 2): correctly signed
requests with arbitrary JSON values and arbitrary bytes as bodies, on every POST endpoint;
hostile JSON texts (``tests/contract/hostile.py``) as bodies and hostile query strings on
the reads.

Lone UTF-16 surrogates (``"\\ud800"``) and NUL once broke the service (a 500 from the
Redis key encoding, a 503 from PostgreSQL), and so did 100 000 nested arrays, an integer
of 5 000 digits (500s from the JSON parser) and a chunked body over the size limit (cut
at the limit, the signature checked over the rest); they are generated here and pinned by
the regression tests at the bottom.
"""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from lootbox.signing import signed_headers
from tests.contract.hostile import hostile_bodies, hostile_queries
from tests.e2e.conftest import PLAYER, Reply, World, WorldFactory, assert_error_envelope

ENDPOINTS = ("/api/s2s/cashout", "/api/s2s/cancel", "/api/s2s/purchase", "/api/s2s/open")
READS = ("/api/s2s/inventory", "/api/s2s/history")

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


@FUZZ
@given(path=st.sampled_from(ENDPOINTS), raw=hostile_bodies)
def test_hostile_json_texts_never_cause_a_server_error(world: World, path: str, raw: bytes) -> None:
    """What no JSON serialiser writes: deep nesting, huge numbers, NaN and 1e309 as text,
    escaped lone surrogates, bidi marks."""
    check(world, path, raw)


@FUZZ
@given(path=st.sampled_from(READS), query=hostile_queries)
def test_hostile_query_strings_never_cause_a_server_error(
    world: World, path: str, query: str
) -> None:
    reply = world.api.get(path, query_string=query)

    assert reply.status < 500, (path, query, reply.status, reply.data[:300])
    if reply.status >= 400:
        assert_error_envelope(reply)


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


# --- hostile bodies: nesting, huge numbers, bodies without a length -----------------------------

DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
FIVE_THOUSAND_DIGITS = b"1" + b"0" * 4999


@pytest.mark.parametrize("raw", [DEEP_ARRAYS, DEEP_OBJECTS], ids=["arrays", "objects"])
def test_a_body_nested_100000_deep_is_a_validation_error_not_a_500(
    world: World, raw: bytes
) -> None:
    """json raises RecursionError on deep nesting: it once escaped as a 500."""
    for path in ENDPOINTS:
        reply = world.api.post(path, raw=raw)

        assert reply.status == 400, (path, reply.status, reply.data[:300])
        assert reply.code == "VALIDATION_ERROR", path


@pytest.mark.parametrize(
    "raw",
    [
        b'{"playerExternalId": "u_8431", "inventoryItemId": ' + FIVE_THOUSAND_DIGITS + b"}",
        b'{"playerExternalId": "u_8431", "reels": [{"boxVersionId": -'
        + FIVE_THOUSAND_DIGITS
        + b"}]}",
        FIVE_THOUSAND_DIGITS,
    ],
    ids=["field", "nested-negative", "whole-body"],
)
def test_an_integer_of_5000_digits_is_a_validation_error_not_a_500(
    world: World, raw: bytes
) -> None:
    """Python refuses to convert integers of more than 4300 digits (a ValueError that is
    not a JSONDecodeError): it once escaped as a 500."""
    for path in ENDPOINTS:
        reply = world.api.post(path, raw=raw)

        assert reply.status == 400, (path, reply.status, reply.data[:300])
        assert reply.code == "VALIDATION_ERROR", path


# (body, refused by the JSON limits rather than by the schema): the limits are exact, and
# brackets and digits inside strings are text, not structure.
AT_THE_JSON_LIMITS = [
    (b'{"extra": ' + b"[" * 31 + b"]" * 31 + b"}", False),  # 32 levels
    (b'{"extra": ' + b"[" * 32 + b"]" * 32 + b"}", True),
    (b'{"extra": ' + b"9" * 640 + b"}", False),
    (b'{"extra": -' + b"9" * 641 + b"}", True),
    (b'{"extra": "' + b"[" * 100 + b"9" * 700 + b'"}', False),
]


def test_the_json_limits_are_32_levels_and_640_digits(world: World) -> None:
    for raw, refused_by_limits in AT_THE_JSON_LIMITS:
        reply = world.api.post("/api/s2s/cashout", raw=raw)

        assert reply.status == 400, (raw[:60], reply.data)
        fields = reply.error["details"]["fields"]
        refused = isinstance(fields, list) and fields[0].startswith("Invalid JSON body:")
        assert refused == refused_by_limits, (raw[:60], fields)


def post_chunked(world: World, path: str, raw: bytes, *, sign_body: bytes | None = None) -> Reply:
    """POST ``raw`` as a chunked body: no Content-Length, and ``wsgi.input_terminated`` set
    as gunicorn sets it (the server, not the length, ends the body)."""
    headers = signed_headers(
        world.operator.secret,
        int(time.time()),
        "POST",
        path,
        raw if sign_body is None else sign_body,
        key_id=world.operator.key_id,
    )
    environ = EnvironBuilder(
        path=path,
        method="POST",
        input_stream=io.BytesIO(raw),
        headers=[*headers.items(), ("Transfer-Encoding", "chunked")],
        content_type="application/json",
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    response = world.app.test_client().open(Request(environ))
    return Reply(response.status_code, response.headers, response.get_data())


def padded_cashout(item_id: int, size: int) -> bytes:
    """A valid cashout body, padded with trailing whitespace (still valid JSON) to ``size``."""
    body = json.dumps({"playerExternalId": PLAYER, "inventoryItemId": item_id}).encode()
    return body + b" " * (size - len(body))


LIMIT = 2048


@pytest.mark.parametrize("signed_over", ["whole-body", "first-limit-bytes"])
def test_a_chunked_body_over_the_size_limit_is_payload_too_large_never_truncated(
    make_world: WorldFactory, signed_over: str
) -> None:
    """Without a Content-Length, the body was once cut at the limit and the signature
    checked over what was left: signed over that prefix, the cashout went through."""
    world = make_world(max_content_length=LIMIT)
    item = world.win_item("gold")
    raw = padded_cashout(item["inventoryItemId"], LIMIT + 1)
    sign_body = raw[:LIMIT] if signed_over == "first-limit-bytes" else None

    reply = post_chunked(world, "/api/s2s/cashout", raw, sign_body=sign_body)

    assert reply.status == 413, (reply.status, reply.data)
    assert reply.code == "PAYLOAD_TOO_LARGE"
    assert world.wallet.credits() == []


def test_a_chunked_body_of_exactly_the_size_limit_is_processed(make_world: WorldFactory) -> None:
    world = make_world(max_content_length=LIMIT)
    item = world.win_item("gold")

    reply = post_chunked(world, "/api/s2s/cashout", padded_cashout(item["inventoryItemId"], LIMIT))

    assert reply.status == 200, reply.data
    assert len(world.wallet.credits()) == 1


def test_a_chunked_body_under_the_size_limit_is_processed(world: World) -> None:
    item = world.win_item("gold")

    reply = post_chunked(world, "/api/s2s/cashout", padded_cashout(item["inventoryItemId"], 100))

    assert reply.status == 200, reply.data


# --- hostile query strings on the reads ---------------------------------------------------------


def cursor_of(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


# The longest cursor accepted is 512 characters: 384 bytes of JSON at most.
HOSTILE_QUERIES = [
    {"limit": "9" * 5000},
    {"limit": "-" + "9" * 5000},
    {"limit": "1e309"},
    {"limit": "NaN"},
    {"cursor": cursor_of(b"[" * 384)},
    {"cursor": cursor_of(b'{"v":1,"q":"x","p":[' + b"9" * 360 + b"]}")},
    {"cursor": "A" * 5000},
    {"playerExternalId": "\u202eu_8431\u200f"},
]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("query", HOSTILE_QUERIES, ids=lambda q: str(q)[:40])
def test_hostile_query_strings_are_client_errors_not_500s(
    world: World, path: str, query: dict[str, str]
) -> None:
    reply = world.api.get(path, query_string=urlencode({"playerExternalId": PLAYER, **query}))

    assert reply.status in (200, 400), (query, reply.status, reply.data[:300])
    if reply.status == 400:
        assert reply.code == "VALIDATION_ERROR"
