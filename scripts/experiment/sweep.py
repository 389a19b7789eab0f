"""The queueing sweep: for c one-slot backends with exponential service (mean 1/mu), every rho of the
plan runs Sluice shared + least_connections (M/M/c), per_backend + round_robin, per_backend +
least_connections and HAProxy (maxconn 1 per server), plus finite queues (M/M/c/K) and persistent
connections. --listener-mode http runs the http arm instead (issue 18): the user's client, K = 4
keep-alive connections, through a `mode: http` listener, where each request is a job, beside the same
client through `mode: tcp`. Each run starts fresh processes, scrapes /metrics before, during and after, and keeps
the loadgen's per-request CSV. analyze.py turns the runs into the CSV, the table and the plots.

Run it through scripts/experiment.sh (it finds the binaries and checks the Python packages)."""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import harness
from harness import HarnessError, Processes

HERE = Path(__file__).resolve().parent


@dataclass
class RunSpec:
    id: str
    family: str            # mmc | per_backend_rr | per_backend_lc | haproxy | finite | persistent | http_arm | calibration
    balancer: str          # sluice | haproxy
    queue_mode: str        # shared | per_backend (sluice)
    policy: str            # round_robin | least_connections (sluice); roundrobin | leastconn (haproxy)
    client: str            # new-connection | persistent
    rho: float
    duration_s: float      # measured part of the arrivals (after the warm-up)
    warmup_s: float
    drain_s: float
    seed: int
    c: int
    mean_service_s: float
    overhead_s: float      # taken off each backend draw (calibration of the per-connection overhead)
    slots: int = 1         # max_connections per backend (0: unlimited)
    max_length: int = 200000
    connections: int = 0   # persistent: K
    spread: str = "round-robin"
    half_close: bool = True
    backend_concurrency: int = 1
    listener_mode: str = "tcp"  # sluice: tcp (a connection is a job) | http (a request is a job)
    pipeline_depth: int = 1     # mode: http: a client connection's requests in flight at once (http.pipeline_depth)
    requests: int = 0      # > 0: this many arrivals after the warm-up (duration_s is then their expected time)

    @property
    def rate(self) -> float:
        return self.rho * self.c / self.mean_service_s


@dataclass
class Plan:
    runs: list[RunSpec] = field(default_factory=list)

    def estimate_s(self) -> float:
        # Arrivals, the drain, and ~3 s of process start/stop per run.
        return sum(r.warmup_s + r.duration_s + min(r.drain_s, 3 if r.rho < 1 else r.drain_s) + 3 for r in self.runs)


