"""operator slugs: every existing slug must match the rule new ones are held to

Slugs name operators in the CLI and the logs. One with a ``:`` once let two operators'
Redis idempotency keys meet (docs/security.md); new slugs are checked by onboarding, and
this refuses to upgrade a database holding one that would not pass, naming it, instead
of carrying it forward silently.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 13:30:00
"""
import re

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def upgrade() -> None:
    slugs = op.get_bind().execute(sa.text("SELECT slug FROM operators")).scalars()
    invalid = sorted(slug for slug in slugs if not SLUG.fullmatch(slug))
    if invalid:
        raise RuntimeError(
            f"operators with slugs that are no longer valid: {invalid}. A slug is 1 to 63"
            " lowercase letters, digits and '-', starting with a letter or digit. Rename"
            " them (UPDATE operators SET slug = '<new>' WHERE slug = '<old>'; the operator"
            " keeps its id, keys and history) and run the upgrade again."
        )


def downgrade() -> None:
    pass
