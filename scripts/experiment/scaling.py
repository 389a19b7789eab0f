"""The dynamic scaling experiment (issue 19; docs/experiments.md, "Dynamic scaling"): one load profile
lambda(t) at a time, four lanes side by side, one per policy (static peak, static mean, HPA-like at 70 %
utilisation, Erlang C from Sluice's /scaling), each with its own Sluice (mode: http, shared queue,
least_connections, backends from the A records of pool.test), its own fleet of one-slot sluice-backends
and dnsmasq (scaler.py), and its own sluice-loadgen with the same profile and seed. Per-request queue
waits come from Sluice's JSON access log; backend-seconds and actions from the scaler's log.

Run it through scripts/experiment.sh --scaling (it finds the binaries and checks the Python packages):
    scripts/experiment.sh --scaling [--publish docs]   three profiles, ~11 min
    scripts/experiment.sh --scaling --quick            one short step profile, pipeline assertions (< 60 s)"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import harness as h
import rate_profile
import scaler as s
import scaling_report as report

# Time is compressed against a production autoscaler (60 s windows, 15 s syncs, minutes-long phases):
# every phase and knob below is scaled down alike, so the ratios between them are what matter.
FULL = {
    "profiles": {
        "step": ("steps:0s:60,60s:180,120s:90", 180),
        "ramp": ("linear:0s:40,90s:200,180s:40", 180),
        "sine": ("sine:mean=120,amplitude=80,period=180s,phase=270", 180),
    },
    "window": 10, "delay": 5, "period": 1, "stabilisation": 20,
}
QUICK = {
    "profiles": {"step": ("steps:0s:40,12s:120,24s:40", 40)},   # Sluice's window is 10 s at least
    "window": 10, "delay": 1, "period": 0.5, "stabilisation": 4,
}
POLICIES = ["static_peak", "static_mean", "hpa", "erlang"]


@dataclass
class Lane:
    policy_name: str
    policy: object
    fleet: s.Fleet
    rundir: Path
    sluice: h.Proc | None = None
    listener: str = ""
    admin: str = ""
    loadgen: h.Proc | None = None
    scaling: dict | None = None
    stabiliser: s.Stabiliser | None = None
    timeline: list[dict] = field(default_factory=list)
    sluice_status: int | None = None


def sluice_config(lane: Lane, dns: str, args, t: Target) -> str:
    return f"""# Written by scripts/experiment/scaling.py for one lane.
drain_timeout: 2s
log: {{ level: info, format: json, access_log: true }}
admin: {{ bind: "127.0.0.1:0" }}
dns: {{ servers: ["{dns}"], timeout: 1s }}
http: {{ request_timeout: 10m, response_timeout: 10m, pipeline_depth: 32 }}
listeners:
  - {{ name: web, bind: "127.0.0.1:0", service: web, max_connections: 10000, idle_timeout: 10m, mode: http }}
services:
  - name: web
    policy: least_connections
    connect_timeout: 2s
    retries: 0
    resolve_interval: {round(args.resolve_interval * 1000)}ms
    health_check: {{ interval: 250ms, timeout: 200ms, rise: 1, fall: 3 }}
    queue: {{ mode: shared, max_length: 100000, timeout: 10m }}
    backend_sets:
      - {{ name: pool, address: "{s.Fleet.name}:{lane.fleet.port}", max_backends: 64, max_connections: 1, weight: 1 }}
    scaling:
      window: {round(args.window * 1000)}ms
      target_wait: {round(t.mean_s * 1000)}ms
      target_quantile: {{ p: {t.design_p}, wait: {round(t.wait_s * 1000)}ms }}
      slots_per_backend: 1
      min_backends: {args.min_backends}
      max_backends: {args.max_backends}
