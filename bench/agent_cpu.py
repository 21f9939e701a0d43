"""Agent CPU: what one zero-copy ``MigrateVolumeCommand`` costs the host agent's process, in CPU ms.

The pipeline's figure for the agent mixes it with everything else on a busy 2-core machine; this
measures the agent alone. A host agent process (``python -m agent --zero-copy``, as the pipeline
starts it) serves ``--hosts`` hosts; ``--clients`` threads, each with its own kept-alive
``requests.Session`` like the worker's ``AgentClient``, post N migrations with ``?wait=5`` (the
answer is the finished record, as for the worker) and move each volume back and forth between
two pools. The figure is the agent process's user + system CPU (``/proc/<pid>/stat``) over the
round, per command; the client's own CPU is not in it. No floor: compare trees. ``--tree
NAME=DIR`` (repeatable) runs the agent of another checkout, e.g. the commit before a change;
rounds alternate between the trees, so both see the same machine load, and medians are reported.

    python bench/agent_cpu.py --n 2000 --repeat 3 --tree before=/work/wt-base --tree after=.
"""
from __future__ import annotations

import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402

from bench import _common as c  # noqa: E402

VOLUME_SIZE = 64 * 1024
WAIT = 5  # seconds the agent may hold an answer until the command ends (instant here)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Client(threading.Thread):
    """Moves its own volumes back and forth, one command at a time, until it has sent ``count``."""

    def __init__(self, base: str, volumes: list[dict], pools: list[dict], count: int):
        super().__init__(daemon=True)
        self.base, self.volumes, self.pools, self.count = base, volumes, pools, count
        self.session = requests.Session()
        self.session.trust_env = False
        self.failed: list[str] = []

    def migrate(self, volume: dict) -> None:
        src, dst = self.pools[volume["where"]], self.pools[1 - volume["where"]]
        body = {"id": str(uuid.uuid4()), "type": "MigrateVolumeCommand", "volumeId": volume["id"],
                "volumePath": volume["path"], "srcPool": src, "pool": dst, "attachedVmName": None, "wait": 3600}
        record = self.session.post(f"{self.base}/commands?wait={WAIT}", json=body, timeout=30).json()
        if record.get("state") != "succeeded":
            self.failed.append(f"{body['id']}: {record}")
            return
        volume["where"] = 1 - volume["where"]

    def run(self) -> None:
        for i in range(self.count):
            self.migrate(self.volumes[i % len(self.volumes)])


class Agent:
    """One agent process of one tree, with its hosts' volumes created and their current pools known."""

    def __init__(self, procs: c.Procs, name: str, tree: Path, root: Path, hosts: int, clients: int):
        self.port = c.free_port()
        self.hosts = [f"hv-{i + 1}" for i in range(hosts)]
        argv = [sys.executable, "-m", "agent", "--root", str(root), "--port", str(self.port), "--zero-copy"]
        for host in self.hosts:
            argv += ["--host", host]
        self.proc = procs.start(name, argv, {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"},
                                cwd=tree)
        c.wait_for(lambda: c.http_up(f"http://127.0.0.1:{self.port}/hosts"), 60, f"the agent of {name}")
        self.pools = [{"uuid": str(uuid.uuid4()), "path": f"/pools/{p}", "type": "Filesystem"} for p in "ab"]
        # Each client thread owns a few volumes of one host: one command per volume at a time.
        self.owned: list[tuple[str, list[dict]]] = []
        for k in range(clients):
            host = self.hosts[k % hosts]
            base = f"http://127.0.0.1:{self.port}/hosts/{host}"
            volumes = []
            for v in range(4):
                volume = {"id": str(uuid.uuid4()), "path": f"c{k}-v{v}.vhdx", "where": 0}
                answer = requests.post(f"{base}/volumes", json={"id": volume["id"], "path": volume["path"],
                                                                 "pool": self.pools[0], "size": VOLUME_SIZE},
                                       timeout=30)
                answer.raise_for_status()
                volumes.append(volume)
            self.owned.append((base, volumes))

    def round(self, n: int) -> tuple[float, float, list[str]]:
        """Send ``n`` commands; (agent CPU seconds, elapsed seconds, failures)."""
        per_client = max(1, n // len(self.owned))
        clients = [Client(base, volumes, self.pools, per_client) for base, volumes in self.owned]
        cpu0, t0 = cpu_seconds(self.proc.pid), time.perf_counter()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(self.proc.pid) - cpu0
        return cpu, elapsed, [f for client in clients for f in client.failed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="commands per round (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per tree (default 3); medians reported")
    parser.add_argument("--clients", type=int, default=4, help="client threads, one command in flight each (default 4)")
    parser.add_argument("--hosts", type=int, default=4, help="hosts the agent serves (default 4)")
    parser.add_argument("--warm-up", type=int, default=100, help="commands before the first round (default 100)")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                        help="run the agent of this checkout (repeatable; default: this repository)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the agents' roots live (default: temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the directory and the agents' logs")
    args = parser.parse_args(argv)
    trees = {}
    for spec in args.tree or [f"this={c.REPO}"]:
        name, _, directory = spec.partition("=")
        if not directory or not (Path(directory) / "agent").is_dir():
            parser.error(f"--tree {spec!r}: expected NAME=DIR with DIR a checkout holding agent/")
        trees[name] = Path(directory).resolve()
    work = Path(tempfile.mkdtemp(prefix="motion-bench-agent-cpu-", dir=args.dir))
    c.header(f"agent cpu: {args.n} zero-copy MigrateVolumeCommands per round, {args.clients} clients, "
             f"{args.hosts} hosts, ?wait={WAIT}; trees {', '.join(f'{k}={v}' for k, v in trees.items())}")
    procs = c.Procs(work)
    try:
        agents = {name: Agent(procs, name, tree, work / name, args.hosts, args.clients)
                  for name, tree in trees.items()}
        for agent in agents.values():
            _, _, failed = agent.round(args.warm_up)  # imports, connections, first files
            if failed:
                raise SystemExit(f"bench: warm-up commands did not succeed: {failed[:3]}")
        rows: dict[str, list[tuple[float, float]]] = {name: [] for name in agents}
        for r in range(args.repeat):
            for name, agent in agents.items():
                cpu, elapsed, failed = agent.round(args.n)
                if failed:
                    raise SystemExit(f"bench: {len(failed)} commands of {name} did not succeed: {failed[:3]}")
                sent = max(1, args.n // args.clients) * args.clients
                rows[name].append((1000 * cpu / sent, sent / elapsed))
                print(f"  round {r + 1}, {name}: agent cpu {rows[name][-1][0]:.2f} ms per command, "
                      f"{rows[name][-1][1]:.0f} commands/s; load {c.load_average()}", flush=True)
        print(f"results (medians of {args.repeat}; N={args.n}, {args.clients} clients):")
        for name, values in rows.items():
            print(f"  {name}: agent cpu {c.median(v[0] for v in values):.2f} ms per command, "
                  f"{c.median(v[1] for v in values):.0f} commands/s")
        return 0
    finally:
        procs.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
