"""Floor for the whole pipeline: the two shared floors chained, with a bare agent between.

``celery_floor.py`` measures the least a Celery + Redis + PostgreSQL pipeline can do per
migration, but the pipeline benchmark must also run an API and a host agent, as separate
processes on the same cores. This floor is the least such a chain can do, built from the shared
floors (copied, since they are not to be edited) and nothing else:

- the API: ``api_floor.py``'s endpoint under ``gunicorn -w 2`` (insert a job row, send a task),
  except that the task it sends is the worker's and carries the volume's id;
- the worker: ``celery_floor.py``'s task and worker (prefork, the same settings), with one HTTP
  call to the agent between its two transactions, on a connection kept per process;
- the agent: a bare HTTP/1.1 server (``http.server``, kept-alive connections) that reads the
  command and answers success, without recording anything;
- the load: C client threads sending ``GET /client/api?command=migrateVolume&volumeid=ID``, a new
  connection per request (gunicorn's sync workers close each), as the pipeline benchmark does.

No signing, no validation, no lookups, no durable records on the agent, no progress, no queue
limits. Figure: migrations/s from the first submission until the last task ended, and the CPU
milliseconds per migration of each process and of the database's backends (those open after a
warm-up of 20 migrations: the API's and the worker's connections).

    python bench/chain_floor.py [N] [WORKERS] [CLIENTS]

Environment: FLOOR_DATABASE_URL, FLOOR_BROKER_URL (as the shared floors). Its own tables
(chain_vol, chain_job), queue (chain) and counter key; it touches nothing else. Prints one line:
    chain-floor n=N workers=W end_to_end_per_s=... submit_per_s=... cpu_ms_api=... ...
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import redis
from celery import Celery

PG = os.environ.get("FLOOR_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("FLOOR_BROKER_URL", "redis://127.0.0.1:6379/14")
AGENT = os.environ.get("CHAIN_AGENT_ADDRESS", "127.0.0.1:0")  # host:port, set by main() for its children
DONE_KEY = "chain:done"
QUEUE = "chain"
WARM_UP = 20

celery = Celery("chain_floor", broker=BROKER)
celery.conf.update(task_acks_late=True, worker_prefetch_multiplier=4, task_ignore_result=True,
                   task_default_queue=QUEUE, worker_hijack_root_logger=False)

# -- the worker: celery_floor.py's task, with the agent call between its transactions ------------

_conn = None
_redis = None
_agent = None


def _pg():
    global _conn
    if _conn is None:
        _conn = psycopg.connect(PG)
    return _conn


def _counter():
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(BROKER)
    return _redis


def _agent_call(vid):
    """POST the command on this process's kept connection (opened again once if the agent closed it)."""
    global _agent
    body = json.dumps({"command": "MigrateVolumeCommand", "volume": vid}).encode()
    for attempt in (1, 2):
        if _agent is None:
            host, port = AGENT.rsplit(":", 1)
            _agent = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            _agent.request("POST", "/commands", body, {"Content-Type": "application/json"})
            answer = _agent.getresponse()
            result = json.loads(answer.read())
            if answer.status != 200 or result.get("status") != "succeeded":
                raise RuntimeError(f"agent answered {answer.status}: {result}")
            return result
        except (http.client.HTTPException, OSError):
            _agent.close()
            _agent = None
            if attempt == 2:
                raise


@celery.task(name="chain.migrate")
def migrate(jid, vid):
    c = _pg()
    with c.transaction():
        row = c.execute("update chain_vol set state='Migrating' where id=%s and state='Ready' returning id",
                        (vid,)).fetchone()
        if row is None:
            raise RuntimeError(f"volume {vid} was not Ready")
        c.execute("update chain_job set status=0, phase=1 where id=%s", (jid,))
    _agent_call(vid)
    with c.transaction():
        c.execute("update chain_vol set state='Ready', pool=pool+1 where id=%s and state='Migrating'", (vid,))
        c.execute("update chain_job set status=1 where id=%s", (jid,))
    _counter().incr(DONE_KEY)


# -- the API: api_floor.py's endpoint, sending the worker's task ---------------------------------

def _create_app():
    import psycopg_pool
    from flask import Flask, jsonify, request

    api = Flask(__name__)
    pool = psycopg_pool.ConnectionPool(PG, min_size=1, max_size=4, open=True)

    @api.get("/client/api")
    def enqueue():
        vid = int(request.args["volumeid"])
        with pool.connection() as c:
            jid = c.execute("insert into chain_job(vol, status, phase) values (%s, 0, 0) returning id",
                            (vid,)).fetchone()[0]
        celery.send_task("chain.migrate", args=[jid, vid], queue=QUEUE)
        return jsonify(migratevolumeresponse={"jobid": str(jid)})

    @api.get("/hello")
    def hello():
        return jsonify(ok=True)

    return api


