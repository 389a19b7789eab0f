"""Rows of a Minikube sweep (scripts/experiment/minikube.sh): per point, the loadgen's JSON summary
(from the Job's log) and Sluice's /metrics before and after the Job, against Erlang C and c x M/M/1.

Sluice's numbers cover the whole Job (the before scrape has an empty queue and the after scrape a
drained one, so Little's law holds over it exactly); the loadgen's exclude its warm-up."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import harness
import queueing as q


def summary_from_log(text: str) -> dict:
    # The JSON object is printed on stdout as its own block; the human summary went to stderr.
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "{")
    end = max(i for i, line in enumerate(lines) if line.strip() == "}")
    return json.loads("\n".join(lines[start:end + 1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--c", type=int, default=3)
    p.add_argument("--mean-service", type=float, default=0.020, help="seconds")
    args = p.parse_args()
    mu = 1.0 / args.mean_service
    rows = []
    for point in sorted(d for d in args.out.iterdir() if (d / "loadgen.log").exists()):
        lg = summary_from_log((point / "loadgen.log").read_text())
        before = harness.parse_prometheus((point / "metrics-before.txt").read_text())
        after = harness.parse_prometheus((point / "metrics-after.txt").read_text())

        def d(name, **labels):
            return sum(v for k, v in after.items() if k.split("{")[0] == name and all(f'{a}="{b}"' in k for a, b in labels.items())) - \
                sum(v for k, v in before.items() if k.split("{")[0] == name and all(f'{a}="{b}"' in k for a, b in labels.items()))

        lam = lg["rate"]
        arrivals_s = (lg["arrivals_end_ns"] - lg["start_ns"]) / 1e9
        waits, count = d("sluice_service_queue_wait_seconds_sum"), d("sluice_service_queue_wait_seconds_count")
        qint = d("sluice_service_queue_length_seconds_total") + d("sluice_backend_queue_length_seconds_total")
        busy, conns = d("sluice_backend_busy_seconds_total"), d("sluice_backend_connections_total")
        mode, policy = point.name.rsplit("-rho", 1)[0].split("-", 1)
        rows.append({
            "point": point.name, "queue_mode": mode, "policy": policy, "rho": lam / (args.c * mu), "lambda": lam,
            "arrivals": lg["arrivals"], "ok": lg["ok"], "errors": sum(lg["errors"].values()),
            "throughput_per_s": lg["throughput_per_s"], "W_mean_ms": lg["response_ms"]["mean"],
            "W_p99_ms": lg["response_ms"]["p99"], "Wq_sluice_ms": waits / count * 1e3 if count else "",
            "little_ratio": qint / waits if waits else "", "slot_mean_ms": busy / conns * 1e3 if conns else "",
            "utilisation": busy / args.c / arrivals_s if arrivals_s else "",
            "erlang_c_wq_ms": q.mmc_wq(lam, mu, args.c) * 1e3, "split_mm1_wq_ms": q.mm1_split_wq(lam, mu, args.c) * 1e3,
            "per_backend": json.dumps(lg["backends"]), "send_lag_p99_us": lg["send_lag_us"]["p99"],
        })
    if not rows:
        print("minikube_rows: no points found", file=sys.stderr)
        return 1
    with open(args.out / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(f"{r['point']:45s} W {r['W_mean_ms']:8.2f} ms  Wq {r['Wq_sluice_ms'] if r['Wq_sluice_ms'] == '' else round(r['Wq_sluice_ms'], 2)} ms"
              f"  (Erlang C {r['erlang_c_wq_ms']:.2f})  Little {r['little_ratio'] if r['little_ratio'] == '' else round(r['little_ratio'], 4)}")
    print(f"minikube_rows: {len(rows)} points -> {args.out / 'runs.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
