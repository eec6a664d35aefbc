"""Page cursors: opaque, bound to their filters, and never a 500 whatever a caller sends."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lootbox.domain.errors import ValidationFailed
from lootbox.services.cursors import decode_cursor, encode_cursor

FILTERS = {"list": "history", "player": "u_1", "types": ["cashback"], "from": None}


def forge(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def test_a_cursor_round_trips_its_position() -> None:
    token = encode_cursor(FILTERS, ["2026-11-21T10:00:00.000001+00:00", 1, 42])

    assert decode_cursor(token, dict(FILTERS)) == ["2026-11-21T10:00:00.000001+00:00", 1, 42]
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token


def test_a_cursor_is_refused_for_other_filters() -> None:
    token = encode_cursor(FILTERS, [7])

    with pytest.raises(ValidationFailed) as refused:
        decode_cursor(token, {**FILTERS, "player": "u_2"})

    assert refused.value.details == {
        "fields": {"cursor": ["this cursor was issued for other filters; keep them while paging"]}
    }


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 at all!",
        forge([1, 2]),
        forge({"v": 2, "q": "x", "p": [1]}),
        forge({"v": 1, "p": [1]}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_a_validation_error(token: str) -> None:
    with pytest.raises(ValidationFailed):
        decode_cursor(token, FILTERS)


@given(st.text(max_size=600))
def test_no_string_decodes_into_anything_but_a_position_or_a_validation_error(
    token: str,
) -> None:
    try:
        position = decode_cursor(token, FILTERS)
    except ValidationFailed:
        return
    assert isinstance(position, list)
