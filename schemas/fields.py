"""Field types shared by the S2S schemas.

Every field carries ``metadata`` with a ``description`` and an ``example``: the OpenAPI
document is generated from these very schemas, so what validates is what is documented.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from iso4217 import Currency
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
CURRENCY_CODE = re.compile(r"^[A-Z]{3}\Z")
MAX_ID = 2**63 - 1

EXAMPLE_ROUND_ID = "r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"
# What the currency validator accepts, listed in the document (so generated requests and
# readers alike know the set, not just its shape).
KNOWN_CURRENCIES = sorted(c.code for c in Currency if is_known(c.code))


def spec_pattern(regex: re.Pattern[str]) -> str:
    """The pattern as JSON Schema (ECMA-262) reads it. Python needs ``\\Z`` for "the true
    end" (its ``$`` also matches before a final newline); ECMA's ``$`` already means that
    and knows no ``\\Z``. Surrogate ranges are left out: ECMA would read them as halves of
    every non-BMP character, and a lone surrogate cannot travel in valid JSON text anyway."""
    return regex.pattern.replace(r"\Z", "$").replace(r"\ud800-\udfff", "")


def _regexp(regex: re.Pattern[str], error: str) -> validate.Regexp:
    return validate.Regexp(regex, error=error)


def _with_metadata(kwargs: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """``kwargs`` with ``metadata`` = ``defaults`` overridden by the caller's own."""
    return {**kwargs, "metadata": {**defaults, **kwargs.get("metadata", {})}}


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
        data_key=kwargs.pop("data_key", "playerExternalId"),
        validate=_regexp(PLAYER_ID, "1 to 190 characters, no control characters"),
        **_with_metadata(
            kwargs,
            description="The operator's opaque player id: 1 to 190 Unicode characters, no"
            " control characters. No PII.",
            example="u_8431",
            pattern=spec_pattern(PLAYER_ID),
        ),
    )


def idempotency_key(example: str, default: str) -> fields.String:
    return fields.String(
        data_key="idempotencyKey",
        load_default=None,
        validate=_regexp(IDEMPOTENCY_KEY, "1 to 255 printable ASCII characters without whitespace"),
        metadata={
            "description": "Optional idempotency key, scoped to the operator: 1 to 255"
            f" printable ASCII characters without whitespace. Omitted or null: `{default}`."
            " The same key with the same request replays the first answer; with a"
            " different request it is `IDEMPOTENCY_KEY_REUSED`.",
            "example": example,
            "pattern": spec_pattern(IDEMPOTENCY_KEY),
        },
    )


def client_action_id(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=_regexp(CLIENT_ACTION_ID, "1 to 80 printable ASCII characters without whitespace"),
        **_with_metadata(
            kwargs,
            description="The player action this purchase is (1 to 80 printable ASCII"
            " characters without whitespace): the idempotency key of the purchase, scoped"
            " to the player. Retry a purchase with the same value, never a new one.",
            example="act-7f3c2a",
            pattern=spec_pattern(CLIENT_ACTION_ID),
        ),
    )


def _known_currency(value: str) -> None:
    if not is_known(value):
        raise ValidationError("Not an ISO 4217 currency with minor units.")


def currency(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=[
            _regexp(CURRENCY_CODE, "3 uppercase letters (ISO 4217)"),
            _known_currency,
        ],
        **_with_metadata(
            kwargs,
            description="ISO 4217 code of the player's wallet (an ISO currency with minor"
            " units; others are `VALIDATION_ERROR`). Omitted or null: the operator"
            " currency.",
            example="USD",
            pattern=spec_pattern(CURRENCY_CODE),
            enum=KNOWN_CURRENCIES,
        ),
    )


def round_public_id(**kwargs: Any) -> fields.String:
    return fields.String(
        data_key=kwargs.pop("data_key", "roundPublicId"),
        validate=_regexp(ROUND_PUBLIC_ID, "1 to 64 printable ASCII characters"),
        **_with_metadata(
            kwargs,
            description="The round's public id (`r_<ULID>`), as the purchase answered it.",
            example=EXAMPLE_ROUND_ID,
            pattern=spec_pattern(ROUND_PUBLIC_ID),
        ),
    )


def positive_id(**kwargs: Any) -> StrictInteger:
    return StrictInteger(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


# --- response fields (serialised, never validated: the metadata is the documentation) ---


def minor_units(description: str, example: int | None, **kwargs: Any) -> fields.Integer:
    """An integer count of minor units of a currency named next to it."""
    return fields.Integer(
        **_with_metadata(kwargs, description=description, example=example),
    )


def currency_code(description: str, example: str = "EUR", **kwargs: Any) -> fields.String:
    return fields.String(
        **_with_metadata(
            kwargs, description=description, example=example, pattern=spec_pattern(CURRENCY_CODE)
        ),
    )


def one_of(values: list[str], description: str, example: str, **kwargs: Any) -> fields.String:
    """A string that is one of ``values``: an ``enum`` in the document."""
    return fields.String(
        **_with_metadata(kwargs, description=description, example=example, enum=values),
    )


class UtcTimestamp(fields.DateTime):
    """ISO 8601 UTC with microseconds and ``Z``, in every answer: the precision history is
    ordered by, one format for every timestamp."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        stamp: str = value.astimezone(UTC).isoformat(timespec="microseconds")
        return stamp.replace("+00:00", "Z")


class Inline(fields.Nested):
    """A nested object of the wire made of attributes of the object being dumped itself:
    ``{"item": {...}, "balanceAfterMinor": ...}`` from one flat result."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = None) -> Any:
        return obj


class BoundedList(fields.List):
    """A list refused before its items are loaded when it has more than ``max_items``:
    ``validate.Length`` runs after every item is deserialized, which for a 1 MiB body of
    300,000 empty objects took seconds of a worker's CPU to produce a 400."""

    def __init__(self, cls_or_instance: Any, *, max_items: int, **kwargs: Any) -> None:
        super().__init__(cls_or_instance, validate=validate.Length(min=1, max=max_items), **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list) and len(value) > self.max_items:
            raise ValidationError(f"Length must be between 1 and {self.max_items}.")
        return super()._deserialize(value, attr, data, **kwargs)
