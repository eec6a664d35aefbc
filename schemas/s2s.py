"""Request and response schemas of the S2S endpoints (contract section 5).

Request schemas load the use cases' commands and response schemas dump their results:
each schema is the one description of its wire shape (snake_case attributes, camelCase
``data_key``). Unknown fields are rejected (marshmallow's default ``RAISE``), so a typo in
a field name is a 400, not a silently ignored default. Every field's ``metadata``
(description, example, enum) is the OpenAPI documentation of that field; the ``*_EXAMPLE``
bodies below are the documented examples of whole requests and answers.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from lootbox.domain.fairness import ALGORITHM
from lootbox.domain.states import PurchaseMode
from lootbox.services.cancel import CancelRound, default_cancel_key
from lootbox.services.cashout import CashOut, default_cashout_key
from lootbox.services.opening import OpenRound, default_open_key
from lootbox.services.purchase import Purchase, ReelPick
from schemas.fields import (
    EXAMPLE_ROUND_ID,
    BoundedList,
    Inline,
    StrictInteger,
    UtcTimestamp,
    client_action_id,
    currency,
    currency_code,
    idempotency_key,
    minor_units,
    one_of,
    player_external_id,
    positive_id,
    round_public_id,
)

# What callers see of rounds and items (lootbox.domain.states, external names).
ROUND_STATUSES = ["held", "settled", "refunded", "voided"]
ITEM_STATES = ["unresolved", "cashed_back", "ship_requested", "fulfilled", "expired"]
PURCHASE_MODES = ["open", "prepay"]
EXAMPLE_SEED_HASH = "73876791e4bd2f1b1cd75fad43b603fbf5ccffb9dc0ce4de2e69c3dc9a4ae8b7"
MAX_REELS = 10
MAX_REEL_INDEX = 99


def balance_after(example: int) -> fields.Integer:
    return minor_units(
        "The player's balance after this operation, in minor units of the credited or"
        " debited currency, as the wallet reported it; null if the wallet gave none.",
        example,
        required=True,
        allow_none=True,
        data_key="balanceAfterMinor",
    )


class ErrorBodySchema(Schema):
    code = fields.String(
        required=True,
        metadata={
            "description": "Machine-readable error code: branch on this, never on `message`."
            " Each operation lists the codes it can answer per status.",
            "example": "CASHBACK_NOT_AVAILABLE",
        },
    )
    message = fields.String(
        required=True,
        metadata={
            "description": "Human-readable explanation, for logs and people; may change.",
            "example": "cashback is not available for this item",
        },
    )
    details = fields.Dict(
        metadata={
            "description": 'Optional. For `VALIDATION_ERROR`: `{"fields": {name: [message,'
            " ...]}}` (nested for nested fields; `_schema` for whole-body errors).",
            "example": {"fields": {"inventoryItemId": ["Missing data for required field."]}},
        }
    )


class ErrorSchema(Schema):
    error = fields.Nested(
        ErrorBodySchema,
        required=True,
        metadata={"description": "The one error envelope of every non-2xx answer."},
    )


# --- cashout ---------------------------------------------------------------------------


class CashoutRequestSchema(Schema):
    player_external_id = player_external_id(
        required=True,
        metadata={"description": "The player who owns the item."},
    )
    inventory_item_id = positive_id(
        required=True,
        data_key="inventoryItemId",
        metadata={
            "description": "The won item to cash out (`wonItems[].inventoryItemId` of a"
            " purchase or an opening, `items[].id` of the inventory).",
            "example": 88,
        },
    )
    currency = currency(load_default=None)
    idempotency_key = idempotency_key(
        "cashback:inventory:88", "cashback:inventory:<inventoryItemId>"
    )

    @post_load
    def _command(self, data: dict[str, Any], **_: Any) -> CashOut:
        key = data.pop("idempotency_key") or default_cashout_key(data["inventory_item_id"])
        return CashOut(**data, idempotency_key=key)


class CashoutItemSchema(Schema):
    inventory_item_id = fields.Integer(
        required=True,
        data_key="inventoryItemId",
        metadata={"description": "The item cashed out.", "example": 88},
    )
    state = one_of(["cashed_back"], "The item's state now: always `cashed_back`.", "cashed_back")
    cashback_minor = minor_units(
        "What was credited, in `currency`.", 353, required=True, data_key="cashbackMinor"
    )
    currency = currency_code("The currency credited (the request's, or the operator's).", "USD")


class CashoutResponseSchema(Schema):
    item = Inline(
        CashoutItemSchema, required=True, metadata={"description": "The item, cashed back."}
    )
    balance_after_minor = balance_after(11820)


CASHOUT_REQUEST_EXAMPLE = {
    "playerExternalId": "u_8431",
    "inventoryItemId": 88,
    "currency": "USD",
}
CASHOUT_RESPONSE_EXAMPLE = {
    "item": {
        "inventoryItemId": 88,
        "state": "cashed_back",
        "cashbackMinor": 353,
        "currency": "USD",
    },
    "balanceAfterMinor": 11820,
}


# --- cancel -----------------------------------------------------------------------------


class CancelRequestSchema(Schema):
    player_external_id = player_external_id(
        required=True,
        metadata={"description": "The player who bought the round."},
    )
    round_public_id = round_public_id(
        required=True,
        metadata={"description": "The held (pre-paid, unopened) round to refund."},
    )
    idempotency_key = idempotency_key(
        f"refund:round:{EXAMPLE_ROUND_ID}", "refund:round:<roundPublicId>"
    )

    @post_load
    def _command(self, data: dict[str, Any], **_: Any) -> CancelRound:
        key = data.pop("idempotency_key") or default_cancel_key(data["round_public_id"])
        return CancelRound(**data, idempotency_key=key)


class CancelledRoundSchema(Schema):
    round_public_id = fields.String(
        required=True,
        data_key="publicId",
        metadata={"description": "The round refunded.", "example": EXAMPLE_ROUND_ID},
    )
    status = one_of(["refunded"], "The round's status now: always `refunded`.", "refunded")
    refunded_minor = minor_units(
        "What was credited back: the amount the round was bought for, in `currency`.",
        500,
        required=True,
        data_key="refundedMinor",
    )
    currency = currency_code("The currency the round was bought in, and refunded in.")


class CancelResponseSchema(Schema):
    round = Inline(
        CancelledRoundSchema, required=True, metadata={"description": "The round, refunded."}
    )
    balance_after_minor = balance_after(12000)


CANCEL_REQUEST_EXAMPLE = {"playerExternalId": "u_8431", "roundPublicId": EXAMPLE_ROUND_ID}
CANCEL_RESPONSE_EXAMPLE = {
    "round": {
        "publicId": EXAMPLE_ROUND_ID,
        "status": "refunded",
        "refundedMinor": 500,
        "currency": "EUR",
    },
    "balanceAfterMinor": 12000,
}


# --- purchase and open --------------------------------------------------------------------


class ReelRequestSchema(Schema):
    reel_index = StrictInteger(
        required=True,
        data_key="reelIndex",
        validate=validate.Range(min=0, max=MAX_REEL_INDEX),
        metadata={
            "description": f"Position of this reel, 0 to {MAX_REEL_INDEX}; distinct within"
            " a purchase.",
            "example": 0,
        },
    )
    box_version_id = positive_id(
        required=True,
        data_key="boxVersionId",
        metadata={
            "description": "The box version to play on this reel: a box's current"
            " `boxVersionId` from the catalog (`GET /api/s2s/boxes/{boxId}`).",
            "example": 1,
        },
    )

    @post_load
    def _pick(self, data: dict[str, Any], **_: Any) -> ReelPick:
        return ReelPick(**data)


class PurchaseRequestSchema(Schema):
    player_external_id = player_external_id(
        required=True,
        metadata={"description": "The player buying (and paying)."},
    )
    game_key = fields.String(
        required=True,
        data_key="gameKey",
        validate=validate.OneOf(["mystery_box"]),
        metadata={"description": "The game: always `mystery_box`.", "example": "mystery_box"},
    )
    mode = fields.Enum(
        PurchaseMode,
        by_value=True,
        load_default=PurchaseMode.OPEN,
        metadata={
            "description": "`open` (default): buy and open at once, the round is `settled`."
            " `prepay`: buy now and open later (`/open`) or refund (`/cancel`): the round"
            " is `held`.",
            "example": "open",
        },
    )
    client_action_id = client_action_id(required=True, data_key="clientActionId")
    currency = currency(
        load_default=None,
        metadata={
            "description": "ISO 4217 code of the player's wallet, to pay in (the price is"
            " converted at the operator's rate). Omitted or null: the operator currency."
        },
    )
    reels = BoundedList(
        fields.Nested(ReelRequestSchema),
        max_items=MAX_REELS,
        required=True,
        metadata={
            "description": f"1 to {MAX_REELS} reels, each a box; one debit pays for all.",
            "example": [{"reelIndex": 0, "boxVersionId": 1}],
        },
    )

    @validates_schema
    def _distinct_reels(self, data: dict[str, Any], **_: Any) -> None:
        indexes = [reel.reel_index for reel in data.get("reels", [])]
        if len(indexes) != len(set(indexes)):
            raise ValidationError("reelIndex values must be distinct", "reels")

    @post_load
    def _command(self, data: dict[str, Any], **_: Any) -> Purchase:
        del data["game_key"]  # one game: validated, nothing to pass on
        reels = tuple(sorted(data.pop("reels"), key=lambda reel: reel.reel_index))
        return Purchase(**data, reels=reels)


class OpenRequestSchema(Schema):
    player_external_id = player_external_id(
        required=True,
        metadata={"description": "The player who bought the round."},
    )
    round_public_id = round_public_id(
        required=True,
        metadata={"description": "The held (pre-paid) round to open."},
    )
    idempotency_key = idempotency_key(
        f"open:round:{EXAMPLE_ROUND_ID}", "open:round:<roundPublicId>"
    )

    @post_load
    def _command(self, data: dict[str, Any], **_: Any) -> OpenRound:
        key = data.pop("idempotency_key") or default_open_key(data["round_public_id"])
        return OpenRound(**data, idempotency_key=key)


class PrizeSchema(Schema):
    item_id = fields.Integer(
        required=True, data_key="itemId", metadata={"description": "The prize.", "example": 12}
    )
    name = fields.String(
        required=True, metadata={"description": "Its name.", "example": "Gold Coin"}
    )
    value_minor = minor_units(
        "Its value, in `currency`.", 400, required=True, data_key="valueMinor"
    )
    currency = currency_code("The operator currency.")


class ReelSchema(Schema):
    reel_index = fields.Integer(
        required=True,
        data_key="reelIndex",
        metadata={"description": "Position of the reel.", "example": 0},
    )
    box_version_id = fields.Integer(
        required=True,
        data_key="boxVersionId",
        metadata={"description": "The box version played.", "example": 1},
    )
    price_minor = minor_units(
        "The box's price, in the operator currency.", 500, required=True, data_key="priceMinor"
    )
    prize = fields.Nested(
        PrizeSchema,
        required=True,
        allow_none=True,
        metadata={"description": "What the reel drew; null until the round is opened."},
    )


class FairnessSchema(Schema):
    server_seed_hash = fields.String(
        required=True,
        data_key="serverSeedHash",
        metadata={
            "description": "SHA-256 of the server seed the round was drawn with; the seed"
            " itself is revealed by `/api/s2s/fairness/rotate`.",
            "example": EXAMPLE_SEED_HASH,
        },
    )
    client_seed = fields.String(
        required=True,
        data_key="clientSeed",
        metadata={
            "description": "The client seed it was drawn with.",
            "example": "a1b2c3d4e5f60718",
        },
    )
    nonce = fields.Integer(
        required=True,
        metadata={"description": "The round's nonce under that pair.", "example": 11},
    )
    algorithm_key = fields.String(
        required=True,
        data_key="algorithmKey",
        metadata={
            "description": "How the draw is computed.",
            "example": ALGORITHM,
            "enum": [ALGORITHM],
        },
    )


class RoundSchema(Schema):
    public_id = fields.String(
        required=True,
        data_key="publicId",
        metadata={"description": "The round's public id.", "example": EXAMPLE_ROUND_ID},
    )
    status = one_of(
        ROUND_STATUSES,
        "`settled` (opened), `held` (pre-paid, unopened), `refunded` (a held round"
        " cancelled, money returned) or `voided` (the wallet refused the debit, no money"
        " moved).",
        "settled",
        required=True,
    )
    mode = one_of(PURCHASE_MODES, "How it was bought.", "open", required=True)
    bet_minor = minor_units(
        "What the player paid, in `currency`.", 500, required=True, data_key="betMinor"
    )
    payout_minor = minor_units(
        "Value of the prizes won, converted to `currency`; null until opened.",
        400,
        required=True,
        allow_none=True,
        data_key="payoutMinor",
    )
    currency = currency_code("The currency the round was paid in.")
    created_at = UtcTimestamp(
        required=True,
        data_key="createdAt",
        metadata={
            "description": "When the round was bought (ISO 8601 UTC).",
            "example": "2026-11-21T10:00:00.123456Z",
        },
    )
    reels = fields.List(
        fields.Nested(ReelSchema),
        required=True,
        metadata={"description": "The reels, by `reelIndex`."},
    )
    fairness = fields.Nested(
        FairnessSchema,
        required=True,
        allow_none=True,
        metadata={
            "description": "What the round was drawn with (reel `r` draws from its box"
            " version's snapshot with `HMAC-SHA256(serverSeed, clientSeed:nonce:r)`,"
            " docs/fairness.md); null until the round is drawn (`held`, `voided`)."
        },
    )


class WonItemSchema(Schema):
    inventory_item_id = fields.Integer(
        required=True,
        data_key="inventoryItemId",
        metadata={"description": "The new inventory item: cash it out with this.", "example": 88},
    )
    item_id = fields.Integer(
        required=True, data_key="itemId", metadata={"description": "The prize.", "example": 12}
    )
    reel_index = fields.Integer(
        required=True,
        data_key="reelIndex",
        metadata={"description": "The reel that drew it.", "example": 0},
    )
    name = fields.String(
        required=True, metadata={"description": "Its name.", "example": "Gold Coin"}
    )
    value_minor = minor_units(
        "Its value, in `currency`.", 400, required=True, data_key="valueMinor"
    )
    currency = currency_code("The operator currency.")
    cashback_minor = minor_units(
        "What a cashout would credit right now, in the operator currency (before"
        " conversion); null if no rule allows cashback.",
        320,
        required=True,
        allow_none=True,
        data_key="cashbackMinor",
    )
    state = one_of(
        ITEM_STATES, "The item's state; a new item is `unresolved`.", "unresolved", required=True
    )


class RoundResponseSchema(Schema):
    round = Inline(RoundSchema, required=True, metadata={"description": "The round."})
    won_items = fields.List(
        fields.Nested(WonItemSchema),
        required=True,
        data_key="wonItems",
        metadata={"description": "The inventory items the opening created; empty until opened."},
    )
    balance_after_minor = balance_after(99500)


class HealthSchema(Schema):
    status = one_of(["ok"], "Always `ok`: the key and the clock are right.", "ok", required=True)
    time = UtcTimestamp(
        required=True,
        metadata={
            "description": "The server's time (ISO 8601 UTC): compare with yours to check"
            " the clock your `X-Timestamp` comes from.",
            "example": "2026-11-21T10:00:00.123456Z",
        },
    )


PURCHASE_REQUEST_EXAMPLE = {
    "playerExternalId": "u_8431",
    "gameKey": "mystery_box",
    "mode": "open",
    "clientActionId": "act-7f3c2a",
    "reels": [{"reelIndex": 0, "boxVersionId": 1}],
}
_PRIZE = {"itemId": 12, "name": "Gold Coin", "valueMinor": 400, "currency": "EUR"}
_WON_ITEM = {
    "inventoryItemId": 88,
    "itemId": 12,
    "reelIndex": 0,
    "name": "Gold Coin",
    "valueMinor": 400,
    "currency": "EUR",
    "cashbackMinor": 320,
    "state": "unresolved",
}
SETTLED_ROUND_EXAMPLE = {
    "round": {
        "publicId": EXAMPLE_ROUND_ID,
        "status": "settled",
        "mode": "open",
        "betMinor": 500,
        "payoutMinor": 400,
        "currency": "EUR",
        "createdAt": "2026-11-21T10:00:00.123456Z",
        "reels": [{"reelIndex": 0, "boxVersionId": 1, "priceMinor": 500, "prize": _PRIZE}],
        "fairness": {
            "serverSeedHash": EXAMPLE_SEED_HASH,
            "clientSeed": "a1b2c3d4e5f60718",
            "nonce": 11,
            "algorithmKey": ALGORITHM,
        },
    },
    "wonItems": [_WON_ITEM],
    "balanceAfterMinor": 99500,
}
HELD_ROUND_EXAMPLE = {
    "round": {
        "publicId": EXAMPLE_ROUND_ID,
        "status": "held",
        "mode": "prepay",
        "betMinor": 500,
        "payoutMinor": None,
        "currency": "EUR",
        "createdAt": "2026-11-21T10:00:00.123456Z",
        "reels": [{"reelIndex": 0, "boxVersionId": 1, "priceMinor": 500, "prize": None}],
        "fairness": None,
    },
    "wonItems": [],
    "balanceAfterMinor": 99500,
}
OPENED_ROUND_EXAMPLE = {
    "round": {**SETTLED_ROUND_EXAMPLE["round"], "mode": "prepay"},  # type: ignore[dict-item]
    "wonItems": [_WON_ITEM],
    "balanceAfterMinor": 99500,
}
OPEN_REQUEST_EXAMPLE = {"playerExternalId": "u_8431", "roundPublicId": EXAMPLE_ROUND_ID}
HEALTH_EXAMPLE = {"status": "ok", "time": "2026-11-21T10:00:00.123456Z"}
