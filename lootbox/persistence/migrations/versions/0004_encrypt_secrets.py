"""secrets at rest: API key secrets and wallet secrets become Fernet tokens

The columns widen to text (a token is about 4/3 of the secret plus 76 characters) and
every plaintext value is sealed with the first of LOOTBOX_ENCRYPTION_KEYS. A value that
one of the keys already opens is left as it is, so the upgrade can be run again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 13:30:01
"""
from alembic import context, op
import sqlalchemy as sa

from lootbox.persistence.secrets import SecretBox, environment_secret_box


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = (("api_keys", "secret", 128), ("operators", "wallet_secret", 512))


def _box() -> SecretBox:
    box = context.config.attributes.get("secret_box")
    return box if isinstance(box, SecretBox) else environment_secret_box()


def _rewrite(table: str, column: str, change) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, {column} FROM {table}")).all()
    for row_id, value in rows:
        new = change(value)
        if new != value:
            bind.execute(
                sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id"),
                {"value": new, "id": row_id},
            )


def _has_rows() -> bool:
    bind = op.get_bind()
    return any(
        bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() for table, _, _ in COLUMNS
    )


def upgrade() -> None:
    for table, column, length in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column, existing_type=sa.String(length=length), type_=sa.Text(),
                existing_nullable=False,
            )
    if not _has_rows():
        return  # a new database: nothing to seal, and no key needed yet
    box = _box()
    for table, column, _ in COLUMNS:
        _rewrite(table, column, lambda value: value if box.opens(value) else box.seal(value))


def downgrade() -> None:
    if _has_rows():
        box = _box()
        for table, column, _ in COLUMNS:
            _rewrite(table, column, box.open)
    for table, column, length in COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                column, existing_type=sa.Text(), type_=sa.String(length=length),
                existing_nullable=False,
            )
