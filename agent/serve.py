"""``AgentServer``: host agents plus a threaded werkzeug HTTP server, startable and stoppable.

Used by the CLI (``serve_forever``) and by tests and the embedded system (``start`` in a daemon
thread, ``shutdown`` when done). Port 0 picks a free port; ``port`` and ``url`` tell which.

Operations: ``GET /metrics`` on the same port answers Prometheus text (per host: storage
migrations running, queued, limit and peak; commands by state). Log lines about a command carry
``host`` and ``job`` fields (the command id is the orchestrator's job UUID): request lines get
them from the path, the agent's own lines from their text (``AgentLogFields``).
"""
from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from werkzeug.serving import make_server

from agent.backends.simulated import DEFAULT_CHUNK_SIZE
from agent.commands import RETENTION
from agent.host import HostAgent
from agent.keepalive import KeepAliveHandler, close_connections, track_connections
from agent.server import create_app
from agent.slots import SlotTable

http_log = logging.getLogger("agent.http")
POLL_INTERVAL = 0.1  # seconds; how quickly shutdown() is noticed by the serving thread


_PATH_FIELDS = re.compile(r"^/hosts/([^/?]+)(?:/commands/([^/?]+))?")
_LINE_FIELDS = re.compile(r"^host (\S+) command ([^\s:]+)")
COMMAND_STATES = ("accepted", "running", "succeeded", "failed", "aborted")


class AgentLogFields(logging.Filter):
    """Gives the agent's "host H command C ..." lines the fields ``host`` and ``job`` (= C)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job") and record.name.startswith("agent"):
            match = _LINE_FIELDS.match(record.getMessage())
            if match:
                record.host, record.job = match.groups()
        return True


def install_log_fields() -> None:
    """Add ``AgentLogFields`` to the root logger's handlers (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, AgentLogFields) for f in handler.filters):
            handler.addFilter(AgentLogFields())


class _RequestHandler(KeepAliveHandler):
    """Request lines go to the ``agent.http`` logger (not straight to stderr, no ANSI colours);
    connections are kept alive between requests (``keepalive``)."""

    def log_request(self, code="-", size="-") -> None:
        match = _PATH_FIELDS.match(getattr(self, "path", "") or "")
        extra = {k: v for k, v in zip(("host", "job"), match.groups()) if v} if match else {}
        http_log.info('%s "%s" %s', self.address_string(), self.requestline, getattr(code, "value", code),
                      extra=extra)

    def log(self, type: str, message: str, *args) -> None:
        level = logging.ERROR if type == "error" else logging.INFO
        http_log.log(level, "%s " + message, self.address_string(), *args)


class _HostsCollector:
    """The agent's metrics, read from its host agents at each scrape."""

    GAUGES = (("running", "motion_agent_storage_migrations_running", "Storage migrations running now"),
              ("queued", "motion_agent_storage_migrations_queued", "Commands waiting for a slot"),
              ("maxStorageMigrations", "motion_agent_storage_migrations_limit", "The host's limit"),
              ("peakStorageMigrations", "motion_agent_storage_migrations_peak", "Most ever running at once"))

    def __init__(self, hosts: dict):
        self.hosts = hosts

    def collect(self):
        gauges = {key: GaugeMetricFamily(name, text, labels=["host"]) for key, name, text in self.GAUGES}
        commands = GaugeMetricFamily("motion_agent_commands", "Commands this agent knows, by state",
                                     labels=["host", "state"])
        for name, agent in sorted(self.hosts.items()):
            status = agent.status()
            for key, family in gauges.items():
                family.add_metric([name], status[key])
            for state in COMMAND_STATES:
                commands.add_metric([name, state], len(agent.commands.ids_in({state})))
        yield from gauges.values()
        yield commands


def _with_metrics(app, hosts: dict):
    """``app`` with ``GET /metrics`` in front of it (Prometheus text)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HostsCollector(hosts))

    def wsgi(environ, start_response):
        if environ.get("PATH_INFO") == "/metrics" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            body = generate_latest(registry)
            start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return app(environ, start_response)
    return wsgi


class AgentServer:
    """One agent process: a ``HostAgent`` per host name, all served on one address.

    The hosts share one ``SlotTable`` (a ``MigrateWithStorageCommand`` between two of them counts
    on both). ``zero_copy`` links volume files instead of copying them (benchmarks);
    ``command_retention``: seconds a finished command's record is kept (``agent.commands``). ``fault_plan``
    is a list of ``(host or None for all, fault)`` pairs (see
    ``backends.faults.load_fault_plan``) registered on start.
    """

    def __init__(self, host_names: list[str], root: str | Path, bind: str = "127.0.0.1", port: int = 0,
                 max_storage_migrations: int = 2, bandwidth_mib_s: float | None = None, *,
                 guest_writes_per_s: float = 0.0, fault_plan: list[tuple[str | None, dict]] | None = None,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, zero_copy: bool = False,
                 command_retention: float = RETENTION):
        if not host_names:
            raise ValueError("an agent serves at least one host")
        if len(set(host_names)) != len(host_names):
            raise ValueError(f"duplicate host names in {host_names}")
        unknown = sorted({h for h, _ in fault_plan or () if h is not None and h not in host_names})
        if unknown:
            raise ValueError(f"the fault plan names hosts this agent does not serve: {', '.join(unknown)}")
        self.bind = bind
        self.hosts: dict[str, HostAgent] = {}
        slots = SlotTable()
        try:
            for name in host_names:
                self.hosts[name] = HostAgent(name, root, max_storage_migrations, bandwidth_mib_s,
                                             chunk_size=chunk_size, guest_writes_per_s=guest_writes_per_s,
                                             slots=slots, zero_copy=zero_copy,
                                             command_retention=command_retention)
            for host_name, fault in fault_plan or ():
                for name in ([host_name] if host_name else host_names):
                    self.hosts[name].faults.add(fault)
            app = _with_metrics(create_app(self.hosts), self.hosts)
            self._server = make_server(bind, port, app, threaded=True, request_handler=_RequestHandler)
            track_connections(self._server)
        except BaseException:
            for agent in self.hosts.values():
                agent.close()
            raise
        self.port: int = self._server.server_port
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._shut_down = False

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    def base_url(self, host_name: str) -> str:
        """The base URL of one host's API."""
        return f"{self.url}/hosts/{host_name}"

    def start(self) -> "AgentServer":
        """Serve in a daemon thread; returns self."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._server.serve_forever, args=(POLL_INTERVAL,),
                    name=f"agent-http-{self.port}", daemon=True,
                )
                self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask ``serve_forever`` to return (safe to call from a signal handler)."""
        self._stop_requested.set()

    def serve_forever(self) -> None:
        """Serve until ``request_stop`` or ``shutdown`` is called, then shut down cleanly."""
        self.start()
        # Waiting with a timeout keeps the main thread responsive to signal handlers.
        while not self._stop_requested.wait(0.5):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        """Stop serving, then close every host agent (idempotent)."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            thread = self._thread
        if thread is not None:
            self._server.shutdown()
            thread.join()
        close_connections(self._server)  # no client keeps talking to a stopped server
        self._server.server_close()
        for agent in self.hosts.values():
            agent.close()
        self._stop_requested.set()

    def __enter__(self) -> "AgentServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
