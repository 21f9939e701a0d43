"""Drop ``ix_async_jobs_status``: ``ix_async_jobs_status_phase`` (status, phase) serves every
query on the status alone, as its first column.

Every new job, and each of the two updates that change a job's phase or status (dispatched, then
done), wrote an entry in both; now in one. Dropping the index locks ``async_jobs`` (ACCESS EXCLUSIVE) only for the moment
it takes to remove the index's file.

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_async_jobs_status", table_name="async_jobs")


def downgrade() -> None:
    op.create_index("ix_async_jobs_status", "async_jobs", ["status"])
