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
from lootbox.api.openapi import QUERY_ERRORS, signed_operation
from lootbox.container import container
from lootbox.domain.listings import HistoryEntry, HistoryType, ItemListing
from lootbox.services.listings import HistoryQuery, InventoryQuery, list_history, list_inventory
from schemas.reads import (
    HISTORY_EXAMPLE,
    INVENTORY_EXAMPLE,
    HistoryPageSchema,
    HistoryQuerySchema,
    InventoryPageSchema,
    InventoryQuerySchema,
)

blp = Blueprint(
    "s2s-reads",
    __name__,
    url_prefix="/api/s2s",
    description="Server-to-server reads: inventory and money history, HMAC-signed",
)
blp.before_request(authenticate_s2s_request)


@blp.route("/inventory", methods=["GET"])
@blp.arguments(InventoryQuerySchema(), location="query", unknown=RAISE)
@blp.response(
    200,
    InventoryPageSchema,
    description="One page of items, newest first.",
    example=INVENTORY_EXAMPLE,
)
@signed_operation(blp, "inventory", QUERY_ERRORS)
def inventory(args: dict[str, Any]) -> dict[str, Any]:
    """A player's inventory items, newest first, one page at a time.

    `state` picks one state (default `unresolved`) or `all`; an item whose cashout is in
    flight still reads `unresolved`. Pages are keyset-paged: pass `nextCursor` back as
    `cursor`, with the same filters, until it is `null`. Items won while you page never
    shift or repeat a page. An unknown player has no items (an empty page, not a 404).
    """
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
@blp.arguments(HistoryQuerySchema(), location="query", unknown=RAISE)
@blp.response(
    200,
    HistoryPageSchema,
    description="One page of history, newest first.",
    example=HISTORY_EXAMPLE,
)
@signed_operation(blp, "history", QUERY_ERRORS)
def history(args: dict[str, Any]) -> dict[str, Any]:
    """The money ledger, newest first: what to reconcile a wallet from.

    One row per wallet call this service made for the operator, whatever became of it
    (`accepted`, `refused`, or `pending` while its outcome is unknown), with the
    idempotency key the call carried and the wallet's `providerTxnRef`; `amountMinor` is
    signed from the player's side. Openings of prepaid boxes are rows of 0 (`type: open`).
    Filter by player, `types` and an inclusive `from`/`to` window on `occurredAt`; omit the
    player for the whole operator. Keyset-paged like the inventory. How to reconcile:
    docs/reconciling.md.
    """
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
