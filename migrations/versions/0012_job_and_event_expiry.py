"""Finished jobs expire and old events are purged: CloudStack's ``job.expire.minutes`` and
``event.purge.delay``, an index to find expired jobs, and the totals that keep the metrics of
expunged jobs.

The configuration rows (defaults 1440 minutes and 15 days, as CloudStack's) make
``listConfigurations`` show them and ``updateConfiguration`` change them. The partial index holds finished jobs by completion
time, so that the sweep finds the expired ones without reading the table (``orchestrator.expiry``).
``expired_job_totals`` keeps what expunged jobs counted in the metrics computed from the jobs
table (``orchestrator.metrics``), so that those counters and histograms never go down.

On PostgreSQL the index is built ``CONCURRENTLY`` (outside the migration's transaction): writes
to ``async_jobs`` go on while it reads every finished job once.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

NAME = "ix_async_jobs_finished_completed_at"
FINISHED = sa.text("status <> 0")


def upgrade() -> None:
    op.create_table("expired_job_totals",
                    sa.Column("command", sa.String(64), primary_key=True),
                    sa.Column("status", sa.Integer(), primary_key=True),
                    sa.Column("jobs", sa.BigInteger(), nullable=False),
                    sa.Column("bytes_done", sa.BigInteger(), nullable=False),
                    sa.Column("duration", sa.Text(), nullable=False),
                    sa.Column("run", sa.Text(), nullable=False))
    config = sa.table("configuration", sa.column("name", sa.String), sa.column("value", sa.Text),
                      sa.column("default_value", sa.Text), sa.column("category", sa.String),
                      sa.column("description", sa.Text))
    op.bulk_insert(config, [
        {"name": "job.expire.minutes", "value": "1440", "default_value": "1440", "category": "Advanced",
         "description": "Finished jobs older than this many minutes are expunged (queryAsyncJobResult and "
                        "listAsyncJobs no longer know them); 0 keeps them forever."},
        {"name": "event.purge.delay", "value": "15", "default_value": "15", "category": "Advanced",
         "description": "Events older than this many days are purged; 0 keeps them forever."},
    ])
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(NAME, "async_jobs", ["completed_at"], postgresql_where=FINISHED,
                            postgresql_concurrently=True)
    else:
        op.create_index(NAME, "async_jobs", ["completed_at"], sqlite_where=FINISHED)


def downgrade() -> None:
    op.drop_index(NAME, table_name="async_jobs")
    op.execute("DELETE FROM configuration WHERE name IN ('job.expire.minutes', 'event.purge.delay')")
    op.drop_table("expired_job_totals")
