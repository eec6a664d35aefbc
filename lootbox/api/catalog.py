"""The S2S catalog reads (contract section 5): the boxes an operator's lobby lists, one
box's offer with its prize table, and the version to buy now.

Signed like every S2S call (the signature covers the path without the query string and
the empty body); read-only, so no idempotency key. Each view declares its errors once, in
its ``signed_operation``.
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint
from marshmallow import RAISE

from lootbox.api.auth import authenticate_s2s_request
from lootbox.api.openapi import QUERY_ERRORS, signed_operation
from lootbox.container import container
from lootbox.domain import errors as e
from lootbox.services.catalog_reads import (
    BoxListQuery,
    BoxOffer,
    BoxPage,
    BoxQuery,
    LiveVersion,
    get_box,
    get_live_version,
    list_boxes,
)
from schemas.catalog import (
    BOX_EXAMPLE,
    BOX_LIST_EXAMPLE,
    LIVE_VERSION_EXAMPLE,
    BoxListQuerySchema,
    BoxPageSchema,
    BoxPathSchema,
    BoxResponseSchema,
    CurrencyQuerySchema,
    LiveVersionSchema,
)

blp = Blueprint(
    "s2s-catalog",
    __name__,
    url_prefix="/api/s2s",
    description="Server-to-server catalog reads, HMAC-signed: the boxes to show and sell.",
)
blp.before_request(authenticate_s2s_request)

# The path segment is validated by BoxPathSchema (400 for anything but an id), not by a
# route converter, whose refusal would be a bare 404 NOT_FOUND.
BOX_PATH = "/boxes/<boxId>"


@blp.route("/boxes", methods=["GET"])
@blp.arguments(BoxListQuerySchema(), location="query", unknown=RAISE)
@blp.response(200, BoxPageSchema, description="One page of boxes.", example=BOX_LIST_EXAMPLE)
@signed_operation(blp, "listBoxes", QUERY_ERRORS, e.UnsupportedCurrency)
def list_catalog(args: dict[str, Any]) -> BoxPage:
    """The boxes to show in a lobby, one numbered page at a time.

    Without `ids`, the active boxes (each with its current version, ready to buy). With
    `ids`, exactly those boxes, active or not: `isActive: false` tells a lobby to take one
    down. `filter[name]` (substring, case-insensitive), `filter[slug]` and
    `filter[isActive]` take comma-separated alternatives; different filters must all
    match. `sort` is `name` (default) or `price`, `-` for descending, ties by `boxId`.
    Prices are in `currency` (default: the operator currency); `houseEdgeBps` is the
    player's expected loss in basis points of the price.
    """
    return list_boxes(container().services, BoxListQuery(operator=g.operator, **args))


@blp.route(BOX_PATH, methods=["GET"])
@blp.arguments(BoxPathSchema(), location="path", unknown=RAISE)
@blp.arguments(CurrencyQuerySchema(), location="query", unknown=RAISE)
@blp.response(
    200,
    BoxResponseSchema,
    description="The box's current offer, with its prize table.",
    example=BOX_EXAMPLE,
)
@signed_operation(
    blp, "getBox", QUERY_ERRORS, e.UnknownBox, e.BoxNotPlayable, e.UnsupportedCurrency
)
def box(path: dict[str, Any], query: dict[str, Any], **_: Any) -> BoxOffer:
    """One box's current version: price, prize table with exact odds, house edge.

    Buy it by passing `boxVersionId` unchanged as `reels[].boxVersionId`. `odds` are JSON
    numbers with exactly the catalog's digits; they sum to 1, and draws walk the prizes in
    this order. Prize values are converted into `currency`; `houseEdgeBps` is computed in
    the operator currency, before conversion. `snapshotUrl` serves this version's offer
    publicly, for good. An inactive box is `409 BOX_NOT_PLAYABLE`; a box this operator
    does not have (another operator's included) is `404 UNKNOWN_BOX`.
    """
    return get_box(
        container().services,
        BoxQuery(operator=g.operator, box_id=path["box_id"], currency=query["currency"]),
    )


@blp.route(f"{BOX_PATH}/version", methods=["GET"])
@blp.arguments(BoxPathSchema(), location="path", unknown=RAISE)
@blp.arguments(CurrencyQuerySchema(), location="query", unknown=RAISE)
@blp.response(
    200,
    LiveVersionSchema,
    description="The version to buy now, and its price.",
    example=LIVE_VERSION_EXAMPLE,
)
@signed_operation(
    blp, "getBoxVersion", QUERY_ERRORS, e.UnknownBox, e.BoxNotPlayable, e.UnsupportedCurrency
)
def box_version(path: dict[str, Any], query: dict[str, Any], **_: Any) -> LiveVersion:
    """The box's live version, without the prize table: what to put in a purchase.

    A lobby that cached a box's offer checks here that `boxVersionId` is still the one on
    sale before buying (a changed offer is a new version). Same query and errors as the
    box itself: `currency` converts the price, an inactive box is `409 BOX_NOT_PLAYABLE`.
    """
    return get_live_version(
        container().services,
        BoxQuery(operator=g.operator, box_id=path["box_id"], currency=query["currency"]),
    )
