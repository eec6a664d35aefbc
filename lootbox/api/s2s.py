"""The S2S blueprint: thin views. Validate with a schema, call one use case, map the result."""

from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint

from lootbox.api.auth import authenticate_s2s_request
from lootbox.api.idempotent import idempotent
from lootbox.container import container
from lootbox.domain.records import Operator
from lootbox.domain.states import PurchaseMode
from lootbox.services.cancel import CancelResult, CancelRound, cancel_round, default_cancel_key
from lootbox.services.cashout import CashOut, CashoutResult, cash_out, default_cashout_key
from lootbox.services.purchase import (
    OpenRound,
    Purchase,
    ReelPick,
    RoundOutcome,
    default_open_key,
    open_round,
    purchase,
    purchase_key,
)
from schemas.s2s import (
    CancelRequestSchema,
    CancelResponseSchema,
    CashoutRequestSchema,
    CashoutResponseSchema,
    ErrorSchema,
    HealthSchema,
    OpenRequestSchema,
    PurchaseRequestSchema,
    RoundResponseSchema,
)

blp = Blueprint(
    "s2s", __name__, url_prefix="/api/s2s", description="Server-to-server API, HMAC-signed"
)


blp.before_request(authenticate_s2s_request)


def _errors(*codes: int) -> Any:
    def decorator(view: Any) -> Any:
        for code in codes:
            view = blp.alt_response(code, schema=ErrorSchema)(view)
        return view

    return decorator


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
@blp.arguments(CashoutRequestSchema)
@idempotent("cashout", _cashout_key, _cashout_request)
@blp.response(200, CashoutResponseSchema)
@_errors(400, 401, 404, 409, 422, 503)
def cashout(args: dict[str, Any]) -> dict[str, Any]:
    """Cash out a won inventory item into the player's wallet."""
    result: CashoutResult = cash_out(
        container().services,
        CashOut(
            operator_id=g.operator.id,
            player_external_id=args["playerExternalId"],
            inventory_item_id=args["inventoryItemId"],
            currency=args["currency"],
            idempotency_key=_cashout_key(args),
        ),
    )
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
@blp.arguments(CancelRequestSchema)
@idempotent("cancel", _cancel_key, _round_request)
@blp.response(200, CancelResponseSchema)
@_errors(400, 401, 403, 404, 409, 422, 503)
def cancel(args: dict[str, Any]) -> dict[str, Any]:
    """Refund a held (pre-paid, unopened) box."""
    result: CancelResult = cancel_round(
        container().services,
        CancelRound(
            operator_id=g.operator.id,
            player_external_id=args["playerExternalId"],
            round_public_id=args["roundPublicId"],
            idempotency_key=_cancel_key(args),
        ),
    )
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
@blp.arguments(PurchaseRequestSchema)
@idempotent("purchase", _purchase_key, _purchase_request)
@blp.response(200, RoundResponseSchema)
@_errors(400, 401, 403, 404, 409, 422, 503)
def purchase_view(args: dict[str, Any]) -> dict[str, Any]:
    """Buy a box: open it at once (``open``) or hold it pre-paid (``prepay``)."""
    outcome = purchase(
        container().services,
        Purchase(
            operator_id=g.operator.id,
            player_external_id=args["playerExternalId"],
            mode=PurchaseMode(args["mode"]),
            client_action_id=args["clientActionId"],
            currency=args["currency"],
            reels=tuple(
                ReelPick(r["reelIndex"], r["boxVersionId"])
                for r in sorted(args["reels"], key=lambda r: r["reelIndex"])
            ),
        ),
    )
    return round_body(outcome)


def _open_key(args: dict[str, Any]) -> str:
    return args["idempotencyKey"] or default_open_key(args["roundPublicId"])


@blp.route("/open", methods=["POST"])
@blp.arguments(OpenRequestSchema)
@idempotent("open", _open_key, _round_request)
@blp.response(200, RoundResponseSchema)
@_errors(400, 401, 404, 409, 422)
def open_view(args: dict[str, Any]) -> dict[str, Any]:
    """Open a held box (no wallet call)."""
    outcome = open_round(
        container().services,
        OpenRound(
            operator_id=g.operator.id,
            player_external_id=args["playerExternalId"],
            round_public_id=args["roundPublicId"],
            idempotency_key=_open_key(args),
        ),
    )
    return round_body(outcome)


def round_body(outcome: RoundOutcome) -> dict[str, Any]:
    return {
        "round": {
            "publicId": outcome.public_id,
            "status": outcome.status,
            "mode": outcome.mode,
            "betMinor": outcome.bet_minor,
            "payoutMinor": outcome.payout_minor,
            "currency": outcome.currency,
            "createdAt": outcome.created_at.isoformat().replace("+00:00", "Z"),
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
@blp.response(200, HealthSchema)
@_errors(401)
def health() -> dict[str, str]:
    """Signed liveness: proves the caller's key and clock are right."""
    return {"status": "ok"}
