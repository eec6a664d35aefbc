"""``/healthz`` and ``/readyz`` for the PaaS: unauthenticated, cheap, no secrets."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from lootbox.container import container
from schemas.probes import HealthzSchema, ReadyzSchema

blp = Blueprint("probes", __name__, description="Liveness and readiness, for the platform")


@blp.route("/healthz", methods=["GET"])
@blp.response(200, HealthzSchema)
def healthz() -> dict[str, str]:
    """The process is alive and serving HTTP. Touches nothing else."""
    return {"status": "ok"}


@blp.route("/readyz", methods=["GET"])
@blp.response(200, ReadyzSchema)
@blp.alt_response(503, schema=ReadyzSchema, description="The database is unreachable")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready to serve: the database answers (503 if not). Redis is reported too, but
    being down only degrades: requests fall back to the database guard."""
    readiness = container().readiness.check()
    body = {
        "status": "ready" if readiness.ready else "unavailable",
        "database": "ok" if readiness.database else "unreachable",
        "redis": "ok" if readiness.redis else "unreachable",
    }
    if readiness.ready and not readiness.redis:
        body["status"] = "degraded"
    return body, 200 if readiness.ready else 503
