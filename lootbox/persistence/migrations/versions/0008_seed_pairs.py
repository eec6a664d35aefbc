"""provably fair draws: seed pairs per player, and the pair and nonce of every drawn round

``seed_pairs`` holds one *current* pair per (operator, player), enforced by a partial
unique index, and the revealed ones before it. The server seed is a Fernet token (sealed
by the app's ``SecretBox``, like the other secrets) until it is revealed; its SHA-256,
the commitment players see, is stored in the clear. ``next_nonce`` is the nonce the next
drawn round takes.

A drawn round records the pair and the nonce it was drawn with; ``(seed_pair_id, nonce)``
is unique, so no two rounds ever share a draw, whatever races. Rounds drawn before this
revision have neither.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 19:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'seed_pairs',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('operator_id', sa.BigInteger(), nullable=False),
        sa.Column('player_external_id', sa.String(length=190), nullable=False),
        sa.Column('server_seed', sa.Text(), nullable=False),
        sa.Column('server_seed_hash', sa.String(length=64), nullable=False),
        sa.Column('client_seed', sa.String(length=64), nullable=False),
        sa.Column('next_nonce', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revealed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('current', 'revealed')", name=op.f('ck_seed_pairs_state')),
        sa.CheckConstraint('next_nonce >= 0', name=op.f('ck_seed_pairs_next_nonce_non_negative')),
        sa.CheckConstraint(
            "(state = 'revealed') = (revealed_at IS NOT NULL)",
            name=op.f('ck_seed_pairs_revealed_when'),
        ),
        sa.ForeignKeyConstraint(
            ['operator_id'], ['operators.id'], name=op.f('fk_seed_pairs_operator_id_operators')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_seed_pairs')),
        sa.UniqueConstraint(
            'operator_id',
            'player_external_id',
            'server_seed_hash',
            name=op.f('uq_seed_pairs_operator_id_player_external_id_server_seed_hash'),
        ),
    )
    op.create_index(
        'uq_seed_pairs_one_current',
        'seed_pairs',
        ['operator_id', 'player_external_id'],
        unique=True,
        postgresql_where=sa.text("state = 'current'"),
    )
    op.add_column('rounds', sa.Column('seed_pair_id', sa.BigInteger(), nullable=True))
    op.add_column('rounds', sa.Column('nonce', sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f('fk_rounds_seed_pair_id_seed_pairs'), 'rounds', 'seed_pairs', ['seed_pair_id'], ['id']
    )
    op.create_unique_constraint(op.f('uq_rounds_seed_pair_id_nonce'), 'rounds', ['seed_pair_id', 'nonce'])
    op.create_check_constraint(
        op.f('ck_rounds_drawn_with_a_pair'),
        'rounds',
        '(seed_pair_id IS NULL) = (nonce IS NULL)',
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_rounds_drawn_with_a_pair'), 'rounds', type_='check')
    op.drop_constraint(op.f('uq_rounds_seed_pair_id_nonce'), 'rounds', type_='unique')
    op.drop_constraint(op.f('fk_rounds_seed_pair_id_seed_pairs'), 'rounds', type_='foreignkey')
    op.drop_column('rounds', 'nonce')
    op.drop_column('rounds', 'seed_pair_id')
    op.drop_index('uq_seed_pairs_one_current', table_name='seed_pairs')
    op.drop_table('seed_pairs')
