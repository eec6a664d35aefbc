"""Hypothesis strategies for hostile input: JSON *texts* no serialiser would write.

schemathesis generates Python values and serialises them itself, so it never sends what
broke the service before: 100 000 nested arrays, integers of 5 000 digits, ``NaN`` and
``1e309`` as raw text, lone surrogates as ``\\ud800`` escapes. These strategies build the
text directly, so anything the parser accepts or chokes on can be sent as is.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from hypothesis import strategies as st

# The request fields of every endpoint, so that hostile values land on real fields too.
FIELDS = (
    "playerExternalId",
    "inventoryItemId",
    "roundPublicId",
    "currency",
    "idempotencyKey",
    "gameKey",
    "clientActionId",
    "mode",
    "reels",
    "reelIndex",
    "boxVersionId",
)

# Raw bodies, each a kind of input that has broken a JSON service somewhere.
HAND_PICKED = (
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b'{"playerExternalId": "u_8431", "inventoryItemId": 1' + b"0" * 4999 + b"}",
    b'{"playerExternalId": "u_8431", "inventoryItemId": -' + b"9" * 4301 + b"}",
    b'{"inventoryItemId": 0.' + b"0" * 5000 + b"1}",
    b'{"inventoryItemId": NaN}',
    b'{"inventoryItemId": -Infinity}',
    b'{"inventoryItemId": 1e309}',
    b'{"inventoryItemId": -0}',
    b'{"playerExternalId": "\\ud800", "roundPublicId": "\\udfff"}',
    b'{"\\ud800": 1}',
    b'{"playerExternalId": "u_8431\\u0000"}',
    b'{"playerExternalId": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8: invalid
    '{"playerExternalId": "\u202eu_8431\u200f"}'.encode(),
    b'{"playerExternalId": "' + b"x" * 900_000 + b'"}',
    b"\xef\xbb\xbf{}",
    b'{"inventoryItemId": 1} trailing',
    b"",
)

# JSON strings: any code point (json.dumps writes lone surrogates and controls as \uXXXX
# escapes), escapes written by hand, bidi and zero-width marks, and very long ones.
json_strings = (
    st.text(st.characters(), max_size=20).map(json.dumps)
    | st.sampled_from(
        [
            '"\\ud800"',
            '"\\udfff\\ud800"',
            '"\\u0000"',
            '"u_8431\\u0000"',
            '"\u202eu_8431"',
            '"\u200fEUR\u200e"',
            '"\ufeff"',
            '"\u2028\u2029"',
            '"\\"\\\\\\/"',
        ]
    )
    | st.integers(200, 50_000).map(lambda n: '"' + "x" * n + '"')
)

# Numbers as text: what Python parses to an int, a float, infinity, or refuses.
json_numbers = (
    st.integers().map(str)
    | st.sampled_from(
        [
            "-0",
            "-0.0",
            "0e0",
            "1e309",
            "-1e309",
            "1E400",
            "1e-400",
            "NaN",
            "Infinity",
            "-Infinity",
            str(2**63),
            str(-(2**63) - 1),
            "01",
            "+1",
            ".5",
        ]
    )
    | st.integers(600, 6000).map(lambda n: "9" * n)
    | st.integers(600, 6000).map(lambda n: "-1" + "0" * n)
    | st.integers(1, 6000).map(lambda n: "0." + "0" * n + "1")
)

# Nesting past any sane depth (and past the interpreter's recursion limit), of arrays or
# of objects. Bounded so that a whole generated body stays under the 1 MiB size limit.
json_deep = st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n) | st.integers(1, 20_000).map(
    lambda n: '{"a":' * n + "0" + "}" * n
)

json_keys = st.sampled_from(FIELDS).map(json.dumps) | json_strings


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


json_values = st.recursive(
    json_numbers | json_strings | json_deep | st.sampled_from(["null", "true", "false"]),
    lambda children: (
        st.lists(children, max_size=4).map(_array)
        | st.lists(st.tuples(json_keys, children), max_size=4).map(_object)
    ),
    max_leaves=6,
)

# An object of the endpoints' own fields with hostile values.
shaped_objects = st.lists(
    st.tuples(st.sampled_from(FIELDS).map(json.dumps), json_values), min_size=1, max_size=5
).map(_object)

# What goes on the wire: UTF-8, lone surrogates included as (invalid) bytes; under the
# 1 MiB size limit, since a longer body is refused (413) before anything reads it.
hostile_bodies = st.sampled_from(HAND_PICKED) | (json_values | shaped_objects).map(
    lambda text: text.encode("utf-8", "surrogatepass")
).filter(lambda body: len(body) < 1_000_000)


def _cursor(text: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Query string values of the reads: hostile numbers and texts, cursors that decode to
# hostile JSON (at most the 512 characters a cursor may have), and dates no calendar has.
# Each is cut to 700 characters, so that four fit in gunicorn's 4 KiB request line.
query_values = (
    json_numbers
    | st.text(st.characters(), max_size=30)
    | json_values.map(_cursor).map(lambda cursor: cursor[:512])
    | st.sampled_from(
        [
            "9999-12-31T23:59:59.999999Z",
            "0000-01-01T00:00:00Z",
            "+275760-09-13T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-01T00:00:00+25:00",
            "purchase," * 100,
            "\u202eall",
        ]
    )
).map(lambda value: value[:700])
QUERY_PARAMETERS = ("playerExternalId", "state", "limit", "cursor", "types", "from", "to")


def _quote(text: str) -> str:
    # Of the UTF-8 bytes: a lone surrogate travels as (invalid) %ED%A0%80.
    return quote(text.encode("utf-8", "surrogatepass"))


def _query_string(params: dict[str, str]) -> str:
    return "&".join(f"{_quote(name)}={_quote(value)}" for name, value in params.items())


hostile_queries = st.dictionaries(
    st.sampled_from(QUERY_PARAMETERS) | st.text(max_size=8), query_values, max_size=4
).map(_query_string)
