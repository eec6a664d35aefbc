"""``/healthz`` and ``/readyz`` for the PaaS: unauthenticated, cheap, no secrets."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from lootbox.container import container
from schemas.probes import (
    HEALTHZ_EXAMPLE,
    READY_EXAMPLE,
    UNAVAILABLE_EXAMPLE,
    HealthzSchema,
    ReadyzSchema,
)

blp = Blueprint(
    "probes",
    __name__,
    description="Liveness and readiness, for the platform. Unauthenticated, no secrets.",
)

# Deliberately unsigned: the platform's health checker holds no API key.
UNAUTHENTICATED: list[dict[str, list[str]]] = []


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthzSchema, description="Alive.", example=HEALTHZ_EXAMPLE)
@blp.doc(operationId="healthz", security=UNAUTHENTICATED)
def healthz() -> dict[str, str]:
    """Liveness: the process is alive and serving HTTP.

    Touches nothing else (no database, no Redis), so it fails only when the process does.
    """
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(
    200,
    ReadyzSchema,
    description="Ready: the database answers (`ready`, or `degraded` if Redis does not).",
    example=READY_EXAMPLE,
)
@blp.alt_response(
    503,
    schema=ReadyzSchema,
    description="Not ready: the database is unreachable (this body, not the error envelope).",
    example=UNAVAILABLE_EXAMPLE,
)
@blp.doc(operationId="readyz", security=UNAUTHENTICATED)
def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: the database answers (503 if not).

    One pooled `SELECT 1` and one Redis `PING`, each with a short timeout. Redis is
    reported too, but its being down only degrades (`degraded`, still 200, with the
    `reason`): requests fall back to the database guard, so taking the instance out of
    rotation would not help.
    """
    readiness = container().readiness.check()
    body = {
        "status": "ready" if readiness.ready else "unavailable",
        "database": "ok" if readiness.database else "unreachable",
        "redis": "ok" if readiness.redis else "unreachable",
    }
    if readiness.ready and not readiness.redis:
        body["status"] = "degraded"
        if readiness.redis_reason:
            body["reason"] = readiness.redis_reason
    return body, 200 if readiness.ready else 503