"""


def up_addresses(backends_json: dict) -> int:
    return sum(1 for sv in backends_json["services"] for b in sv["backends"] if b.get("state") == "up")


def wait_until(what: str, check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise h.HarnessError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_profile(name: str, spec: str, duration: float, args, bins: dict, outdir: Path, t: Target,
                rt: list[str]) -> list[dict]:
    profile = rate_profile.Profile(spec)
    mu = 1.0 / args.mean_service_s
    peak_c = s.needed(profile.max_rate(duration), mu, t, hi=args.max_backends)
    mean_c = s.needed(profile.expected(0, duration) / duration, mu, t, hi=args.max_backends)
    start_c = s.needed(profile.rate_at(0), mu, t, hi=args.max_backends)
    lanes = []
    with h.Processes() as procs:
        for i, pname in enumerate(args.policies):
            rundir = outdir / name / pname
            rundir.mkdir(parents=True, exist_ok=True)
            policy = {"static_peak": lambda: s.StaticPolicy(peak_c), "static_mean": lambda: s.StaticPolicy(mean_c),
                      "hpa": lambda: s.HpaPolicy(args.window), "erlang": lambda: s.ErlangPolicy()}[pname]()
            fleet = s.Fleet(procs, bins["backend"], rundir, net=100 + i, port=18000, seed=args.seed,
                            mean_service_s=args.mean_service_s, rt=rt, delay_s=args.delay)
            lane = Lane(pname, policy, fleet, rundir,
                        stabiliser=s.Stabiliser(args.stabilisation) if policy.dynamic else None)
            dns = fleet.start_dns()
            # A dynamic lane starts as a scaler that has run at lambda(0) for a while would be: with c*(lambda(0))
            # backends and that desire in its stabilisation history.
            fleet.scale_to(policy.n if not policy.dynamic else start_c, "initial", delay=0)
            if lane.stabiliser is not None:
                lane.stabiliser.apply(0.0, start_c)
            fleet.tick(None)
            config = sluice_config(lane, dns, args, t)
            lane.sluice, lane.listener, lane.admin = h.start_sluice(procs, bins["sluice"], rundir, config, rt)
            lanes.append(lane)
        for lane in lanes:
            n = len(lane.fleet.planned())
            wait_until(f"{lane.policy_name}: {n} backends up through DNS",
                       lambda lane=lane, n=n: up_addresses(s.get_json(lane.admin, "/backends")) == n, 15)
        # Every lane's clock starts with its loadgen: t = 0 is the profile's 0.
        for lane in lanes:
            cmd = rt + [bins["loadgen"], "--target", lane.listener, "--profile", spec, "--duration", f"{duration}s",
                        "--mode", "persistent", "--connections", str(args.connections), "--seed", str(args.seed),
                        "--drain-timeout", "60s", "--json", str(lane.rundir / "loadgen.json")]
            lane.loadgen = procs.start("loadgen", cmd, lane.rundir / "loadgen.log")
        t0, wall_t0 = time.monotonic(), time.time()
        for lane in lanes:
            lane.fleet.shift_clock(t0)
            lane.wall_t0 = wall_t0
        next_decision = 0.0
        while any(lane.loadgen.popen.poll() is None for lane in lanes):
            now = time.monotonic() - t0
            if now > duration + 90:
                raise h.HarnessError(f"{name}: the loadgens did not finish")
            decide = now >= next_decision
            for lane in lanes:
                step(lane, now, decide, profile, args)
            if decide:
                next_decision += args.period
            time.sleep(max(0.0, min(0.25, next_decision - (time.monotonic() - t0))))
        for lane in lanes:
            if lane.loadgen.popen.returncode != 0:
                raise h.HarnessError(f"{lane.policy_name}: sluice-loadgen exited {lane.loadgen.popen.returncode}:\n"
                                     + lane.loadgen.log.read_text(errors="replace")[-2000:])
            lane.sluice_status = procs.stop(lane.sluice, timeout=10)
            lane.end_s = time.monotonic() - t0
    return [report.lane_result(lane, name, spec, duration, t, peak_c, mean_c) for lane in lanes]


def step(lane: Lane, now: float, decide: bool, profile, args) -> None:
    """One tick of a lane: read Sluice, maybe decide, act, and record the timeline."""
    try:
        backends = s.get_json(lane.admin, "/backends")
        metrics = h.scrape(lane.admin)["values"]
        lane.scaling = s.service_scaling(lane.admin, "web")
    except OSError as e:  # a scrape that timed out (the VM stalled): this tick acts on nothing
        lane.fleet.log("scrape_failed", error=str(e))
        return
    if isinstance(lane.policy, s.HpaPolicy):
        lane.policy.observe(now, metrics)
    desired, why = (None, "")
    if decide:
        desired, why = lane.policy.desired(lane)
        if desired is not None:
            desired = min(max(desired, args.min_backends), args.max_backends)
            if lane.stabiliser is not None:
                desired = lane.stabiliser.apply(now, desired)
            lane.fleet.scale_to(desired, why)
    lane.fleet.tick(backends)
    sc = lane.scaling or {}
    lane.timeline.append({
        "t_s": round(now, 3), "lambda": profile.rate_at(now), "running": lane.fleet.count_at(now),
        "ready": lane.fleet.ready_count(), "up_in_sluice": up_addresses(backends),
        "queue_length": metrics.get('sluice_service_queue_length{service="web"}', float("nan")),
        "desired": desired if desired is not None else "", "scaling_state": sc.get("state", ""),
        "arrival_rate": sc.get("arrival_rate", ""), "utilisation": sc.get("utilisation", ""),
        "recommended": sc.get("recommended_backends", ""),
    })


def main() -> int:
    import signal
    from sweep import _stop_on_signal

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop_on_signal)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scaling", action="store_true", help=argparse.SUPPRESS)  # scripts/experiment.sh's switch
    p.add_argument("--quick", action="store_true", help="one short step profile and pipeline assertions (< 60 s)")
    p.add_argument("--out", type=Path, required=True, help="results directory")
    p.add_argument("--profiles", default=None, help="comma-separated: step,ramp,sine (default all; quick: step)")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated lanes (default all four)")
    p.add_argument("--mean-service-ms", type=float, default=20.0, help="exponential service, mean 1/mu (20)")
    p.add_argument("--window", type=float, default=None, help="scaling.window and HPA's window, s (10, the least Sluice takes)")
    p.add_argument("--delay", type=float, default=None, help="reaction delay D of a scale-up, s (5; quick 1)")
    p.add_argument("--period", type=float, default=None, help="seconds between decisions (1; quick 0.5)")
    p.add_argument("--stabilisation", type=float, default=None, help="scale-down stabilisation, s (20; quick 4)")
    p.add_argument("--resolve-interval", type=float, default=0.5, help="Sluice's resolve_interval, s (0.5)")
    p.add_argument("--design-p", type=float, default=0.999,
                   help="the quantile of the 50 ms wait the scalers and the static counts provision for (0.999; the "
                        "SLO itself is 95 %%: the rest is the margin for transients)")
    p.add_argument("--min-backends", type=int, default=1)
    p.add_argument("--max-backends", type=int, default=20)
    p.add_argument("--connections", type=int, default=16, help="the loadgen's keep-alive connections (16)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-rt", action="store_true", help="do not run the measured processes under chrt -f")
    p.add_argument("--publish", type=Path, default=None, help="also write the table and plots into this docs/ dir")
    args = p.parse_args()
    preset = QUICK if args.quick else FULL
    for key in ("window", "delay", "period", "stabilisation"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if not 0.5 <= args.design_p < 1:
        p.error(f"--design-p: {args.design_p} is not a probability in [0.5, 1)")
    if args.delay < 0 or args.period <= 0 or args.stabilisation < 0 or args.mean_service_ms <= 0:
        p.error("--delay and --stabilisation take seconds >= 0, --period and --mean-service-ms > 0")
    args.mean_service_s = args.mean_service_ms / 1000
    args.policies = [x for x in args.policies.split(",") if x]
    unknown = set(args.policies) - set(POLICIES)
    if unknown:
        p.error(f"--policies: unknown {sorted(unknown)} (known: {', '.join(POLICIES)})")
    names = args.profiles.split(",") if args.profiles else list(preset["profiles"])
    profiles = {**FULL["profiles"], **preset["profiles"]}
    if set(names) - set(profiles):
        p.error(f"--profiles: unknown {sorted(set(names) - set(profiles))} (known: step, ramp, sine)")
    bins = {"sluice": os.environ["SLUICE_BINARY"], "backend": os.environ["SLUICE_BACKEND_BINARY"],
            "loadgen": os.environ["SLUICE_LOADGEN_BINARY"]}
    if not os.access(s.DNSMASQ, os.X_OK):
        print(f"scaling: {s.DNSMASQ} is missing (dnsmasq-base: scripts/install-deps.sh)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    rt = h.realtime_prefix(not args.no_rt)
    t = s.Target(design_p=args.design_p)
    started = time.monotonic()
    results = []
    for name in names:
        spec, duration = profiles[name]
        print(f"scaling: profile {name} ({spec}, {duration} s), lanes {', '.join(args.policies)}", flush=True)
        results += run_profile(name, spec, duration, args, bins, args.out, t, rt)
    written = report.write(args.out, results, args, t, preset)
    print(f"scaling: done in {time.monotonic() - started:.0f} s; {', '.join(str(w) for w in written)}", flush=True)
    if args.publish:
        report.publish(args.out, args.publish)
    if args.quick:
        return report.check_quick(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
