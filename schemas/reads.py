"""Query and response schemas of the read endpoints: inventory and history.

Query strings are validated like bodies: an unknown parameter is a 400 (the views pass
``unknown=RAISE``), so a misspelt filter never silently lists everything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from lootbox.domain.listings import HistoryType
from lootbox.services.cursors import MAX_CURSOR_LENGTH, encode_cursor
from lootbox.services.listings import (
    DEFAULT_PAGE_SIZE,
    INVENTORY_STATES,
    MAX_PAGE_SIZE,
    history_filters,
    inventory_filters,
)
from schemas.fields import UtcTimestamp, player_external_id

ROUND_EXAMPLE = "r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"
WON_AT = "2026-11-21T10:00:00.123456Z"


def _described(
    field: type[fields.Field],
    description: str,
    example: Any,
    *,
    nullable: bool = False,
    **kwargs: Any,
) -> Any:
    """A response field: always present, described, with an example."""
    return field(
        required=True,
        allow_none=nullable,
        metadata={"description": description, "example": example},
        **kwargs,
    )


# Cursors that really continue the documented example queries, so that an example request
# built from this document is answered 200.
INVENTORY_CURSOR_EXAMPLE = encode_cursor(inventory_filters("u_8431", "unresolved"), [88])
HISTORY_CURSOR_EXAMPLE = encode_cursor(
    history_filters(
        "u_8431",
        [HistoryType.PURCHASE, HistoryType.REFUND],
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
    ),
    ["2026-11-21T10:00:00.123456+00:00", 1, 1042],
)


def _limit() -> fields.Integer:
    return fields.Integer(
        load_default=DEFAULT_PAGE_SIZE,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={
            "description": f"Page size, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
            "example": DEFAULT_PAGE_SIZE,
        },
    )


def _cursor(example: str) -> fields.String:
    return fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=MAX_CURSOR_LENGTH),
        metadata={
            "description": "The `nextCursor` of the previous page, unchanged; send the same"
            " filters with it. Omit for the first page.",
            "example": example,
        },
    )


def _page_cursor() -> fields.String:
    return fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "Pass as `cursor` to get the next page; `null` on the last page.",
            "example": None,
        },
    )


# --- inventory ------------------------------------------------------------------------------


class InventoryQuerySchema(Schema):
    playerExternalId = player_external_id(required=True)
    state = fields.String(
        load_default="unresolved",
        validate=validate.OneOf(list(INVENTORY_STATES)),
        metadata={
            "description": "Which items: one state, or `all`. An item whose cashout is in"
            " flight is still `unresolved`.",
            "example": "unresolved",
        },
    )
    limit = _limit()
    cursor = _cursor(INVENTORY_CURSOR_EXAMPLE)


class InventoryItemSchema(Schema):
    inventoryItemId = _described(fields.Integer, "The item's id (for cashout).", 88)
    itemId = _described(fields.Integer, "The prize won.", 12)
    name = _described(fields.String, "The prize's name.", "Gold Coin")
    valueMinor = _described(fields.Integer, "Its value, in the operator currency.", 400)
    currency = _described(fields.String, "The operator currency.", "EUR")
    cashbackMinor = _described(
        fields.Integer,
        "What a cashout would credit now, in the operator currency (before conversion to"
        " the wallet currency); null once the item is no longer `unresolved`, or if no rule"
        " allows cashback.",
        320,
        nullable=True,
    )
    state = _described(
        fields.String,
        "Its state now.",
        "unresolved",
        validate=validate.OneOf([s for s in INVENTORY_STATES if s != "all"]),
    )
    roundPublicId = _described(fields.String, "The round it was won in.", ROUND_EXAMPLE)
    reelIndex = _described(fields.Integer, "The reel that drew it.", 0)
    boxVersionId = _described(fields.Integer, "The box version it came from.", 3)
    createdAt = _described(UtcTimestamp, "When it was won.", WON_AT)
    updatedAt = _described(UtcTimestamp, "Its last change of state.", WON_AT)


class InventoryPageSchema(Schema):
    items = fields.List(
        fields.Nested(InventoryItemSchema),
        required=True,
        metadata={"description": "At most `limit` items, newest first."},
    )
    nextCursor = _page_cursor()


# --- history --------------------------------------------------------------------------------


class HistoryQuerySchema(Schema):
    playerExternalId = player_external_id(
        load_default=None,
        metadata={"description": "Only this player's rows. Omit for the whole operator."},
    )
    types = DelimitedList(
        fields.String(validate=validate.OneOf([str(t) for t in HistoryType])),
        load_default=list,
        metadata={
            "description": "Comma-separated subset of purchase, open, refund, cashback."
            " Omit for all.",
            "example": "purchase,refund",
        },
    )
    from_ = fields.AwareDateTime(
        data_key="from",
        default_timezone=UTC,
        load_default=None,
        metadata={
            "description": "Inclusive lower bound on `occurredAt` (ISO 8601; UTC if no offset).",
            "example": "2026-11-01T00:00:00Z",
        },
    )
    to = fields.AwareDateTime(
        default_timezone=UTC,
        load_default=None,
        metadata={
            "description": "Inclusive upper bound on `occurredAt` (ISO 8601; UTC if no offset).",
            "example": "2026-11-30T23:59:59.999999Z",
        },
    )
    limit = _limit()
    cursor = _cursor(HISTORY_CURSOR_EXAMPLE)

    @validates_schema
    def _ordered_window(self, data: dict[str, Any], **_: Any) -> None:
        since: datetime | None = data.get("from_")
        until: datetime | None = data.get("to")
        if since and until and since > until:
            raise ValidationError("must not be after `to`", "from")


class HistoryEntrySchema(Schema):
    entryId = _described(
        fields.String,
        "Stable id of the row: `mm_<n>` a wallet call, `op_<n>` an opening.",
        "mm_1042",
    )
    type = _described(
        fields.String,
        "`purchase` (a debit), `refund` and `cashback` (credits), `open` (a prepaid box"
        " opened; no money).",
        "cashback",
        validate=validate.OneOf([str(t) for t in HistoryType]),
    )
    status = _described(
        fields.String,
        "A wallet call: `accepted` (applied), `refused` (not applied) or `pending` (outcome"
        " unknown, being re-sent). An opening: `completed`.",
        "accepted",
        validate=validate.OneOf(["accepted", "pending", "refused", "completed"]),
    )
    occurredAt = _described(
        UtcTimestamp,
        "When the wallet call was recorded (just before it was sent), or when the box was"
        " opened. Never changes: the order of the list.",
        WON_AT,
    )
    completedAt = _described(
        UtcTimestamp,
        "When the wallet's definite answer was recorded; null while pending.",
        "2026-11-21T10:00:00.183456Z",
        nullable=True,
    )
    playerExternalId = _described(fields.String, "The player concerned.", "u_8431")
    amountMinor = _described(
        fields.Integer,
        "Signed from the player's side: a debit is negative, a credit positive, an opening"
        " 0. In `currency`.",
        353,
    )
    currency = _described(fields.String, "The wallet currency of the call.", "USD")
    operatorAmountMinor = _described(
        fields.Integer, "The same amount in the operator currency, signed alike.", 320
    )
    operatorCurrency = _described(
        fields.String, "The operator currency; null for an opening.", "EUR", nullable=True
    )
    rate = _described(
        fields.String,
        "The rate from the operator currency to `currency`; null for an opening.",
        "1.1042",
        nullable=True,
    )
    idempotencyKey = _described(
        fields.String,
        "The key the wallet call carried (its `Idempotency-Key`); null for an opening,"
        " which calls no wallet.",
        "cashback:inventory:88",
        nullable=True,
    )
    providerTxnRef = _described(
        fields.String, "The wallet's own reference, once accepted.", "tx_9f2", nullable=True
    )
    balanceAfterMinor = _described(
        fields.Integer, "The wallet's balance after it, if it said.", 11820, nullable=True
    )
    roundPublicId = _described(
        fields.String,
        "The round, for a purchase, refund or opening.",
        ROUND_EXAMPLE,
        nullable=True,
    )
    inventoryItemId = _described(fields.Integer, "The item, for a cashback.", 88, nullable=True)
    mode = _described(
        fields.String,
        "A purchase's or opening's mode: `open` (atomic) or `prepay`.",
        "prepay",
        nullable=True,
    )
    refusalCode = _described(
        fields.String, "The wallet's code, when it refused.", "INSUFFICIENT_FUNDS", nullable=True
    )


class HistoryPageSchema(Schema):
    entries = fields.List(
        fields.Nested(HistoryEntrySchema),
        required=True,
        metadata={"description": "At most `limit` rows, newest first."},
    )
    nextCursor = _page_cursor()


# --- whole answers, the OpenAPI document's examples -------------------------------------------

INVENTORY_EXAMPLE = {
    "items": [
        {
            "inventoryItemId": 88,
            "itemId": 12,
            "name": "Gold Coin",
            "valueMinor": 400,
            "currency": "EUR",
            "cashbackMinor": 320,
            "state": "unresolved",
            "roundPublicId": ROUND_EXAMPLE,
            "reelIndex": 0,
            "boxVersionId": 3,
            "createdAt": WON_AT,
            "updatedAt": WON_AT,
        }
    ],
    "nextCursor": None,
}

HISTORY_EXAMPLE = {
    "entries": [
        {
            "entryId": "mm_1043",
            "type": "cashback",
            "status": "accepted",
            "occurredAt": "2026-11-21T10:05:00.000000Z",
            "completedAt": "2026-11-21T10:05:00.061234Z",
            "playerExternalId": "u_8431",
            "amountMinor": 347,
            "currency": "USD",
            "operatorAmountMinor": 320,
            "operatorCurrency": "EUR",
            "rate": "1.0842",
            "idempotencyKey": "cashback:inventory:88",
            "providerTxnRef": "tx_9f3",
            "balanceAfterMinor": 100347,
            "roundPublicId": None,
            "inventoryItemId": 88,
            "mode": None,
            "refusalCode": None,
        },
        {
            "entryId": "mm_1042",
            "type": "purchase",
            "status": "accepted",
            "occurredAt": WON_AT,
            "completedAt": "2026-11-21T10:00:00.183456Z",
            "playerExternalId": "u_8431",
            "amountMinor": -500,
            "currency": "EUR",
            "operatorAmountMinor": -500,
            "operatorCurrency": "EUR",
            "rate": "1",
            "idempotencyKey": "round:" + ROUND_EXAMPLE,
            "providerTxnRef": "tx_9f2",
            "balanceAfterMinor": 99500,
            "roundPublicId": ROUND_EXAMPLE,
            "inventoryItemId": None,
            "mode": "open",
            "refusalCode": None,
        },
    ],
    "nextCursor": None,
}