def build_plan(args) -> Plan:
    c, ms = args.c, args.mean_service_ms / 1000.0
    seed = args.seed
    runs: list[RunSpec] = []

    def add(**kw):
        nonlocal seed
        seed += 1
        base = dict(seed=seed, c=c, mean_service_s=ms, overhead_s=args.overhead_s, drain_s=30.0)
        base.update(kw)
        runs.append(RunSpec(**base))

    scale = args.scale
    if args.quick:
        add(id="mmc-rho0.60", family="mmc", balancer="sluice", queue_mode="shared", policy="least_connections",
            client="new-connection", rho=0.6, duration_s=8 * scale, warmup_s=2)
        add(id="mmc-rho1.20", family="mmc", balancer="sluice", queue_mode="shared", policy="least_connections",
            client="new-connection", rho=1.2, duration_s=6 * scale, warmup_s=1, drain_s=1)
        add(id="per_backend_rr-rho0.60", family="per_backend_rr", balancer="sluice", queue_mode="per_backend",
            policy="round_robin", client="new-connection", rho=0.6, duration_s=5 * scale, warmup_s=1)
        add(id="finite-K3-rho0.80", family="finite", balancer="sluice", queue_mode="shared",
            policy="least_connections", client="new-connection", rho=0.8, duration_s=5 * scale, warmup_s=1,
            max_length=0)
        add(id="persistent-rr-rho0.60", family="persistent", balancer="sluice", queue_mode="per_backend",
            policy="round_robin", client="persistent", rho=0.6, duration_s=5 * scale, warmup_s=1, slots=0,
            connections=4, half_close=False, overhead_s=0.0)
        # The same client through mode: http, one-slot backends: each request is balanced.
        add(id="http-shared-lc-K4-rho0.60", family="http_arm", balancer="sluice", queue_mode="shared",
            policy="least_connections", client="persistent", rho=0.6, duration_s=6 * scale, warmup_s=1,
            connections=4, half_close=False, listener_mode="http")
        return Plan(runs)
    if args.listener_mode == "http":
        build_http_arm(args, add)
        return Plan(runs)

    rhos = args.rhos
    stable_duration = {0.3: 120, 0.5: 120, 0.7: 150, 0.8: 150, 0.9: 180}
    for rho in rhos:
        stable = rho < 1
        main_d = stable_duration.get(rho, 150) if stable else 40
        side_d = 30
        warm = 10 if stable else 2
        drain = 30 if stable else 2
        add(id=f"mmc-rho{rho:.2f}", family="mmc", balancer="sluice", queue_mode="shared",
            policy="least_connections", client="new-connection", rho=rho, duration_s=main_d * scale,
            warmup_s=warm, drain_s=drain)
        for pol, fam in (("round_robin", "per_backend_rr"), ("least_connections", "per_backend_lc")):
            add(id=f"{fam}-rho{rho:.2f}", family=fam, balancer="sluice", queue_mode="per_backend", policy=pol,
                client="new-connection", rho=rho, duration_s=side_d * scale, warmup_s=min(warm, 5), drain_s=drain)
        if args.haproxy:
            add(id=f"haproxy-rho{rho:.2f}", family="haproxy", balancer="haproxy", queue_mode="shared",
                policy="roundrobin", client="new-connection", rho=rho, duration_s=side_d * scale,
                warmup_s=min(warm, 5), drain_s=drain, half_close=False)
    # Finite queues: K = c (Erlang B, no queue) and K = c + 3.
    for k_extra in (0, 3):
        for rho in (0.5, 0.9, 1.2):
            add(id=f"finite-K{c + k_extra}-rho{rho:.2f}", family="finite", balancer="sluice", queue_mode="shared",
                policy="least_connections", client="new-connection", rho=rho, duration_s=30 * scale, warmup_s=3,
                drain_s=30 if rho < 1 else 5, max_length=k_extra)
    # Persistent connections: K = 4 keep-alive connections over c = 3 backends; the queue is inside the
    # backends (one request at a time each, the rest wait there, as in the user's original setup).
    for queue_mode, policy, tag in (("per_backend", "round_robin", "rr"), ("per_backend", "least_connections", "lc"),
                                    ("shared", "least_connections", "shared")):
        add(id=f"persistent-{tag}-rho0.70", family="persistent", balancer="sluice", queue_mode=queue_mode,
            policy=policy, client="persistent", rho=0.7, duration_s=35 * scale, warmup_s=3, slots=0, connections=4,
            half_close=False, overhead_s=0.0)
    # K = 6 (a multiple of c) with a client that reuses the first idle connection, as connection pools
    # do: the balancer spreads connections evenly, the client does not spread requests evenly over them.
    for policy, tag in (("round_robin", "rr"), ("least_connections", "lc")):
        add(id=f"persistent-idle-{tag}-rho0.70", family="persistent", balancer="sluice", queue_mode="per_backend",
            policy=policy, client="persistent", rho=0.7, duration_s=35 * scale, warmup_s=3, slots=0, connections=6,
            spread="idle-first", half_close=False, overhead_s=0.0)
    if args.haproxy:
        add(id="persistent-haproxy-rho0.70", family="persistent", balancer="haproxy", queue_mode="shared",
            policy="roundrobin", client="persistent", rho=0.7, duration_s=35 * scale, warmup_s=3, slots=0,
            connections=4, half_close=False, overhead_s=0.0)
    return Plan(runs)


