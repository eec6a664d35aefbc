"""On-call tools: ``flask ops pending``."""

from __future__ import annotations

from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from lootbox.cli.output import emit, json_errors
from lootbox.services.operations import PendingOperation, pending_operations

ops_cli = AppGroup("ops", help="Money operations, for on-call.")


@ops_cli.command("pending")
@click.option(
    "--limit", type=click.IntRange(min=1), default=1000, show_default=True, help="At most."
)
@json_errors
def ops_pending(limit: int) -> None:
    """Operations whose wallet outcome is unknown, oldest first, with their age and the
    money at risk per currency. The reconciler re-sends them; one that stays here across
    passes is what to look at (docs/reliability.md)."""
    box = current_app.extensions["lootbox"]
    report = pending_operations(box.uow_factory, box.services.clock, limit=limit)
    emit(
        {
            "count": len(report.operations),
            "truncated": report.truncated,
            "oldestAgeSeconds": _seconds(report.oldest_age_seconds),
            "atRisk": {
                currency: {
                    "operations": risk.operations,
                    "creditsMinor": risk.credits_minor,
                    "debitsMinor": risk.debits_minor,
                }
                for currency, risk in sorted(report.at_risk.items())
            },
            "operations": [_operation(op) for op in report.operations],
        }
    )


def _operation(op: PendingOperation) -> dict[str, Any]:
    m = op.movement
    return {
        "operator": op.operator_slug,
        "idempotencyKey": m.idempotency_key,
        "type": f"wallet.{m.kind}",
        "reason": str(m.reason),
        "phase": str(op.phase),
        "playerExternalId": m.player_external_id,
        "amountMinor": m.amount_minor,
        "currency": m.currency,
        "inventoryItemId": m.inventory_item_id,
        "roundPublicId": m.round_public_id,
        "attempts": m.attempts,
        "lastError": m.last_error,
        "ageSeconds": _seconds(op.age_seconds),
        "createdAt": m.created_at.isoformat(),
    }


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
