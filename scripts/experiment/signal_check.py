#!/usr/bin/python3
"""The scaling signal against the truth (issue 19, "Signal"): Poisson arrivals at lambda = 60/s from
sluice-loadgen, three one-slot sluice-backends, and two arms side by side in one Sluice (one service
each): "mmc", exponential 20 ms service (M/M/3), and "mdc", constant 20 ms service (M/D/3). After the
warm-up, /scaling is sampled every 10 s; each sample's lambda and 1/mu are compared with the truth,
and its recommended_backends with the c* computed here from the true lambda and mu.

The target: a mean queue wait of 1 ms (scaling.target_wait: 1ms). Under M/M/c with a = 1.2 erlangs,
c = 3 waits 1.57 ms and c = 4 waits 0.26 ms, so c* = 4 with room on both sides (lambda or 1/mu would
have to be off by about 15 % to change it). For M/D/3 Allen-Cunneen halves the M/M/3 wait (factor
(ca^2 + cs^2) / 2 = 0.5): 0.79 ms, so its c* is 3.

    /usr/bin/python3 scripts/experiment/signal_check.py [--out DIR]   # ~6 min: calibration, 60 s warm-up, 24 samples
    /usr/bin/python3 scripts/experiment/signal_check.py --quick       # < 40 s: a 10 s window, the pipeline

Binaries: SLUICE_BINARY, SLUICE_BACKEND_BINARY, SLUICE_LOADGEN_BINARY (else build/). Exit status 0 when
the acceptance holds (full run: lambda and 1/mu within 5 % after the warm-up, recommended == c* in at
least 90 % of the mmc samples, the mdc service CV below 0.25 with the correction applied, every sample
of state ok; --quick, which checks the pipeline rather than the accuracy: 20 % and 75 %), 1 otherwise,
2 when the run itself failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HarnessError, Processes, wait_for_line  # noqa: E402
from queueing import mmc_wq  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LAMBDA = 60.0
MEAN_SERVICE = 0.020
BACKENDS = 3
TARGET_WAIT = 0.001
ARMS = {"mmc": "exponential", "mdc": "constant"}
# "Near 0" for the constant arm: its draws are exact, but the per-connection overhead in each slot time
# jitters with the scheduling of two shared vCPUs (0.08-0.12 measured here under other builds' load);
# exponential service reads ~1, and the correction applies from 0.8 down.
MAX_CONSTANT_CV = 0.25


def true_c_star(lam: float, mu: float, factor: float) -> int:
    """The smallest c with rho < 1 whose (Allen-Cunneen corrected) mean wait meets the target."""
    c = int(lam / mu) + 1
    while factor * mmc_wq(lam, mu, c) > TARGET_WAIT:
        c += 1
    return c


def binary(env: str, relative: str) -> str:
    path = os.environ.get(env) or str(ROOT / "build" / relative)
    if not os.access(path, os.X_OK):
        raise HarnessError(f"{path} is not an executable (set {env} or build build/)")
    return path


def config(ports: dict[str, list[int]], window: str | None) -> str:
    lines = ["drain_timeout: 1s", 'admin: { bind: "127.0.0.1:0" }', "listeners:"]
    for arm in ARMS:
        lines.append(f'  - {{ name: {arm}, bind: "127.0.0.1:0", service: {arm}, max_connections: 100000 }}')
    lines.append("services:")
    scaling = f"target_wait: 1ms, max_backends: 64{', window: ' + window if window else ''}"
    for arm in ARMS:
        lines += [f"  - name: {arm}", "    policy: least_connections", "    retries: 0",
                  "    health_check: { enabled: false }", "    queue: { mode: shared, max_length: 100000, timeout: 10m }",
                  f"    scaling: {{ {scaling} }}", "    backends:"]
        for i, port in enumerate(ports[arm]):
            lines.append(f'      - {{ name: b{i + 1}, address: "127.0.0.1:{port}", max_connections: 1 }}')
    return "\n".join(lines) + "\n"


def get_json(admin: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=5) as r:
        return json.loads(r.read())


def run(args, out: Path, window: str | None, warmup: int, every: int, samples: int, overhead_s: float) -> dict:
    """One run of both arms: `samples` copies of /scaling `every` s apart after `warmup` s of load."""
    bins = {"sluice": binary("SLUICE_BINARY", "sluice"), "backend": binary("SLUICE_BACKEND_BINARY", "tools/sluice-backend"),
            "loadgen": binary("SLUICE_LOADGEN_BINARY", "tools/sluice-loadgen")}
    with Processes() as procs:
        ports: dict[str, list[int]] = {}
        for arm, distribution in ARMS.items():
            started = []
            for i in range(BACKENDS):
                name = f"{arm}-b{i + 1}"
                started.append(procs.start(name, [bins["backend"], "--listen", "127.0.0.1:0", "--name", name,
                                                  "--mean-service", f"{MEAN_SERVICE * 1e3:.0f}ms", "--distribution",
                                                  distribution, "--seed", str(args.seed * 100 + i),
                                                  "--overhead", f"{overhead_s * 1e6:.0f}us"],
                                           out / f"backend-{name}.log"))
            ports[arm] = [int(wait_for_line(p, r"listening on 127\.0\.0\.1:(\d+)").group(1)) for p in started]
        (out / "sluice.yaml").write_text(config(ports, window))
        sluice = procs.start("sluice", [bins["sluice"], "--config", str(out / "sluice.yaml")], out / "sluice.log")
        admin = wait_for_line(sluice, r"admin listening address=(\S+)").group(1)
        addresses = {arm: wait_for_line(sluice, rf"listening listener={arm} address=(\S+)").group(1) for arm in ARMS}
        duration = warmup + every * samples + 3
        for n, arm in enumerate(ARMS):
            procs.start(f"loadgen-{arm}", [bins["loadgen"], "--target", addresses[arm], "--rate", f"{LAMBDA:g}",
                                           "--duration", f"{duration}s", "--seed", str(args.seed * 10 + n)],
                        out / f"loadgen-{arm}.log")
        start = time.monotonic()
        print(f"signal check: lambda {LAMBDA:g}/s, 1/mu {MEAN_SERVICE * 1e3:g} ms, {BACKENDS} one-slot backends, "
              f"window {window or '60s (default)'}, warm-up {warmup} s, {samples} samples every {every} s, "
              f"{overhead_s * 1e3:.3f} ms taken off each draw", flush=True)
        rows = []
        for k in range(samples):
            time.sleep(max(0.0, start + warmup + k * every - time.monotonic()))
            doc = get_json(admin, "/scaling")
            t = time.monotonic() - start
            for s in doc["services"]:
                rows.append({"t": round(t, 1), **{key: s.get(key) for key in (
                    "service", "state", "span_seconds", "arrivals", "arrival_rate", "mean_service_seconds",
                    "arrival_cv", "service_cv", "utilisation", "model", "correction_factor",
                    "predicted_queue_wait_seconds", "recommended_slots", "recommended_backends", "clamped")}})
        code = procs.stop(sluice)
        if code != 0:
            raise HarnessError(f"sluice exited {code} after SIGTERM")
    return {"rows": rows, "window": window or "60s", "warmup_s": warmup, "every_s": every, "overhead_s": overhead_s}


def calibrate(args, out: Path) -> float:
    """The per-connection overhead: how much longer a request holds a Sluice slot than the backend's
    service (the connect, the hand-offs between three processes; docs/experiments.md, "The
    per-connection overhead"). A 15 s run measures it on the constant arm, whose draws are exactly
    20 ms: its mean slot time minus 20 ms. The run proper takes it off every draw (--overhead), so
    that a slot's time has the drawn distribution, mean 1/mu = 20 ms: the truth compared against."""
    result = run(args, out / "calibration", "10s", 14, 1, 1, 0.0)
    mdc = [r for r in result["rows"] if r["service"] == "mdc" and r["state"] == "ok"]
    if not mdc:
        raise HarnessError("calibration: the constant arm's signal did not warm up")
    overhead = max(mdc[-1]["mean_service_seconds"] - MEAN_SERVICE, 0.0)
    print(f"calibration: a slot is held {mdc[-1]['mean_service_seconds'] * 1e3:.3f} ms for a 20 ms draw: "
          f"{overhead * 1e3:.3f} ms taken off each draw\n", flush=True)
    return overhead


def report(result: dict, quick: bool) -> bool:
    # --quick checks the pipeline, not the accuracy: a 10 s window (~4 % noise on 1/mu) and no calibration.
    # Without calibration the slot time is the draw plus the per-connection overhead (milliseconds on a
    # busy machine): mmc's 1/mu is then compared with 20 ms + the overhead the constant arm shows at the
    # same sample (its draws are exactly 20 ms), and mdc's with 20 ms, allowing 8 ms of overhead.
    tolerance, min_share = (0.20, 0.75) if quick else (0.05, 0.90)
    uncalibrated = result.get("overhead_s", 0.0) == 0.0 and quick
    overhead_at = {r["t"]: r["mean_service_seconds"] - MEAN_SERVICE for r in result["rows"]
                   if r["service"] == "mdc" and r["state"] == "ok"} if uncalibrated else {}
    mu = 1 / MEAN_SERVICE
    truth = {"mmc": true_c_star(LAMBDA, mu, 1.0), "mdc": true_c_star(LAMBDA, mu, 0.5)}
    ok = True
    print(f"\ntrue c*: mmc {truth['mmc']} (M/M/3 wait {mmc_wq(LAMBDA, mu, 3) * 1e3:.2f} ms, M/M/4 "
          f"{mmc_wq(LAMBDA, mu, 4) * 1e3:.2f} ms; target {TARGET_WAIT * 1e3:g} ms), mdc {truth['mdc']} "
          f"(Allen-Cunneen x0.5: {0.5 * mmc_wq(LAMBDA, mu, 3) * 1e3:.2f} ms at c = 3)")
    if uncalibrated:
        shown = ", ".join(f"{o * 1e3:.2f}" for o in overhead_at.values())
        print(f"quick, uncalibrated: the per-connection overhead in mdc's slots, ms: {shown} (mmc's 1/mu is compared "
              "with 20 ms + it; mdc's err% is 0 when it lies in 0..8 ms)")
    print(f"{'t':>6} {'arm':>4} {'state':>10} {'lambda':>8} {'err%':>6} {'1/mu ms':>8} {'err%':>6} {'ca':>5} "
          f"{'cs':>5} {'model':>6} {'rec':>4} {'c*':>3}")
    summary = {}
    for arm in ARMS:
        rows = [r for r in result["rows"] if r["service"] == arm]
        errors_l, errors_s, hits = [], [], 0
        for r in rows:
            good = r["state"] == "ok"
            el = (r["arrival_rate"] / LAMBDA - 1) * 100 if good else math.nan
            reference = MEAN_SERVICE + (overhead_at.get(r["t"], 0.0) if arm == "mmc" else 0.0)
            es = (r["mean_service_seconds"] / reference - 1) * 100 if good else math.nan
            if uncalibrated and arm == "mdc" and good:
                es = 0.0 if 0 <= r["mean_service_seconds"] - MEAN_SERVICE < 0.008 else math.inf
            errors_l.append(el)
            errors_s.append(es)
            hits += good and r["recommended_backends"] == truth[arm]
            model = ("G/G/c" if r["model"] and r["model"].startswith("G") else r["model"]) or "-"
            print(f"{r['t']:>6} {arm:>4} {r['state']:>10} {r['arrival_rate'] or 0:>8.2f} {el:>6.1f} "
                  f"{(r['mean_service_seconds'] or 0) * 1e3:>8.2f} {es:>6.1f} {r['arrival_cv'] or 0:>5.2f} "
                  f"{r['service_cv'] or 0:>5.2f} {model:>6} {str(r['recommended_backends']):>4} {truth[arm]:>3}")
        states_ok = all(r["state"] == "ok" for r in rows)
        max_l = max((abs(e) for e in errors_l), default=math.nan)
        max_s = max((abs(e) for e in errors_s), default=math.nan)
        share = hits / len(rows) if rows else 0
        corrected = all(r["model"] == "G/G/c (Allen-Cunneen)" for r in rows)
        max_cs = max((r["service_cv"] or 0) for r in rows) if rows else math.nan
        summary[arm] = {"samples": len(rows), "max_lambda_error_pct": max_l, "max_service_error_pct": max_s,
                        "share_recommended_eq_true": share, "true_c_star": truth[arm], "all_corrected": corrected,
                        "max_service_cv": max_cs}
        print(f"{arm}: {len(rows)} samples, max |lambda error| {max_l:.2f} %, max |1/mu error| {max_s:.2f} %, "
              f"recommended == c* ({truth[arm]}) in {share * 100:.0f} %"
              + (f", service CV <= {max_cs:.3f}, corrected in every sample: {corrected}" if arm == "mdc" else ""))
        ok &= states_ok and max_l <= tolerance * 100 and max_s <= tolerance * 100
        if arm == "mmc":
            ok &= share >= min_share
        else:
            ok &= corrected and max_cs < MAX_CONSTANT_CV
    result["summary"] = summary
    print("acceptance " + ("holds" if ok else "FAILS") + f" (tolerance {tolerance * 100:g} %, share >= {min_share * 100:g} %)")
    return ok


def _stop_on_signal(signum, _frame):
    # SIGTERM's default would end Python at once and leave the run's processes behind (they are in their
    # own sessions); an exception unwinds through the Processes group, which stops them.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 10 s window and 7 samples 2 s apart after 14 s (< 40 s)")
    parser.add_argument("--out", type=Path, help="where the logs, config and samples go (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--overhead-us", type=float, default=None,
                        help="per-connection overhead taken off each draw; default: calibrated (quick: 0)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="signal-check-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        if args.overhead_us is not None:
            overhead = args.overhead_us / 1e6
        else:
            overhead = 0.0 if args.quick else calibrate(args, out)
        if args.quick:
            result = run(args, out, "10s", 14, 2, 7, overhead)
        else:
            result = run(args, out, None, 60, 10, 24, overhead)  # the default 60 s window
    except (HarnessError, OSError, KeyError, ValueError) as error:
        print(f"signal check: the run failed: {error}", file=sys.stderr)
        return 2
    ok = report(result, args.quick)
    (out / "signal_check.json").write_text(json.dumps(result, indent=1))
    print(f"samples and logs: {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
