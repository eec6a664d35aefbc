"""the database holds onboarding's bounds: cashback 0..10000 bps, slugs of the slug rule

Onboarding and the catalog import refuse these values; the CHECKs make sure no other
writer (a script, a hand-run UPDATE) can put them back, as the money invariants are held
elsewhere. Rows already outside the bounds stop the upgrade, named, instead of failing
inside ALTER TABLE.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 15:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BPS_TABLES = ("operators", "box_versions", "prizes")
BPS_OLD = "cashback_bps IS NULL OR cashback_bps >= 0"
BPS_NEW = "cashback_bps IS NULL OR cashback_bps BETWEEN 0 AND 10000"
SLUG = "slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'"


def upgrade() -> None:
    bind = op.get_bind()
    outside = {
        table: bind.execute(sa.text(f"SELECT count(*) FROM {table} WHERE NOT ({BPS_NEW})")).scalar()
        for table in BPS_TABLES
    }
    outside = {table: count for table, count in outside.items() if count}
    if outside:
        raise RuntimeError(
            f"rows with cashback_bps above 10000 (100 %): {outside}. Set them to what was"
            " meant (flask --app app operators update SLUG --cashback-bps N, or import the"
            " box again) and run the upgrade again."
        )
    for table in BPS_TABLES:
        op.drop_constraint(op.f(f"ck_{table}_cashback_bps"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_cashback_bps"), table, BPS_NEW)
    op.create_check_constraint(op.f("ck_operators_slug"), "operators", SLUG)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_operators_slug"), "operators", type_="check")
    for table in BPS_TABLES:
        op.drop_constraint(op.f(f"ck_{table}_cashback_bps"), table, type_="check")
        op.create_check_constraint(op.f(f"ck_{table}_cashback_bps"), table, BPS_OLD)
