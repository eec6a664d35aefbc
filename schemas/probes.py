"""Bodies of the platform probes (``/healthz``, ``/readyz``)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthzSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadyzSchema(Schema):
    status = fields.String(
        required=True,
        validate=validate.OneOf(["ready", "degraded", "unavailable"]),
        metadata={"example": "ready"},
    )
    database = fields.String(
        required=True, validate=validate.OneOf(["ok", "unreachable"]), metadata={"example": "ok"}
    )
    redis = fields.String(
        required=True, validate=validate.OneOf(["ok", "unreachable"]), metadata={"example": "ok"}
    )
