"""Query and response schemas of the catalog reads (contract section 5, "Reads and
catalog") and of the public snapshot of a box version (section 9).

Query strings are validated like bodies: an unknown parameter, ``filter[...]`` keys
included, is a 400 (the views pass ``unknown=RAISE``), so a misspelt filter never silently
lists everything. Response schemas dump the result dataclasses of
``lootbox.services.catalog_reads``; attributes are snake_case, ``data_key`` is the wire.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_dump,
    post_load,
    pre_dump,
    validate,
    validates_schema,
)
from webargs.fields import DelimitedList

from lootbox.domain.catalog import BoxFilters, BoxOrder
from lootbox.domain.fairness import snapshot_hash
from lootbox.domain.records import PrizeType
from lootbox.services.catalog_reads import (
    DEFAULT_PER_PAGE,
    MAX_IDS,
    MAX_PAGE,
    MAX_PER_PAGE,
    SNAPSHOT_PATH,
)
from schemas.fields import MAX_ID, currency, currency_code, minor_units, spec_pattern

SORTS = [f"{sign}{order}" for order in BoxOrder for sign in ("", "-")]
PRIZE_TYPES = [str(t) for t in PrizeType]
# A query string must fit the server's request line (gunicorn: 4094 bytes) even when every
# value is as long as documented and every character is percent-encoded UTF-8.
MAX_FILTER_VALUES = 4
MAX_NAME_FILTER = 50
MAX_SLUG_FILTER = 64
HOUSE_EDGE = (
    "`10000 × (1 − Σ odds × valueMinor / priceMinor)` in the operator currency, rounded"
    " half-up: the player's expected loss per box, in basis points of the price (negative"
    " if the prizes are worth more than the price on average). Never affected by conversion."
)


class BoundedDelimitedList(DelimitedList):
    """A comma list of at most ``max_items`` values, refused before any value is loaded."""

    def __init__(self, cls_or_instance: Any, *, max_items: int, **kwargs: Any) -> None:
        super().__init__(cls_or_instance, validate=validate.Length(min=1, max=max_items), **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and value.count(self.delimiter) >= self.max_items:
            raise ValidationError(f"Length must be between 1 and {self.max_items}.")
        return super()._deserialize(value, attr, data, **kwargs)


def _filter_text(max_length: int) -> fields.String:
    """One value of a text filter: no control characters (nor a lone surrogate, which no
    database or log line can hold)."""
    regex = re.compile(rf"^[^\x00-\x1f\x7f\ud800-\udfff]{{1,{max_length}}}\Z")
    return fields.String(
        validate=validate.Regexp(
            regex, error=f"1 to {max_length} characters, no control characters"
        ),
        metadata={"pattern": spec_pattern(regex)},
    )


def _query_currency() -> fields.String:
    return currency(
        load_default=None,
        metadata={
            "description": "Show prices and prize values in this currency (ISO 4217),"
            " converted at the operator's rate, half-up, as a purchase in it would be."
            " Omitted: the operator currency. A currency the operator has no rate for is"
            " `422 UNSUPPORTED_CURRENCY`.",
            "example": "USD",
        },
    )


def _per_page(description: str, **kwargs: Any) -> fields.Integer:
    return fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=MAX_PER_PAGE),
        metadata={"description": description, "example": 20},
        **kwargs,
    )


# --- GET /api/s2s/boxes ---------------------------------------------------------------------


class BoxListQuerySchema(Schema):
    page = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={
            "description": f"Page number, 1-based (1 to {MAX_PAGE}; default 1). A page past"
            " the last is empty.",
            "example": 1,
        },
    )
    per_page = _per_page(
        f"Boxes per page, 1 to {MAX_PER_PAGE} (default {DEFAULT_PER_PAGE})."
        " Do not send it with `limit`.",
        data_key="perPage",
    )
    limit = _per_page("Alias of `perPage`.")
    ids = BoundedDelimitedList(
        fields.Integer(validate=validate.Range(min=1, max=MAX_ID)),
        max_items=MAX_IDS,
        load_default=list,
        metadata={
            "description": f"Comma-separated box ids (1 to {MAX_IDS}): exactly these boxes,"
            " active or not (`isActive` says which), so a lobby can notice a deactivation."
            " Ids the operator does not have are left out. Without `ids`, only active boxes"
            " are listed.",
            "example": "42,43",
        },
    )
    names = BoundedDelimitedList(
        _filter_text(MAX_NAME_FILTER),
        max_items=MAX_FILTER_VALUES,
        data_key="filter[name]",
        load_default=list,
        metadata={
            "description": f"Comma-separated, 1 to {MAX_FILTER_VALUES}: boxes whose name"
            " contains one of these (case-insensitive).",
            "example": "dragon",
        },
    )
    slugs = BoundedDelimitedList(
        _filter_text(MAX_SLUG_FILTER),
        max_items=MAX_FILTER_VALUES,
        data_key="filter[slug]",
        load_default=list,
        metadata={
            "description": f"Comma-separated, 1 to {MAX_FILTER_VALUES}: boxes with one of"
            " these slugs (exact).",
            "example": "dragon-box",
        },
    )
    active = BoundedDelimitedList(
        fields.Boolean(truthy={"true"}, falsy={"false"}),
        max_items=2,
        data_key="filter[isActive]",
        load_default=list,
        metadata={
            "description": "`true`, `false` or `true,false`. Without `ids` only active boxes"
            " are listed, so `false` finds inactive ones only among `ids`.",
            "example": "true",
        },
    )
    sort = fields.String(
        load_default=str(BoxOrder.NAME),
        validate=validate.OneOf(SORTS),
        metadata={
            "description": "`name` (default) or `price` (of the current version); a `-`"
            " prefix sorts descending. Ties are broken by `boxId`, ascending.",
            "example": "-price",
        },
    )
    currency = _query_currency()

    @validates_schema
    def _one_page_size(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("per_page") is not None and data.get("limit") is not None:
            raise ValidationError("send `perPage` or its alias `limit`, not both", "limit")

    @post_load
    def _query(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """The arguments of ``BoxListQuery`` but the operator."""
        sort: str = data["sort"]
        return {
            "filters": BoxFilters(
                # Absent, not empty: a given ``ids`` holds at least one id.
                ids=tuple(dict.fromkeys(data["ids"])) or None,
                names=tuple(data["names"]),
                slugs=tuple(data["slugs"]),
                active=tuple(dict.fromkeys(data["active"])),
            ),
            "order": BoxOrder(sort.removeprefix("-")),
            "descending": sort.startswith("-"),
            "page": data["page"],
            "per_page": data["per_page"] or data["limit"] or DEFAULT_PER_PAGE,
            "currency": data["currency"],
        }


class BoxSummarySchema(Schema):
    box_id = fields.Integer(
        data_key="boxId", required=True, metadata={"description": "The box.", "example": 42}
    )
    name = fields.String(
        required=True,
        metadata={"description": "Its name (of the current version).", "example": "Dragon Box"},
    )
    slug = fields.String(
        required=True,
        metadata={"description": "Its slug in the catalog import.", "example": "dragon-box"},
    )
    is_active = fields.Boolean(
        data_key="isActive",
        required=True,
        metadata={
            "description": "Whether it can be bought now. An inactive box keeps its version;"
            " a purchase of it is `409 BOX_NOT_PLAYABLE`.",
            "example": True,
        },
    )
    is_published = fields.Boolean(
        data_key="isPublished",
        required=True,
        metadata={
            "description": "Whether it has a current version: always true here (every box"
            " is imported with one).",
            "example": True,
        },
    )
    version_number = fields.Integer(
        data_key="versionNumber",
        required=True,
        metadata={
            "description": "The current version's number: 1, then one more for every"
            " published change of its offer.",
            "example": 7,
        },
    )
    box_version_id = fields.Integer(
        data_key="boxVersionId",
        required=True,
        metadata={
            "description": "The current version: pass it as `reels[].boxVersionId` to buy.",
            "example": 1201,
        },
    )
    price_minor = minor_units(
        "The price, in `currency`.", 500, data_key="priceMinor", required=True
    )
    currency = currency_code("The requested currency, else the operator currency.")
    house_edge_bps = fields.Integer(
        data_key="houseEdgeBps",
        required=True,
        metadata={"description": HOUSE_EDGE, "example": 700},
    )
    image = fields.Dict(
        required=True,
        allow_none=True,
        metadata={
            "description": "The catalog's `image` object, as imported; null if none.",
            "example": {"url": "https://cdn.example.com/boxes/dragon.png"},
        },
    )
    custom_attributes = fields.Dict(
        data_key="customAttributes",
        required=True,
        metadata={
            "description": "The catalog's `customAttributes` object, as imported.",
            "example": {},
        },
    )


class PaginationSchema(Schema):
    page = fields.Integer(
        required=True, metadata={"description": "This page, 1-based.", "example": 1}
    )
    per_page = fields.Integer(
        data_key="perPage",
        required=True,
        metadata={"description": "The page size used.", "example": 100},
    )
    total = fields.Integer(
        required=True,
        metadata={"description": "How many boxes match, on all pages.", "example": 1},
    )
    last_page = fields.Integer(
        data_key="lastPage",
        required=True,
        metadata={"description": "The last page's number (1 when nothing matches).", "example": 1},
    )


class BoxPageSchema(Schema):
    boxes = fields.List(
        fields.Nested(BoxSummarySchema),
        required=True,
        metadata={"description": "At most `perPage` boxes, in the requested order."},
    )
    pagination = fields.Nested(
        PaginationSchema, required=True, metadata={"description": "Where this page is."}
    )


# --- GET /api/s2s/boxes/{boxId} and /version ------------------------------------------------


class BoxPathSchema(Schema):
    box_id = fields.Integer(
        data_key="boxId",
        required=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "The box (`boxId` of the listing).", "example": 42},
    )


class CurrencyQuerySchema(Schema):
    currency = _query_currency()


def _odds() -> fields.Decimal:
    return fields.Decimal(
        required=True,
        metadata={
            "description": "The probability of this prize: a JSON number written with exactly"
            " the decimal digits the catalog holds (`0.05`, never a binary float's"
            " expansion). The odds of a version sum to exactly 1; draws walk the prizes in"
            " this order.",
            "example": 0.05,
        },
    )


def _prize_type() -> fields.String:
    return fields.String(
        required=True,
        validate=validate.OneOf(PRIZE_TYPES),
        metadata={
            "description": "`physical`, `digital` or `bonus`.",
            "example": "physical",
            "enum": PRIZE_TYPES,
        },
    )


def _image_url() -> fields.String:
    return fields.String(
        data_key="imageUrl",
        required=True,
        allow_none=True,
        metadata={
            "description": "The prize's image (an http(s) URL), or null.",
            "example": "https://cdn.example.com/prizes/golden-sword.png",
        },
    )


class PrizeOfferSchema(Schema):
    item_id = fields.Integer(
        data_key="itemId",
        required=True,
        metadata={"description": "The prize (`itemId` of inventory items).", "example": 906},
    )
    name = fields.String(
        required=True, metadata={"description": "Its name.", "example": "Golden Sword"}
    )
    type = _prize_type()
    value_minor = minor_units(
        "Its value, in `currency`.", 320, data_key="valueMinor", required=True
    )
    currency = currency_code("The box's `currency`.")
    image_url = _image_url()
    shippable = fields.Boolean(
        required=True,
        metadata={"description": "Whether a won item can be shipped.", "example": True},
    )
    odds = _odds()


class BoxOfferSchema(Schema):
    box_id = fields.Integer(
        data_key="boxId", required=True, metadata={"description": "The box.", "example": 42}
    )
    box_version_id = fields.Integer(
        data_key="boxVersionId",
        required=True,
        metadata={
            "description": "The current version: pass it unchanged as"
            " `reels[].boxVersionId` to buy exactly this offer.",
            "example": 1201,
        },
    )
    version_number = fields.Integer(
        data_key="versionNumber",
        required=True,
        metadata={"description": "The current version's number.", "example": 7},
    )
    name = fields.String(
        required=True, metadata={"description": "Its name.", "example": "Dragon Box"}
    )
    slug = fields.String(
        required=True,
        metadata={"description": "Its slug in the catalog import.", "example": "dragon-box"},
    )
    price_minor = minor_units(
        "The price, in `currency`.", 500, data_key="priceMinor", required=True
    )
    currency = currency_code("The requested currency, else the operator currency.")
    house_edge_bps = fields.Integer(
        data_key="houseEdgeBps",
        required=True,
        metadata={"description": HOUSE_EDGE, "example": 700},
    )
    snapshot_url = fields.String(
        data_key="snapshotUrl",
        required=True,
        metadata={
            "description": "Where anyone (no signature) can read this version's published"
            " offer, for good.",
            "example": SNAPSHOT_PATH.format(box_version_id=1201),
        },
    )
    image = fields.Dict(
        required=True,
        allow_none=True,
        metadata={
            "description": "The catalog's `image` object, as imported; null if none.",
            "example": None,
        },
    )
    custom_attributes = fields.Dict(
        data_key="customAttributes",
        required=True,
        metadata={"description": "The catalog's `customAttributes`, as imported.", "example": {}},
    )
    prizes = fields.List(
        fields.Nested(PrizeOfferSchema),
        required=True,
        metadata={"description": "The prize table, in its published order."},
    )


class BoxResponseSchema(Schema):
    box = fields.Nested(
        BoxOfferSchema, required=True, metadata={"description": "The box's current offer."}
    )

    @pre_dump
    def _envelope(self, offer: Any, **_: Any) -> dict[str, Any]:
        return {"box": offer}


class LiveVersionSchema(Schema):
    box_id = fields.Integer(
        data_key="boxId", required=True, metadata={"description": "The box.", "example": 42}
    )
    box_version_id = fields.Integer(
        data_key="boxVersionId",
        required=True,
        metadata={
            "description": "The version to buy now (`reels[].boxVersionId`).",
            "example": 1201,
        },
    )
    version_number = fields.Integer(
        data_key="versionNumber",
        required=True,
        metadata={"description": "Its number.", "example": 7},
    )
    price_minor = minor_units(
        "The price, in `currency`.", 500, data_key="priceMinor", required=True
    )
    currency = currency_code("The requested currency, else the operator currency.")


# --- GET /fairness/box-version/{boxVersionId}/snapshot ----------------------------------------


class SnapshotPathSchema(Schema):
    box_version_id = fields.Integer(
        data_key="boxVersionId",
        required=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "The box version (`boxVersionId`).", "example": 1201},
    )


class SnapshotPrizeSchema(Schema):
    item_id = fields.Integer(
        data_key="itemId", required=True, metadata={"description": "The prize.", "example": 906}
    )
    name = fields.String(
        required=True, metadata={"description": "Its name.", "example": "Golden Sword"}
    )
    type = _prize_type()
    value_minor = minor_units(
        "Its value, in the operator currency.", 320, data_key="valueMinor", required=True
    )
    image_url = _image_url()
    odds = _odds()


class SnapshotSchema(Schema):
    box_version_id = fields.Integer(
        data_key="boxVersionId",
        required=True,
        metadata={"description": "The version.", "example": 1201},
    )
    box_id = fields.Integer(
        data_key="boxId", required=True, metadata={"description": "Its box.", "example": 42}
    )
    version_number = fields.Integer(
        data_key="versionNumber",
        required=True,
        metadata={"description": "Its number within the box.", "example": 7},
    )
    name = fields.String(
        required=True, metadata={"description": "The box's name.", "example": "Dragon Box"}
    )
    price_minor = minor_units(
        "The price, in the operator currency.", 500, data_key="priceMinor", required=True
    )
    currency = currency_code("The operator currency.")
    house_edge_bps = fields.Integer(
        data_key="houseEdgeBps",
        required=True,
        metadata={"description": HOUSE_EDGE, "example": 700},
    )
    prizes = fields.List(
        fields.Nested(SnapshotPrizeSchema),
        required=True,
        metadata={"description": "The prize table, in its published order (the draw's)."},
    )
    snapshot_hash = fields.String(
        data_key="snapshotHash",
        required=True,
        dump_only=True,
        metadata={
            "description": "Lowercase hex SHA-256 of the canonical JSON of every other field"
            " of this answer: keys sorted, no whitespace, non-ASCII as `\\u` escapes, odds"
            " with exactly their digits.",
            "example": "3f0a6c1e" * 8,
        },
    )

    @post_dump
    def _hash(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {**data, "snapshotHash": snapshot_hash(data)}


# --- whole answers, the OpenAPI document's examples -------------------------------------------

BOX_LIST_EXAMPLE = {
    "boxes": [
        {
            "boxId": 42,
            "name": "Dragon Box",
            "slug": "dragon-box",
            "isActive": True,
            "isPublished": True,
            "versionNumber": 7,
            "boxVersionId": 1201,
            "priceMinor": 500,
            "currency": "EUR",
            "houseEdgeBps": 700,
            "image": None,
            "customAttributes": {},
        }
    ],
    "pagination": {"page": 1, "perPage": 100, "total": 1, "lastPage": 1},
}
# 0.05 × 3200 + 0.25 × 800 + 0.7 × 150 = 465 of a price of 500: a house edge of 700 bps.
_PRIZES = [
    (906, "Golden Sword", "physical", 3200, "https://cdn.example.com/prizes/sword.png", 0.05),
    (907, "Silver Shield", "physical", 800, None, 0.25),
    (908, "Dragon Scale", "digital", 150, None, 0.7),
]
BOX_EXAMPLE = {
    "box": {
        "boxId": 42,
        "boxVersionId": 1201,
        "versionNumber": 7,
        "name": "Dragon Box",
        "slug": "dragon-box",
        "priceMinor": 500,
        "currency": "EUR",
        "houseEdgeBps": 700,
        "snapshotUrl": SNAPSHOT_PATH.format(box_version_id=1201),
        "image": None,
        "customAttributes": {},
        "prizes": [
            {
                "itemId": item_id,
                "name": name,
                "type": type_,
                "valueMinor": value,
                "currency": "EUR",
                "imageUrl": image_url,
                "shippable": type_ == "physical",
                "odds": odds,
            }
            for item_id, name, type_, value, image_url, odds in _PRIZES
        ],
    }
}
LIVE_VERSION_EXAMPLE = {
    "boxId": 42,
    "boxVersionId": 1201,
    "versionNumber": 7,
    "priceMinor": 500,
    "currency": "EUR",
}
_SNAPSHOT_BODY: dict[str, Any] = {
    "boxVersionId": 1201,
    "boxId": 42,
    "versionNumber": 7,
    "name": "Dragon Box",
    "priceMinor": 500,
    "currency": "EUR",
    "houseEdgeBps": 700,
    "prizes": [
        {
            "itemId": item_id,
            "name": name,
            "type": type_,
            "valueMinor": value,
            "imageUrl": image_url,
            "odds": odds,
        }
        for item_id, name, type_, value, image_url, odds in _PRIZES
    ],
}
# Hashed as served: the odds are the decimals the JSON text holds, not binary floats.
SNAPSHOT_EXAMPLE = {
    **_SNAPSHOT_BODY,
    "snapshotHash": snapshot_hash(json.loads(json.dumps(_SNAPSHOT_BODY), parse_float=Decimal)),
}
