"""The canonical JSON a snapshot's hash is taken over.

The expected texts are written out by hand from the rules (keys sorted by code point, no
whitespace, non-ASCII as lowercase \\u escapes, decimals with exactly their digits) and
their SHA-256 taken with ``sha256sum``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import simplejson
from hypothesis import given, settings
from hypothesis import strategies as st

from lootbox.domain.fairness import canonical_json, snapshot_hash

RICH_SNAPSHOT: dict[str, Any] = {
    "boxVersionId": 1201,
    "boxId": 42,
    "versionNumber": 7,
    "name": "Größe Drachen \U0001f409",
    "priceMinor": 500,
    "currency": "EUR",
    "houseEdgeBps": 700,
    "prizes": [
        {
            "itemId": 906,
            "name": 'Golden "Sword"',
            "type": "physical",
            "valueMinor": 3200,
            "imageUrl": "https://cdn.example.com/prizes/sword.png",
            "odds": Decimal("0.05"),
        },
        {
            "itemId": 907,
            "name": "Silver Shield",
            "type": "physical",
            "valueMinor": 800,
            "imageUrl": None,
            "odds": Decimal("0.2500"),
        },
        {
            "itemId": 908,
            "name": "Dragon Scale",
            "type": "digital",
            "valueMinor": 150,
            "imageUrl": None,
            "odds": Decimal("0.6999999"),
        },
        {
            "itemId": 909,
            "name": "Dust",
            "type": "bonus",
            "valueMinor": 1,
            "imageUrl": None,
            "odds": Decimal("1E-7"),
        },
    ],
}
RICH_CANONICAL = (
    '{"boxId":42,"boxVersionId":1201,"currency":"EUR","houseEdgeBps":700,'
    '"name":"Gr\\u00f6\\u00dfe Drachen \\ud83d\\udc09","priceMinor":500,"prizes":['
    '{"imageUrl":"https://cdn.example.com/prizes/sword.png","itemId":906,'
    '"name":"Golden \\"Sword\\"","odds":0.05,"type":"physical","valueMinor":3200},'
    '{"imageUrl":null,"itemId":907,"name":"Silver Shield","odds":0.2500,"type":"physical",'
    '"valueMinor":800},'
    '{"imageUrl":null,"itemId":908,"name":"Dragon Scale","odds":0.6999999,"type":"digital",'
    '"valueMinor":150},'
    '{"imageUrl":null,"itemId":909,"name":"Dust","odds":1E-7,"type":"bonus","valueMinor":1}'
    '],"versionNumber":7}'
)
RICH_HASH = "688c898012e14cdd0f27646eded4bef70117a79788e147c6c1d49b3e74bed384"


def test_a_snapshot_is_written_with_sorted_keys_exact_digits_and_ascii_escapes() -> None:
    assert canonical_json(RICH_SNAPSHOT) == RICH_CANONICAL


def test_the_snapshot_hash_is_sha256_of_the_canonical_json() -> None:
    assert snapshot_hash(RICH_SNAPSHOT) == RICH_HASH


def test_the_snapshot_hash_leaves_out_only_the_snapshot_hash_itself() -> None:
    served = {**RICH_SNAPSHOT, "snapshotHash": RICH_HASH}
    assert snapshot_hash(served) == RICH_HASH
    assert snapshot_hash({"b": 2, "a": 1, "snapshotHash": "anything"}) == (
        "43258cff783fe7036d8a43033f830adfc60ec037382473548ac742b888292777"  # {"a":1,"b":2}
    )
    assert snapshot_hash({"prizes": [{"itemId": 1, "name": "only", "odds": 1}]}) == (
        "f008cdd10f247456619d0b5dac2ab82c1f6c8c9476674ed28a78535a62a0d1f1"
    )


def test_changing_any_odds_digit_changes_the_hash() -> None:
    changed = json.loads(json.dumps(RICH_SNAPSHOT, default=str))  # a deep copy
    changed["prizes"] = [dict(p, odds=Decimal(p["odds"])) for p in changed["prizes"]]
    assert snapshot_hash(changed) == RICH_HASH
    changed["prizes"][0]["odds"] = Decimal("0.050")  # the same number, other digits
    assert snapshot_hash(changed) != RICH_HASH


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-17, "-17"),
        (2**70, "1180591620717411303424"),
        ("", '""'),
        ("tab\there\n", '"tab\\there\\n"'),
        ("\x00\x1f", '"\\u0000\\u001f"'),
        ("back\\slash/", '"back\\\\slash/"'),
        ("é", '"\\u00e9"'),
        ({}, "{}"),
        ([], "[]"),
        ((1, "a"), '[1,"a"]'),
        ({"b": [1, {"d": None, "c": True}], "a": {}}, '{"a":{},"b":[1,{"c":true,"d":null}]}'),
        ({"a": 1, "B": 2, "_": 3, "aa": 4}, '{"B":2,"_":3,"a":1,"aa":4}'),  # by code point
    ],
)
def test_json_values_have_one_written_form(value: object, text: str) -> None:
    assert canonical_json(value) == text


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("0.05", "0.05"),
        ("0.2500", "0.2500"),
        ("1", "1"),
        ("1.0", "1.0"),
        ("1E-7", "1E-7"),
        ("0.0000001", "1E-7"),  # Decimal's own shortest form; parsing it back gives 1E-7
        ("1.5E+3", "1.5E+3"),
        ("0E-7", "0E-7"),
        ("-0.5", "-0.5"),
        ("123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"),
    ],
)
def test_a_decimal_is_a_json_number_with_exactly_its_digits(number: str, text: str) -> None:
    written = canonical_json(Decimal(number))
    assert written == text
    parsed = json.loads(written, parse_float=Decimal)
    assert parsed == Decimal(number)
    assert canonical_json(parsed) == written  # the verifier re-reads it to the same text


@pytest.mark.parametrize("value", [0.05, {1: "a"}, {"a": {1, 2}}, b"bytes", [object()]])
def test_values_a_snapshot_cannot_hold_are_refused(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_a_decimal_without_a_json_form_is_refused(number: str) -> None:
    with pytest.raises(ValueError, match="no form"):
        canonical_json(Decimal(number))


# An independent writer of the same form: simplejson (what the app's JSON answers use),
# sorted keys, no whitespace, ASCII only, decimals with their digits. The two agree on
# everything a snapshot can hold.
def served_canonical_json(value: object) -> str:
    return str(
        simplejson.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, use_decimal=True
        )
    )


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(),
    # Not -0: it is written -0 and reads back as the integer 0, but no snapshot holds one
    # (odds are positive, amounts are integers).
    st.decimals(allow_nan=False, allow_infinity=False).filter(
        lambda d: not (d.is_zero() and d.is_signed())
    ),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_the_verifier_writes_what_the_service_hashes(value: object) -> None:
    assert canonical_json(value) == served_canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_canonical_json_reads_back_to_the_same_text(value: object) -> None:
    text = canonical_json(value)
    assert canonical_json(json.loads(text, parse_float=Decimal)) == text
