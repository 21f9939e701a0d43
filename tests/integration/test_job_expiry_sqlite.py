"""Job expiry and event purge on SQLite (the embedded default): the same statements as on
PostgreSQL (``tests/integration/test_job_expiry_pg.py``) find, and only find, finished jobs past
``job.expire.minutes`` and events past ``event.purge.delay``."""
from datetime import timedelta

from sqlalchemy import select

import migrations
from orchestrator import expiry, models
from orchestrator.config import Settings
from orchestrator.db import Database
from orchestrator.motion import migrate_volume
from orchestrator.runner import Runner
from tests.helpers import admin_caller, ids, load_small


class Agent:
    def post_command(self, base_url, payload):
        return {"id": payload["id"], "state": "succeeded", "bytesDone": 1, "bytesTotal": 1,
                "result": {"volumePath": "p.vhdx"}}


def test_finished_jobs_and_old_events_go_on_sqlite(tmp_path):
    migrations.upgrade(f"sqlite:///{tmp_path}/motion.db")  # the schema as the embedded system makes it
    db = Database(f"sqlite:///{tmp_path}/motion.db")
    load_small(db)
    conf = Settings(database_url=db.url, worker_id="w", poll_interval=0.01, agent_url="http://a.invalid/{host}")
    [vol] = ids(db, models.Volume, "vm1-root")
    jobs = []
    for pool, minutes in (("c1-gold-2", 1441), ("c1-gold", 1439)):
        [dest] = ids(db, models.StoragePool, pool)
        queued = []
        migrate_volume(db, queued.append, admin_caller(db), vol, dest, True, {})
        assert Runner(db, Agent(), conf).run(queued[0]) == "succeeded"
        with db.uow() as uow:
            uow.session.get(models.AsyncJob, queued[0]).completed_at -= timedelta(minutes=minutes)
            uow.commit()
        jobs.append(queued[0])

    assert expiry.expire_finished(db) == 1
    with db.uow() as uow:
        assert list(uow.session.scalars(select(models.AsyncJob.id))) == [jobs[1]]
        events = list(uow.session.scalars(select(models.Event).order_by(models.Event.id)))
        for event in events[:2]:
            event.created -= timedelta(days=16)
        uow.commit()
    assert expiry.purge_events(db) == 2
    with db.uow() as uow:
        assert list(uow.session.scalars(select(models.Event.id).order_by(models.Event.id))) == [
            e.id for e in events[2:]]
    db.dispose()
