"""The S2S blueprint: thin views. Validate with a schema, call one use case, map the result.

Each view's documentation (summary and description from its docstring, examples, every
error code per status) is declared next to it; the machinery is ``lootbox.api.openapi``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from flask import g
from flask_smorest import Blueprint

from lootbox.api.auth import authenticate_s2s_request
from lootbox.api.idempotent import idempotent, render_json
from lootbox.api.openapi import (
    IDEMPOTENT_ERRORS,
    JSON_BODY,
    JSON_BODY_ERRORS,
    REPLAYABLE,
    WALLET_ERRORS,
    signed_operation,
)
from lootbox.container import container
from lootbox.domain import errors as e
from lootbox.domain.records import Operator
from lootbox.ports import Answer, KeyedRequest
from lootbox.services.cancel import CancelRound, cancel_round
from lootbox.services.cashout import CashOut, cash_out
from lootbox.services.opening import OpenRound, open_round
from lootbox.services.purchase import Purchase, purchase
from schemas.s2s import (
    CANCEL_REQUEST_EXAMPLE,
    CANCEL_RESPONSE_EXAMPLE,
    CASHOUT_REQUEST_EXAMPLE,
    CASHOUT_RESPONSE_EXAMPLE,
    HEALTH_EXAMPLE,
    HELD_ROUND_EXAMPLE,
    OPEN_REQUEST_EXAMPLE,
    OPENED_ROUND_EXAMPLE,
    PURCHASE_REQUEST_EXAMPLE,
    SETTLED_ROUND_EXAMPLE,
    CancelRequestSchema,
    CancelResponseSchema,
    CashoutRequestSchema,
    CashoutResponseSchema,
    HealthSchema,
    OpenRequestSchema,
    PurchaseRequestSchema,
    RoundResponseSchema,
)

blp = Blueprint(
    "s2s",
    __name__,
    url_prefix="/api/s2s",
    description="Server-to-server money operations, HMAC-signed: purchase, open, cashout,"
    " cancel; and a signed health check.",
)


blp.before_request(authenticate_s2s_request)

# Where the ids a purchase answers with go next (OpenAPI links of its 200 answer).
_PLAYER = "$request.body#/playerExternalId"
_CASH_OUT_WON_ITEM = {
    "operationId": "cashout",
    "description": "Cash out the first item won.",
    "requestBody": {
        "playerExternalId": _PLAYER,
        "inventoryItemId": "$response.body#/wonItems/0/inventoryItemId",
    },
}
_ROUND_BODY = {"playerExternalId": _PLAYER, "roundPublicId": "$response.body#/round/publicId"}
PURCHASE_LINKS = {
    "CashOutWonItem": _CASH_OUT_WON_ITEM,
    "OpenHeldRound": {
        "operationId": "open",
        "description": "Open the round bought with `prepay`.",
        "requestBody": _ROUND_BODY,
    },
    "CancelHeldRound": {
        "operationId": "cancel",
        "description": "Refund the round bought with `prepay`.",
        "requestBody": _ROUND_BODY,
    },
}


# --- cashout ---------------------------------------------------------------------------


def _cashout_request(cmd: CashOut, operator: Operator) -> dict[str, Any]:
    return {
        "playerExternalId": cmd.player_external_id,
        "inventoryItemId": cmd.inventory_item_id,
        "currency": cmd.currency or operator.currency,
    }


@blp.route("/cashout", methods=["POST"])
@blp.arguments(CashoutRequestSchema(), description=JSON_BODY, example=CASHOUT_REQUEST_EXAMPLE)
@blp.response(
    200,
    CashoutResponseSchema,
    description="Cashed back: the item is `cashed_back`, the wallet credited.",
    example=CASHOUT_RESPONSE_EXAMPLE,
    headers=REPLAYABLE,
)
@signed_operation(
    blp,
    "cashout",
    JSON_BODY_ERRORS,
    IDEMPOTENT_ERRORS,
    e.InventoryItemNotFound,
    e.CashbackNotAvailable,
    WALLET_ERRORS,
)
@idempotent("cashout", _cashout_request)
def cashout(cmd: CashOut, request: KeyedRequest) -> Answer:
    """Cash out a won inventory item into the player's wallet.

    Converts a won, `unresolved` inventory item into wallet credit: one `wallet.credit` of
    its cashback value, then the item is `cashed_back`. The value is computed now, in the
    operator currency, `floor(valueMinor × cashbackBps / 10000)` with the most specific
    rule (prize, else box, else operator), then converted to `currency` (if given and not
    the operator's) at the operator's current rate, rounded half-up.

    Default idempotency key: `cashback:inventory:<inventoryItemId>`. An item is credited at
    most once, whatever keys are sent. On a refusal or `WALLET_UNAVAILABLE` the item stays
    `unresolved` and the caller may retry.
    """
    render = partial(render_json, CashoutResponseSchema())
    return cash_out(container().services, g.operator, cmd, request, render)


# --- cancel -----------------------------------------------------------------------------


RoundCommand = TypeVar("RoundCommand", CancelRound, OpenRound)


def _round_request(cmd: RoundCommand, _operator: Operator) -> dict[str, Any]:
    return {"playerExternalId": cmd.player_external_id, "roundPublicId": cmd.round_public_id}


@blp.route("/cancel", methods=["POST"])
@blp.arguments(CancelRequestSchema(), description=JSON_BODY, example=CANCEL_REQUEST_EXAMPLE)
@blp.response(
    200,
    CancelResponseSchema,
    description="Refunded: the round is `refunded`, the wallet credited.",
    example=CANCEL_RESPONSE_EXAMPLE,
    headers=REPLAYABLE,
)
@signed_operation(
    blp,
    "cancel",
    JSON_BODY_ERRORS,
    IDEMPOTENT_ERRORS,
    e.RoundNotFound,
    e.RoundNotRefundable,
    e.RefundNotAllowed,
    WALLET_ERRORS,
)
@idempotent("cancel", _round_request)
def cancel(cmd: CancelRound, request: KeyedRequest) -> Answer:
    """Refund a held (pre-paid, unopened) box.

    Reverses a `prepay` purchase: one `wallet.credit` of the original amount in the
    original currency, then the round is `refunded`. Only a `held` round qualifies: never
    an atomic open, an opened box or a prize.

    Default idempotency key: `refund:round:<roundPublicId>`. A round is refunded at most
    once, whatever keys are sent. On a refusal or `WALLET_UNAVAILABLE` the round stays
    `held`.
    """
    render = partial(render_json, CancelResponseSchema())
    return cancel_round(container().services, g.operator, cmd, request, render)


# --- purchase and open ------------------------------------------------------------------------


def _purchase_request(cmd: Purchase, operator: Operator) -> dict[str, Any]:
    return {
        "playerExternalId": cmd.player_external_id,
        "gameKey": "mystery_box",
        "mode": str(cmd.mode),
        "clientActionId": cmd.client_action_id,
        "currency": cmd.currency or operator.currency,
        "reels": [[reel.reel_index, reel.box_version_id] for reel in cmd.reels],
    }


@blp.route("/purchase", methods=["POST"])
@blp.arguments(PurchaseRequestSchema(), description=JSON_BODY, example=PURCHASE_REQUEST_EXAMPLE)
@blp.response(
    200,
    RoundResponseSchema,
    description="Paid: the round `settled` with its prizes (`open`) or `held` (`prepay`).",
    examples={
        "open": {"summary": "Atomic buy and open", "value": SETTLED_ROUND_EXAMPLE},
        "prepay": {"summary": "Pre-paid, held for later", "value": HELD_ROUND_EXAMPLE},
    },
    headers=REPLAYABLE,
)
@signed_operation(
    blp,
    "purchase",
    JSON_BODY_ERRORS,
    IDEMPOTENT_ERRORS,
    e.UnknownBox,
    e.BoxNotPlayable,
    e.CurrencyNotSupported,
    WALLET_ERRORS,
)
@blp.doc(responses={200: {"links": PURCHASE_LINKS}})
@idempotent("purchase", _purchase_request)
def purchase_view(cmd: Purchase, request: KeyedRequest) -> Answer:
    """Buy a box: open it at once (open) or hold it pre-paid (prepay).

    One `wallet.debit` for the total of all reels (converted to `currency` if given),
    before anything is drawn; its wallet key is `round:<publicId>`. `open` then draws one
    prize per reel: the round is `settled` and `wonItems` are new `unresolved` inventory
    items. `prepay` leaves the round `held`, to `/open` or `/cancel` later. A refused
    debit voids the round (no money moved) and answers the wallet's code.

    The idempotency key is `clientActionId`, per player: retry with the same value.
    """
    render = partial(render_json, RoundResponseSchema())
    return purchase(container().services, g.operator, cmd, request, render)


@blp.route("/open", methods=["POST"])
@blp.arguments(OpenRequestSchema(), description=JSON_BODY, example=OPEN_REQUEST_EXAMPLE)
@blp.response(
    200,
    RoundResponseSchema,
    description="Opened: the round is `settled` with its prizes and `wonItems`.",
    example=OPENED_ROUND_EXAMPLE,
    headers=REPLAYABLE,
)
@signed_operation(
    blp,
    "open",
    JSON_BODY_ERRORS,
    IDEMPOTENT_ERRORS,
    e.RoundNotFound,
    e.RoundNotHeld,
    e.WalletUnavailable,
)
@blp.doc(responses={200: {"links": {"CashOutWonItem": _CASH_OUT_WON_ITEM}}})
@idempotent("open", _round_request)
def open_view(cmd: OpenRound, request: KeyedRequest) -> Answer:
    """Open a held box (no wallet call).

    `held` → `settled`: one prize drawn per reel, `wonItems` created `unresolved`. No
    money moves. If a refund of this round is pending (its outcome unknown), it is re-sent
    first: accepted, the round is refunded and cannot be opened (`ROUND_NOT_HELD`); no
    answer yet, `WALLET_UNAVAILABLE`.

    Default idempotency key: `open:round:<roundPublicId>`.
    """
    render = partial(render_json, RoundResponseSchema())
    return open_round(container().services, g.operator, cmd, request, render)


# --- health ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    status: str
    time: datetime


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema, description="The signature is valid.", example=HEALTH_EXAMPLE)
@signed_operation(blp, "health")
def health() -> Health:
    """Signed liveness: proves the caller's key and clock are right.

    Sign it like any request: `GET`, path `/api/s2s/health`, the empty body. Nothing else
    is touched; use it to check an integration's signing before moving money. `time` is
    the server's clock, to compare with the one `X-Timestamp` comes from.
    """
    return Health("ok", container().services.clock.now())