def build_http_arm(args, add) -> None:
    """The user's problem (issue 18): K keep-alive client connections (round-robin spread, as an async
    generator keeps them), c one-slot backends, N requests per rho. mode: http with the shared queue
    (M/M/c at the level of requests, as far as the K connections let requests in), the same client
    through mode: tcp (slots unlimited, the backends' own FIFOs: a keep-alive connection would hold a
    one-slot backend for its whole life), at rho 0.7 also per_backend + round_robin and + least_connections,
    and the shared queue behind a client with many connections (--wide-connections), which does not hold
    requests back."""
    k, n = args.connections, args.requests
    for rho in args.rhos:
        common = dict(client="persistent", rho=rho, connections=k, half_close=False, warmup_s=10,
                      duration_s=n / (rho * args.c / (args.mean_service_ms / 1000.0)), requests=n,
                      drain_s=30 if rho < 1 else 2)
        # mode: http reads the client's pipelined requests ahead (--pipeline-depth), so that they wait
        # in Sluice's FIFO rather than in the client's connections.
        http = dict(common, pipeline_depth=args.pipeline_depth)
        add(id=f"http-shared-lc-K{k}-rho{rho:.2f}", family="http_arm", balancer="sluice", queue_mode="shared",
            policy="least_connections", listener_mode="http", **http)
        if args.tcp_twin:
            # The backend holding two of the four connections is overloaded from rho 2/3 on: a longer
            # drain lets its backlog be answered, so that the shares count every request.
            add(id=f"tcp-shared-lc-K{k}-rho{rho:.2f}", family="http_arm", balancer="sluice", queue_mode="shared",
                policy="least_connections", listener_mode="tcp", slots=0, overhead_s=0.0,
                **dict(common, drain_s=120 if rho < 1 else 2))
        if abs(rho - 0.7) < 1e-9:
            for policy, tag in (("round_robin", "rr"), ("least_connections", "lc")):
                add(id=f"http-per_backend-{tag}-K{k}-rho{rho:.2f}", family="http_arm", balancer="sluice",
                    queue_mode="per_backend", policy=policy, listener_mode="http", **http)
        if args.wide_connections > 0 and args.wide_requests > 0 and rho < 1:
            wide = dict(http, connections=args.wide_connections, requests=args.wide_requests,
                        duration_s=common["duration_s"] * args.wide_requests / n)
            add(id=f"http-shared-lc-K{args.wide_connections}-rho{rho:.2f}", family="http_arm", balancer="sluice",
                queue_mode="shared", policy="least_connections", listener_mode="http", **wide)


# ---------------------------------------------------------------------------------------------------


def execute(spec: RunSpec, bins: dict, rundir: Path, rt: list[str], scrape_every_s: float) -> dict:
    """One run: fresh backends and balancer, scrapes around and during the loadgen, everything stopped
    at the end. Returns what analyze.py needs (also written to run.json)."""
    rundir.mkdir(parents=True, exist_ok=True)
    info: dict = {"spec": asdict(spec), "rate": spec.rate, "scrapes": [], "rt": bool(rt)}
    with Processes() as procs:
        backends = harness.start_backends(procs, bins["backend"], rundir, spec.c, spec.mean_service_s,
                                          spec.overhead_s, spec.backend_concurrency, spec.seed, rt)
        admin = None
        sluice = None
        if spec.balancer == "sluice":
            config = harness.sluice_config(backends, spec.queue_mode, spec.policy, spec.max_length, spec.slots,
                                           spec.listener_mode, spec.pipeline_depth)
            sluice, target, admin = harness.start_sluice(procs, bins["sluice"], rundir, config, rt)
        else:
            _, target = harness.start_haproxy(
                procs, bins["haproxy"], rundir,
                lambda port: harness.haproxy_config(backends, port, spec.policy, spec.slots), rt)
        info["backends"] = [{"name": b.name, "node": b.node, "port": b.port} for b in backends]
        info["target"] = target
        if admin:
            info["scrapes"].append({"phase": "before", **harness.scrape(admin)})

        # With a request count, the duration is only a bound (its Poisson spread is well inside 1.5x).
        duration_s = spec.warmup_s + spec.duration_s * (1.5 if spec.requests else 1.0)
        cmd = rt + [bins["loadgen"], "--target", target, "--rate", f"{spec.rate:.6f}",
                    "--duration", f"{duration_s * 1000:.0f}ms", "--seed", str(spec.seed),
                    "--warmup", f"{spec.warmup_s * 1000:.0f}ms", "--drain-timeout", f"{spec.drain_s * 1000:.0f}ms",
                    "--request-timeout", "10m", "--mode", spec.client,
                    "--csv", str(rundir / "requests.csv"), "--json", str(rundir / "loadgen.json")]
        if spec.requests:
            cmd += ["--requests", str(spec.requests + round(spec.rate * spec.warmup_s))]
        if spec.client == "persistent":
            cmd += ["--connections", str(spec.connections), "--spread", spec.spread]
        elif spec.half_close:
            cmd.append("--half-close")
        loadgen = procs.start("loadgen", cmd, rundir / "loadgen.log")
        limit = time.monotonic() + duration_s + spec.drain_s + 60
        next_scrape = time.monotonic()
        while loadgen.popen.poll() is None:
            if time.monotonic() > limit:
                raise HarnessError(f"{spec.id}: the loadgen did not finish in time")
            if admin and time.monotonic() >= next_scrape:
                try:
                    info["scrapes"].append({"phase": "during", **harness.scrape(admin)})
                except OSError as e:
                    print(f"  scrape failed: {e}", file=sys.stderr)
                next_scrape += scrape_every_s
            time.sleep(0.01)
        if loadgen.popen.returncode != 0:
            raise HarnessError(f"{spec.id}: loadgen exited {loadgen.popen.returncode}:\n"
                               f"{loadgen.log.read_text(errors='replace')[-3000:]}")
        if admin:
            info["scrapes"].append({"phase": "after", **harness.scrape(admin)})
        for b in backends:  # SIGTERM: each prints its service-time line
            procs.stop(b.proc)
        if sluice:  # stopped as production stops it: the drain must end in exit 0
            code = procs.stop(sluice, timeout=10)
            if code != 0:
                raise HarnessError(f"{spec.id}: sluice exited {code} after SIGTERM, not 0:\n"
                                   f"{sluice.log.read_text(errors='replace')[-3000:]}")
        info["backend_stats"] = [b.proc.log.read_text(errors="replace").strip().splitlines()[-1:] for b in backends]
    info["loadgen"] = json.loads((rundir / "loadgen.json").read_text())
    (rundir / "run.json").write_text(json.dumps(info))
    return info


