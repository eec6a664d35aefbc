"""Query and response schemas of the read endpoints: inventory and history.

The wire is LootBox's documented one (contract section 5, "Reads and catalog"): the list
envelope ``{"items": [...], "cursor": {"next", "prev"}}`` and its field names; fields we
add beyond it are marked as ours. Query strings are validated like bodies: an unknown
parameter is a 400 (the views pass ``unknown=RAISE``), so a misspelt filter never silently
lists everything. The one documented leniency: unknown tokens in the inventory's ``state``
list are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema
from webargs.fields import DelimitedList

from lootbox.domain.listings import HistoryStatus, HistoryType
from lootbox.domain.records import PrizeType
from lootbox.services.cursors import MAX_CURSOR_LENGTH, Cursor, Direction, encode_cursor
from lootbox.services.listings import (
    ALL_STATES,
    DEFAULT_PAGE_SIZE,
    ITEM_STATES,
    MAX_PAGE_SIZE,
    HistoryQuery,
    InventoryQuery,
    history_filters,
    inventory_filters,
    listed_states,
)
from schemas.fields import EXAMPLE_ROUND_ID, UtcTimestamp, player_external_id

WON_AT = "2026-11-21T10:00:00.123456Z"
PLAYER = "u_8431"


def _described(
    field: type[fields.Field],
    description: str,
    example: Any,
    *,
    nullable: bool = False,
    **kwargs: Any,
) -> Any:
    """A response field: always present, described, with an example."""
    metadata = {"description": description, "example": example, **kwargs.pop("metadata", {})}
    return field(required=True, allow_none=nullable, metadata=metadata, **kwargs)


# Cursors that really continue the documented example queries, so that an example request
# built from this document is answered 200.
INVENTORY_CURSOR_EXAMPLE = encode_cursor(
    inventory_filters(PLAYER, listed_states(["unresolved"])), Cursor(Direction.NEXT, [88])
)
HISTORY_EXAMPLE_FILTERS = history_filters(
    PLAYER,
    [HistoryType.PURCHASE, HistoryType.REFUND],
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC),
)
HISTORY_CURSOR_EXAMPLE = encode_cursor(
    HISTORY_EXAMPLE_FILTERS,
    Cursor(Direction.NEXT, ["2026-11-21T10:00:00.123456+00:00", 1, 1042]),
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
            "description": "A `cursor.next` or `cursor.prev` of a page, unchanged: the page"
            " after or before it. Send the same filters with it (`limit` may change)."
            " Omit for the first page.",
            "example": example,
        },
    )


class PageCursorSchema(Schema):
    next = _described(
        fields.String,
        "Pass as `cursor` for the next (older) page; null on the last page.",
        None,
        nullable=True,
    )
    prev = _described(
        fields.String,
        "Pass as `cursor` for the previous (newer) page; null on the first page.",
        None,
        nullable=True,
    )


def _page_cursor() -> fields.Nested:
    return fields.Nested(
        PageCursorSchema,
        required=True,
        metadata={"description": "Opaque keyset cursors: pages stay put while new rows arrive."},
    )


# --- inventory ------------------------------------------------------------------------------


class InventoryQuerySchema(Schema):
    player_external_id = player_external_id(required=True, data_key="playerExternalId")
    states = DelimitedList(
        fields.String(),
        data_key="state",
        load_default=list,
        metadata={
            "description": "Comma-separated item states: any of "
            + ", ".join(f"`{name}`" for name in ITEM_STATES)
            + f", or `{ALL_STATES}` (ours: every state). Unknown states are ignored; when"
            " none is left, or `state` is omitted, `unresolved`. An item whose cashout is"
            " in flight is still `unresolved`.",
            "example": "unresolved",
        },
    )
    limit = _limit()
    cursor = _cursor(INVENTORY_CURSOR_EXAMPLE)

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> InventoryQuery:
        return InventoryQuery(**{**data, "states": tuple(data["states"])})


class InventoryItemSchema(Schema):
    inventory_item_id = _described(
        fields.Integer, "The inventory id: the `inventoryItemId` of a cashout.", 88, data_key="id"
    )
    prize_id = _described(fields.Integer, "The catalog prize won.", 906, data_key="itemId")
    name = _described(fields.String, "The prize's name.", "Golden Sword")
    type = _described(
        fields.String,
        "The prize's kind.",
        "physical",
        metadata={"enum": [str(t) for t in PrizeType]},
    )
    image_url = _described(
        fields.String, "The prize's image.", None, nullable=True, data_key="imageUrl"
    )
    value_minor = _described(
        fields.Integer, "Its value, in the operator currency.", 320, data_key="valueMinor"
    )
    currency = _described(fields.String, "The operator currency.", "EUR")
    external_state = _described(
        fields.String,
        "Its state now.",
        "unresolved",
        data_key="state",
        metadata={"enum": list(ITEM_STATES)},
    )
    cashback_minor = _described(
        fields.Integer,
        "What a cashout would credit now, in `currency` (before any conversion to another"
        " wallet currency); null once the item is no longer `unresolved`, or if no rule"
        " allows cashback.",
        256,
        nullable=True,
        data_key="cashbackMinor",
    )
    shippable = _described(fields.Boolean, "Whether it can be shipped.", True)
    round_public_id = _described(
        fields.String, "The round it was won in.", EXAMPLE_ROUND_ID, data_key="wonAtRoundPublicId"
    )
    created_at = _described(UtcTimestamp, "When it was won.", WON_AT, data_key="createdAt")
    reel_index = _described(fields.Integer, "Ours: the reel that drew it.", 0, data_key="reelIndex")
    box_version_id = _described(
        fields.Integer, "Ours: the box version it came from.", 1201, data_key="boxVersionId"
    )
    updated_at = _described(
        UtcTimestamp, "Ours: its last change of state.", WON_AT, data_key="updatedAt"
    )


class InventoryPageSchema(Schema):
    items = fields.List(
        fields.Nested(InventoryItemSchema),
        required=True,
        metadata={"description": "At most `limit` items, newest first."},
    )
    cursor = _page_cursor()


# --- history --------------------------------------------------------------------------------


class HistoryQuerySchema(Schema):
    player_external_id = player_external_id(
        data_key="playerExternalId",
        load_default=None,
        metadata={"description": "Only this player's rows. Omit for the whole operator (ours)."},
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
    since = fields.AwareDateTime(
        data_key="from",
        default_timezone=UTC,
        load_default=None,
        metadata={
            "description": "Inclusive lower bound on `occurredAt` (ISO 8601; UTC if no offset).",
            "example": "2026-11-01T00:00:00Z",
        },
    )
    until = fields.AwareDateTime(
        data_key="to",
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
        since: datetime | None = data.get("since")
        until: datetime | None = data.get("until")
        if since and until and since > until:
            raise ValidationError("must not be after `to`", "from")

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> HistoryQuery:
        return HistoryQuery(**{**data, "types": frozenset(HistoryType(t) for t in data["types"])})


class HistoryEntrySchema(Schema):
    id = _described(
        fields.String,
        "Stable, unique id of the row: `txn_mm_<n>` a wallet call, `txn_op_<n>` the opening"
        " of a held box.",
        "txn_mm_1042",
    )
    type = _described(
        fields.String,
        "`purchase`: a pre-pay (the box is held). `open`: an atomic buy-and-open, or the"
        " opening of a held box (no money moves). `refund`: a held box returned."
        " `cashback`: an item cashed out.",
        "open",
        metadata={"enum": [str(t) for t in HistoryType]},
    )
    round_public_id = _described(
        fields.String,
        "The round, for purchase, open and refund rows.",
        EXAMPLE_ROUND_ID,
        nullable=True,
        data_key="roundPublicId",
    )
    inventory_item_id = _described(
        fields.Integer, "The item, for a cashback.", None, nullable=True, data_key="inventoryItemId"
    )
    signed_amount_minor = _described(
        fields.Integer,
        "What the wallet call moved, signed from the player's side: a debit is negative, a"
        " credit positive, an opening 0. In `currency`.",
        -500,
        data_key="amountMinor",
    )
    payout_minor = _described(
        fields.Integer,
        "For `open` rows of a round that was drawn: the value of the prizes won, in"
        " `currency`. Otherwise null.",
        400,
        nullable=True,
        data_key="payoutMinor",
    )
    currency = _described(fields.String, "The wallet currency of the call (or the round's).", "EUR")
    status = _described(
        fields.String,
        "A purchase or open debit: what its round is now (`held`, `settled`, `refunded`)."
        " An opening: `settled`. A refund: `refunded`. A cashback: `completed`. A call"
        " the wallet refused: `voided` (no money moved). `pending` (ours): the wallet's"
        " answer is not known yet; the call is being re-sent with the same key.",
        "settled",
        metadata={"enum": [str(s) for s in HistoryStatus]},
    )
    idempotency_key = _described(
        fields.String,
        "The key the wallet call carried (its `Idempotency-Key`); null for an opening,"
        " which calls no wallet.",
        "round:" + EXAMPLE_ROUND_ID,
        nullable=True,
        data_key="idempotencyKey",
    )
    provider_txn_ref = _described(
        fields.String,
        "The wallet's own reference, once it accepted the call.",
        "tx_9f2",
        nullable=True,
        data_key="providerTxnRef",
    )
    occurred_at = _described(
        UtcTimestamp,
        "When the wallet call was recorded (just before it was sent), or when the box was"
        " opened. Never changes: the order of the list.",
        WON_AT,
        data_key="occurredAt",
    )
    completed_at = _described(
        UtcTimestamp,
        "Ours: when the wallet's definite answer was recorded; null while pending.",
        "2026-11-21T10:00:00.183456Z",
        nullable=True,
        data_key="completedAt",
    )
    player_external_id = _described(
        fields.String, "Ours: the player concerned.", PLAYER, data_key="playerExternalId"
    )
    signed_operator_amount_minor = _described(
        fields.Integer,
        "Ours: the same amount in the operator currency, signed alike.",
        -500,
        data_key="operatorAmountMinor",
    )
    operator_currency = _described(
        fields.String,
        "Ours: the operator currency; null for an opening.",
        "EUR",
        nullable=True,
        data_key="operatorCurrency",
    )
    rate = _described(
        fields.String,
        "Ours: the rate from the operator currency to `currency`; null for an opening.",
        "1",
        nullable=True,
    )
    balance_after_minor = _described(
        fields.Integer,
        "Ours: the wallet's balance after the call, if it said.",
        99500,
        nullable=True,
        data_key="balanceAfterMinor",
    )
    mode = _described(
        fields.String,
        "Ours: how the round of a purchase or open row was bought: `open` (atomic) or `prepay`.",
        "open",
        nullable=True,
    )
    refusal_code = _described(
        fields.String,
        "Ours: the wallet's code, when it refused.",
        None,
        nullable=True,
        data_key="refusalCode",
    )


class HistoryPageSchema(Schema):
    items = fields.List(
        fields.Nested(HistoryEntrySchema),
        required=True,
        metadata={"description": "At most `limit` rows, newest first."},
    )
    cursor = _page_cursor()


# --- whole answers, the OpenAPI document's examples -------------------------------------------

INVENTORY_EXAMPLE = {
    "items": [
        {
            "id": 88,
            "itemId": 906,
            "name": "Golden Sword",
            "type": "physical",
            "imageUrl": None,
            "valueMinor": 320,
            "currency": "EUR",
            "state": "unresolved",
            "cashbackMinor": 256,
            "shippable": True,
            "wonAtRoundPublicId": EXAMPLE_ROUND_ID,
            "createdAt": WON_AT,
            "reelIndex": 0,
            "boxVersionId": 1201,
            "updatedAt": WON_AT,
        }
    ],
    "cursor": {"next": INVENTORY_CURSOR_EXAMPLE, "prev": None},
}

HISTORY_EXAMPLE = {
    "items": [
        {
            "id": "txn_mm_1043",
            "type": "cashback",
            "roundPublicId": None,
            "inventoryItemId": 88,
            "amountMinor": 347,
            "payoutMinor": None,
            "currency": "USD",
            "status": "completed",
            "idempotencyKey": "cashback:inventory:88",
            "providerTxnRef": "tx_9f3",
            "occurredAt": "2026-11-21T10:05:00.000000Z",
            "completedAt": "2026-11-21T10:05:00.061234Z",
            "playerExternalId": PLAYER,
            "operatorAmountMinor": 320,
            "operatorCurrency": "EUR",
            "rate": "1.0842",
            "balanceAfterMinor": 100347,
            "mode": None,
            "refusalCode": None,
        },
        {
            "id": "txn_mm_1042",
            "type": "open",
            "roundPublicId": EXAMPLE_ROUND_ID,
            "inventoryItemId": None,
            "amountMinor": -500,
            "payoutMinor": 400,
            "currency": "EUR",
            "status": "settled",
            "idempotencyKey": "round:" + EXAMPLE_ROUND_ID,
            "providerTxnRef": "tx_9f2",
            "occurredAt": WON_AT,
            "completedAt": "2026-11-21T10:00:00.183456Z",
            "playerExternalId": PLAYER,
            "operatorAmountMinor": -500,
            "operatorCurrency": "EUR",
            "rate": "1",
            "balanceAfterMinor": 99500,
            "mode": "open",
            "refusalCode": None,
        },
    ],
    "cursor": {"next": None, "prev": None},
}
