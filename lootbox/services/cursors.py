"""Opaque page cursors.

A cursor is base64url JSON ``{"v": 2, "q": <digest of the filters>, "d": "next" | "prev",
"p": <position>}``: a keyset position in the list, the direction to read from it, and the
filters the list was read with. A cursor replayed with other filters would silently page
through the wrong list, so it is refused instead (400). Callers must treat cursors as
opaque; the format may change with ``v`` (version 1 cursors, which had no direction, are
refused).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lootbox.domain.errors import ValidationFailed

CURSOR_VERSION = 2
MAX_CURSOR_LENGTH = 512


class Direction(StrEnum):
    NEXT = "next"  # older rows: after the position in the list's newest-first order
    PREV = "prev"  # newer rows: before the position


@dataclass(frozen=True)
class Cursor:
    direction: Direction
    position: list[Any]  # the list's own keyset, checked by the list that reads it


def encode_cursor(filters: Mapping[str, Any], cursor: Cursor) -> str:
    payload = {
        "v": CURSOR_VERSION,
        "q": _digest(filters),
        "d": str(cursor.direction),
        "p": cursor.position,
    }
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, filters: Mapping[str, Any]) -> Cursor:
    """Where a cursor reads from, and which way; ``ValidationFailed`` (400) if the token
    is not one of ours or was issued for other filters."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise invalid_cursor() from None
    if not isinstance(payload, dict) or payload.get("v") != CURSOR_VERSION:
        raise invalid_cursor()
    if payload.get("q") != _digest(filters):
        raise _invalid("this cursor was issued for other filters; keep them while paging")
    position = payload.get("p")
    direction = payload.get("d")
    if not isinstance(position, list) or direction not in tuple(Direction):
        raise invalid_cursor()
    return Cursor(Direction(direction), position)


def invalid_cursor() -> ValidationFailed:
    """Also for a position that decodes but does not fit the list (a tampered cursor)."""
    return _invalid("not a cursor this API issued")


def _invalid(reason: str) -> ValidationFailed:
    return ValidationFailed("request is invalid", details={"fields": {"cursor": [reason]}})


def _digest(filters: Mapping[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
