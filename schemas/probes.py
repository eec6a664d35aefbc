"""Bodies of the platform probes (``/healthz``, ``/readyz``)."""

from __future__ import annotations

from marshmallow import Schema, fields

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
    reason = fields.String(
        metadata={
            "description": "Only with `degraded`: why Redis does not answer (the root error,"
            " and what to change when there is a likely fix). For people, not for parsing.",
            "example": "SSLCertVerificationError: certificate verify failed: self-signed"
            " certificate (the Redis server's TLS certificate is not trusted: ...)",
        }
    )


HEALTHZ_EXAMPLE = {"status": "ok"}
READY_EXAMPLE = {"status": "ready", "database": "ok", "redis": "ok"}
UNAVAILABLE_EXAMPLE = {"status": "unavailable", "database": "unreachable", "redis": "ok"}
