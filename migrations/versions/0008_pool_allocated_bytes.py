"""The bytes allocated on each pool, kept in ``storage_pools.allocated_bytes`` by triggers on
``volumes``, instead of summed over the volumes on every request.

findHostsForMigration ranks thousands of pools of a zone by room on every request; summing the
zone's volumes per pool for it was a third of the database's work. The triggers keep the column
equal to the sum of the sizes of the volumes on the pool, in the same transaction as the change,
whoever makes it (the worker finishing a migration, the truth reconciler, an inventory load):

- PostgreSQL: one statement-level trigger each for INSERT and DELETE (an inventory load of
  100,000 volumes updates each pool once per statement, not once per volume), a row-level one for
  UPDATE OF pool_id, size, and one for TRUNCATE. Each locks the pools it changes in id order first
  (FOR NO KEY UPDATE, as admission does), so two transactions moving volumes between the same
  pools wait for each other instead of deadlocking.
- SQLite: row-level triggers (SQLite serialises writers anyway).

The upgrade computes the column from the volumes once.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BACKFILL = """
UPDATE storage_pools SET allocated_bytes =
    COALESCE((SELECT SUM(size) FROM volumes WHERE volumes.pool_id = storage_pools.id), 0)
"""

POSTGRES = [
    # INSERT and DELETE: the statement's rows, summed per pool (``changed`` is the transition table).
    """
    CREATE FUNCTION motion_pool_bytes_rows() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE sign bigint := CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END;
    BEGIN
        PERFORM 1 FROM storage_pools WHERE id IN (SELECT pool_id FROM changed) ORDER BY id FOR NO KEY UPDATE;
        UPDATE storage_pools p SET allocated_bytes = p.allocated_bytes + sign * d.bytes
          FROM (SELECT pool_id, SUM(size) AS bytes FROM changed GROUP BY pool_id) d
         WHERE p.id = d.pool_id;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER volumes_pool_bytes_insert AFTER INSERT ON volumes REFERENCING NEW TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION motion_pool_bytes_rows()",
    "CREATE TRIGGER volumes_pool_bytes_delete AFTER DELETE ON volumes REFERENCING OLD TABLE AS changed "
    "FOR EACH STATEMENT EXECUTE FUNCTION motion_pool_bytes_rows()",
    # A volume moved to another pool, or resized.
    """
    CREATE FUNCTION motion_pool_bytes_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.pool_id IS DISTINCT FROM OLD.pool_id OR NEW.size IS DISTINCT FROM OLD.size THEN
            PERFORM 1 FROM storage_pools WHERE id IN (OLD.pool_id, NEW.pool_id) ORDER BY id FOR NO KEY UPDATE;
            UPDATE storage_pools SET allocated_bytes = allocated_bytes
                   + CASE WHEN id = NEW.pool_id THEN NEW.size ELSE 0 END
                   - CASE WHEN id = OLD.pool_id THEN OLD.size ELSE 0 END
             WHERE id IN (OLD.pool_id, NEW.pool_id);
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER volumes_pool_bytes_update AFTER UPDATE OF pool_id, size ON volumes "
    "FOR EACH ROW EXECUTE FUNCTION motion_pool_bytes_moved()",
    """
    CREATE FUNCTION motion_pool_bytes_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE storage_pools SET allocated_bytes = 0 WHERE allocated_bytes <> 0;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER volumes_pool_bytes_truncate AFTER TRUNCATE ON volumes "
    "FOR EACH STATEMENT EXECUTE FUNCTION motion_pool_bytes_truncated()",
]

SQLITE = [
    """
    CREATE TRIGGER volumes_pool_bytes_insert AFTER INSERT ON volumes BEGIN
        UPDATE storage_pools SET allocated_bytes = allocated_bytes + NEW.size WHERE id = NEW.pool_id;
    END
    """,
    """
    CREATE TRIGGER volumes_pool_bytes_delete AFTER DELETE ON volumes BEGIN
        UPDATE storage_pools SET allocated_bytes = allocated_bytes - OLD.size WHERE id = OLD.pool_id;
    END
    """,
    """
    CREATE TRIGGER volumes_pool_bytes_update AFTER UPDATE OF pool_id, size ON volumes BEGIN
        UPDATE storage_pools SET allocated_bytes = allocated_bytes - OLD.size WHERE id = OLD.pool_id;
        UPDATE storage_pools SET allocated_bytes = allocated_bytes + NEW.size WHERE id = NEW.pool_id;
    END
    """,
]


def upgrade() -> None:
    op.add_column("storage_pools", sa.Column("allocated_bytes", sa.BigInteger(), nullable=False,
                                             server_default="0"))
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("LOCK TABLE volumes IN SHARE MODE")  # no volume moves between the sum and the triggers
    op.execute(BACKFILL)
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for trigger in ("insert", "delete", "update", "truncate"):
            op.execute(f"DROP TRIGGER volumes_pool_bytes_{trigger} ON volumes")
        for function in ("rows", "moved", "truncated"):
            op.execute(f"DROP FUNCTION motion_pool_bytes_{function}()")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER volumes_pool_bytes_{trigger}")
    with op.batch_alter_table("storage_pools") as batch:
        batch.drop_column("allocated_bytes")
