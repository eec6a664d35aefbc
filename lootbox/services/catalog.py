"""Catalog import: boxes and prizes, published as immutable versions.

What a player can win (a prize's name, value, odds, type, image and shippability, the
box's name, price and rules) is the offer: changing it publishes a new version. Whether the
box is active, its image and its custom attributes are not: they change in place, so a
``boxVersionId`` a lobby holds stays playable through them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from lootbox.domain.cashback import MAX_CASHBACK_BPS, is_cashback_bps
from lootbox.domain.draw import validate_odds
from lootbox.domain.errors import InvalidCatalog, OperatorNotFound
from lootbox.domain.records import BoxSpec, PrizeSpec, PrizeType
from lootbox.ports import Clock, UnitOfWork

MAX_IMAGE_URL_LENGTH = 2048
# The box's ``image`` and ``customAttributes``, each as compact JSON: presentation for a
# lobby, not a document store.
MAX_ATTRIBUTES_BYTES = 16 * 1024


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
                is_active=_bool(box, "isActive", where, default=True),
                image=_optional_object(box, "image", where),
                custom_attributes=_optional_object(box, "customAttributes", where) or {},
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


# Not part of the offer (see the module docstring).
_UNVERSIONED_FIELDS = ("is_active", "image", "custom_attributes")
# A prize field at this value is left out of the hash: the versions published before the
# field existed hold exactly this, and keep their hash (re-importing the same document does
# not supersede them).
_PRIZE_DEFAULTS: dict[str, Any] = {
    "type": PrizeType.DIGITAL,
    "image_url": None,
    "shippable": False,
}


def content_hash(spec: BoxSpec) -> str:
    """What decides whether an import publishes a new version: the offer's fields only."""
    offer = asdict(spec)
    for name in _UNVERSIONED_FIELDS:
        del offer[name]
    offer["prizes"] = [
        {k: v for k, v in prize.items() if k not in _PRIZE_DEFAULTS or v != _PRIZE_DEFAULTS[k]}
        for prize in offer["prizes"]
    ]
    document = json.dumps(offer, sort_keys=True, default=str)
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
    prize_type = _prize_type(doc, where)
    return PrizeSpec(
        name=_text(doc, "name", where, 200),
        value_minor=_int(doc, "valueMinor", where, minimum=0),
        odds=odds,
        cashback_bps=_optional_bps(doc, "cashbackBps", where),
        type=prize_type,
        image_url=_image_url(doc, where),
        # Only a physical prize is shipped unless the catalog says otherwise.
        shippable=_bool(doc, "shippable", where, default=prize_type is PrizeType.PHYSICAL),
    )


def _prize_type(doc: dict[str, Any], where: str) -> PrizeType:
    value = doc.get("type", PrizeType.DIGITAL)
    try:
        return PrizeType(value)
    except ValueError:
        allowed = ", ".join(str(t) for t in PrizeType)
        raise InvalidCatalog(f"{where}.type must be one of {allowed}") from None


def _image_url(doc: dict[str, Any], where: str) -> str | None:
    value = doc.get("imageUrl")
    if value is None:
        return None
    problem = (
        f"{where}.imageUrl must be an http(s) URL of at most {MAX_IMAGE_URL_LENGTH} characters"
    )
    if not isinstance(value, str) or len(value) > MAX_IMAGE_URL_LENGTH:
        raise InvalidCatalog(problem)
    # Shown in operators' lobbies as is: only a plain absolute web address, nothing that a
    # browser would run (javascript:, data:) or that would break a header or an attribute.
    try:
        url = urlsplit(value)
    except ValueError:
        raise InvalidCatalog(problem) from None
    if url.scheme not in ("http", "https") or not url.hostname or not value.isprintable():
        raise InvalidCatalog(problem)
    if any(c.isspace() for c in value):
        raise InvalidCatalog(problem)
    return value


def _optional_object(doc: dict[str, Any], field: str, where: str) -> dict[str, Any] | None:
    """A JSON object stored as given (``null`` or absent: ``None``); numbers with a
    fraction are stored as JSON numbers (binary floats, as most readers of them parse)."""
    value = doc.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidCatalog(f"{where}.{field} must be an object or null")
    try:
        text = json.dumps(value, default=_json_number, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise InvalidCatalog(f"{where}.{field} must hold only JSON values") from None
    if len(text.encode()) > MAX_ATTRIBUTES_BYTES:
        raise InvalidCatalog(
            f"{where}.{field} must be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"
        )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _json_number(value: Any) -> Any:
    """The CLI reads the document with ``parse_float=Decimal`` (for the odds)."""
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"not JSON: {value!r}")


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
