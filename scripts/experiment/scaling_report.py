"""The scaling experiment's results: per lane the queue waits of Sluice's access log, backend-seconds and
actions from the scaler's log; the table (report.md, scaling.csv), the plots over time, and the checks of
the quick run."""

from __future__ import annotations

import csv
import json
import math
import shutil
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import rate_profile  # noqa: E402

LABELS = {"static_peak": "static peak", "static_mean": "static mean", "hpa": "HPA 70 %", "erlang": "Erlang C"}
COLOURS = {"static_peak": "tab:gray", "static_mean": "tab:brown", "hpa": "tab:orange", "erlang": "tab:blue"}


def access_waits(log: Path, wall_t0: float) -> tuple[list[tuple[float, float]], dict]:
    """(completion time on the lane's clock, queue wait) of every request Sluice answered, and the count
    of each status and end reason."""
    waits, statuses = [], {}
    for line in log.read_text(errors="replace").splitlines():
        if '"event":"access"' not in line:
            continue
        r = json.loads(line)
        if r.get("event") != "access":
            continue
        key = f"{r.get('status')} {r.get('end')}"
        statuses[key] = statuses.get(key, 0) + 1
        if r.get("queue_wait_seconds") is not None:
            # RFC 3339 UTC with microseconds ("...T15:04:05.123456Z"), the JSON log's time
            done = datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp()
            waits.append((done - wall_t0, r["queue_wait_seconds"]))
    waits.sort()
    return waits, statuses


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    pos = p * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def lane_result(lane, profile: str, spec: str, duration: float, t, peak_c: int, mean_c: int) -> dict:
    fleet = lane.fleet
    waits, statuses = access_waits(lane.sluice.log, lane.wall_t0)
    w = sorted(x for _, x in waits)
    lg = json.loads((lane.rundir / "loadgen.json").read_text())
    errors = sum(lg["errors"].values())
    actions = [a for a in fleet.actions if a["t_s"] >= 0]
    with open(lane.rundir / "actions.csv", "w", newline="") as f:
        keys = sorted({k for a in fleet.actions for k in a}, key=lambda k: (k != "t_s", k != "action", k))
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        wr.writerows(fleet.actions)
    with open(lane.rundir / "timeline.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(lane.timeline[0]))
        wr.writeheader()
        wr.writerows(lane.timeline)
    return {
        "profile": profile, "spec": spec, "duration_s": duration, "policy": lane.policy_name,
        "arrivals": lg["arrivals"], "answered_ok": lg["ok"], "errors": errors, "non_2xx": lg["non_2xx"],
        "lost": lg["arrivals"] - lg["ok"], "sluice_lines": len(waits), "sluice_statuses": json.dumps(statuses),
        "within_target": sum(1 for x in w if x <= t.wait_s) / len(w) if w else math.nan,
        "mean_wait_ms": 1000 * sum(w) / len(w) if w else math.nan,
        "p95_wait_ms": 1000 * percentile(w, 0.95), "p99_wait_ms": 1000 * percentile(w, 0.99),
        "max_wait_ms": 1000 * w[-1] if w else math.nan,
        "backend_seconds": round(fleet.backend_seconds(0, duration), 1),
        "decisions": sum(1 for a in actions if a["action"] == "decide"),
        "starts": sum(1 for a in actions if a["action"] == "start+publish"),
        "stops": sum(1 for a in actions if a["action"] == "drained+stop"),
        "scrape_failures": sum(1 for a in actions if a["action"] == "scrape_failed"),
        "max_backends_used": max(r["running"] for r in lane.timeline),
        "static_peak_c": peak_c, "static_mean_c": mean_c, "sluice_exit": lane.sluice_status,
        "_waits": waits, "_timeline": lane.timeline, "_fleet": fleet,
    }


def write(out: Path, results: list[dict], args, t, preset: dict) -> list[Path]:
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    with open(out / "scaling.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(public[0]))
        wr.writeheader()
        wr.writerows(public)
    written = [out / "scaling.csv"]
    for profile in dict.fromkeys(r["profile"] for r in results):
        written.append(plot(out, [r for r in results if r["profile"] == profile], t))
    (out / "report.md").write_text(table(results, t, args))
    written.append(out / "report.md")
    return written


def table(results: list[dict], t, args) -> str:
    lines = [f"Target: {t.share:.0%} of requests with queue wait <= {t.wait_s * 1000:g} ms (mean <= "
             f"{t.mean_s * 1000:g} ms), provisioned for P(wait <= {t.wait_s * 1000:g} ms) >= {t.design_p:g}; 1/mu = {args.mean_service_ms:g} ms exponential, one slot a backend; "
             f"window {args.window:g} s, reaction delay {args.delay:g} s, decisions every {args.period:g} s, "
             f"scale-down stabilisation {args.stabilisation:g} s.", "",
             "| profile | policy | requests | within target | mean wait (ms) | p95 wait (ms) | p99 (ms) | "
             "backend-seconds | vs static peak | scaling actions (decisions / starts / stops) | most backends | lost |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        peak = next((x for x in results if x["profile"] == r["profile"] and x["policy"] == "static_peak"), None)
        rel = f"{r['backend_seconds'] / peak['backend_seconds']:.2f}" if peak else "–"
        n = f"{r['static_peak_c']}" if r["policy"] == "static_peak" else (
            f"{r['static_mean_c']}" if r["policy"] == "static_mean" else "")
        lines.append(
            f"| {r['profile']} | {LABELS[r['policy']]}{' (' + n + ')' if n else ''} | {r['arrivals']:,} | "
            f"{100 * r['within_target']:.1f} % | {r['mean_wait_ms']:.1f} | {r['p95_wait_ms']:.1f} | "
            f"{r['p99_wait_ms']:.1f} | {r['backend_seconds']:.0f} | {rel} | {r['decisions']} / {r['starts']} / "
            f"{r['stops']} | {r['max_backends_used']} | {r['lost']} |".replace(",", " "))
    return "\n".join(lines) + "\n"


def plot(out: Path, results: list[dict], t) -> Path:
    profile = rate_profile.Profile(results[0]["spec"])
    duration = results[0]["duration_s"]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 8.5), sharex=True)
    xs = [duration * k / 500 for k in range(501)]
    ax1.plot(xs, [profile.rate_at(x) for x in xs], color="black", label="lambda(t)")
    for r in results:
        bins = [0] * (int(duration) + 1)
        for done, _ in r["_waits"]:
            if 0 <= done < duration:
                bins[int(done)] += 1
        ax1.plot([k + 0.5 for k in range(len(bins) - 1)], bins[:-1], color=COLOURS[r["policy"]], lw=0.6, alpha=0.6)
        fleet = r["_fleet"]
        ax2.step(xs, [fleet.count_at(x) for x in xs], where="post", color=COLOURS[r["policy"]],
                 label=LABELS[r["policy"]])
        tl = [x for x in r["_timeline"] if x["up_in_sluice"] is not None]
        ax2.plot([x["t_s"] for x in tl], [x["up_in_sluice"] for x in tl], color=COLOURS[r["policy"]], lw=0.6,
                 ls=":")
        centres, p95 = [], []
        for k in range(0, int(duration), 2):
            ws = sorted(w for done, w in r["_waits"] if k <= done < k + 2)
            if ws:
                centres.append(k + 1)
                p95.append(max(1000 * percentile(ws, 0.95), 0.01))
        ax3.plot(centres, p95, color=COLOURS[r["policy"]], label=LABELS[r["policy"]])
    ax1.set_ylabel("arrivals / s")
    ax1.set_title(f"{results[0]['profile']}: {results[0]['spec']}\n(thin: each lane's answers per second)", fontsize=10)
    ax1.legend(loc="upper right")
    ax2.set_ylabel("backends")
    ax2.set_title("backends paid for (solid; from the decision) and up in Sluice (dotted)")
    ax2.legend(loc="upper left", fontsize=8)
    ax3.set_yscale("log")
    ax3.axhline(1000 * t.wait_s, color="red", ls="--", lw=0.8, label=f"{t.wait_s * 1000:g} ms")
    ax3.set_ylabel("p95 queue wait per 2 s (ms)")
    ax3.set_xlabel("time since the profile's start (s)")
    ax3.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = out / f"scaling_{results[0]['profile']}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def publish(out: Path, docs: Path) -> None:
    target = docs / "experiments"
    target.mkdir(parents=True, exist_ok=True)
    for path in list(out.glob("scaling_*.png")) + [out / "scaling.csv"]:
        shutil.copy(path, target / path.name)
    shutil.copy(out / "report.md", target / "results-scaling.md")


def check_quick(results: list[dict]) -> int:
    """The pipeline end to end, not the figures: every lane discovered its backends and answered every
    request, the dynamic lanes scaled (up, and down through a drain), Sluice exited 0, the table exists."""
    problems = []
    for r in results:
        name = f"{r['profile']}/{r['policy']}"
        if r["lost"] != 0 or r["errors"] != 0 or r["non_2xx"] != 0:
            problems.append(f"{name}: {r['lost']} lost, {r['errors']} errors, {r['non_2xx']} non-2xx")
        if r["sluice_lines"] != r["answered_ok"]:
            problems.append(f"{name}: {r['sluice_lines']} access lines for {r['answered_ok']} answers")
        if r["sluice_exit"] != 0:
            problems.append(f"{name}: sluice exited {r['sluice_exit']}")
        ups = [x["up_in_sluice"] for x in r["_timeline"]]
        if min(ups) < 1:
            problems.append(f"{name}: a moment with no backend up in Sluice")
        if r["policy"].startswith("static") and set(ups) != {r["max_backends_used"]}:
            problems.append(f"{name}: Sluice saw {sorted(set(ups))} backends up, not always {r['max_backends_used']}")
        if r["policy"] in ("hpa", "erlang") and max(ups) <= ups[0]:
            problems.append(f"{name}: Sluice never saw more than the {ups[0]} backends it started with")
        if r["policy"] in ("hpa", "erlang") and (r["starts"] < 1 or r["stops"] < 1):
            problems.append(f"{name}: {r['starts']} scale-ups and {r['stops']} drained removals (want >= 1 each)")
        if r["policy"] == "erlang" and not any(x["scaling_state"] == "ok" for x in r["_timeline"]):
            problems.append(f"{name}: /scaling never said ok")
    for p in problems:
        print(f"scaling --quick: FAIL {p}")
    if not problems:
        print(f"scaling --quick: ok ({len(results)} lanes: backends discovered, scaled up and down, "
              "every request answered, table and plots written)")
    return 1 if problems else 0
