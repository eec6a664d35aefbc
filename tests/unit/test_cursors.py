"""Page cursors: opaque, bound to their filters, carrying their direction, and never a 500
whatever a caller sends."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lootbox.domain.errors import ValidationFailed
from lootbox.services.cursors import Cursor, Direction, decode_cursor, encode_cursor

FILTERS = {"list": "history", "player": "u_1", "types": ["cashback"], "from": None}
POSITION = ["2026-11-21T10:00:00.000001+00:00", 1, 42]


def forge(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize("direction", list(Direction))
def test_a_cursor_round_trips_its_position_and_direction(direction: Direction) -> None:
    token = encode_cursor(FILTERS, Cursor(direction, POSITION))

    assert decode_cursor(token, dict(FILTERS)) == Cursor(direction, POSITION)
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token


def test_the_two_directions_of_one_position_are_different_cursors() -> None:
    assert encode_cursor(FILTERS, Cursor(Direction.NEXT, [7])) != encode_cursor(
        FILTERS, Cursor(Direction.PREV, [7])
    )


def test_a_cursor_is_refused_for_other_filters() -> None:
    token = encode_cursor(FILTERS, Cursor(Direction.NEXT, [7]))

    with pytest.raises(ValidationFailed) as refused:
        decode_cursor(token, {**FILTERS, "player": "u_2"})

    assert refused.value.details == {
        "fields": {"cursor": ["this cursor was issued for other filters; keep them while paging"]}
    }


def digest_of(filters: dict[str, object]) -> str:
    token = encode_cursor(filters, Cursor(Direction.NEXT, [1]))
    return str(json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["q"])


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 at all!",
        forge([1, 2]),
        forge({"v": 3, "q": "x", "d": "next", "p": [1]}),
        forge({"v": 2, "d": "next", "p": [1]}),
        # The first version had no direction: refused rather than guessed.
        forge({"v": 1, "q": digest_of(FILTERS), "p": [1]}),
        forge({"v": 2, "q": digest_of(FILTERS), "p": [1]}),
        forge({"v": 2, "q": digest_of(FILTERS), "d": "sideways", "p": [1]}),
        forge({"v": 2, "q": digest_of(FILTERS), "d": ["next"], "p": [1]}),
        forge({"v": 2, "q": digest_of(FILTERS), "d": "next", "p": 1}),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_anything_else_is_a_validation_error(token: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decode_cursor(token, FILTERS)

    assert "cursor" in refused.value.details["fields"]


@given(st.text(max_size=600))
def test_no_string_decodes_into_anything_but_a_cursor_or_a_validation_error(
    token: str,
) -> None:
    try:
        cursor = decode_cursor(token, FILTERS)
    except ValidationFailed:
        return
    assert isinstance(cursor.position, list) and cursor.direction in tuple(Direction)
