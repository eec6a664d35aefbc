import hashlib
import json

import pytest

from lootbox.idempotency.fingerprint import fingerprint

REQUEST = {"playerExternalId": "p-1", "itemId": 7, "quantity": 1, "meta": {"b": 2, "a": 1}}


def test_fingerprint_is_sha256_of_the_canonical_json():
    expected_text = (
        '{"endpoint":"POST /v1/rounds","request":'
        '{"itemId":7,"meta":{"a":1,"b":2},"playerExternalId":"p-1","quantity":1}}'
    )
    digest = hashlib.sha256(expected_text.encode()).hexdigest()
    assert fingerprint("POST /v1/rounds", REQUEST) == f"sha256:{digest}"


def test_fingerprint_is_stable_across_key_order():
    reordered = {"meta": {"a": 1, "b": 2}, "quantity": 1, "itemId": 7, "playerExternalId": "p-1"}
    assert fingerprint("POST /v1/rounds", REQUEST) == fingerprint("POST /v1/rounds", reordered)


def test_fingerprint_differs_for_a_different_endpoint():
    assert fingerprint("POST /v1/rounds", REQUEST) != fingerprint("POST /v1/cashouts", REQUEST)


@pytest.mark.parametrize(
    "change",
    [
        {"itemId": 8},
        {"quantity": 2},
        {"playerExternalId": "p-2"},
        {"meta": {"a": 1, "b": 3}},
        {"extra": None},
    ],
)
def test_fingerprint_differs_for_different_values(change):
    assert fingerprint("POST /v1/rounds", REQUEST) != fingerprint(
        "POST /v1/rounds", {**REQUEST, **change}
    )


@pytest.mark.parametrize(("left", "right"), [(1, "1"), (1, True), (1, 1.5), (None, "null")])
def test_fingerprint_distinguishes_types(left, right):
    assert fingerprint("e", {"v": left}) != fingerprint("e", {"v": right})


def test_fingerprint_keeps_non_ascii_as_utf8():
    text = json.dumps(
        {"endpoint": "e", "request": {"name": "é"}}, separators=(",", ":"), ensure_ascii=False
    )
    expected = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert fingerprint("e", {"name": "é"}) == expected


def test_fingerprint_of_a_lone_surrogate_is_deterministic_not_an_error():
    request = json.loads('{"name": "\\ud800"}')
    assert fingerprint("e", request) == fingerprint("e", dict(request))
    assert fingerprint("e", request) != fingerprint("e", {"name": ""})


def test_fingerprint_refuses_values_that_are_not_plain_json():
    from decimal import Decimal

    with pytest.raises(TypeError):
        fingerprint("e", {"amount": Decimal("1.00")})
    with pytest.raises(ValueError):
        fingerprint("e", {"amount": float("nan")})
