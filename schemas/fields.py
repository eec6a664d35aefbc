"""Field types shared by the S2S schemas."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, validate

from lootbox.currencies import is_known

# 1 to 255 printable ASCII characters without whitespace (contract section 7).
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}\Z")
CLIENT_ACTION_ID = re.compile(r"^[\x21-\x7e]{1,80}\Z")
# Opaque, but no control characters (it is logged and sent to the wallet) and valid
# Unicode: a lone surrogate cannot be encoded into a key, a log line or a database.
PLAYER_ID = re.compile(r"^[^\x00-\x1f\x7f\ud800-\udfff]{1,190}\Z")
# Round ids are r_<ULID>; anything printable is looked up (and not found), the rest is 400.
ROUND_PUBLIC_ID = re.compile(r"^[\x21-\x7e]{1,64}\Z")
MAX_ID = 2**63 - 1


class StrictInteger(fields.Integer):
    """An integer that is a JSON number: no strings, no floats, no booleans."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


def player_external_id(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(PLAYER_ID, error="1 to 190 characters, no control characters"),
        metadata={"description": "The operator's opaque player id (no PII).", "example": "u_8431"},
        **kwargs,
    )


def idempotency_key(example: str) -> fields.String:
    return fields.String(
        load_default=None,
        validate=validate.Regexp(
            IDEMPOTENCY_KEY, error="1 to 255 printable ASCII characters without whitespace"
        ),
        metadata={"description": "Optional idempotency key.", "example": example},
    )


def _known_currency(value: str) -> None:
    if not is_known(value):
        raise ValidationError("Not an ISO 4217 currency with minor units.")


def currency(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=[
            validate.Regexp(r"^[A-Z]{3}$", error="3 uppercase letters (ISO 4217)"),
            _known_currency,
        ],
        metadata={"description": "ISO 4217 code of the player's wallet.", "example": "USD"},
        **kwargs,
    )


def round_public_id(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(ROUND_PUBLIC_ID, error="1 to 64 printable ASCII characters"),
        metadata={"example": "r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"},
        **kwargs,
    )


def positive_id(**kwargs: Any) -> StrictInteger:
    return StrictInteger(validate=validate.Range(min=1, max=MAX_ID), **kwargs)
