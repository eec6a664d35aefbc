"""history indexes: keyset pages of the money ledger and of opened prepaid rounds

Plain CREATE INDEX blocks writes to the table while it builds: fine at launch sizes. On a
table of many millions of rows, run the release in a quiet window.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:00:20.559113
"""
from alembic import op
import sqlalchemy as sa
import lootbox.persistence.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('money_movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_money_movements_history'))
        batch_op.create_index('ix_money_movements_operator_history', ['operator_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_money_movements_player_history', ['operator_id', 'player_external_id', 'created_at', 'id'], unique=False)

    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.create_index('ix_rounds_operator_openings', ['operator_id', 'updated_at', 'id'], unique=False, postgresql_where=sa.text("mode = 'prepay' AND status = 'settled'"), sqlite_where=sa.text("mode = 'prepay' AND status = 'settled'"))
        batch_op.create_index('ix_rounds_player_openings', ['operator_id', 'player_external_id', 'updated_at', 'id'], unique=False, postgresql_where=sa.text("mode = 'prepay' AND status = 'settled'"), sqlite_where=sa.text("mode = 'prepay' AND status = 'settled'"))


def downgrade() -> None:
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_index('ix_rounds_player_openings', postgresql_where=sa.text("mode = 'prepay' AND status = 'settled'"), sqlite_where=sa.text("mode = 'prepay' AND status = 'settled'"))
        batch_op.drop_index('ix_rounds_operator_openings', postgresql_where=sa.text("mode = 'prepay' AND status = 'settled'"), sqlite_where=sa.text("mode = 'prepay' AND status = 'settled'"))

    with op.batch_alter_table('money_movements', schema=None) as batch_op:
        batch_op.drop_index('ix_money_movements_player_history')
        batch_op.drop_index('ix_money_movements_operator_history')
        batch_op.create_index(batch_op.f('ix_money_movements_history'), ['operator_id', 'player_external_id', 'id'], unique=False)
