"""The public fairness pages (contract section 9): what a player can check without us.

Unsigned and unauthenticated: a box version's published offer is what the player was
shown, and names no secret of the operator (no slug, keys, rules or wallet).
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from marshmallow import RAISE

from lootbox.api.openapi import QUERY_ERRORS, document_errors
from lootbox.container import container
from lootbox.domain import errors as e
from lootbox.services.catalog_reads import VersionSnapshot, get_snapshot
from schemas.catalog import SNAPSHOT_EXAMPLE, SnapshotPathSchema, SnapshotSchema

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
