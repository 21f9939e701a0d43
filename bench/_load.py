"""HTTP load generators for the API benchmark: wrk with a Lua script, or a Python client.

Both take a list of request paths (already signed, so the generator does no crypto per request),
hand them out round robin over ``connections`` concurrent clients for ``duration`` seconds, and
report requests/s, p50/p99 latency and the number of answers with a status >= 400 or a socket
error. wrk is preferred: it is written in C and takes a small share of the machine's cores, which
the API and its floor need. The Python client (a process per two cores, threads inside) is the
fallback when wrk is not installed; its own CPU use lowers both figures and their ratio less.
"""
from __future__ import annotations

import http.client
import multiprocessing
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

LUA = r"""
-- wrk starts a thread right after its setup(), so a thread cannot learn the thread count from
-- later setups: it comes as the second script argument; the thread's number from its setup().
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  local nthreads = tonumber(args[2])
  -- every nthreads-th path (all of them when there are fewer paths than threads): none twice
  step = (#paths >= nthreads) and nthreads or 1
  first = ((tid - 1) % #paths) + 1
  idx = first
end
function request()
  local path = paths[idx]
  idx = idx + step
  if idx > #paths then idx = first end
  return wrk.format("GET", path)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("LOAD requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run(base_url: str, paths: list[str], duration: float, connections: int, client: str = "auto") -> dict:
    """Load ``base_url`` with ``paths``; figures: rps, p50_ms, p99_ms, requests, errors, client."""
    if client == "auto":
        client = "wrk" if have_wrk() else "python"
    if client == "wrk":
        return _wrk(base_url, paths, duration, connections)
    return _python(base_url, paths, duration, connections)


def _wrk(base_url: str, paths: list[str], duration: float, connections: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="motion-load-") as tmp:
        script, listing = Path(tmp) / "paths.lua", Path(tmp) / "paths.txt"
        script.write_text(LUA)
        listing.write_text("\n".join(paths) + "\n")
        threads = max(1, min(2, connections))
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
                              "--timeout", "30s", "-s", str(script), base_url, "--", str(listing), str(threads)],
                             capture_output=True, text=True, timeout=duration + 120)
    line = next((l for l in out.stdout.splitlines() if l.startswith("LOAD ")), None)
    if line is None:
        raise SystemExit(f"bench: wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    f = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    return {"client": "wrk", "requests": f["requests"], "rps": f["requests"] / (f["duration_us"] / 1e6),
            "p50_ms": f["p50_us"] / 1000, "p99_ms": f["p99_us"] / 1000,
            "errors": f["status_errors"] + f["socket_errors"], "socket_errors": f["socket_errors"]}


def _python(base_url: str, paths: list[str], duration: float, connections: int) -> dict:
    procs = max(1, min(connections, (multiprocessing.cpu_count() or 2) // 2))
    host_port = base_url.split("://", 1)[1].rstrip("/")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        start = time.time() + 1.0  # every process starts at the same moment
        parts = pool.starmap(_client_process, [
            (host_port, paths[i::procs] or paths, duration, connections // procs + (i < connections % procs), start)
            for i in range(procs)])
    latencies = sorted(x for part in parts for x in part[0])
    errors = sum(part[1] for part in parts)
    if not latencies:
        raise SystemExit("bench: the Python load generator completed no request")
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"client": "python", "requests": len(latencies), "rps": len(latencies) / duration,
            "p50_ms": pick(0.50), "p99_ms": pick(0.99), "errors": errors}


def _client_process(host_port: str, paths: list[str], duration: float, clients: int, start: float):
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    time.sleep(max(0.0, start - time.time()))
    end = time.monotonic() + duration

    def client(offset: int) -> None:
        i, conn = offset, None
        mine, bad = [], 0
        while time.monotonic() < end:
            path = paths[i % len(paths)]
            i += clients
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host_port, timeout=30)
                conn.request("GET", path)
                answer = conn.getresponse()
                answer.read()
                if answer.status >= 400:
                    bad += 1
                if answer.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                bad += 1
                conn = None
                continue
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(k,)) for k in range(max(1, clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]
