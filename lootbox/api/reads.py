"""The S2S read endpoints: a player's inventory and the money history (contract section 5).

Signed like every S2S call (the signature covers the path without the query string and
the empty body); read-only, so no idempotency key.
"""

from __future__ import annotations

from flask import g
from flask_smorest import Blueprint
from marshmallow import RAISE

from lootbox.api.auth import authenticate_s2s_request
from lootbox.api.openapi import QUERY_ERRORS, signed_operation
from lootbox.container import container
from lootbox.domain.listings import HistoryEntry, ItemListing
from lootbox.services.listings import (
    HistoryQuery,
    InventoryQuery,
    Page,
    list_history,
    list_inventory,
)
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
def inventory(query: InventoryQuery) -> Page[ItemListing]:
    """A player's inventory items, newest first, one page at a time.

    `state` is a comma list of states (default `unresolved`; unknown states are ignored)
    or `all`; an item whose cashout is in flight still reads `unresolved`. Pages are
    keyset-paged: pass `cursor.next` (or `cursor.prev`) back as `cursor`, with the same
    filters, for the page after (or before); each is `null` at its end of the list. Items
    won while you page never shift or repeat a page. An unknown player has no items (an
    empty page, not a 404).
    """
    return list_inventory(container().services, g.operator.id, query)


@blp.route("/history", methods=["GET"])
@blp.arguments(HistoryQuerySchema(), location="query", unknown=RAISE)
@blp.response(
    200,
    HistoryPageSchema,
    description="One page of history, newest first.",
    example=HISTORY_EXAMPLE,
)
@signed_operation(blp, "history", QUERY_ERRORS)
def history(query: HistoryQuery) -> Page[HistoryEntry]:
    """The money ledger, newest first: what to reconcile a wallet from.

    One row per wallet call this service made for the operator, whatever became of it,
    with the idempotency key the call carried and the wallet's `providerTxnRef`;
    `amountMinor` is signed from the player's side. Openings of held boxes are `open`
    rows of 0. `status` is `held`, `settled` or `refunded` for a debit (what its round is
    now), `refunded` for a refund, `completed` for a cashback, `voided` for a call the
    wallet refused, and `pending` while the wallet's answer is unknown. Filter by player,
    `types` and an inclusive `from`/`to` window on `occurredAt`; omit the player for the
    whole operator. Keyset-paged like the inventory. How to reconcile:
    docs/reconciling.md.
    """
    return list_history(container().services, g.operator.id, query)
