"""idempotency records: a partial index on expires_at of completed records, for the purge

The worker deletes completed records past ``expires_at`` (``statements.DELETE_EXPIRED_BATCH``).
The old index covered every row, in-progress claims included (their ``expires_at`` is
NULL), so each claim wrote an entry the purge never reads. The new one holds completed
records only, which is exactly what the purge walks, oldest first.

Both statements run CONCURRENTLY (outside a transaction): on a table of millions of rows a
plain CREATE INDEX would block every claim while it builds. A build that failed halfway
leaves an INVALID index, which the DROP … IF EXISTS first clears on the next attempt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_idempotency_records_expired")
        op.execute(
            "CREATE INDEX CONCURRENTLY ix_idempotency_records_expired"
            " ON idempotency_records (expires_at) WHERE state = 'completed'"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_idempotency_records_expires_at")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_idempotency_records_expires_at")
        op.execute(
            "CREATE INDEX CONCURRENTLY ix_idempotency_records_expires_at"
            " ON idempotency_records (expires_at)"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_idempotency_records_expired")
