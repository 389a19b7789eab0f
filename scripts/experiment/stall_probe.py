#!/usr/bin/python3
"""The http arm's K = 64, rho 0.5 point on a loaded machine, to look for worker stalls.

c = 3 one-slot sluice-backends (exponential 20 ms, sleep mode, 2 ms taken off each draw), Sluice in
`mode: http` (shared queue, least_connections), sluice-loadgen with K persistent connections at
rho * c / 20 ms; all three under chrt -f 10, as scripts/experiment.sh runs them. Run it at nice 19
(`nice -n 19 scripts/experiment/stall_probe.py ...`), like the experiment's driver, whose nice Sluice's
SCHED_BATCH threads keep. --hogs N busy loops at nice 0 share the CPUs for the whole run.

Prints the loadgen's summary, the worker thread's CPU time, the longest stretches with no response
while requests were outstanding, Sluice's overhead (response - backend service) and the hand-offs
(analyze.py's: a backend's answer to its next waiting request's service start).

  nice -n 19 scripts/experiment/stall_probe.py --build build --seconds 40 --hogs 2
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analyze  # noqa: E402
import harness  # noqa: E402


def worker_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process's data worker threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().startswith("sluice-w"):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def nice_zero() -> None:
    """A hog's nice: 0, as the other work on the machine had (back from this script's nice 19: root only)."""
    try:
        os.nice(-os.nice(0))
    except OSError:
        pass


def report(csv_path: Path) -> None:
    rows = [r for r in csv.DictReader(csv_path.open()) if r["status"] == "200"]
    ok = [dict(backend=r["backend"], sent=int(r["sent_ns"]), done=int(r["done_ns"]),
               elapsed=int(r["service_elapsed_ns"] or -1)) for r in rows]
    done = sorted(r["done"] for r in ok)
    silent = sorted((b - a for a, b in zip(done, done[1:])
                     if any(r["sent"] <= a and r["done"] > a for r in ok)), reverse=True)
    print(f"no response for > 150 ms with requests outstanding: {sum(g > 150e6 for g in silent)} times, "
          f"longest {silent[0] / 1e6 if silent else 0:.0f} ms")
    over = sorted((r["done"] - r["sent"] - r["elapsed"]) / 1e6 for r in ok if r["elapsed"] >= 0)
    q = lambda xs, f: xs[min(len(xs) - 1, int(f * len(xs)))]  # noqa: E731
    print(f"response - backend service: mean {sum(over) / len(over):.2f} ms, p50 {q(over, .5):.2f}, "
          f"p99 {q(over, .99):.2f}, max {over[-1]:.1f}")
    row: dict = {}
    analyze._handoffs(row, ok)
    if row:
        print(f"hand-offs: {row['handoffs']}, p50 {row['handoff_p50_ms']:.3f} ms, mean {row['handoff_mean_ms']:.3f}, "
              f"over 5 ms {100 * row['handoff_over_5ms']:.1f} %")

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", default="build", help="build directory with sluice and tools/ (default build)")
    p.add_argument("--seconds", type=float, default=40, help="seconds of arrivals (default 40)")
    p.add_argument("--rho", type=float, default=0.5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--hogs", type=int, default=2, help="busy loops at nice 0 during the run (default 2)")
    p.add_argument("--out", help="directory for the logs and the CSV (default: a temporary one)")
    args = p.parse_args()
    if not 0 < args.seconds <= 600 or not 0 < args.rho < 1 or not 0 <= args.hogs <= 8 or args.connections < 1:
        p.error("--seconds in (0, 600], --rho in (0, 1), --hogs in [0, 8], --connections at least 1")
    build = Path(args.build).resolve()
    out = Path(args.out or tempfile.mkdtemp(prefix="stall-probe-"))
    out.mkdir(parents=True, exist_ok=True)
    rt = harness.realtime_prefix(True)
    if not rt:
        print("stall_probe: chrt -f 10 refused; the measured processes run at normal priority", file=sys.stderr)
    hogs: list[subprocess.Popen] = []
    with harness.Processes() as procs:
        backends = harness.start_backends(procs, str(build / "tools/sluice-backend"), out, 3, 0.020, 0.002, 1, 7, rt)
        config = harness.sluice_config(backends, "shared", "least_connections", 200000, 1, "http")
        sluice, target, _admin = harness.start_sluice(procs, str(build / "sluice"), out, config, rt)
        before = worker_cpu_s(sluice.popen.pid)
        try:
            hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"], preexec_fn=nice_zero)
                    for _ in range(args.hogs)]
            loadgen = procs.start("loadgen", rt + [
                str(build / "tools/sluice-loadgen"), "--target", target, "--rate", f"{args.rho * 3 / 0.020:.3f}",
                "--duration", f"{args.seconds * 1000:.0f}ms", "--seed", "11", "--warmup", "0ms",
                "--drain-timeout", "20000ms", "--request-timeout", "10m", "--mode", "persistent",
                "--connections", str(args.connections), "--spread", "round-robin", "--csv", str(out / "requests.csv")],
                out / "loadgen.log")
            loadgen.popen.wait(timeout=args.seconds + 60)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        cpu = worker_cpu_s(sluice.popen.pid) - before
    print(re.sub(r"^sluice-loadgen.*\n", "", (out / "loadgen.log").read_text()).rstrip())
    print(f"worker CPU: {cpu:.2f} s in {args.seconds:.0f} s")
    report(out / "requests.csv")
    print(f"files: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
