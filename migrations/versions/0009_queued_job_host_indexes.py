"""Indexes for a queued job's queue position: the queued jobs of a host, by source and by
destination host, in id order.

``queryAsyncJobResult`` answers a queued job's ``queueposition`` by counting the queued jobs
submitted before it that use one of its hosts. With only (status, phase) to go by, that count
visits every queued job (a thousand queued jobs: ~0.5 ms of database CPU per poll); with these
partial indexes it visits the host's own queued jobs. They hold queued jobs only (and only those
with a destination host in the second, i.e. VM migrations), so they stay small however many jobs
have ended. A query uses them only when it names the status and phase as literals (a parameter
could be anything, so a generic plan cannot use a partial index); ``host IN (...)`` implies the
host is not null.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None



def upgrade() -> None:
    for name, column in (("ix_async_jobs_queued_host", "host_id"), ("ix_async_jobs_queued_dest_host", "dest_host_id")):
        queued = sa.text(f"status = 0 AND phase = 'queued' AND {column} IS NOT NULL")
        op.create_index(name, "async_jobs", [column, "id"], postgresql_where=queued, sqlite_where=queued)


def downgrade() -> None:
    op.drop_index("ix_async_jobs_queued_dest_host", table_name="async_jobs")
    op.drop_index("ix_async_jobs_queued_host", table_name="async_jobs")
