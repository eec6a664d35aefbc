"""Catalog import: boxes and prizes, published as immutable versions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lootbox.domain.cashback import MAX_CASHBACK_BPS, is_cashback_bps
from lootbox.domain.draw import validate_odds
from lootbox.domain.errors import InvalidCatalog, OperatorNotFound
from lootbox.domain.records import BoxSpec, PrizeSpec
from lootbox.ports import Clock, UnitOfWork


@dataclass(frozen=True)
class PublishedBox:
    slug: str
    box_id: int
    box_version_id: int
    created: bool


def parse_catalog(document: Any) -> list[BoxSpec]:
    """Validate a catalog document (see the README) into box specs; ``InvalidCatalog``
    names the first problem with its path."""
    if not isinstance(document, dict) or not isinstance(document.get("boxes"), list):
        raise InvalidCatalog('the catalog must be {"boxes": [...]}')
    specs = []
    seen: set[str] = set()
    for i, box in enumerate(document["boxes"]):
        where = f"boxes[{i}]"
        if not isinstance(box, dict):
            raise InvalidCatalog(f"{where} must be an object")
        slug = _text(box, "slug", where, 64)
        if slug in seen:
            raise InvalidCatalog(f"{where}.slug {slug!r} appears twice")
        seen.add(slug)
        prizes_doc = box.get("prizes")
        if not isinstance(prizes_doc, list) or not prizes_doc:
            raise InvalidCatalog(f"{where}.prizes must be a non-empty list")
        prizes = tuple(_prize(p, f"{where}.prizes[{j}]") for j, p in enumerate(prizes_doc))
        try:
            validate_odds([p.odds for p in prizes])
        except ValueError as exc:
            raise InvalidCatalog(f"{where}: {exc}") from None
        specs.append(
            BoxSpec(
                slug=slug,
                name=_text(box, "name", where, 200),
                price_minor=_int(box, "priceMinor", where, minimum=1),
                refundable=_bool(box, "refundable", where, default=True),
                cashback_enabled=_bool(box, "cashbackEnabled", where, default=True),
                cashback_bps=_optional_bps(box, "cashbackBps", where),
                prizes=prizes,
            )
        )
    return specs


def import_catalog(
    uow_factory: Callable[[], UnitOfWork],
    clock: Clock,
    slug: str,
    document: Any,
    progress: Callable[[int, int], None] | None = None,
) -> list[PublishedBox]:
    """Publish every box of the document in one transaction. An unchanged box keeps its
    version; a changed one gets a new version and the old one is superseded.
    ``progress(done, total)`` is called after each box."""
    specs = parse_catalog(document)
    with uow_factory() as uow:
        operator = uow.operators.get_by_slug(slug)
        if operator is None:
            raise OperatorNotFound(f"no operator {slug!r}")
        published = []
        for spec in specs:
            box_id, version_id, created = uow.catalog.publish(
                operator.id, spec, content_hash(spec), clock.now()
            )
            published.append(PublishedBox(spec.slug, box_id, version_id, created))
            if progress is not None:
                progress(len(published), len(specs))
        uow.commit()
        return published


def content_hash(spec: BoxSpec) -> str:
    document = json.dumps(asdict(spec), sort_keys=True, default=str)
    return hashlib.sha256(document.encode()).hexdigest()


def _prize(doc: Any, where: str) -> PrizeSpec:
    if not isinstance(doc, dict):
        raise InvalidCatalog(f"{where} must be an object")
    raw_odds = doc.get("odds")
    if isinstance(raw_odds, bool) or not isinstance(raw_odds, int | float | str | Decimal):
        raise InvalidCatalog(f"{where}.odds must be a number")
    try:
        # str() first: JSON 0.05 is the float 0.05000000000000000277; its shortest repr
        # "0.05" is what the author wrote.
        odds = Decimal(str(raw_odds))
    except InvalidOperation:
        raise InvalidCatalog(f"{where}.odds must be a number") from None
    return PrizeSpec(
        name=_text(doc, "name", where, 200),
        value_minor=_int(doc, "valueMinor", where, minimum=0),
        odds=odds,
        cashback_bps=_optional_bps(doc, "cashbackBps", where),
    )


def _text(doc: dict[str, Any], field: str, where: str, max_length: int) -> str:
    value = doc.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidCatalog(f"{where}.{field} must be a string of 1 to {max_length} characters")
    return value


def _int(doc: dict[str, Any], field: str, where: str, *, minimum: int) -> int:
    value = doc.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidCatalog(f"{where}.{field} must be an integer >= {minimum}")
    return value


def _optional_bps(doc: dict[str, Any], field: str, where: str) -> int | None:
    if doc.get(field) is None:
        return None
    bps = _int(doc, field, where, minimum=0)
    if not is_cashback_bps(bps):
        raise InvalidCatalog(f"{where}.{field} must be between 0 and {MAX_CASHBACK_BPS}")
    return bps


def _bool(doc: dict[str, Any], field: str, where: str, *, default: bool) -> bool:
    value = doc.get(field, default)
    if not isinstance(value, bool):
        raise InvalidCatalog(f"{where}.{field} must be true or false")
    return value
