"""The S2S blueprint: thin views. Validate with a schema, call one use case, map the result.

Each view's documentation (summary and description from its docstring, examples, every
error code per status) is declared next to it; the machinery is ``lootbox.api.openapi``.
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from lootbox.api.auth import authenticate_s2s_request
from lootbox.api.idempotent import idempotent, render_json
from lootbox.api.openapi import (
    IDEMPOTENT_ERRORS,
    JSON_BODY_ERRORS,
    REPLAYABLE,
    WALLET_REFUSAL,
    signed_operation,
)
from lootbox.container import container
from lootbox.domain.records import Operator
from lootbox.domain.states import PurchaseMode
from lootbox.ports import Answer, KeyedRequest
from lootbox.services.cancel import CancelResult, CancelRound, cancel_round, default_cancel_key
from lootbox.services.cashout import CashOut, CashoutResult, cash_out, default_cashout_key
from lootbox.services.opening import OpenRound, default_open_key, open_round
from lootbox.services.purchase import Purchase, ReelPick, purchase, purchase_key
from lootbox.services.rounds import RoundOutcome
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

# A refusal by the wallet: its own code at 422, PLAYER_BLOCKED at 403 (lootbox.api.errors).
WALLET_ERRORS = {403: ["PLAYER_BLOCKED"], 422: [WALLET_REFUSAL], 503: ["WALLET_UNAVAILABLE"]}
JSON_BODY = "A JSON object; unknown fields are rejected (400 `VALIDATION_ERROR`)."

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


def _cashout_key(args: dict[str, Any]) -> str:
    return args["idempotencyKey"] or default_cashout_key(args["inventoryItemId"])


def _cashout_request(args: dict[str, Any], operator: Operator) -> dict[str, Any]:
    return {
        "playerExternalId": args["playerExternalId"],
        "inventoryItemId": args["inventoryItemId"],
        "currency": args["currency"] or operator.currency,
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
    {404: ["INVENTORY_ITEM_NOT_FOUND"], 422: ["CASHBACK_NOT_AVAILABLE"]},
    WALLET_ERRORS,
)
@idempotent("cashout", _cashout_key, _cashout_request)
def cashout(args: dict[str, Any], request: KeyedRequest) -> Answer:
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
    return cash_out(
        container().services,
        CashOut(
            operator=g.operator,
            player_external_id=args["playerExternalId"],
            inventory_item_id=args["inventoryItemId"],
            currency=args["currency"],
            idempotency_key=request.key,
        ),
        request,
        lambda result: render_json(CashoutResponseSchema(), cashout_body(result)),
    )


def cashout_body(result: CashoutResult) -> dict[str, Any]:
    return {
        "item": {
            "inventoryItemId": result.inventory_item_id,
            "state": result.state,
            "cashbackMinor": result.cashback_minor,
            "currency": result.currency,
        },
        "balanceAfterMinor": result.balance_after_minor,
    }


# --- cancel -----------------------------------------------------------------------------


def _cancel_key(args: dict[str, Any]) -> str:
    return args["idempotencyKey"] or default_cancel_key(args["roundPublicId"])


def _round_request(args: dict[str, Any], _operator: Operator) -> dict[str, Any]:
    return {"playerExternalId": args["playerExternalId"], "roundPublicId": args["roundPublicId"]}


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
    {
        404: ["ROUND_NOT_FOUND"],
        409: ["ROUND_NOT_REFUNDABLE"],
        403: ["REFUND_NOT_ALLOWED"],
    },
    WALLET_ERRORS,
)
@idempotent("cancel", _cancel_key, _round_request)
def cancel(args: dict[str, Any], request: KeyedRequest) -> Answer:
    """Refund a held (pre-paid, unopened) box.

    Reverses a `prepay` purchase: one `wallet.credit` of the original amount in the
    original currency, then the round is `refunded`. Only a `held` round qualifies: never
    an atomic open, an opened box or a prize.

    Default idempotency key: `refund:round:<roundPublicId>`. A round is refunded at most
    once, whatever keys are sent. On a refusal or `WALLET_UNAVAILABLE` the round stays
    `held`.
    """
    return cancel_round(
        container().services,
        CancelRound(
            operator=g.operator,
            player_external_id=args["playerExternalId"],
            round_public_id=args["roundPublicId"],
            idempotency_key=request.key,
        ),
        request,
        lambda result: render_json(CancelResponseSchema(), cancel_body(result)),
    )


def cancel_body(result: CancelResult) -> dict[str, Any]:
    return {
        "round": {
            "publicId": result.round_public_id,
            "status": result.status,
            "refundedMinor": result.refunded_minor,
            "currency": result.currency,
        },
        "balanceAfterMinor": result.balance_after_minor,
    }


# --- purchase and open ------------------------------------------------------------------------


def _purchase_key(args: dict[str, Any]) -> str:
    return purchase_key(args["playerExternalId"], args["clientActionId"])


def _purchase_request(args: dict[str, Any], operator: Operator) -> dict[str, Any]:
    return {
        "playerExternalId": args["playerExternalId"],
        "gameKey": args["gameKey"],
        "mode": args["mode"],
        "clientActionId": args["clientActionId"],
        "currency": args["currency"] or operator.currency,
        "reels": sorted(
            ([r["reelIndex"], r["boxVersionId"]] for r in args["reels"]), key=lambda r: r[0]
        ),
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
    {
        404: ["UNKNOWN_BOX"],
        409: ["BOX_NOT_PLAYABLE"],
        422: ["CURRENCY_NOT_SUPPORTED"],
    },
    WALLET_ERRORS,
)
@blp.doc(responses={200: {"links": PURCHASE_LINKS}})
@idempotent("purchase", _purchase_key, _purchase_request)
def purchase_view(args: dict[str, Any], request: KeyedRequest) -> Answer:
    """Buy a box: open it at once (open) or hold it pre-paid (prepay).

    One `wallet.debit` for the total of all reels (converted to `currency` if given),
    before anything is drawn; its wallet key is `round:<publicId>`. `open` then draws one
    prize per reel: the round is `settled` and `wonItems` are new `unresolved` inventory
    items. `prepay` leaves the round `held`, to `/open` or `/cancel` later. A refused
    debit voids the round (no money moved) and answers the wallet's code.

    The idempotency key is `clientActionId`, per player: retry with the same value.
    """
    return purchase(
        container().services,
        Purchase(
            operator=g.operator,
            player_external_id=args["playerExternalId"],
            mode=PurchaseMode(args["mode"]),
            client_action_id=args["clientActionId"],
            currency=args["currency"],
            reels=tuple(
                ReelPick(r["reelIndex"], r["boxVersionId"])
                for r in sorted(args["reels"], key=lambda r: r["reelIndex"])
            ),
        ),
        request,
        _render_round,
    )


def _open_key(args: dict[str, Any]) -> str:
    return args["idempotencyKey"] or default_open_key(args["roundPublicId"])


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
    {404: ["ROUND_NOT_FOUND"], 409: ["ROUND_NOT_HELD"], 503: ["WALLET_UNAVAILABLE"]},
)
@blp.doc(responses={200: {"links": {"CashOutWonItem": _CASH_OUT_WON_ITEM}}})
@idempotent("open", _open_key, _round_request)
def open_view(args: dict[str, Any], request: KeyedRequest) -> Answer:
    """Open a held box (no wallet call).

    `held` → `settled`: one prize drawn per reel, `wonItems` created `unresolved`. No
    money moves. If a refund of this round is pending (its outcome unknown), it is re-sent
    first: accepted, the round is refunded and cannot be opened (`ROUND_NOT_HELD`); no
    answer yet, `WALLET_UNAVAILABLE`.

    Default idempotency key: `open:round:<roundPublicId>`.
    """
    return open_round(
        container().services,
        OpenRound(
            operator=g.operator,
            player_external_id=args["playerExternalId"],
            round_public_id=args["roundPublicId"],
            idempotency_key=request.key,
        ),
        request,
        _render_round,
    )


def _render_round(outcome: RoundOutcome) -> str:
    return render_json(RoundResponseSchema(), round_body(outcome))


def round_body(outcome: RoundOutcome) -> dict[str, Any]:
    return {
        "round": {
            "publicId": outcome.public_id,
            "status": outcome.status,
            "mode": outcome.mode,
            "betMinor": outcome.bet_minor,
            "payoutMinor": outcome.payout_minor,
            "currency": outcome.currency,
            "createdAt": outcome.created_at,
            "reels": [
                {
                    "reelIndex": reel.reel_index,
                    "boxVersionId": reel.box_version_id,
                    "priceMinor": reel.price_minor,
                    "prize": (
                        {
                            "itemId": reel.prize.item_id,
                            "name": reel.prize.name,
                            "valueMinor": reel.prize.value_minor,
                            "currency": reel.prize.currency,
                        }
                        if reel.prize
                        else None
                    ),
                }
                for reel in outcome.reels
            ],
        },
        "wonItems": [
            {
                "inventoryItemId": item.inventory_item_id,
                "itemId": item.item_id,
                "reelIndex": item.reel_index,
                "name": item.name,
                "valueMinor": item.value_minor,
                "currency": item.currency,
                "cashbackMinor": item.cashback_minor,
                "state": item.state,
            }
            for item in outcome.won_items
        ],
        "balanceAfterMinor": outcome.balance_after_minor,
    }


# --- health ---------------------------------------------------------------------------------------


@blp.route("/health", methods=["GET"])
@blp.response(200, HealthSchema, description="The signature is valid.", example=HEALTH_EXAMPLE)
@signed_operation(blp, "health")
def health() -> dict[str, str]:
    """Signed liveness: proves the caller's key and clock are right.

    Sign it like any request: `GET`, path `/api/s2s/health`, the empty body. Nothing else
    is touched; use it to check an integration's signing before moving money.
    """
    return {"status": "ok"}
