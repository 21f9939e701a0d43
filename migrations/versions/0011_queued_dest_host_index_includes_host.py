"""The queued VM moves by destination host carry their source host, for an index-only count.

A queued job's ``queueposition`` counts the older queued jobs that use one of its hosts in two
parts: those from one of its hosts (``ix_async_jobs_queued_host``), then the VM moves to one of
its hosts from another (``ix_async_jobs_queued_dest_host``). The second part must tell the
source host apart, so that index now carries it (PostgreSQL's ``INCLUDE``): both counts can then
be answered from their index alone wherever the visibility map says the table's pages need not be
read. SQLite has no ``INCLUDE``; its index is unchanged.

Rebuilding the index locks writes to ``async_jobs`` (SHARE lock) while it is built: an index of
the queued VM moves only, small however many jobs have ended.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NAME = "ix_async_jobs_queued_dest_host"
QUEUED = sa.text("status = 0 AND phase = 'queued' AND dest_host_id IS NOT NULL")


def _rebuild(include: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="async_jobs")
    op.create_index(NAME, "async_jobs", ["dest_host_id", "id"], postgresql_where=QUEUED,
                    postgresql_include=include)


def upgrade() -> None:
    _rebuild(["host_id"])


def downgrade() -> None:
    _rebuild([])
