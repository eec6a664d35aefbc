"""The S2S read endpoints: a player's inventory and the money history (contract section 5).

Signed like every S2S call (the signature covers the path without the query string and
the empty body); read-only, so no idempotency key.
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint
from marshmallow import RAISE

from lootbox.api.auth import authenticate_s2s_request
from lootbox.container import container
from lootbox.domain.listings import HistoryEntry, HistoryType, ItemListing
from lootbox.services.listings import HistoryQuery, InventoryQuery, list_history, list_inventory
from schemas.reads import (
    HistoryPageSchema,
    HistoryQuerySchema,
    InventoryPageSchema,
    InventoryQuerySchema,
)
from schemas.s2s import ErrorSchema

blp = Blueprint(
    "s2s-reads",
    __name__,
    url_prefix="/api/s2s",
    description="Server-to-server reads: inventory and money history, HMAC-signed",
)
blp.before_request(authenticate_s2s_request)


def _errors(*codes: int) -> Any:
    def decorator(view: Any) -> Any:
        for code in codes:
            view = blp.alt_response(code, schema=ErrorSchema)(view)
        return view

    return decorator


@blp.route("/inventory", methods=["GET"])
@blp.arguments(InventoryQuerySchema, location="query", unknown=RAISE)
@blp.response(200, InventoryPageSchema)
@_errors(400, 401, 503)
def inventory(args: dict[str, Any]) -> dict[str, Any]:
    """A player's inventory items, newest first, one page at a time."""
    page = list_inventory(
        container().services,
        InventoryQuery(
            operator_id=g.operator.id,
            player_external_id=args["playerExternalId"],
            state=args["state"],
            limit=args["limit"],
            cursor=args["cursor"],
        ),
    )
    return {"items": [_item(row) for row in page.rows], "nextCursor": page.next_cursor}


@blp.route("/history", methods=["GET"])
@blp.arguments(HistoryQuerySchema, location="query", unknown=RAISE)
@blp.response(200, HistoryPageSchema)
@_errors(400, 401, 503)
def history(args: dict[str, Any]) -> dict[str, Any]:
    """The money ledger, newest first: every wallet call with the idempotency key it
    carried and the wallet's reference, and every opening of a prepaid box."""
    page = list_history(
        container().services,
        HistoryQuery(
            operator_id=g.operator.id,
            player_external_id=args["playerExternalId"],
            types=frozenset(HistoryType(t) for t in args["types"]),
            since=args["from_"],
            until=args["to"],
            limit=args["limit"],
            cursor=args["cursor"],
        ),
    )
    return {"entries": [_entry(row) for row in page.rows], "nextCursor": page.next_cursor}


def _item(item: ItemListing) -> dict[str, Any]:
    return {
        "inventoryItemId": item.inventory_item_id,
        "itemId": item.prize_id,
        "name": item.name,
        "valueMinor": item.value_minor,
        "currency": item.currency,
        "cashbackMinor": item.cashback_minor,
        "state": item.external_state,
        "roundPublicId": item.round_public_id,
        "reelIndex": item.reel_index,
        "boxVersionId": item.box_version_id,
        "createdAt": item.created_at,
        "updatedAt": item.updated_at,
    }


def _entry(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "entryId": entry.entry_id,
        "type": str(entry.type),
        "status": entry.status,
        "occurredAt": entry.position.occurred_at,
        "completedAt": entry.completed_at,
        "playerExternalId": entry.player_external_id,
        "amountMinor": entry.signed_amount_minor,
        "currency": entry.currency,
        "operatorAmountMinor": entry.signed_operator_amount_minor,
        "operatorCurrency": entry.operator_currency,
        "rate": entry.rate,
        "idempotencyKey": entry.idempotency_key,
        "providerTxnRef": entry.provider_txn_ref,
        "balanceAfterMinor": entry.balance_after_minor,
        "roundPublicId": entry.round_public_id,
        "inventoryItemId": entry.inventory_item_id,
        "mode": entry.mode,
        "refusalCode": entry.refusal_code,
    }