CALIBRATION_S = 10.0


def calibrate(args, bins, outdir: Path, rt: list[str], rho: float, like: RunSpec | None = None) -> float:
    """The per-connection overhead at this load: how much longer a request holds a Sluice slot than the
    backend's service (connect, hand-offs between three processes: each a wake-up, ~0.1-0.2 ms in this
    VM, more when the cores are busier). A short run at the same rho measures it from Sluice's own
    metrics: busy_seconds / connections - mean drawn service time. The later runs at this rho take it
    off every draw, so that a slot's service time has the drawn (exponential, mean 1/mu) distribution.
    In mode: http (`like`, a run of the http arm) the calibration run has that run's listener and client:
    a request's slot then includes no connect, only the hand-offs over pooled connections."""
    import analyze

    spec = RunSpec(id=f"calibration-rho{rho:.2f}", family="calibration", balancer="sluice", queue_mode="shared",
                   policy="least_connections", client="new-connection", rho=rho, duration_s=CALIBRATION_S,
                   warmup_s=2, drain_s=2 if rho >= 1 else 30, seed=args.seed + 10000 + int(rho * 100), c=args.c,
                   mean_service_s=args.mean_service_ms / 1000.0, overhead_s=0.0)
    if like is not None and like.listener_mode == "http":
        spec.id = f"calibration-http-K{like.connections}-rho{rho:.2f}"
        spec.listener_mode, spec.client, spec.connections, spec.half_close = "http", like.client, like.connections, False
        spec.pipeline_depth = like.pipeline_depth
    rundir = outdir / "calibration" / spec.id
    info = execute(spec, bins, rundir, rt, args.scrape_every)
    row = analyze.analyze_run(rundir, info)
    overhead = max(row["slot_overhead_ms"] / 1000.0, 0.0)
    print(f"    calibration at rho {rho:.2f}: a slot is held {row['slot_mean_ms']:.3f} ms per request for a mean "
          f"draw of {row['service_drawn_run_ms']:.3f} ms: {overhead * 1e3:.3f} ms taken off each draw", flush=True)
    return overhead


def _stop_on_signal(signum, _frame):
    # SIGTERM's default would end Python at once and leave the run's processes behind (they are in
    # their own sessions); an exception unwinds through every Processes group, which stops them.
    raise SystemExit(128 + signum)


