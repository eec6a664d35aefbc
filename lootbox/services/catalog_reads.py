"""Catalog reads: the boxes an operator's lobby lists, one box's offer with its prize table,
the live version to buy, and the public snapshot of any version ever published.

Prices and prize values are converted into the requested currency at the operator's rate,
half-up, once, as a purchase converts its price; the house edge is computed before, in the
operator currency, so conversion rounding never moves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lootbox.domain.catalog import (
    BoxFilters,
    BoxOrder,
    CatalogEntry,
    version_house_edge_bps,
)
from lootbox.domain.errors import BoxNotPlayable, UnknownBox, UnsupportedCurrency
from lootbox.domain.records import BoxVersion, Operator
from lootbox.services.context import ServiceContext
from lootbox.services.fx import from_operator_currency, rate_for

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 200
# A hundred ids of up to 19 digits fit a request line (gunicorn's 4094 bytes) with room to
# spare; a lobby pages through more.
MAX_IDS = 100
# Far beyond any real catalog; keeps OFFSET (page × perPage) well inside a bigint.
MAX_PAGE = 1_000_000
SNAPSHOT_PATH = "/fairness/box-version/{box_version_id}/snapshot"


# --- queries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxListQuery:
    operator: Operator  # as authenticated
    filters: BoxFilters = field(default_factory=BoxFilters)
    order: BoxOrder = BoxOrder.NAME
    descending: bool = False
    page: int = 1  # 1-based
    per_page: int = DEFAULT_PER_PAGE
    currency: str | None = None  # None: the operator currency


@dataclass(frozen=True)
class BoxQuery:
    operator: Operator
    box_id: int
    currency: str | None = None


# --- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxSummary:
    box_id: int
    name: str
    slug: str
    is_active: bool
    is_published: bool
    version_number: int
    box_version_id: int
    price_minor: int
    currency: str
    house_edge_bps: int
    image: dict[str, Any] | None
    custom_attributes: dict[str, Any]


@dataclass(frozen=True)
class Pagination:
    page: int
    per_page: int
    total: int
    last_page: int


@dataclass(frozen=True)
class BoxPage:
    boxes: list[BoxSummary]
    pagination: Pagination


@dataclass(frozen=True)
class PrizeOffer:
    item_id: int
    name: str
    type: str
    value_minor: int
    currency: str
    image_url: str | None
    shippable: bool
    odds: Decimal  # exactly the catalog's digits


@dataclass(frozen=True)
class BoxOffer:
    box_id: int
    box_version_id: int
    version_number: int
    name: str
    slug: str
    price_minor: int
    currency: str
    house_edge_bps: int
    snapshot_url: str
    image: dict[str, Any] | None
    custom_attributes: dict[str, Any]
    prizes: list[PrizeOffer]


@dataclass(frozen=True)
class LiveVersion:
    box_id: int
    box_version_id: int
    version_number: int
    price_minor: int
    currency: str


@dataclass(frozen=True)
class SnapshotPrize:
    item_id: int
    name: str
    type: str
    value_minor: int
    image_url: str | None
    odds: Decimal


@dataclass(frozen=True)
class VersionSnapshot:
    """A version's offer as published, in the operator currency."""

    box_version_id: int
    box_id: int
    version_number: int
    name: str
    price_minor: int
    currency: str
    house_edge_bps: int
    prizes: list[SnapshotPrize]


# --- use cases -------------------------------------------------------------------------------


