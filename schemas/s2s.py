"""Request and response schemas of the S2S endpoints (contract section 5).

Unknown fields are rejected (marshmallow's default ``RAISE``), so a typo in a field name is
a 400, not a silently ignored default.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.fields import (
    CLIENT_ACTION_ID,
    StrictInteger,
    currency,
    idempotency_key,
    player_external_id,
    positive_id,
    round_public_id,
)


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"example": "CASHBACK_NOT_AVAILABLE"})
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


# --- cashout ---------------------------------------------------------------------------


class CashoutRequestSchema(Schema):
    playerExternalId = player_external_id(required=True)
    inventoryItemId = positive_id(required=True, metadata={"example": 88})
    currency = currency(load_default=None)
    idempotencyKey = idempotency_key("cashback:inventory:88")


class CashoutItemSchema(Schema):
    inventoryItemId = fields.Integer(required=True, metadata={"example": 88})
    state = fields.String(required=True, metadata={"example": "cashed_back"})
    cashbackMinor = fields.Integer(required=True, metadata={"example": 353})
    currency = fields.String(required=True, metadata={"example": "USD"})


class CashoutResponseSchema(Schema):
    item = fields.Nested(CashoutItemSchema, required=True)
    balanceAfterMinor = fields.Integer(allow_none=True, metadata={"example": 11820})


# --- cancel -----------------------------------------------------------------------------


class CancelRequestSchema(Schema):
    playerExternalId = player_external_id(required=True)
    roundPublicId = round_public_id(required=True)
    idempotencyKey = idempotency_key("refund:round:r_01JD3ZQ5X4G8W9V2K7M6N5P4R3")


class CancelledRoundSchema(Schema):
    publicId = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "refunded"})
    refundedMinor = fields.Integer(required=True, metadata={"example": 500})
    currency = fields.String(required=True, metadata={"example": "EUR"})


class CancelResponseSchema(Schema):
    round = fields.Nested(CancelledRoundSchema, required=True)
    balanceAfterMinor = fields.Integer(allow_none=True, metadata={"example": 12000})


# --- purchase and open --------------------------------------------------------------------


class ReelRequestSchema(Schema):
    reelIndex = StrictInteger(required=True, validate=validate.Range(min=0, max=99))
    boxVersionId = positive_id(required=True)


class PurchaseRequestSchema(Schema):
    playerExternalId = player_external_id(required=True)
    gameKey = fields.String(required=True, validate=validate.OneOf(["mystery_box"]))
    mode = fields.String(load_default="open", validate=validate.OneOf(["open", "prepay"]))
    clientActionId = fields.String(
        required=True,
        validate=validate.Regexp(
            CLIENT_ACTION_ID, error="1 to 80 printable ASCII characters without whitespace"
        ),
    )
    currency = currency(load_default=None)
    reels = fields.List(
        fields.Nested(ReelRequestSchema), required=True, validate=validate.Length(min=1, max=10)
    )

    @validates_schema
    def _distinct_reels(self, data: dict[str, Any], **_: Any) -> None:
        indexes = [reel["reelIndex"] for reel in data.get("reels", [])]
        if len(indexes) != len(set(indexes)):
            raise ValidationError("reelIndex values must be distinct", "reels")


class OpenRequestSchema(Schema):
    playerExternalId = player_external_id(required=True)
    roundPublicId = round_public_id(required=True)
    idempotencyKey = idempotency_key("open:round:r_01JD3ZQ5X4G8W9V2K7M6N5P4R3")


class PrizeSchema(Schema):
    itemId = fields.Integer(required=True)
    name = fields.String(required=True)
    valueMinor = fields.Integer(required=True)
    currency = fields.String(required=True)


class ReelSchema(Schema):
    reelIndex = fields.Integer(required=True)
    boxVersionId = fields.Integer(required=True)
    priceMinor = fields.Integer(required=True)
    prize = fields.Nested(PrizeSchema, allow_none=True)


class RoundSchema(Schema):
    publicId = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "settled"})
    mode = fields.String(required=True)
    betMinor = fields.Integer(required=True)
    payoutMinor = fields.Integer(allow_none=True)
    currency = fields.String(required=True)
    createdAt = fields.String(required=True)
    reels = fields.List(fields.Nested(ReelSchema), required=True)


class WonItemSchema(Schema):
    inventoryItemId = fields.Integer(required=True)
    itemId = fields.Integer(required=True)
    reelIndex = fields.Integer(required=True)
    name = fields.String(required=True)
    valueMinor = fields.Integer(required=True)
    currency = fields.String(required=True)
    cashbackMinor = fields.Integer(allow_none=True)
    state = fields.String(required=True)


class RoundResponseSchema(Schema):
    round = fields.Nested(RoundSchema, required=True)
    wonItems = fields.List(fields.Nested(WonItemSchema), required=True)
    balanceAfterMinor = fields.Integer(allow_none=True)


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
