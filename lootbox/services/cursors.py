"""Opaque page cursors.

A cursor is base64url JSON ``{"v": 1, "q": <digest of the filters>, "p": <position>}``:
the position of the last row of the page just served (keyset), and the filters that page
was listed with. A cursor replayed with other filters would silently page through the
wrong list, so it is refused instead (400). Callers must treat cursors as opaque; the
format may change with ``v``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from lootbox.domain.errors import ValidationFailed

CURSOR_VERSION = 1
MAX_CURSOR_LENGTH = 512


def encode_cursor(filters: Mapping[str, Any], position: list[Any]) -> str:
    payload = {"v": CURSOR_VERSION, "q": _digest(filters), "p": position}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, filters: Mapping[str, Any]) -> list[Any]:
    """The position a cursor continues after; ``ValidationFailed`` (400) if the token is
    not one of ours or was issued for other filters."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise _invalid("not a cursor this API issued") from None
    if not isinstance(payload, dict) or payload.get("v") != CURSOR_VERSION:
        raise _invalid("not a cursor this API issued")
    if payload.get("q") != _digest(filters):
        raise _invalid("this cursor was issued for other filters; keep them while paging")
    position = payload.get("p")
    if not isinstance(position, list):
        raise _invalid("not a cursor this API issued")
    return position


def invalid_cursor() -> ValidationFailed:
    """For a position that decodes but does not fit the list (a tampered cursor)."""
    return _invalid("not a cursor this API issued")


def _invalid(reason: str) -> ValidationFailed:
    return ValidationFailed("request is invalid", details={"fields": {"cursor": [reason]}})


def _digest(filters: Mapping[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
