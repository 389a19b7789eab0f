"""Analysis of a sweep: per run, the client's view (loadgen CSV), Sluice's own metrics over the
measurement window, and the theory; then runs.csv, report.md and the plots.

Estimators (docs/experiments.md explains them):
  - W (response time, client): batch means over the requests in arrival order, warm-up dropped.
  - Wq, Lq (Sluice): differences of /metrics scrapes over the window. Wq = queue_wait sum / count;
    Lq = rate of queue_length_seconds_total; Little's ratio = Lq / (dispatch rate x Wq). The Wq interval
    is a ratio estimator over time batches (groups of consecutive scrape intervals).
  - Wq by control variate (M/M/c runs): the recorded arrivals and service draws are replayed through an
    exact FCFS c-server queue; that replay's mean wait has a known expectation (Erlang C) and follows the
    measured one closely, so measured - replay + Erlang C estimates the measured mean with far less
    variance. Its interval is by batch means of the paired per-batch differences.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import queueing as q

RUN_COLUMNS = [
    "id", "family", "balancer", "queue_mode", "policy", "client", "connections", "spread", "max_length", "K", "c", "rho",
    "lambda", "mean_service_ms", "overhead_ms", "seed", "warmup_s", "window_s", "arrivals", "ok", "errors",
    "refused", "unfinished", "offered_per_s", "throughput_per_s", "send_lag_mean_us", "send_lag_p99_us",
    "late_sends_over_1ms", "W_ms", "W_half_ms", "W_cv_ms", "W_cv_half_ms", "W_p50_ms", "W_p99_ms",
    "Wq_ms", "Wq_half_ms", "Wq_cv_ms", "Wq_cv_half_ms", "Wq_replay_ms", "Wq_replay_actual_ms", "stall_excluded_intervals", "scrape_intervals", "Wq_cv_stallfree_ms",
    "Wq_cv_stallfree_half_ms", "Wq_batches", "Wq_lag1", "Lq", "lambda_Wq",
    "little_ratio", "util_mean", "util_by_backend", "util_over_rho", "slot_mean_ms", "service_drawn_ms",
    "service_elapsed_ms", "service_drawn_run_ms", "slot_overhead_ms", "slot_factor", "slope_per_s", "slope_theory_per_s", "slope_ratio",
    "slope_theory_as_built_per_s", "slope_ratio_as_built", "blocking",
    "blocking_half", "blocking_theory", "blocking_theory_as_built", "sluice_queue_full", "sluice_accepted", "per_backend",
    "theory_mmc_wq_ms", "theory_mmc_as_built_wq_ms", "theory_ecm1_wq_ms", "theory_split_mm1_wq_ms",
    "theory_jsq_wq_ms", "listener_mode", "requests_target", "pipeline_depth", "share_max_dev", "client_wait_ms", "client_wait_half_ms",
    "Wq_model_ms", "wait_model_ms", "slots", "handoffs", "handoff_p50_ms", "handoff_mean_ms", "handoff_over_5ms",
]


def load_requests(path: Path) -> list[dict]:
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append({
                "scheduled": int(r["scheduled_ns"]), "sent": int(r["sent_ns"]), "done": int(r["done_ns"]),
                "status": int(r["status"]), "error": r["error"], "backend": r["backend"],
                "service": int(r["service_ns"]), "elapsed": int(r["service_elapsed_ns"]),
                "connected": int(r["connected_ns"]),
                "connection": int(r["connection"]),
            })
    return rows


def _sum(values: dict, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    want = [f'{k}="{v}"' for k, v in labels.items()]
    for key, v in values.items():
        if key.split("{", 1)[0] == name and all(w in key for w in want):
            total += v
    return total


def _backend_values(values: dict, name: str) -> dict[str, float]:
    out = {}
    for key, v in values.items():
        if key.split("{", 1)[0] == name:
            b = key.split('backend="', 1)[1].split('"', 1)[0]
            out[b] = out.get(b, 0.0) + v
    return out


def _queue_integral(values: dict) -> float:
    # Shared FIFO plus the per-backend FIFOs: Lq of the whole service in either mode.
    return _sum(values, "sluice_service_queue_length_seconds_total") + \
        _sum(values, "sluice_backend_queue_length_seconds_total")


_JSQ_CACHE: dict = {}


def jsq_wq(lam: float, mu: float, c: int) -> float:
    key = (round(lam, 6), round(mu, 6), c)
    if key not in _JSQ_CACHE:
        _JSQ_CACHE[key] = q.simulate_jsq(lam, mu, c, 300000) if lam < c * mu else math.inf
    return _JSQ_CACHE[key]


def analyze_run(rundir: Path, info: dict) -> dict:
    spec = info["spec"]
    c, mu, lam, rho = spec["c"], 1.0 / spec["mean_service_s"], info["rate"], spec["rho"]
    lg = info["loadgen"]
    start, end_arrivals = lg["start_ns"], lg["arrivals_end_ns"]
    t0, t1 = start + int(spec["warmup_s"] * 1e9), end_arrivals
    window_s = (t1 - t0) / 1e9
    reqs = load_requests(rundir / "requests.csv")
    win = [r for r in reqs if t0 <= r["scheduled"] < t1]
    ok = [r for r in win if r["error"] == "" and 200 <= r["status"] < 300]
    row: dict = {k: "" for k in RUN_COLUMNS}
    k_places = c + spec["max_length"] if spec["max_length"] < 100000 else ""
    row.update(id=spec["id"], family=spec["family"], balancer=spec["balancer"], queue_mode=spec["queue_mode"],
               policy=spec["policy"], client=spec["client"], connections=spec["connections"],
               spread=spec["spread"] if spec["client"] == "persistent" else "",
               max_length=spec["max_length"], K=k_places, c=c, rho=rho, **{"lambda": lam},
               mean_service_ms=spec["mean_service_s"] * 1e3, overhead_ms=spec["overhead_s"] * 1e3,
               seed=spec["seed"], warmup_s=spec["warmup_s"], window_s=window_s, arrivals=len(win), ok=len(ok),
               listener_mode=spec.get("listener_mode", "tcp"), requests_target=spec.get("requests", 0) or "",
               pipeline_depth=spec.get("pipeline_depth", 1) if spec.get("listener_mode") == "http" else "",
               slots=spec["slots"])
    # A keep-alive connection through mode: tcp holds its Sluice slot all the time (slots unlimited).
    connection_slots = spec["client"] == "persistent" and row["listener_mode"] == "tcp"
    row["errors"] = sum(1 for r in win if r["error"])
    refused_flags = [1.0 if r["error"] in ("closed", "reset") else 0.0 for r in win]
    row["refused"] = int(sum(refused_flags))
    row["unfinished"] = sum(1 for r in win if r["error"] == "unfinished")
    row["offered_per_s"] = len(win) / window_s if window_s > 0 else math.nan
    row["throughput_per_s"] = sum(1 for r in ok if r["done"] <= t1) / window_s if window_s > 0 else math.nan
    lags = sorted((r["sent"] - r["scheduled"]) / 1e3 for r in win)
    if lags:
        row["send_lag_mean_us"] = sum(lags) / len(lags)
        row["send_lag_p99_us"] = lags[int(0.99 * (len(lags) - 1))]
        row["late_sends_over_1ms"] = sum(1 for x in lags if x > 1000) / len(lags)
    per_backend: dict[str, int] = {}
    for r in ok:
        per_backend[r["backend"]] = per_backend.get(r["backend"], 0) + 1
    row["per_backend"] = json.dumps(dict(sorted(per_backend.items())))
    if ok:
        row["share_max_dev"] = max(abs(n / len(ok) - 1 / c) for n in per_backend.values())
        if len(per_backend) < c:
            row["share_max_dev"] = max(row["share_max_dev"], 1 / c)  # a backend that served nothing

    stable = lam < c * mu
    theory_wq = q.mmc_wq(lam, mu, c)
    row["theory_mmc_wq_ms"] = theory_wq * 1e3
    row["theory_ecm1_wq_ms"] = q.ecm1_wq(lam, mu, c) * 1e3
    row["theory_split_mm1_wq_ms"] = q.mm1_split_wq(lam, mu, c) * 1e3
    if spec["family"] == "per_backend_lc" and stable:
        row["theory_jsq_wq_ms"] = jsq_wq(lam, mu, c) * 1e3

    if ok:
        ws = [(r["done"] - r["sent"]) / 1e9 for r in ok]
        bm = q.batch_means(ws)
        row["W_ms"], row["W_half_ms"] = bm["mean"] * 1e3, bm["half"] * 1e3
        srt = sorted(ws)
        row["W_p50_ms"] = srt[len(srt) // 2] * 1e3
        row["W_p99_ms"] = srt[int(0.99 * (len(srt) - 1))] * 1e3
        drawn = [r["service"] / 1e9 for r in ok if r["service"] >= 0]
        if drawn:
            row["service_drawn_ms"] = sum(drawn) / len(drawn) * 1e3
        elapsed = [r["elapsed"] / 1e9 for r in ok if r["elapsed"] >= 0]
        if elapsed:
            row["service_elapsed_ms"] = sum(elapsed) / len(elapsed) * 1e3

    if connection_slots and ok and window_s > 0:
        # A keep-alive connection holds its Sluice slot all the time, so busy_seconds says nothing about
        # requests here: the backends' own service times (X-Service-Elapsed-Ns) give their utilisation.
        busy: dict[str, float] = {}
        for r in ok:
            if r["elapsed"] >= 0:
                busy[r["backend"]] = busy.get(r["backend"], 0.0) + r["elapsed"] / 1e9
        row["util_by_backend"] = json.dumps({k: round(v / window_s, 4) for k, v in sorted(busy.items())})
        row["util_mean"] = sum(busy.values()) / window_s / c
        row["util_over_rho"] = row["util_mean"] / rho

    if spec["family"] == "finite" and win:
        bm = q.batch_means(refused_flags)
        row["blocking"], row["blocking_half"] = bm["mean"], bm["half"]
        row["blocking_theory"] = q.mmck(lam, mu, c, c + spec["max_length"])["blocking"]

    scrapes = sorted(info.get("scrapes", []), key=lambda s: s["t_ns"])
    series = []
    if spec["balancer"] == "sluice" and len(scrapes) >= 2:
        inside = [s for s in scrapes if t0 <= s["t_ns"] <= t1]
        for a, b in zip(scrapes, scrapes[1:]):
            dt = (b["t_ns"] - a["t_ns"]) / 1e9
            if dt > 0:
                series.append({"t_s": ((a["t_ns"] + b["t_ns"]) / 2 - start) / 1e9,
                               "lq": (_queue_integral(b["values"]) - _queue_integral(a["values"])) / dt,
                               "gauge": _sum(b["values"], "sluice_service_queue_length") +
                               _sum(b["values"], "sluice_backend_queue_length")})
        if len(inside) >= 2:
            sa, sb = inside[0], inside[-1]
            T = (sb["t_ns"] - sa["t_ns"]) / 1e9

            def d(name, **labels):
                return _sum(sb["values"], name, **labels) - _sum(sa["values"], name, **labels)

            qint = _queue_integral(sb["values"]) - _queue_integral(sa["values"])
            wsum = d("sluice_service_queue_wait_seconds_sum")
            wcnt = d("sluice_service_queue_wait_seconds_count")
            row["Lq"] = qint / T
            if wcnt > 0:
                row["Wq_ms"] = wsum / wcnt * 1e3
                row["lambda_Wq"] = (wcnt / T) * (wsum / wcnt)
                row["little_ratio"] = row["Lq"] / row["lambda_Wq"] if row["lambda_Wq"] > 0 else math.nan
            busy_a = _backend_values(sa["values"], "sluice_backend_busy_seconds_total")
            busy_b = _backend_values(sb["values"], "sluice_backend_busy_seconds_total")
            util = {k: (busy_b[k] - busy_a.get(k, 0.0)) / T for k in sorted(busy_b)}
            if not connection_slots:
                row["util_by_backend"] = json.dumps({k: round(v, 4) for k, v in util.items()})
                row["util_mean"] = sum(util.values()) / len(util) if util else math.nan
                row["util_over_rho"] = row["util_mean"] / rho if util else math.nan
            # The slot time per request over the whole run (first scrape, before any arrival, to the last,
            # after the drain): exactly the requests whose draws the loadgen recorded, so the difference of
            # the two means has no sampling noise from the draws.
            first, last = scrapes[0]["values"], scrapes[-1]["values"]
            conns = _sum(last, "sluice_backend_connections_total") - _sum(first, "sluice_backend_connections_total")
            all_draws = [r["service"] / 1e9 for r in reqs if r["error"] == "" and r["service"] >= 0]
            if conns > 0 and spec["slots"] == 1 and all_draws:
                busy = _sum(last, "sluice_backend_busy_seconds_total") - _sum(first, "sluice_backend_busy_seconds_total")
                row["slot_mean_ms"] = busy / conns * 1e3
                row["service_drawn_run_ms"] = sum(all_draws) / len(all_draws) * 1e3
                if True:
                    # slot = (draw - calibrated overhead) + actual overhead: slot - draw is the overhead
                    # itself in the calibration run, and what calibration did not absorb afterwards.
                    row["slot_overhead_ms"] = row["slot_mean_ms"] - row["service_drawn_run_ms"]
                    # The as-built server: a slot is held k times the backend's draw on average, so the
                    # queue's servers have mean service k / mu (k = 1 when calibration is exact).
                    row["slot_factor"] = row["slot_mean_ms"] / row["service_drawn_run_ms"]
                    mu_ab = mu / row["slot_factor"]
                    row["theory_mmc_as_built_wq_ms"] = q.mmc_wq(lam, mu_ab, c) * 1e3
                    if spec["family"] == "finite":
                        row["blocking_theory_as_built"] = q.mmck(lam, mu_ab, c, c + spec["max_length"])["blocking"]
            row["sluice_queue_full"] = d("sluice_listener_connections_rejected_total", reason="queue_full")
            row["sluice_accepted"] = d("sluice_listener_connections_accepted_total")

            # Time batches for the Wq interval: groups of consecutive scrape intervals in the window.
            bounds = [s["t_ns"] for s in inside]
            nb = min(20, len(bounds) - 1)
            if nb >= 2:
                edges = [bounds[round(i * (len(bounds) - 1) / nb)] for i in range(nb + 1)]
                by_t = {s["t_ns"]: s for s in inside}
                ys, ns = [], []
                for a, b in zip(edges, edges[1:]):
                    va, vb = by_t[a]["values"], by_t[b]["values"]
                    ys.append(_sum(vb, "sluice_service_queue_wait_seconds_sum") -
                              _sum(va, "sluice_service_queue_wait_seconds_sum"))
                    ns.append(_sum(vb, "sluice_service_queue_wait_seconds_count") -
                              _sum(va, "sluice_service_queue_wait_seconds_count"))
                r_wq, half = q.ratio_ci(ys, ns)
                row["Wq_half_ms"] = half * 1e3
                row["Wq_batches"] = nb
                row["Wq_lag1"] = q.lag1([y / n if n else 0 for y, n in zip(ys, ns)])
                if _mmc_like(spec) and stable and row["slot_factor"] != "":
                    row["_t0"], row["_t1"] = t0, t1
                    _control_variate(row, reqs, ok, edges, ys, ns, c, mu, lam, row["slot_factor"], scrapes)
                    del row["_t0"], row["_t1"]
        if not stable and spec["family"] == "mmc":
            pts = [(p["t_s"], p["lq"]) for p in series if t0 <= start + p["t_s"] * 1e9 <= t1]
            if len(pts) >= 3:
                slope, _ = q.linear_fit([p[0] for p in pts], [p[1] for p in pts])
                row["slope_per_s"] = slope
                row["slope_theory_per_s"] = lam - c * mu
                row["slope_ratio"] = slope / (lam - c * mu) if lam != c * mu else math.nan
                if row["slot_mean_ms"] != "":
                    # In overload every slot is always busy: the queue drains at c / slot time.
                    ab = row["offered_per_s"] - c / (row["slot_mean_ms"] / 1e3)
                    row["slope_theory_as_built_per_s"] = ab
                    # At rho = 1 the drift is ~0 and a ratio says nothing: the slope itself is the figure.
                    row["slope_ratio_as_built"] = slope / ab if abs(ab) > 0.05 * lam else math.nan
    if spec["family"] == "http_arm" and ok:
        _handoffs(row, ok)
        _client_wait(row, ok)
        if row["listener_mode"] == "http" and spec["queue_mode"] == "shared" and row["slot_factor"] != "":
            _connection_model(row, reqs, t0, t1, c, row["slot_factor"])
    (rundir / "analysis.json").write_text(json.dumps({"row": row, "queue_series": series}, default=str))
    return row


def _mmc_like(spec: dict) -> bool:
    """Runs whose Sluice queue is M/M/c, so that the replay of replay_fcfs is their control variate: one
    connection per request, or, in mode: http, a client with so many connections that it almost never
    holds a request back behind its connection's earlier one (K = 64 at rho 0.9: 0.1 % of the replayed
    wait, by replay_connections), or whose connections each carry that many requests at once
    (http.pipeline_depth: K x depth >= 32)."""
    if spec["family"] in ("mmc", "calibration") and spec["client"] == "new-connection":
        return True
    return spec["family"] == "http_arm" and spec.get("listener_mode") == "http" and \
        spec["queue_mode"] == "shared" and spec["connections"] * spec.get("pipeline_depth", 1) >= 32


def _handoffs(row: dict, ok: list[dict]) -> None:
    """A diagnostic of the machine: for consecutive requests on one backend where the second was sent
    before the first was answered (it waited for that backend), the time from the first's answer at
    the client to the second's service start at the backend: the slot's release, the dispatch and the
    request's way to the backend, ~0.2 ms. When the vCPUs are busy with other work, some of these
    wake-ups through loopback take tens of ms, and every one of them adds to a slot's time."""
    by: dict[str, list[dict]] = {}
    for r in ok:
        if r["elapsed"] >= 0:
            by.setdefault(r["backend"], []).append(r)
    gaps = []
    for rs in by.values():
        rs.sort(key=lambda r: r["done"])
        gaps += [(r["done"] - r["elapsed"] - p["done"]) / 1e9 for p, r in zip(rs, rs[1:]) if r["sent"] < p["done"]]
    if gaps:
        gaps.sort()
        row["handoffs"] = len(gaps)
        row["handoff_p50_ms"] = gaps[len(gaps) // 2] * 1e3
        row["handoff_mean_ms"] = sum(gaps) / len(gaps) * 1e3
        row["handoff_over_5ms"] = sum(1 for g in gaps if g > 0.005) / len(gaps)


def _client_wait(row: dict, ok: list[dict]) -> None:
    """The client's wait before service: response time minus the backend's own service time, less the
    mean hand-off overhead of a slot when Sluice measured it (slot time - backend service). In mode: http
    behind few connections it includes the time a request spends behind its connection's earlier ones."""
    series = [(r["done"] - r["sent"] - r["elapsed"]) / 1e9 for r in ok if r["elapsed"] >= 0]
    if not series:
        return
    bm = q.batch_means(series)
    overhead = 0.0
    if row["slot_mean_ms"] != "" and row["service_elapsed_ms"] != "":
        overhead = (row["slot_mean_ms"] - row["service_elapsed_ms"]) / 1e3
    row["client_wait_ms"] = (bm["mean"] - overhead) * 1e3
    row["client_wait_half_ms"] = bm["half"] * 1e3


def _connection_model(row: dict, reqs: list[dict], t0: int, t1: int, c: int, k: float) -> None:
    """The run's own arrivals, draws (x k, the slot factor) and connections replayed through the model of
    mode: http behind K persistent connections at the run's pipeline depth (queueing.replay_connections): the mean wait in Sluice's
    FIFO and the whole wait before service that this path gives, over the requests that arrived in the
    window."""
    if any(r["service"] < 0 or r["error"] for r in reqs):
        return
    fifo, total = q.replay_connections([r["scheduled"] / 1e9 for r in reqs], [r["service"] / 1e9 * k for r in reqs],
                                       c, [r["connection"] for r in reqs], int(row["pipeline_depth"] or 1))
    inside = [i for i, r in enumerate(reqs) if t0 <= r["scheduled"] < t1]
    if inside:
        row["Wq_model_ms"] = sum(fifo[i] for i in inside) / len(inside) * 1e3
        row["wait_model_ms"] = sum(total[i] for i in inside) / len(inside) * 1e3


STALL_NS = 5_000_000  # a send more than 5 ms late: the loadgen's CPU was taken away (a VM stall)


def _stall_diagnostic(row, reqs, arrivals, waits, scrapes, theory_wq):
    """Diagnostic, not an estimate of record: the control-variate difference over the 1 s scrape
    intervals in which no send was more than 5 ms late, nor in the interval before (a stall's queue
    lasts a while). On these 2-vCPU guests the host sometimes takes a vCPU away for 5-50 ms; every
    process on it stops, and the queue of that moment grows with no counterpart in the model."""
    stalled = set()
    times = [s["t_ns"] for s in scrapes]
    import bisect

    for r in reqs:
        if r["sent"] - r["scheduled"] > STALL_NS:
            i = bisect.bisect_right(times, r["scheduled"]) - 1
            stalled.update((i, i + 1))
    ys = ns = zs = ms = 0.0
    tot = [0.0] * len(times)
    cnt = [0] * len(times)
    for a, w in zip(arrivals, waits):
        i = bisect.bisect_right(times, int((a + w) * 1e9)) - 1
        if 0 <= i < len(times):
            tot[i] += w
            cnt[i] += 1
    per = []
    for i in range(len(times) - 1):
        a, b = scrapes[i], scrapes[i + 1]
        y = _sum(b["values"], "sluice_service_queue_wait_seconds_sum") - _sum(a["values"], "sluice_service_queue_wait_seconds_sum")
        n = _sum(b["values"], "sluice_service_queue_wait_seconds_count") - _sum(a["values"], "sluice_service_queue_wait_seconds_count")
        if a["t_ns"] < row["_t0"] or b["t_ns"] > row["_t1"] or n == 0:
            continue
        if i in stalled:
            continue
        per.append((y, n, tot[i], cnt[i]))
    row["stall_excluded_intervals"] = len(stalled)
    row["scrape_intervals"] = len(times) - 1
    if len(per) < 10:
        return
    ys, ns = sum(p[0] for p in per), sum(p[1] for p in per)
    zs, ms = sum(p[2] for p in per), sum(p[3] for p in per)
    if ns == 0 or ms == 0:
        return
    d = ys / ns - zs / ms
    row["Wq_cv_stallfree_ms"] = (d + theory_wq) * 1e3
    # Half-width from groups of consecutive kept intervals, as for the main estimate.
    groups = 20
    size = max(1, len(per) // groups)
    resid = []
    for g in range(0, len(per) - size + 1, size):
        chunk = per[g:g + size]
        yy, nn = sum(p[0] for p in chunk), sum(p[1] for p in chunk)
        zz, mm = sum(p[2] for p in chunk), sum(p[3] for p in chunk)
        if nn and mm:
            resid.append(yy / nn - zz / mm)
    _, half = q.mean_ci(resid)
    row["Wq_cv_stallfree_half_ms"] = half * 1e3


def _control_variate(row, reqs, ok, edges, ys, ns, c, mu, lam, k, scrapes):
    """Replays the recorded Poisson schedule and service draws (each times k, the run's slot factor, so
    the replay's servers are as slow as Sluice's slots) through an exact FCFS M/M/c queue from the same
    empty start. The draws are exponential with mean 1/mu, so the replay is an M/M/c path with service
    rate mu/k: E[replay mean wait] is Erlang C at mu/k (up to the start-up transient the warm-up
    removes). It tracks the real queue path by path, so the paired difference has little variance:
    Wq_cv = measured - replay + Erlang C(mu/k)."""
    if any(r["service"] < 0 or r["error"] for r in reqs):
        return  # every request must have been served for the replay to be the same path
    theory_wq = q.mmc_wq(lam, mu / k, c)
    arrivals = [r["scheduled"] / 1e9 for r in reqs]
    draws = [r["service"] / 1e9 * k for r in reqs]
    waits = q.replay_fcfs(arrivals, draws, c)
    # Replay waits grouped by replayed dispatch time into the same time batches as Sluice's counters.
    zs, ms = [0.0] * (len(edges) - 1), [0] * (len(edges) - 1)
    lo, hi = edges[0] / 1e9, edges[-1] / 1e9
    import bisect

    edge_s = [e / 1e9 for e in edges]
    for a, w in zip(arrivals, waits):
        t = a + w
        if lo <= t < hi:
            j = bisect.bisect_right(edge_s, t) - 1
            zs[j] += w
            ms[j] += 1
    if sum(ms) == 0 or sum(ns) == 0:
        return
    r1, r2 = sum(ys) / sum(ns), sum(zs) / sum(ms)
    nbar, mbar = sum(ns) / len(ns), sum(ms) / len(ms)
    resid = [(y - r1 * n) / nbar - (z - r2 * m) / mbar for y, n, z, m in zip(ys, ns, zs, ms)]
    _, half = q.mean_ci(resid)
    row["Wq_replay_ms"] = r2 * 1e3
    row["Wq_cv_ms"] = (r1 - r2 + theory_wq) * 1e3
    row["Wq_cv_half_ms"] = half * 1e3
    _stall_diagnostic(row, reqs, arrivals, waits, scrapes, theory_wq)
    # Diagnostic: the replay of what Sluice was actually given, arrivals at the client's connect and
    # slot times = the backend's measured service + the run's mean hand-off overhead. Agreement with the
    # measured Wq says Sluice's queue is exactly FCFS over its slots; a gap is in the inputs (late or
    # bunched sends, stretched services), not in the queue.
    if all(r["connected"] > 0 and r["elapsed"] >= 0 for r in reqs) and row["slot_mean_ms"] != "":
        extra = row["slot_mean_ms"] / 1e3 - sum(r["elapsed"] for r in reqs) / len(reqs) / 1e9
        actual = sorted(reqs, key=lambda r: r["connected"])
        a_arr = [r["connected"] / 1e9 for r in actual]
        a_waits = q.replay_fcfs(a_arr, [r["elapsed"] / 1e9 + extra for r in actual], c)
        tot, cnt = 0.0, 0
        for a, w in zip(a_arr, a_waits):
            if lo <= a + w < hi:
                tot += w
                cnt += 1
        if cnt:
            row["Wq_replay_actual_ms"] = tot / cnt * 1e3
    # The same for the client's response time, paired per request: W - (replay wait + draw).
    index = {id(r): i for i, r in enumerate(reqs)}
    diffs = [(r["done"] - r["sent"]) / 1e9 - (waits[index[id(r)]] + draws[index[id(r)]]) for r in ok]
    bm = q.batch_means(diffs)
    row["W_cv_ms"] = (bm["mean"] + theory_wq + k / mu) * 1e3
    row["W_cv_half_ms"] = bm["half"] * 1e3


# ---------------------------------------------------------------------------------------------------


def _f(x, fmt="{:.2f}"):
    if x == "" or x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return fmt.format(x)


def _ci(m, h, fmt="{:.2f}"):
    if m == "" or h == "" or (isinstance(h, float) and math.isnan(h)):
        return _f(m, fmt)
    return f"{fmt.format(m)} ± {fmt.format(h)}"


def _inside(theory, m, h):
    if "" in (theory, m, h) or any(isinstance(v, float) and math.isnan(v) for v in (theory, m, h)):
        return "–"
    return "yes" if abs(theory - m) <= h else "no"


def write_report(outdir: Path, rows: list[dict], meta: dict) -> str:
    by = {}
    for r in rows:
        by.setdefault(r["family"], []).append(r)
    for v in by.values():
        v.sort(key=lambda r: (r["rho"], str(r["K"])))
    lines = []
    any_row = rows[0]
    overheads = sorted({(r["listener_mode"], r["rho"], r["overhead_ms"]) for r in rows
                        if r["client"] != "persistent" or r["listener_mode"] == "http"})
    calibration = ", ".join(f"{o:.2f} ms at ρ {rho:.2f}{' (mode http)' if m == 'http' else ''}"
                            for m, rho, o in overheads) if any(o for _, _, o in overheads) else "none"
    lines.append(f"c = {any_row['c']} backends of one slot each, exponential service with mean 1/μ = "
                 f"{any_row['mean_service_ms']:g} ms (sleep mode); new-connection Poisson clients unless noted. "
                 f"Per-connection overhead taken off each draw (calibrated per ρ): {calibration}. "
                 f"Intervals are 95 %.")
    lines.append("")
    stable_mmc = [r for r in by.get("mmc", []) if r["rho"] < 1]
    if stable_mmc:
        lines.append("### M/M/c: Sluice `shared` + `least_connections`")
        lines.append("")
        lines.append("W is the client's response time; Wq and Lq are Sluice's own `queue_wait_seconds` (sum / count) "
                     "and `queue_length_seconds_total` (rate) over the window; \"control variate\" is the same Wq with the "
                     "sample-path noise taken out (see Statistics); \"as built\" is Erlang C with the slot's mean service "
                     "time as Sluice measured it in that run (`busy_seconds_total / connections_total`, k times the "
                     "backend's mean draw); utilisation is the mean `busy_seconds_total` rate of the backends.")
        lines.append("")
        lines.append("| ρ | λ /s | requests | W client (ms) | Wq Sluice (ms) | Wq control variate (ms) | Erlang C Wq (ms) | "
                     "error | as built: k − 1, Erlang C (ms) | error as built | c × M/M/1 Wq (ms) | "
                     "theory in 95 % interval: raw / cv / cv as built | Lq | λ·Wq | Lq/(λ·Wq) | utilisation (/ρ) |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in stable_mmc:
            def err(theory):
                if r["Wq_cv_ms"] == "" or theory in ("", math.inf):
                    return "–"
                return f"{(r['Wq_cv_ms'] / theory - 1) * 100:+.1f} %"
            inside = f"{_inside(r['theory_mmc_wq_ms'], r['Wq_ms'], r['Wq_half_ms'])} / " \
                     f"{_inside(r['theory_mmc_wq_ms'], r['Wq_cv_ms'], r['Wq_cv_half_ms'])} / " \
                     f"{_inside(r['theory_mmc_as_built_wq_ms'], r['Wq_cv_ms'], r['Wq_cv_half_ms'])}"
            built = "–"
            if r["slot_factor"] != "":
                built = f"{(r['slot_factor'] - 1) * 100:+.1f} %, {_f(r['theory_mmc_as_built_wq_ms'])}"
            lines.append(f"| {r['rho']:.2f} | {r['lambda']:.1f} | {r['arrivals']} | {_ci(r['W_ms'], r['W_half_ms'])} | "
                         f"{_ci(r['Wq_ms'], r['Wq_half_ms'])} | {_ci(r['Wq_cv_ms'], r['Wq_cv_half_ms'])} | "
                         f"{_f(r['theory_mmc_wq_ms'])} | {err(r['theory_mmc_wq_ms'])} | {built} | "
                         f"{err(r['theory_mmc_as_built_wq_ms'])} | {_f(r['theory_split_mm1_wq_ms'])} | {inside} | "
                         f"{_f(r['Lq'], '{:.3f}')} | {_f(r['lambda_Wq'], '{:.3f}')} | {_f(r['little_ratio'], '{:.4f}')} | "
                         f"{_f(r['util_mean'], '{:.3f}')} ({_f(r['util_over_rho'], '{:.3f}')}) |")
        lines.append("")
    rhos = sorted({r["rho"] for r in rows if r["family"] in ("mmc", "per_backend_rr", "per_backend_lc", "haproxy")})
    if rhos:  # not in the http arm
        lines.append("### Response time W by balancer (client side, ms)")
        lines.append("")
        lines.append("| rho | shared+LC | per_backend+RR | per_backend+LC | HAProxy maxconn 1 | M/M/c | E_c/M/1 (RR) | "
                     "JSQ (sim) | c × M/M/1 |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
    for rho in rhos:
        cells = []
        for fam in ("mmc", "per_backend_rr", "per_backend_lc", "haproxy"):
            match = [r for r in by.get(fam, []) if r["rho"] == rho]
            cells.append(_ci(match[0]["W_ms"], match[0]["W_half_ms"], "{:.1f}") if match and rho < 1 else
                         (_f(match[0]["W_ms"], "{:.0f}") + " (unstable)" if match else "–"))
        ref = next(r for r in rows if r["rho"] == rho)
        s = ref["mean_service_ms"]
        jsq = next((r["theory_jsq_wq_ms"] for r in by.get("per_backend_lc", []) if r["rho"] == rho), "")
        lines.append(f"| {rho:.2f} | " + " | ".join(cells) + " | " +
                     " | ".join(_f(x + s if x not in ("", math.inf) else x, "{:.1f}") for x in
                                (ref["theory_mmc_wq_ms"], ref["theory_ecm1_wq_ms"], jsq, ref["theory_split_mm1_wq_ms"]))
                     + " |")
    lines.append("")
    over = [r for r in by.get("mmc", []) if r["rho"] >= 1]
    if over:
        lines.append("### rho ≥ 1: queue growth (Sluice `shared`)")
        lines.append("")
        lines.append("| rho | λ − cμ (/s) | measured slope of Lq (/s) | ratio | as built: offered λ − c/slot (/s) | ratio |")
        lines.append("|---|---|---|---|---|---|")
        for r in over:
            lines.append(f"| {r['rho']:.2f} | {_f(r['slope_theory_per_s'], '{:.1f}')} | {_f(r['slope_per_s'], '{:.1f}')} | "
                         f"{_f(r['slope_ratio'], '{:.3f}')} | {_f(r['slope_theory_as_built_per_s'], '{:.1f}')} | "
                         f"{_f(r['slope_ratio_as_built'], '{:.3f}')} |")
        lines.append("")
    if "finite" in by:
        lines.append("### Finite queue: M/M/c/K (`queue.max_length` = K − c)")
        lines.append("")
        lines.append("| K | rho | arrivals | refused (measured) | M/M/c/K blocking | theory in CI | as built (k − 1) | "
                     "as built in CI | Sluice queue_full / accepted |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for r in by["finite"]:
            sl = (r["sluice_queue_full"] / r["sluice_accepted"]) if r["sluice_accepted"] not in ("", 0, 0.0) else ""
            factor = f" ({(r['slot_factor'] - 1) * 100:+.1f} %)" if r["slot_factor"] != "" else ""
            lines.append(f"| {r['K']}{' (Erlang B)' if r['max_length'] == 0 else ''} | {r['rho']:.2f} | {r['arrivals']} | "
                         f"{_ci(r['blocking'], r['blocking_half'], '{:.4f}')} | {_f(r['blocking_theory'], '{:.4f}')} | "
                         f"{_inside(r['blocking_theory'], r['blocking'], r['blocking_half'])} | "
                         f"{_f(r['blocking_theory_as_built'], '{:.4f}')}{factor} | "
                         f"{_inside(r['blocking_theory_as_built'], r['blocking'], r['blocking_half'])} | {_f(sl, '{:.4f}')} |")
        lines.append("")
    pers = by.get("persistent", [])
    if pers:
        lines.append("### Persistent connections vs one connection per request (per-backend share of requests)")
        lines.append("")
        lines.append("| client | balancer | requests per backend | utilisation per backend | mean W (ms) |")
        lines.append("|---|---|---|---|---|")
        for r in sorted(pers, key=lambda r: (r["spread"] == "idle-first", r["balancer"] == "haproxy",
                                             r["queue_mode"] != "per_backend", r["policy"] != "round_robin")):
            spread = "idle-first spread" if r["spread"] == "idle-first" else "even spread"
            lines.append(f"| persistent, K = {r['connections']}, {spread} | {_balancer_name(r)} | {_shares(r['per_backend'])} | "
                         f"{_utils(r['util_by_backend'])} | {_f(r['W_ms'], '{:.1f}')} |")
        rho = pers[0]["rho"]
        for fam in ("per_backend_rr", "per_backend_lc", "mmc"):
            for r in by.get(fam, []):
                if abs(r["rho"] - rho) < 1e-9:
                    lines.append(f"| new-connection | {_balancer_name(r)} | {_shares(r['per_backend'])} | "
                                 f"{_utils(r['util_by_backend'])} | {_f(r['W_ms'], '{:.1f}')} |")
        lines.append("")
    if "http_arm" in by:
        lines += http_arm_report(by["http_arm"])
    return "\n".join(lines)


def http_arm_order(r: dict) -> tuple:
    """Rows and bars of the http arm: by rho, the K = 4 shared queue in mode: tcp then http, then the
    per-backend FIFOs, then the client with many connections."""
    return (r["rho"], r["connections"], r["queue_mode"] != "shared", r["listener_mode"] == "http", r["policy"])


def http_arm_report(rows: list[dict]) -> list[str]:
    lines = ["### The http arm: persistent client connections through `mode: http` and `mode: tcp`", "",
             "K keep-alive client connections (requests spread round-robin over them), c one-slot backends "
             "(`max_connections: 1`; in `mode: tcp` unlimited, each backend's own FIFO, since a keep-alive "
             "connection would hold a slot for its whole life). Wq Sluice is `queue_wait_seconds` sum / count over "
             "the window (ratio-estimator interval over time batches); the error is against nominal Erlang C; "
             "\"model\" replays the run's own arrivals, draws (× k) and connections through the model of "
             "`mode: http` behind K connections (a connection's next request is read after the response before "
             "it): Sluice's FIFO wait / the whole wait; client wait is W − the slot time (batch means); hand-offs over 5 ms: of the dispatches to a backend "
             "that a request waited for, the share that took over 5 ms from the previous answer to the next service "
             "start (~0.2 ms when the machine is quiet).", "",
             "| mode | queue + policy | K | ρ | requests | share per backend | max \\|share − 1/c\\| | "
             "Wq Sluice (ms) | Erlang C (ms) | error | as built: k − 1, Erlang C (ms) | Wq control variate (ms) | "
             "model: Wq Sluice / wait (ms) | client wait (ms) | utilisation per backend | hand-offs over 5 ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=http_arm_order):
        err = "–"
        if r["Wq_ms"] != "" and r["theory_mmc_wq_ms"] not in ("", math.inf):
            err = f"{(r['Wq_ms'] / r['theory_mmc_wq_ms'] - 1) * 100:+.1f} %"
        built = "–"
        if r["slot_factor"] != "":
            built = f"{(r['slot_factor'] - 1) * 100:+.1f} %, {_f(r['theory_mmc_as_built_wq_ms'])}"
        model = f"{_f(r['Wq_model_ms'])} / {_f(r['wait_model_ms'])}" if r["Wq_model_ms"] != "" else "–"
        lines.append(f"| {r['listener_mode']} | {r['queue_mode']} + {r['policy']} | {r['connections']} | {r['rho']:.2f} | "
                     f"{r['arrivals']} | {_shares(r['per_backend'])} | {_f(r['share_max_dev'], '{:.3f}')} | "
                     f"{_ci(r['Wq_ms'], r['Wq_half_ms']) if r['slots'] != 0 else '– (no queue)'} | "
                     f"{_f(r['theory_mmc_wq_ms'])} | {err if r['slots'] != 0 else '–'} | {built} | "
                     f"{_ci(r['Wq_cv_ms'], r['Wq_cv_half_ms'])} | {model} | "
                     f"{_ci(r['client_wait_ms'], r['client_wait_half_ms'])} | {_utils(r['util_by_backend'])} | "
                     f"{_f(r['handoff_over_5ms'] * 100 if r['handoff_over_5ms'] != '' else '', '{:.1f} %')} |")
    lines.append("")
    return lines


def _balancer_name(r):
    if r["balancer"] == "haproxy":
        return f"HAProxy {r['policy']}"
    return f"Sluice {r['queue_mode']} + {r['policy']}"


def _shares(per_backend_json):
    d = json.loads(per_backend_json) if per_backend_json else {}
    total = sum(d.values()) or 1
    return ", ".join(f"{k} {v} ({100 * v / total:.0f} %)" for k, v in d.items())


def _utils(util_json):
    if not util_json:
        return "–"
    d = json.loads(util_json)
    return ", ".join(f"{k} {v:.2f}" for k, v in d.items())


def main_for(outdir: Path, quick: bool = False, publish: Path | None = None) -> int:
    import plots

    rows = []
    for rundir in sorted((outdir / "runs").glob("*")):
        if not (rundir / "run.json").exists():
            continue
        info = json.loads((rundir / "run.json").read_text())
        rows.append(analyze_run(rundir, info))
    if not rows:
        print("analyze: no runs found", file=sys.stderr)
        return 1
    with open(outdir / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RUN_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    meta = json.loads((outdir / "sweep.json").read_text()) if (outdir / "sweep.json").exists() else {}
    report = write_report(outdir, rows, meta)
    written = plots.make_all(outdir, rows)
    (outdir / "report.md").write_text(report + "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in written) + "\n")
    print(report)
    print(f"analyze: {len(rows)} runs -> {outdir / 'runs.csv'}, {outdir / 'report.md'}, "
          + ", ".join(p.name for p in written))
    if publish:
        target = publish / "experiments"
        target.mkdir(parents=True, exist_ok=True)
        # The http arm is published beside the main sweep, not over it.
        tag = "-http" if all(r["family"] == "http_arm" for r in rows) else ""
        for p in written:
            (target / p.name).write_bytes(p.read_bytes())
        (target / f"results{tag}.md").write_text(
            "<!-- Generated by scripts/experiment.sh --publish; do not edit. -->\n\n" + report + "\n\n" +
            "\n".join(f"![{p.stem}]({p.name})" for p in written) + "\n")
        (target / f"runs{tag}.csv").write_bytes((outdir / "runs.csv").read_bytes())
        print(f"analyze: published to {target}")
    if quick:
        return check_quick(outdir, rows, written)
    return 0


def check_quick(outdir: Path, rows: list[dict], written: list[Path]) -> int:
    """The end-to-end assertions of the quick mode (loose bounds: the runs are seconds long)."""
    failures = []

    def check(ok, what):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    print("quick checks:")
    for r in rows:
        check(r["arrivals"] > 0 and r["ok"] > 0, f"{r['id']}: requests recorded ({r['ok']} ok of {r['arrivals']})")
        if r["rho"] < 1 and r["family"] != "finite":
            check(abs(r["throughput_per_s"] / r["lambda"] - 1) < 0.25,
                  f"{r['id']}: throughput {r['throughput_per_s']:.1f}/s within 25 % of lambda {r['lambda']:.1f}/s")
        if r["balancer"] == "sluice" and r["little_ratio"] != "" and r["rho"] < 1 and r["Lq"] > 0.01:
            check(abs(r["little_ratio"] - 1) < 0.10, f"{r['id']}: Little's law Lq/(lambda Wq) = {r['little_ratio']:.3f}")
        if r["family"] == "mmc" and r["rho"] < 1:
            check(r["util_mean"] != "" and abs(r["util_mean"] / r["rho"] - 1) < 0.25,
                  f"{r['id']}: utilisation {_f(r['util_mean'], '{:.3f}')} near rho {r['rho']}")
            check(r["Wq_cv_ms"] != "", f"{r['id']}: control-variate estimate computed")
        if r["family"] == "mmc" and r["rho"] > 1:
            check(r["slope_per_s"] != "" and r["slope_per_s"] > 0 and r["slope_ratio_as_built"] != "" and
                  abs(r["slope_ratio_as_built"] - 1) < 0.3,
                  f"{r['id']}: queue grows at {_f(r['slope_per_s'], '{:.1f}')}/s; offered lambda - c/slot = "
                  f"{_f(r['slope_theory_as_built_per_s'], '{:.1f}')}/s (lambda - c mu = {r['slope_theory_per_s']:.1f}/s)")
        if r["family"] == "finite":
            check(r["refused"] > 0, f"{r['id']}: some arrivals refused ({r['refused']})")
        if r["family"] == "persistent":
            check(len(json.loads(r["per_backend"])) == r["c"], f"{r['id']}: every backend answered")
            if r["connections"] == 4 and r["spread"] == "round-robin":  # 4 connections on 3 backends: 2/1/1
                check(_f(r["share_max_dev"], "{:.3f}") != "–" and r["share_max_dev"] >= 0.12,
                      f"{r['id']}: mode tcp shares 2/1/1-like ({_shares(r['per_backend'])})")
        if r["family"] == "http_arm" and r["listener_mode"] == "http":
            # Every request answered: a connection stuck behind a held slot would still share 1/3 of the rest.
            check(r["ok"] == r["arrivals"], f"{r['id']}: every request answered ({r['ok']} of {r['arrivals']})")
            check(r["share_max_dev"] != "" and r["share_max_dev"] <= 0.05,
                  f"{r['id']}: mode http shares within 1/{r['c']} +- 0.05 ({_shares(r['per_backend'])})")
            check(r["Wq_model_ms"] != "", f"{r['id']}: connection-model replay computed")
    check((outdir / "runs.csv").exists(), "runs.csv written")
    check(len(written) >= 3 and all(p.stat().st_size > 1000 for p in written),
          f"plots written: {', '.join(p.name for p in written)}")
    if failures:
        print(f"quick: {len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("quick: every check passed")
    return 0
