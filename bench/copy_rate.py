"""Copy benchmark: the simulated agent's unthrottled copy of a 1 GiB volume against ``cp`` of the same
file on the same disk.

A host agent process (``python -m agent``, unthrottled, default 1 MiB chunks) migrates the volume
between two pool directories; the figure is the time from ``POST /commands`` until the command
reads ``succeeded`` (polled every 10 ms), as MiB/s. The agent's copy is durable: it fsyncs the
copy before renaming it into place and removing the source. The floors, on the same directories:
``cp SRC DST`` (the target's floor: >= 0.9 x cp) and ``cp SRC DST`` followed by an fsync of the
copy (the same durability as the agent). Runs alternate (cp, cp + fsync, agent; the agent moves
the volume back and forth), with ``sync`` before each so no run pays for another's writeback; the
source stays in the page cache throughout, for all of them alike. Medians of ``--repeat`` runs.

    python bench/copy_rate.py                          # 1 GiB, 3 repeats, under the system temp dir
    python bench/copy_rate.py --size-mib 64 --repeat 1 --dir /var/tmp
"""
from __future__ import annotations

import os
import sys

# Run as a script, this file's directory comes first on sys.path: put the repository root there
# instead, so that the project and the bench helpers import as packages (bench._common, ...).
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import requests  # noqa: E402

from bench import _common as c  # noqa: E402

TARGET = 0.9
MIB = 1024 * 1024


def make_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(4 * MIB)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
    os.sync()


def timed_cp(src: Path, dst: Path, fsync: bool) -> float:
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    if fsync:
        fd = os.open(dst, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    elapsed = time.perf_counter() - t0
    dst.unlink()
    return elapsed


def timed_agent(base: str, volume: str, name: str, src: dict, dst: dict) -> float:
    body = {"id": str(uuid.uuid4()), "type": "MigrateVolumeCommand", "volumeId": volume, "volumePath": name,
            "srcPool": src, "pool": dst, "attachedVmName": None, "wait": 3600}
    session = requests.Session()
    os.sync()
    t0 = time.perf_counter()
    session.post(f"{base}/commands", json=body, timeout=30).raise_for_status()
    while True:
        record = session.get(f"{base}/commands/{body['id']}", timeout=30).json()
        if record["state"] in ("succeeded", "failed", "aborted"):
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    if record["state"] != "succeeded":
        raise SystemExit(f"bench: the agent's copy {record['state']}: {record.get('error')}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="volume size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (default 3); medians reported")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the pools live (default: temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the directory and the agent's log")
    args = parser.parse_args(argv)
    size = args.size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="motion-bench-copy-", dir=args.dir))
    c.header(f"copy: {args.size_mib} MiB volume, unthrottled agent vs cp, in {work}")
    procs = c.Procs(work)
    try:
        root = work / "agent"
        pools = [{"uuid": str(uuid.uuid4()), "path": f"/pools/{n}", "type": "Filesystem"} for n in ("a", "b")]
        volume, name = str(uuid.uuid4()), "volume.vhdx"
        make_file(root / "pools" / "a" / name, size)
        (root / "pools" / "b").mkdir(parents=True)
        port = c.free_port()
        c.start_agent(procs, {**os.environ, "PYTHONPATH": str(c.REPO)}, ["copy-host"], root, port)
        base = f"http://127.0.0.1:{port}/hosts/copy-host"
        rows = {"cp": [], "cp+fsync": [], "agent": []}
        where = 0
        for r in range(args.repeat):
            src_file = root / "pools" / "ab"[where] / name
            other = root / "pools" / "ab"[1 - where] / "cp-copy"
            rows["cp"].append(timed_cp(src_file, other, fsync=False))
            rows["cp+fsync"].append(timed_cp(src_file, other, fsync=True))
            rows["agent"].append(timed_agent(base, volume, name, pools[where], pools[1 - where]))
            where = 1 - where
            print(f"  run {r + 1}: " + ", ".join(f"{k} {args.size_mib / v[-1]:.0f} MiB/s ({v[-1]:.2f} s)"
                                                  for k, v in rows.items()) + f"; load {c.load_average()}",
                  flush=True)
        rate = {k: args.size_mib / c.median(v) for k, v in rows.items()}
        print(f"results (medians of {args.repeat}; {args.size_mib} MiB):")
        print(f"  agent {rate['agent']:.0f} MiB/s; cp {rate['cp']:.0f} MiB/s; cp+fsync {rate['cp+fsync']:.0f} MiB/s")
        vs_cp, vs_sync = rate["agent"] / rate["cp"], rate["agent"] / rate["cp+fsync"]
        print(f"  ratio to cp {vs_cp:.3f}; target >= {TARGET}: {c.verdict(vs_cp >= TARGET)}")
        print(f"  ratio to cp+fsync (same durability) {vs_sync:.3f}; target >= {TARGET}: "
              f"{c.verdict(vs_sync >= TARGET)}")
        return 0
    finally:
        procs.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