if os.environ.get("CHAIN_ROLE") == "api":
    app = _create_app()  # gunicorn chain_floor:app


# -- the agent: a bare HTTP/1.1 server that answers every command with its success ---------------

class _AgentHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real agent
    disable_nagle_algorithm = True

    def do_POST(self):
        command = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        body = json.dumps({"status": "succeeded", "volume": command.get("volume")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # readiness
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve_agent(port):
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), _AgentHandler).serve_forever()


# -- the run -------------------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid):
    """User + system CPU seconds of a process and its descendants so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for tid in os.listdir(f"/proc/{p}/task"):
                todo += [int(x) for x in open(f"/proc/{p}/task/{tid}/children").read().split()]
        except (OSError, IndexError, ValueError):
            pass
    return total


def _wait_http(address, path, what):
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"chain floor: {what} did not start within 60 s")
        time.sleep(0.05)


def _submit(address, ids, clients):
    host, port = address.rsplit(":", 1)

    def one(vid):
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            conn.request("GET", f"/client/api?command=migrateVolume&volumeid={vid}")
            answer = conn.getresponse()
            answer.read()
        finally:
            conn.close()
        if answer.status != 200:
            raise SystemExit(f"chain floor: the API answered {answer.status}")

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, ids))


def _wait_done(r, count, procs):
    deadline = time.perf_counter() + 600
    while int(r.get(DONE_KEY) or 0) < count:
        if time.perf_counter() > deadline:
            raise SystemExit("chain floor: did not finish within 600 s")
        if any(p.poll() is not None for p in procs.values()):
            raise SystemExit("chain floor: a process exited")
        time.sleep(0.01)


def _backends():
    """The database's backends now, by pid (their CPU is the database's share of the run)."""
    with psycopg.connect(PG, autocommit=True) as c:
        return [row[0] for row in c.execute("select pid from pg_stat_activity where datname = current_database() "
                                            "and pid <> pg_backend_pid()")]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    workers = sys.argv[2] if len(sys.argv) > 2 else "2"
    clients = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    with psycopg.connect(PG, autocommit=True) as c:
        c.execute("drop table if exists chain_vol; drop table if exists chain_job")
        c.execute("create table chain_vol(id int primary key, state text not null, pool int not null)")
        c.execute("create table chain_job(id bigserial primary key, vol int not null, status int not null, "
                  "phase int not null, created timestamptz default now())")
        c.execute("insert into chain_vol select g, 'Ready', 0 from generate_series(1, %s) g", (n + WARM_UP,))
    r = _counter()
    r.delete(DONE_KEY, QUEUE)
    here = os.path.dirname(os.path.abspath(__file__))
    agent_address, api_address = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "CHAIN_AGENT_ADDRESS": agent_address}
    procs = {
        "agent": subprocess.Popen([sys.executable, __file__, "agent", agent_address.rsplit(":", 1)[1]], env=env),
        "api": subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", api_address, "--log-level",
                                 "warning", "--chdir", here, "chain_floor:app"], env={**env, "CHAIN_ROLE": "api"}),
        "worker": subprocess.Popen([sys.executable, "-m", "celery", "-A", "chain_floor", "worker", "-Q", QUEUE,
                                    "-c", workers, "-P", "prefork", "-l", "warning", "--without-gossip",
                                    "--without-mingle", "--without-heartbeat"], cwd=here, env=env),
    }
    try:
        _wait_http(agent_address, "/", "the agent")
        _wait_http(api_address, "/hello", "the API")
        time.sleep(4)  # the worker's start, as celery_floor.py waits for it
        # warm-up (imports, connections), as the pipeline benchmark warms its stack
        _submit(api_address, range(n + 1, n + WARM_UP + 1), clients)
        _wait_done(r, WARM_UP, procs)
        pg = _backends()
        cpu0 = {name: _cpu_seconds(p.pid) for name, p in procs.items()}
        pg0 = {pid: _cpu_seconds(pid) for pid in pg}
        harness0 = time.process_time()
        t0 = time.perf_counter()
        _submit(api_address, range(1, n + 1), clients)
        t1 = time.perf_counter()
        _wait_done(r, WARM_UP + n, procs)
        t2 = time.perf_counter()
        cpu = {name: _cpu_seconds(p.pid) - cpu0[name] for name, p in procs.items()}
        cpu["harness"] = time.process_time() - harness0
        cpu["postgres"] = sum(_cpu_seconds(pid) - pg0[pid] for pid in pg)
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        r.delete(QUEUE)
    print(f"chain-floor n={n} workers={workers} end_to_end_per_s={n / (t2 - t0):.1f} "
          f"submit_per_s={n / (t1 - t0):.1f} "
          + " ".join(f"cpu_ms_{k}={1000 * v / n:.2f}" for k, v in sorted(cpu.items())), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["agent"]:
        serve_agent(int(sys.argv[2]))
    else:
        main()
