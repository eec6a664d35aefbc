"""catalog: prize type, image and shippable; box image and custom attributes; one current
version per box, active or inactive

Prizes gain ``type`` (physical, digital or bonus, held by a CHECK), ``image_url`` and
``shippable``. Every existing prize was published before these existed: it becomes what a
catalog entry without them means today, ``digital`` and not shippable.

A box's ``image`` and ``custom_attributes`` are presentation, not part of the offer: they
live on ``boxes`` and change in place, so editing them never supersedes a version a player
may be about to buy.

A box is deactivated by setting its current version's status to ``inactive`` in place
(the version number and id stay). ``uq_box_versions_one_active`` becomes
``uq_box_versions_one_current``: at most one version per box that is not superseded,
active or inactive, so "the current version" is always one row.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 10:00:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    doubled = bind.execute(
        sa.text(
            "SELECT box_id FROM box_versions WHERE status <> 'superseded'"
            " GROUP BY box_id HAVING count(*) > 1 ORDER BY box_id"
        )
    ).scalars().all()
    if doubled:
        raise RuntimeError(
            f"boxes with more than one version that is not superseded: {list(doubled)}."
            " Keep the one that is current (UPDATE box_versions SET status = 'superseded'"
            " WHERE id = <the others>) and run the upgrade again."
        )

    # The server defaults fill the rows already there and are then dropped: every new
    # prize states its type and shippability (the catalog import decides the defaults).
    op.add_column(
        'prizes',
        sa.Column('type', sa.String(length=16), server_default='digital', nullable=False),
    )
    op.add_column('prizes', sa.Column('image_url', sa.String(length=2048), nullable=True))
    op.add_column(
        'prizes',
        sa.Column('shippable', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.alter_column('prizes', 'type', server_default=None)
    op.alter_column('prizes', 'shippable', server_default=None)
    op.create_check_constraint(
        op.f('ck_prizes_type'), 'prizes', "type IN ('physical', 'digital', 'bonus')"
    )

    op.add_column(
        'boxes', sa.Column('image', postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.add_column(
        'boxes',
        sa.Column(
            'custom_attributes',
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.alter_column('boxes', 'custom_attributes', server_default=None)

    op.create_index(
        'uq_box_versions_one_current',
        'box_versions',
        ['box_id'],
        unique=True,
        postgresql_where=sa.text("status <> 'superseded'"),
    )
    op.drop_index(
        'uq_box_versions_one_active',
        table_name='box_versions',
        postgresql_where=sa.text("status = 'active'"),
    )


def downgrade() -> None:
    # An inactive version stays inactive: the old index constrains active ones only.
    op.create_index(
        'uq_box_versions_one_active',
        'box_versions',
        ['box_id'],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.drop_index(
        'uq_box_versions_one_current',
        table_name='box_versions',
        postgresql_where=sa.text("status <> 'superseded'"),
    )
    op.drop_column('boxes', 'custom_attributes')
    op.drop_column('boxes', 'image')
    op.drop_constraint(op.f('ck_prizes_type'), 'prizes', type_='check')
    op.drop_column('prizes', 'shippable')
    op.drop_column('prizes', 'image_url')
    op.drop_column('prizes', 'type')
