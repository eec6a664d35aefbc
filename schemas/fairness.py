"""Schemas of the provably fair seed endpoints (contract section 9)."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, fields, post_load, validate

from lootbox.domain.fairness import ALGORITHM, server_seed_hash
from lootbox.services.fairness import RotateSeeds
from schemas.fields import player_external_id, spec_pattern

SEED_HASH = re.compile(r"^[0-9a-f]{64}\Z")
EXAMPLE_SEED = "3c6e0b8a9f2d4e1b7a5c3d9f8e2b6a4c1d7f9e3b5a8c2d6e4f1a9b7c3e5d8f2a"
EXAMPLE_HASH = server_seed_hash(EXAMPLE_SEED)


def _server_seed_hash(description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        data_key="serverSeedHash",
        metadata={
            "description": description,
            "example": EXAMPLE_HASH,
            "pattern": spec_pattern(SEED_HASH),
        },
        **kwargs,
    )


def _client_seed(description: str, **kwargs: Any) -> fields.String:
    return fields.String(
        data_key="clientSeed",
        metadata={"description": description, "example": "a1b2c3d4e5f60718"},
        **kwargs,
    )


def _algorithm_key() -> fields.Constant:
    return fields.Constant(
        ALGORITHM,
        data_key="algorithmKey",
        dump_only=True,
        metadata={
            "description": "How draws are computed from the seeds (docs/fairness.md).",
            "example": ALGORITHM,
            "enum": [ALGORITHM],
        },
    )


class FairnessQuerySchema(Schema):
    player_external_id = player_external_id(required=True)


class SeedsSchema(Schema):
    """The player's current pair, as its player may see it: the server seed stays secret."""

    server_seed_hash = _server_seed_hash(
        "SHA-256 of the current server seed: the commitment its draws are checked against"
        " once it is revealed.",
        required=True,
    )
    client_seed = _client_seed("The current client seed.", required=True)
    next_nonce = fields.Integer(
        data_key="nextNonce",
        required=True,
        metadata={"description": "The nonce the player's next drawn round takes.", "example": 12},
    )
    algorithm_key = _algorithm_key()


class RotateRequestSchema(Schema):
    player_external_id = player_external_id(required=True)
    server_seed_hash = _server_seed_hash(
        "The pair to reveal: the current one (as `GET /api/s2s/fairness` or a round's"
        " `fairness` says), or one already revealed (a retry: answered the same).",
        required=True,
        validate=validate.Regexp(SEED_HASH, error="64 lowercase hexadecimal characters"),
    )
    client_seed = _client_seed(
        "The next pair's client seed: 1 to 64 printable ASCII characters without spaces"
        " (else `422 INVALID_CLIENT_SEED`). Omitted or null: the revealed pair's is kept.",
        load_default=None,
        allow_none=True,
    )

    @post_load
    def _command(self, data: dict[str, Any], **_: Any) -> RotateSeeds:
        return RotateSeeds(**data)


class RevealedSchema(Schema):
    server_seed = fields.String(
        data_key="serverSeed",
        required=True,
        metadata={
            "description": "The server seed, revealed: 64 lowercase hex characters whose"
            " SHA-256 is `serverSeedHash`.",
            "example": EXAMPLE_SEED,
        },
    )
    server_seed_hash = _server_seed_hash("The commitment it was drawn under.", required=True)
    client_seed = _client_seed("Its client seed.", required=True)
    last_nonce = fields.Integer(
        data_key="lastNonce",
        required=True,
        allow_none=True,
        metadata={
            "description": "The nonce of the last round drawn with it; null if none was.",
            "example": 11,
        },
    )


class RotationSchema(Schema):
    revealed = fields.Nested(
        RevealedSchema,
        required=True,
        metadata={"description": "The pair revealed: verify its rounds with it."},
    )
    current = fields.Nested(
        SeedsSchema,
        required=True,
        metadata={"description": "The pair the player's next rounds are drawn with."},
    )


SEEDS_EXAMPLE = {
    "serverSeedHash": EXAMPLE_HASH,
    "clientSeed": "a1b2c3d4e5f60718",
    "nextNonce": 12,
    "algorithmKey": ALGORITHM,
}
ROTATE_REQUEST_EXAMPLE = {
    "playerExternalId": "u_8431",
    "serverSeedHash": EXAMPLE_HASH,
    "clientSeed": "my-lucky-seed",
}
ROTATION_EXAMPLE = {
    "revealed": {
        "serverSeed": EXAMPLE_SEED,
        "serverSeedHash": EXAMPLE_HASH,
        "clientSeed": "a1b2c3d4e5f60718",
        "lastNonce": 11,
    },
    "current": {
        "serverSeedHash": server_seed_hash("0f" * 32),
        "clientSeed": "my-lucky-seed",
        "nextNonce": 0,
        "algorithmKey": ALGORITHM,
    },
}
