"""The catalog as operators read it: boxes with their current version and the house edge."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from lootbox.domain.records import BoxVersion

BPS = 10_000


def house_edge_bps(price_minor: int, prizes: Iterable[tuple[Decimal, int]]) -> int:
    """``10000 × (1 − Σ oddsᵢ × valueᵢ / price)``, rounded half-up (away from zero at .5):
    the player's expected loss per box, in basis points of the price. Negative when the
    prizes are worth more than the price on average. ``prizes`` are ``(odds, value_minor)``
    in the currency of ``price_minor``.

    Exact: ``Fraction`` holds the decimal odds exactly and, unlike ``Decimal``, a division
    by the price that does not terminate (a price of 3) is never rounded before the one
    rounding."""
    if price_minor <= 0:
        raise ValueError("the price must be positive")
    expected = sum((Fraction(odds) * value for odds, value in prizes), Fraction(0))
    return round_half_up(BPS * (1 - expected / price_minor))


def round_half_up(value: Fraction) -> int:
    """The nearest integer; a half goes away from zero (``Decimal``'s ``ROUND_HALF_UP``)."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    if 2 * rest >= value.denominator:
        whole += 1
    return whole if value >= 0 else -whole


def version_house_edge_bps(version: BoxVersion) -> int:
    """A version's house edge, in its own (the operator) currency."""
    return house_edge_bps(version.price_minor, ((p.odds, p.value_minor) for p in version.prizes))


# --- what the catalog reads ask the repository for -----------------------------------------


class BoxOrder(StrEnum):
    NAME = "name"
    PRICE = "price"


@dataclass(frozen=True)
class BoxFilters:
    """Which boxes a listing shows. Values within one filter are alternatives (OR); the
    filters combine with AND. An empty tuple does not filter.

    ``ids`` lists exactly those boxes in whatever state; without it only active boxes are
    listed."""

    ids: tuple[int, ...] | None = None
    names: tuple[str, ...] = ()  # case-insensitive substrings of the name
    slugs: tuple[str, ...] = ()  # exact slugs
    active: tuple[bool, ...] = ()


@dataclass(frozen=True)
class CatalogEntry:
    """A box with its current version (prizes in their published order), or ``None``
    where it has none. The box's own fields are presentation, changed in place."""

    box_id: int
    slug: str
    version: BoxVersion | None
    image: dict[str, Any] | None = None
    custom_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishedVersion:
    """Any version ever published, superseded or not, with its operator's currency."""

    version: BoxVersion
    currency: str
