"""The embedded default: API, worker, scheduler and host agents in one process, no servers.

SQLite in the data directory, Celery on its in-process ``memory://`` broker with a thread-pool
worker, one agent server for every host of the inventory. It runs the same code as production;
only the transports differ. ``cloudstack.ini`` in the data directory lets ``cs`` talk to it.
"""
from __future__ import annotations

import configparser
import json
import logging
import threading
from pathlib import Path

from sqlalchemy import func, select
from werkzeug.serving import make_server

import migrations
from agent.serve import AgentServer
from api import create_app
from orchestrator import accounts, inventory, models, reconcile
from orchestrator.config import Settings, sqlite_url
from orchestrator.db import Database
from orchestrator.provision import provision_volumes
from workers.agent_client import AgentClient
from workers.app import Runtime, celery_enqueuer, create_celery

log = logging.getLogger(__name__)
DEMO_INVENTORY = Path(__file__).with_name("demo-inventory.yaml")


class EmbeddedSystem:
    def __init__(self, data_dir: str | Path, port: int = 8080, bind: str = "127.0.0.1",
                 inventory_file: str | Path | None = None, bandwidth_mib_s: float | None = None,
                 worker_threads: int = 4):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.bind = bind
        self.inventory_file = Path(inventory_file) if inventory_file else DEMO_INVENTORY
        self.bandwidth = bandwidth_mib_s
        self.worker_threads = worker_threads
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.db: Database | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.bind}:{self.port}/client/api"

    @property
    def ini_path(self) -> Path:
        return self.data_dir / "cloudstack.ini"

    @property
    def agent_root(self) -> Path:
        return self.data_dir / "agent"

    def start(self) -> "EmbeddedSystem":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = sqlite_url(self.data_dir)
        migrations.upgrade(url)
        self.db = Database(url)
        self._load_inventory()
        key = self._admin_key()
        with self.db.uow() as uow:
            hosts = list(uow.session.scalars(select(models.Host.name).order_by(models.Host.id)))
        self.agents = AgentServer(hosts, self.agent_root, bind=self.bind, port=0,
                                  bandwidth_mib_s=self.bandwidth).start()
        self.settings = Settings(database_url=url, broker_url="memory://localhost/", data_dir=str(self.data_dir),
                                 agent_url=self.agents.url + "/hosts/{host}", worker_id="embedded")
        provision_volumes(self.db, AgentClient(), self.settings)
        self.celery = create_celery(self.settings, Runtime(self.settings, self.db))
        self.celery.set_default()  # the in-process worker finds its tasks in the default app
        self.enqueue = celery_enqueuer(self.settings, self.celery)
        self.worker = self.celery.WorkController(pool_cls="threads", concurrency=self.worker_threads,
                                                 loglevel="WARNING", without_heartbeat=True,
                                                 without_mingle=True, without_gossip=True)
        self._spawn("worker", self.worker.start)
        app = create_app(self.settings, self.db, self.enqueue)
        # werkzeug's access log would print whole query strings (apiKey, signature); the API logs
        # each request itself, without credentials.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.http = make_server(self.bind, self.port, app, threaded=True)
        self.port = self.http.server_port
        self._spawn("api", self.http.serve_forever)
        self._spawn("scheduler", self._scheduler)
        self._write_ini(key)
        return self

    def _spawn(self, name: str, target) -> None:
        thread = threading.Thread(target=target, name=f"motion-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _scheduler(self) -> None:
        """The sweep of orchestrator.reconcile, every few seconds, as beat does in production."""
        while not self._stop.wait(5.0):
            try:
                reconcile.sweep(self.db, self.enqueue, AgentClient(), self.settings)
            except Exception:  # keep the scheduler alive; the next round retries
                log.exception("scheduler round failed")

    def _load_inventory(self) -> None:
        with self.db.uow() as uow:
            empty = not uow.session.scalar(select(func.count()).select_from(models.Host))
        if empty:
            inventory.load_file(self.db, self.inventory_file)

    def _admin_key(self) -> dict:
        """Reuse the key of an existing cloudstack.ini if it is still valid, else make one."""
        if self.ini_path.exists():
            ini = configparser.ConfigParser()
            ini.read(self.ini_path)
            key = ini.get("cloudstack", "key", fallback=None)
            with self.db.uow() as uow:
                user = accounts.user_by_api_key(uow.session, key) if key else None
                if user is not None and user.account.account_type == 1:
                    return {"apikey": user.api_key, "secretkey": user.secret_key}
        with self.db.uow() as uow:
            key = accounts.create_key(uow.session, "admin", "admin")
            uow.commit()
        return key

    def _write_ini(self, key: dict) -> None:
        ini = configparser.ConfigParser()
        ini["cloudstack"] = {"endpoint": self.endpoint, "key": key["apikey"],
                             "secret": key["secretkey"], "timeout": "30"}
        tmp = self.ini_path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            ini.write(fh)
        tmp.chmod(0o600)
        tmp.replace(self.ini_path)
        self.key = key
        # Where the pieces listen, for tools and tests (the agents' port is chosen at start).
        (self.data_dir / "endpoints.json").write_text(json.dumps(
            {"api": self.endpoint, "agent": self.agents.url, "agent_root": str(self.agent_root)}))

    def stop(self) -> None:
        self._stop.set()
        if getattr(self, "celery", None):  # running jobs stay pending and resume at next start
            self.celery.motion_runtime.stopping.set()
        if getattr(self, "http", None):
            self.http.shutdown()
        if getattr(self, "worker", None):
            # A warm stop waits for running jobs; do not let one hold the shutdown forever. A job
            # cut short stays pending with its lease and is resumed by the next owner.
            stopper = threading.Thread(target=self.worker.stop, daemon=True)
            stopper.start()
            stopper.join(timeout=5)
        if getattr(self, "agents", None):
            self.agents.shutdown()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.db is not None:
            self.db.dispose()

    def __enter__(self) -> "EmbeddedSystem":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