def main() -> int:
    import signal

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop_on_signal)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few short runs and pipeline assertions (< 60 s)")
    p.add_argument("--out", type=Path, required=True,
                   help="results directory (created; scripts/experiment.sh defaults it to results/<UTC time>)")
    p.add_argument("--c", type=int, default=3, help="backends, one slot each (default 3)")
    p.add_argument("--mean-service-ms", type=float, default=None, help="mean service time 1/mu (default 20; quick 10)")
    p.add_argument("--rhos", type=str, default=None,
                   help="comma-separated rhos (default 0.3,0.5,0.7,0.8,0.9,1.0,1.1,1.2; http arm 0.5,0.7,0.9)")
    p.add_argument("--listener-mode", choices=["tcp", "http"], default="tcp",
                   help="tcp: the sweep above; http: the http arm (K persistent connections, mode: http beside "
                        "mode: tcp, RR vs LC vs shared at rho 0.7)")
    p.add_argument("--connections", type=int, default=4, help="http arm: the client's keep-alive connections K")
    p.add_argument("--requests", type=int, default=20000, help="http arm: requests per run after the warm-up")
    p.add_argument("--wide-connections", type=int, default=64,
                   help="http arm: also the shared queue behind this many client connections (0: not run)")
    p.add_argument("--wide-requests", type=int, default=10000, help="http arm: requests of those runs")
    p.add_argument("--pipeline-depth", type=int, default=32,
                   help="http arm: http.pipeline_depth of the mode: http runs, 1..64 (default 32: a client "
                        "connection's pipelined requests are never held back; 1: one request at a time)")
    p.add_argument("--no-tcp-twin", dest="tcp_twin", action="store_false",
                   help="http arm: leave out the same client through mode: tcp")
    p.add_argument("--seed", type=int, default=1, help="base seed; run i uses seed + i (recorded per run)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every run's duration")
    p.add_argument("--overhead-us", type=float, default=None,
                   help="per-connection overhead to take off each draw; default: calibrated (quick: 0)")
    p.add_argument("--haproxy", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--no-rt", action="store_true", help="do not run the measured processes under chrt -f")
    p.add_argument("--scrape-every", type=float, default=None, help="seconds between scrapes (default 1; quick 0.5)")
    p.add_argument("--only", type=str, default="",
                   help="comma-separated families or run ids to run (a run keeps the seed it has in the whole plan)")
    p.add_argument("--max-minutes", type=float, default=None, help="abort when exceeded (default: 2x the estimate)")
    p.add_argument("--publish", type=Path, default=None, help="also write the table and plots into this docs/ dir")
    p.add_argument("--analyze-only", action="store_true", help="re-analyse the runs already in --out")
    args = p.parse_args()

    if args.mean_service_ms is None:
        args.mean_service_ms = 10.0 if args.quick else 20.0
    if args.scrape_every is None:
        args.scrape_every = 0.5 if args.quick else 1.0
    if args.rhos is None:
        args.rhos = "0.5,0.7,0.9" if args.listener_mode == "http" else "0.3,0.5,0.7,0.8,0.9,1.0,1.1,1.2"
    args.rhos = [float(x) for x in args.rhos.split(",") if x]
    if not 1 <= args.pipeline_depth <= 64:
        print("experiment: --pipeline-depth must be 1..64 (http.pipeline_depth)", file=sys.stderr)
        sys.exit(2)
    if args.connections < 1 or args.requests < 1 or args.wide_connections < 0 or args.wide_requests < 0:
        print("experiment: --connections and --requests must be at least 1, --wide-* at least 0", file=sys.stderr)
        return 2
    bins = {"sluice": shutil.which("sluice") or "", "backend": "", "loadgen": "", "haproxy": shutil.which("haproxy")}
    import os

    bins["sluice"] = os.environ.get("SLUICE_BINARY", bins["sluice"])
    bins["backend"] = os.environ.get("SLUICE_BACKEND_BINARY", "")
    bins["loadgen"] = os.environ.get("SLUICE_LOADGEN_BINARY", "")
    if args.haproxy == "off" or args.quick:
        args.haproxy = False
    elif args.haproxy == "on" and not bins["haproxy"]:
        print("experiment: --haproxy on but no haproxy on PATH (apt-get install haproxy)", file=sys.stderr)
        return 2
    else:
        args.haproxy = bool(bins["haproxy"])
    args.out.mkdir(parents=True, exist_ok=True)

    import analyze

    if args.analyze_only:
        return analyze.main_for(args.out, quick=args.quick, publish=args.publish)

    for key in ("sluice", "backend", "loadgen"):
        if not bins[key] or not Path(bins[key]).exists():
            print(f"experiment: no {key} binary (set SLUICE_BINARY / SLUICE_BACKEND_BINARY / SLUICE_LOADGEN_BINARY)",
                  file=sys.stderr)
            return 2
    for stale in ("runs", "calibration"):  # a previous sweep into the same --out must not mix in
        if (args.out / stale).is_dir():
            shutil.rmtree(args.out / stale)
    rt = harness.realtime_prefix(not args.no_rt)
    args.overhead_s = 0.0 if args.overhead_us is None else args.overhead_us / 1e6
    plan = build_plan(args)
    if args.only:
        wanted = set(args.only.split(","))
        plan.runs = [r for r in plan.runs if r.family in wanted or r.id in wanted]
    calibrating = not args.quick and args.overhead_us is None
    n_rhos = len({(r.listener_mode, r.rho) for r in plan.runs if r.family != "persistent" and r.slots != 0})
    estimate = plan.estimate_s() + (n_rhos * (CALIBRATION_S + 7) if calibrating else 0) + 40
    max_s = (args.max_minutes * 60) if args.max_minutes else max(2 * estimate, 60)
    print(f"experiment: {len(plan.runs)} runs, c = {args.c}, 1/mu = {args.mean_service_ms:g} ms, "
          f"rho in {sorted({r.rho for r in plan.runs})}; estimated time {estimate / 60:.1f} min "
          f"(bounded at {max_s / 60:.1f} min); {'real-time priority (chrt -f 10)' if rt else 'normal priority'}; "
          f"haproxy {'on' if args.haproxy else 'off'}; results in {args.out}", flush=True)
    started = time.monotonic()
    meta = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "rt": bool(rt), "started_unix": time.time(), "estimate_s": estimate}

    meta["calibrated_overhead_s"] = {}
    order = list(plan.runs)
    # Shuffled (seeded): a drift of the machine's background load then does not line up with rho.
    random.Random(args.seed).shuffle(order)
    for i, spec in enumerate(order, 1):
        elapsed = time.monotonic() - started
        if elapsed > max_s:
            print(f"experiment: over the {max_s / 60:.1f} min bound; stopping before {spec.id}", file=sys.stderr)
            return 1
        print(f"[{i}/{len(order)} {elapsed / 60:5.1f} min] {spec.id}: lambda {spec.rate:.1f}/s for "
              f"{spec.warmup_s:g}+{spec.duration_s:g} s, seed {spec.seed}", flush=True)
        try:
            # Unlimited slots (persistent tcp) never queue in Sluice: nothing to calibrate.
            if calibrating and spec.family != "persistent" and spec.slots != 0:
                key = f"{spec.rho:.2f}" if spec.listener_mode == "tcp" else f"{spec.listener_mode}-{spec.rho:.2f}"
                if key not in meta["calibrated_overhead_s"]:  # at the first run of each rho (and mode)
                    meta["calibrated_overhead_s"][key] = calibrate(args, bins, args.out, rt, spec.rho, spec)
                spec.overhead_s = meta["calibrated_overhead_s"][key]
            info = execute(spec, bins, args.out / "runs" / spec.id, rt, args.scrape_every)
        except (HarnessError, subprocess.SubprocessError, OSError) as e:
            print(f"experiment: run {spec.id} failed: {e}", file=sys.stderr)
            return 1
        lg = info["loadgen"]
        print(f"    {lg['ok']} ok, throughput {lg['throughput_per_s']:.1f}/s, mean response "
              f"{lg['response_ms']['mean'] or math.nan:.2f} ms, errors {sum(lg['errors'].values())}", flush=True)
    meta["finished_unix"] = time.time()
    meta["order"] = [r.id for r in order]
    (args.out / "sweep.json").write_text(json.dumps(meta, indent=1))
    print(f"experiment: runs done in {(time.monotonic() - started) / 60:.1f} min; analysing", flush=True)
    return analyze.main_for(args.out, quick=args.quick, publish=args.publish)


if __name__ == "__main__":
    sys.exit(main())
