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
from lootbox.services.cursors import MAX_CURSOR_LENGTH
from lootbox.services.listings import DEFAULT_PAGE_SIZE, INVENTORY_STATES, MAX_PAGE_SIZE
from schemas.fields import PLAYER_ID, player_external_id


class UtcTimestamp(fields.DateTime):
    """ISO 8601 UTC with microseconds and ``Z``: the precision history is ordered by."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        stamp: str = value.astimezone(UTC).isoformat(timespec="microseconds")
        return stamp.replace("+00:00", "Z")


def _limit() -> fields.Integer:
    return fields.Integer(
        load_default=DEFAULT_PAGE_SIZE,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={
            "description": f"Page size, 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).",
            "example": DEFAULT_PAGE_SIZE,
        },
    )


def _cursor() -> fields.String:
    return fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=MAX_CURSOR_LENGTH),
        metadata={
            "description": "The `nextCursor` of the previous page, unchanged; send the same"
            " filters with it. Omit for the first page.",
            "example": "eyJ2IjoxLCJxIjoiMGQ1YzFmNGE5YjJlOGM3MSIsInAiOls4OF19",
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
    cursor = _cursor()


class InventoryItemSchema(Schema):
    inventoryItemId = fields.Integer(required=True, metadata={"example": 88})
    itemId = fields.Integer(
        required=True, metadata={"description": "The prize won.", "example": 12}
    )
    name = fields.String(required=True, metadata={"example": "Gold Coin"})
    valueMinor = fields.Integer(
        required=True, metadata={"description": "In the operator currency.", "example": 400}
    )
    currency = fields.String(
        required=True, metadata={"description": "The operator currency.", "example": "EUR"}
    )
    cashbackMinor = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "What a cashout would credit now, in the operator currency (before"
            " conversion to the wallet currency); null once the item is no longer"
            " `unresolved` or if no rule allows cashback.",
            "example": 320,
        },
    )
    state = fields.String(
        required=True,
        validate=validate.OneOf([s for s in INVENTORY_STATES if s != "all"]),
        metadata={"example": "unresolved"},
    )
    roundPublicId = fields.String(
        required=True, metadata={"example": "r_01JD3ZQ5X4G8W9V2K7M6N5P4R3"}
    )
    reelIndex = fields.Integer(required=True, metadata={"example": 0})
    boxVersionId = fields.Integer(required=True, metadata={"example": 3})
    createdAt = UtcTimestamp(required=True, metadata={"example": "2026-11-21T10:00:00.123456Z"})
    updatedAt = UtcTimestamp(required=True, metadata={"example": "2026-11-21T10:00:00.123456Z"})


class InventoryPageSchema(Schema):
    items = fields.List(fields.Nested(InventoryItemSchema), required=True)
    nextCursor = _page_cursor()


# --- history --------------------------------------------------------------------------------


class HistoryQuerySchema(Schema):
    playerExternalId = fields.String(
        load_default=None,
        validate=validate.Regexp(PLAYER_ID, error="1 to 190 characters, no control characters"),
        metadata={
            "description": "Only this player's rows. Omit for the whole operator.",
            "example": "u_8431",
        },
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
    cursor = _cursor()

    @validates_schema
    def _ordered_window(self, data: dict[str, Any], **_: Any) -> None:
        since: datetime | None = data.get("from_")
        until: datetime | None = data.get("to")
        if since and until and since > until:
            raise ValidationError("must not be after `to`", "from")


class HistoryEntrySchema(Schema):
    entryId = fields.String(
        required=True,
        metadata={
            "description": "Stable id of the row: `mm_<n>` a wallet call, `op_<n>` an opening.",
            "example": "mm_1042",
        },
    )
    type = fields.String(
        required=True,
        validate=validate.OneOf([str(t) for t in HistoryType]),
        metadata={"example": "cashback"},
    )
    status = fields.String(
        required=True,
        validate=validate.OneOf(["accepted", "pending", "refused", "completed"]),
        metadata={
            "description": "A wallet call: `accepted` (applied), `refused` (not applied) or"
            " `pending` (outcome unknown, being re-driven). An opening: `completed`.",
            "example": "accepted",
        },
    )
    occurredAt = UtcTimestamp(
        required=True,
        metadata={
            "description": "When the wallet call was recorded (before it was sent), or when"
            " the box was opened. Never changes: the order of the list.",
            "example": "2026-11-21T10:00:00.123456Z",
        },
    )
    completedAt = UtcTimestamp(
        required=True,
        allow_none=True,
        metadata={
            "description": "When the wallet's answer was settled; null while pending.",
            "example": "2026-11-21T10:00:00.183456Z",
        },
    )
    playerExternalId = fields.String(required=True, metadata={"example": "u_8431"})
    amountMinor = fields.Integer(
        required=True,
        metadata={
            "description": "Signed from the player's side: a debit is negative, a credit"
            " positive, an opening 0. In `currency`.",
            "example": 353,
        },
    )
    currency = fields.String(
        required=True, metadata={"description": "The wallet currency.", "example": "USD"}
    )
    operatorAmountMinor = fields.Integer(
        required=True,
        metadata={"description": "The same, in the operator currency.", "example": 320},
    )
    operatorCurrency = fields.String(required=True, allow_none=True, metadata={"example": "EUR"})
    rate = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Operator currency to `currency`.", "example": "1.1042"},
    )
    idempotencyKey = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The key the wallet call carried (`Idempotency-Key`); null for an"
            " opening, which calls no wallet.",
            "example": "cashback:inventory:88",
        },
    )
    providerTxnRef = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The wallet's own reference, once accepted.", "example": "tx_9f2"},
    )
    balanceAfterMinor = fields.Integer(required=True, allow_none=True, metadata={"example": 11820})
    roundPublicId = fields.String(required=True, allow_none=True, metadata={"example": None})
    inventoryItemId = fields.Integer(required=True, allow_none=True, metadata={"example": 88})
    mode = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "A purchase's or opening's mode: open | prepay.", "example": None},
    )
    refusalCode = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The wallet's code when refused.", "example": None},
    )


class HistoryPageSchema(Schema):
    entries = fields.List(fields.Nested(HistoryEntrySchema), required=True)
    nextCursor = _page_cursor()
