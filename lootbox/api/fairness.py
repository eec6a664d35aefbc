"""Provably fair draws (contract section 9).

``blp``, public, unsigned: a box version's published offer, what the player was shown; it
names no secret of the operator (no slug, keys, rules or wallet). ``seeds_blp``, signed
like every S2S call: a player's seed pair, and its rotation, which reveals it.
"""

from __future__ import annotations

from typing import Any

from flask import g
from flask_smorest import Blueprint
from marshmallow import RAISE

from lootbox.api.auth import authenticate_s2s_request
from lootbox.api.openapi import (
    JSON_BODY,
    JSON_BODY_ERRORS,
    QUERY_ERRORS,
    document_errors,
    signed_operation,
)
from lootbox.container import container
from lootbox.domain import errors as e
from lootbox.domain.records import SeedPair
from lootbox.services.catalog_reads import VersionSnapshot, get_snapshot
from lootbox.services.fairness import RotateSeeds, Rotation, current_seeds, rotate_seeds
from schemas.catalog import SNAPSHOT_EXAMPLE, SnapshotPathSchema, SnapshotSchema
from schemas.fairness import (
    ROTATE_REQUEST_EXAMPLE,
    ROTATION_EXAMPLE,
    SEEDS_EXAMPLE,
    FairnessQuerySchema,
    RotateRequestSchema,
    RotationSchema,
    SeedsSchema,
)

blp = Blueprint(
    "public-fairness",
    __name__,
    url_prefix="/fairness",
    description="Public, unsigned: the published offer of every box version.",
)

UNAUTHENTICATED: list[dict[str, list[str]]] = []


@blp.route("/box-version/<boxVersionId>/snapshot", methods=["GET"])
@blp.arguments(SnapshotPathSchema(), location="path", unknown=RAISE)
@blp.response(
    200,
    SnapshotSchema,
    description="The version's published offer.",
    example=SNAPSHOT_EXAMPLE,
)
@blp.doc(operationId="getBoxVersionSnapshot", security=UNAUTHENTICATED)
@document_errors(blp, QUERY_ERRORS, e.UnknownBox, e.ServiceUnavailable)
def snapshot(path: dict[str, Any], **_: Any) -> VersionSnapshot:
    """A box version's prize table and odds exactly as they were offered.

    Versions never change, so this answers the same for good, superseded and deactivated
    versions included: a player can check a past round's draw against the offer it was
    drawn from. Prices and values are in the operator currency. `snapshotHash` is the
    SHA-256 of the canonical JSON of the rest. A version id that does not exist is
    `404 UNKNOWN_BOX`.
    """
    return get_snapshot(container().services, path["box_version_id"])


seeds_blp = Blueprint(
    "s2s-fairness",
    __name__,
    url_prefix="/api/s2s",
    description="Provably fair draws, HMAC-signed: a player's seeds, and their rotation.",
)
seeds_blp.before_request(authenticate_s2s_request)


@seeds_blp.route("/fairness", methods=["GET"])
@seeds_blp.arguments(FairnessQuerySchema(), location="query", unknown=RAISE)
@seeds_blp.response(
    200, SeedsSchema, description="The player's current pair.", example=SEEDS_EXAMPLE
)
@signed_operation(seeds_blp, "getFairness", QUERY_ERRORS)
def fairness(query: dict[str, Any]) -> SeedPair:
    """A player's current seed pair: the server seed's hash, the client seed, the next nonce.

    Created on first use (a player's first purchase creates it too). Show the hash to the
    player before they play: once the pair is revealed (`/fairness/rotate`), every round
    drawn with it can be checked against it. docs/fairness.md.
    """
    return current_seeds(container().services, g.operator, query["player_external_id"])


@seeds_blp.route("/fairness/rotate", methods=["POST"])
@seeds_blp.arguments(
    RotateRequestSchema(),
    description=JSON_BODY,
    example=ROTATE_REQUEST_EXAMPLE,
)
@seeds_blp.response(
    200, RotationSchema, description="Revealed, and the next pair.", example=ROTATION_EXAMPLE
)
@signed_operation(
    seeds_blp, "rotateFairness", JSON_BODY_ERRORS, e.SeedPairNotFound, e.InvalidClientSeed
)
def rotate(cmd: RotateSeeds) -> Rotation:
    """Reveal the named seed pair and start a new one.

    `revealed` has the server seed: with it, the client seed and each round's nonce, every
    prize drawn with the pair can be re-derived (docs/fairness.md). The new pair takes
    `clientSeed`, or keeps the old one. Naming the pair makes this safe to retry without a
    key: a pair already revealed is answered the same, with the pair current now. A round
    drawn while a rotation runs is drawn entirely with one pair.
    """
    return rotate_seeds(container().services, g.operator, cmd)