def list_boxes(ctx: ServiceContext, query: BoxListQuery) -> BoxPage:
    """One page of the operator's catalog, in ``query.currency``."""
    convert = _converter(query.operator, query.currency)
    with ctx.uow_factory() as uow:
        entries, total = uow.catalog_reads.boxes_page(
            query.operator.id,
            query.filters,
            query.order,
            descending=query.descending,
            offset=(query.page - 1) * query.per_page,
            limit=query.per_page,
        )
    return BoxPage(
        boxes=[
            _summary(entry, entry.version, convert)
            for entry in entries
            if entry.version is not None
        ],
        pagination=Pagination(
            page=query.page,
            per_page=query.per_page,
            total=total,
            last_page=max(1, -(-total // query.per_page)),
        ),
    )


def get_box(ctx: ServiceContext, query: BoxQuery) -> BoxOffer:
    """The box's current version with its prize table, to show and to buy."""
    convert = _converter(query.operator, query.currency)
    entry, version = _playable(ctx, query)
    return BoxOffer(
        box_id=entry.box_id,
        box_version_id=version.id,
        version_number=version.version,
        name=version.name,
        slug=entry.slug,
        price_minor=convert.amount(version.price_minor),
        currency=convert.currency,
        house_edge_bps=version_house_edge_bps(version),
        snapshot_url=SNAPSHOT_PATH.format(box_version_id=version.id),
        image=entry.image,
        custom_attributes=entry.custom_attributes,
        prizes=[
            PrizeOffer(
                item_id=prize.id,
                name=prize.name,
                type=str(prize.type),
                value_minor=convert.amount(prize.value_minor),
                currency=convert.currency,
                image_url=prize.image_url,
                shippable=prize.shippable,
                odds=prize.odds,
            )
            for prize in version.prizes
        ],
    )


def get_live_version(ctx: ServiceContext, query: BoxQuery) -> LiveVersion:
    """The version a purchase of this box should name now, and its price."""
    convert = _converter(query.operator, query.currency)
    entry, version = _playable(ctx, query)
    return LiveVersion(
        box_id=entry.box_id,
        box_version_id=version.id,
        version_number=version.version,
        price_minor=convert.amount(version.price_minor),
        currency=convert.currency,
    )


def get_snapshot(ctx: ServiceContext, box_version_id: int) -> VersionSnapshot:
    """Any published version's offer, exactly as it was offered: versions are immutable,
    so a superseded or deactivated one is served too."""
    with ctx.uow_factory() as uow:
        published = uow.catalog_reads.published_version(box_version_id)
    if published is None:
        raise UnknownBox(f"box version {box_version_id} does not exist")
    version = published.version
    return VersionSnapshot(
        box_version_id=version.id,
        box_id=version.box_id,
        version_number=version.version,
        name=version.name,
        price_minor=version.price_minor,
        currency=published.currency,
        house_edge_bps=version_house_edge_bps(version),
        prizes=[
            SnapshotPrize(
                item_id=prize.id,
                name=prize.name,
                type=str(prize.type),
                value_minor=prize.value_minor,
                image_url=prize.image_url,
                odds=prize.odds,
            )
            for prize in version.prizes
        ],
    )


# --- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Converter:
    """Operator-currency amounts into ``currency``, as a purchase converts its price."""

    operator_currency: str
    currency: str
    rate: Decimal

    def amount(self, amount_minor: int) -> int:
        return from_operator_currency(
            amount_minor, self.operator_currency, self.currency, self.rate
        )


def _converter(operator: Operator, currency: str | None) -> _Converter:
    wanted = currency or operator.currency
    rate = rate_for(operator, wanted)
    if rate is None:
        raise UnsupportedCurrency(f"{wanted} is not the operator currency nor one with a rate")
    return _Converter(operator.currency, wanted, rate)


def _playable(ctx: ServiceContext, query: BoxQuery) -> tuple[CatalogEntry, BoxVersion]:
    with ctx.uow_factory() as uow:
        entry = uow.catalog_reads.box(query.operator.id, query.box_id)
    if entry is None:
        raise UnknownBox(f"box {query.box_id} does not exist")
    if entry.version is None or not entry.version.active:
        raise BoxNotPlayable(f"box {query.box_id} is inactive or has no current version")
    return entry, entry.version


def _summary(entry: CatalogEntry, version: BoxVersion, convert: _Converter) -> BoxSummary:
    return BoxSummary(
        box_id=entry.box_id,
        name=version.name,
        slug=entry.slug,
        is_active=version.active,
        is_published=True,  # listed with its current version
        version_number=version.version,
        box_version_id=version.id,
        price_minor=convert.amount(version.price_minor),
        currency=convert.currency,
        house_edge_bps=version_house_edge_bps(version),
        image=entry.image,
        custom_attributes=entry.custom_attributes,
    )
