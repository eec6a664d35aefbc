"""The catalog as operators' backends read it: pages of boxes, one box, a published version.

A box's current version is its one version that is not superseded
(``uq_box_versions_one_current``), which is also the index the join to it walks.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, false, func, or_, select, text

from lootbox.domain.catalog import BoxFilters, BoxOrder, CatalogEntry, PublishedVersion
from lootbox.domain.records import BoxVersion, Prize
from lootbox.persistence.models import (
    CURRENT_VERSION,
    BoxRow,
    BoxVersionRow,
    OperatorRow,
    PrizeRow,
)
from lootbox.persistence.repositories import _Repository, prize_record


class CatalogReadRepository(_Repository):
    def boxes_page(
        self,
        operator_id: int,
        filters: BoxFilters,
        order: BoxOrder,
        *,
        descending: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[CatalogEntry], int]:
        """One page of the operator's boxes with their current versions, and how many
        match in all. Ties in the order are broken by box id, ascending."""
        matching = _matching(operator_id, filters)
        total = self.session.scalar(
            matching.with_only_columns(func.count(), maintain_column_froms=True)
        )
        key = BoxVersionRow.name if order is BoxOrder.NAME else BoxVersionRow.price_minor
        rows = self.session.execute(
            matching.order_by(key.desc() if descending else key.asc(), BoxRow.id.asc())
            .offset(offset)
            .limit(limit)
        ).all()
        prizes = self._prizes_of([version.id for _, version in rows])
        entries = [_entry(box, version, prizes.get(version.id, ())) for box, version in rows]
        return entries, int(total or 0)

    def box(self, operator_id: int, box_id: int) -> CatalogEntry | None:
        """The operator's box with its current version (``version`` is ``None`` if it has
        none); ``None`` if there is no such box for this operator."""
        row = self.session.execute(
            select(BoxRow, BoxVersionRow)
            .outerjoin(
                BoxVersionRow,
                (BoxVersionRow.box_id == BoxRow.id) & text(_current("box_versions")),
            )
            .where(BoxRow.id == box_id, BoxRow.operator_id == operator_id)
        ).first()
        if row is None:
            return None
        box, version = row
        if version is None:
            return CatalogEntry(box.id, box.slug, None, box.image, box.custom_attributes)
        return _entry(box, version, self._prizes_of([version.id]).get(version.id, ()))

    def published_version(self, box_version_id: int) -> PublishedVersion | None:
        """Any version ever published (superseded ones too), with its operator's currency."""
        row = self.session.execute(
            select(BoxVersionRow, BoxRow.slug, OperatorRow.currency)
            .join(BoxRow, BoxRow.id == BoxVersionRow.box_id)
            .join(OperatorRow, OperatorRow.id == BoxRow.operator_id)
            .where(BoxVersionRow.id == box_version_id)
        ).first()
        if row is None:
            return None
        version, slug, currency = row
        prizes = self._prizes_of([version.id]).get(version.id, ())
        return PublishedVersion(_version(version, slug, prizes), currency)

    def _prizes_of(self, version_ids: Sequence[int]) -> dict[int, tuple[Prize, ...]]:
        """Each version's prizes, in their published order (the order draws walk)."""
        if not version_ids:
            return {}
        found: dict[int, list[Prize]] = {}
        for row in self.session.scalars(
            select(PrizeRow)
            .where(PrizeRow.box_version_id.in_(version_ids))
            .order_by(PrizeRow.box_version_id, PrizeRow.position)
        ):
            found.setdefault(row.box_version_id, []).append(prize_record(row))
        return {version_id: tuple(prizes) for version_id, prizes in found.items()}


def _current(table: str) -> str:
    return f"{table}.{CURRENT_VERSION}"


def _matching(operator_id: int, filters: BoxFilters) -> Select[BoxRow, BoxVersionRow]:
    stmt = (
        select(BoxRow, BoxVersionRow)
        .join(BoxVersionRow, BoxVersionRow.box_id == BoxRow.id)
        .where(BoxRow.operator_id == operator_id, text(_current("box_versions")))
    )
    if filters.ids is not None:
        stmt = stmt.where(BoxRow.id.in_(filters.ids) if filters.ids else false())
    else:
        stmt = stmt.where(BoxVersionRow.status == "active")  # only what can be adopted
    if filters.names:
        stmt = stmt.where(
            or_(
                *(
                    BoxVersionRow.name.ilike(f"%{_escape_like(name)}%", escape="\\")
                    for name in filters.names
                )
            )
        )
    if filters.slugs:
        stmt = stmt.where(BoxRow.slug.in_(filters.slugs))
    if filters.active:
        stmt = stmt.where(
            BoxVersionRow.status.in_(["active" if a else "inactive" for a in filters.active])
        )
    return stmt


def _escape_like(value: str) -> str:
    """A name filter is a plain substring: ``%`` and ``_`` mean themselves."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _entry(box: BoxRow, version: BoxVersionRow, prizes: Sequence[Prize]) -> CatalogEntry:
    return CatalogEntry(
        box_id=box.id,
        slug=box.slug,
        version=_version(version, box.slug, prizes),
        image=box.image,
        custom_attributes=box.custom_attributes,
    )


def _version(row: BoxVersionRow, slug: str, prizes: Sequence[Prize]) -> BoxVersion:
    return BoxVersion(
        id=row.id,
        box_id=row.box_id,
        box_slug=slug,
        name=row.name,
        version=row.version,
        price_minor=row.price_minor,
        refundable=row.refundable,
        cashback_enabled=row.cashback_enabled,
        cashback_bps=row.cashback_bps,
        active=row.status == "active",
        prizes=tuple(prizes),
    )
