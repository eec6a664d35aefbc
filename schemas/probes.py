"""Bodies of the platform probes (``/healthz``, ``/readyz``)."""

from __future__ import annotations

from marshmallow import Schema

from schemas.fields import one_of


class HealthzSchema(Schema):
    status = one_of(["ok"], "Always `ok`: the process serves HTTP.", "ok", required=True)


class ReadyzSchema(Schema):
    status = one_of(
        ["ready", "degraded", "unavailable"],
        "`ready`: database and Redis answer. `degraded`: the database answers, Redis does"
        " not (still served, through the database guard). `unavailable`: the database does"
        " not answer (503).",
        "ready",
        required=True,
    )
    database = one_of(["ok", "unreachable"], "The database's `SELECT 1`.", "ok", required=True)
    redis = one_of(["ok", "unreachable"], "Redis' `PING`.", "ok", required=True)


HEALTHZ_EXAMPLE = {"status": "ok"}
READY_EXAMPLE = {"status": "ready", "database": "ok", "redis": "ok"}
UNAVAILABLE_EXAMPLE = {"status": "unavailable", "database": "unreachable", "redis": "ok"}
