"""The sweep's figures (matplotlib, no display): W against rho with 95 % intervals and the theory curves,
the queue length over time for rho >= 1 beside the lambda - c mu slope, per-backend load under
persistent connections, and the blocking of finite queues against M/M/c/K."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import queueing as q  # noqa: E402

FAMILIES = [
    ("mmc", "Sluice shared + least_connections", "o", "tab:blue"),
    ("per_backend_rr", "Sluice per_backend + round_robin", "s", "tab:red"),
    ("per_backend_lc", "Sluice per_backend + least_connections", "^", "tab:green"),
    ("haproxy", "HAProxy maxconn 1", "D", "tab:purple"),
]


def make_all(outdir: Path, rows: list[dict]) -> list[Path]:
    written = []
    for fn in (w_vs_rho, queue_growth, persistent_balance, blocking, http_balance):
        path = fn(outdir, rows)
        if path is not None:
            written.append(path)
    return written


def _num(x):
    return isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x))


def w_vs_rho(outdir: Path, rows: list[dict]) -> Path | None:
    pts = [r for r in rows if r["family"] in dict((f[0], 1) for f in FAMILIES) and r["rho"] < 1 and _num(r["W_ms"])]
    if not pts:
        return None
    ref = pts[0]
    c, s = ref["c"], ref["mean_service_ms"] / 1e3
    mu = 1 / s
    fig, ax = plt.subplots(figsize=(8, 5.2))
    grid = [i / 200 for i in range(10, 196)]
    curves = [
        ("M/M/c (Erlang C)", lambda rho: q.mmc_wq(rho * c * mu, mu, c), "tab:blue", "-"),
        ("E$_c$/M/1 (round-robin split)", lambda rho: q.ecm1_wq(rho * c * mu, mu, c), "tab:red", "--"),
        (f"{c} × M/M/1 (random split)", lambda rho: q.mm1_split_wq(rho * c * mu, mu, c), "gray", ":"),
    ]
    for label, wq, color, style in curves:
        ax.plot(grid, [(wq(g) + s) * 1e3 for g in grid], style, color=color, lw=1.2, label=f"theory: {label}")
    jsq = sorted((r["rho"], r["theory_jsq_wq_ms"]) for r in rows if _num(r["theory_jsq_wq_ms"]))
    if jsq:
        ax.plot([j[0] for j in jsq], [j[1] + s * 1e3 for j in jsq], "-.", color="tab:green", lw=1.2,
                label="simulation: JSQ (least connections per backend)")
    offsets = {"mmc": -0.009, "per_backend_rr": -0.003, "per_backend_lc": 0.003, "haproxy": 0.009}
    for fam, label, marker, color in FAMILIES:
        fr = sorted((r for r in pts if r["family"] == fam), key=lambda r: r["rho"])
        if not fr:
            continue
        ax.errorbar([r["rho"] + offsets[fam] for r in fr], [r["W_ms"] for r in fr],
                    yerr=[r["W_half_ms"] if _num(r["W_half_ms"]) else 0 for r in fr], fmt=marker, color=color,
                    ms=5, capsize=3, label=f"measured: {label}")
    ax.set_xlabel("ρ = λ / (c μ)")
    ax.set_ylabel("mean response time W (ms)")
    ax.set_title(f"Response time, c = {c}, 1/μ = {s * 1e3:g} ms, Poisson arrivals (95 % intervals, batch means)")
    top = max(r["W_ms"] + (r["W_half_ms"] if _num(r["W_half_ms"]) else 0) for r in pts)
    ax.set_ylim(0, min(top * 1.25, 12 * s * 1e3))
    ax.set_xlim(0.2, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")
    path = outdir / "w_vs_rho.png"
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def queue_growth(outdir: Path, rows: list[dict]) -> Path | None:
    over = sorted((r for r in rows if r["family"] == "mmc" and r["rho"] >= 1), key=lambda r: r["rho"])
    if not over:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = ["tab:blue", "tab:orange", "tab:red", "tab:purple", "tab:brown"]
    for i, r in enumerate(over):
        data = json.loads((outdir / "runs" / r["id"] / "analysis.json").read_text())
        series = data["queue_series"]
        if not series:
            continue
        color = colors[i % len(colors)]
        ts = [p["t_s"] for p in series]
        ax.plot(ts, [p["lq"] for p in series], "-", color=color, lw=1.3,
                label=f"ρ = {r['rho']:.2f}: measured (queue_length_seconds_total rate per scrape interval)")
        slope = r["slope_theory_per_s"] if _num(r["slope_theory_per_s"]) else r["lambda"] - r["c"] * 1e3 / r["mean_service_ms"]
        end = r["warmup_s"] + r["window_s"]
        ax.plot([0, end], [0, slope * end], "--", color=color, lw=1,
                label=f"ρ = {r['rho']:.2f}: λ − cμ = {slope:.1f}/s"
                      + (f" (fit {r['slope_per_s']:.1f}/s)" if _num(r["slope_per_s"]) else ""))
    ax.set_xlabel("time since the first arrival (s)")
    ax.set_ylabel("queue length (connections waiting in Sluice)")
    ax.set_title("Overload: the shared queue grows at λ − cμ")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")
    path = outdir / "queue_growth.png"
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def persistent_balance(outdir: Path, rows: list[dict]) -> Path | None:
    pers = [r for r in rows if r["family"] == "persistent"]
    if not pers:
        return None
    rho = pers[0]["rho"]
    groups = []
    # Sluice before HAProxy, K = 4 round-robin spread before the pool-like idle-first client.
    for r in sorted(pers, key=lambda r: (r["spread"] == "idle-first", r["balancer"] == "haproxy",
                                         r["queue_mode"] != "per_backend", r["policy"] != "round_robin")):
        who = "HAProxy" if r["balancer"] == "haproxy" else f"{r['queue_mode']}\n{r['policy'].replace('_', ' ')}"
        spread = "idle-first" if r["spread"] == "idle-first" else "even"
        groups.append((f"persistent K={r['connections']}\n{spread} spread\n{who}", r))
    for fam in ("per_backend_rr", "per_backend_lc", "mmc"):
        for r in rows:
            if r["family"] == fam and abs(r["rho"] - rho) < 1e-9:
                groups.append((f"new connection\n{r['queue_mode']}\n{r['policy'].replace('_', ' ')}", r))
    return _share_bars(groups, outdir / "persistent_balance.png", pers[0]["c"],
                       f"Per-backend load at ρ = {rho:.2f}: persistent connections vs one connection per request",
                       "utilisation (busy_seconds rate)")


def http_balance(outdir: Path, rows: list[dict]) -> Path | None:
    """The http arm: per-backend shares and utilisation, mode: tcp vs mode: http, and at rho 0.7 the
    per-backend FIFOs (round-robin, least-connections) beside the shared queue."""
    from analyze import http_arm_order

    arm = sorted((r for r in rows if r["family"] == "http_arm"), key=http_arm_order)
    if not arm:
        return None
    groups = []
    for r in arm:
        queue = "shared" if r["queue_mode"] == "shared" else f"per_backend\n{r['policy'].replace('_', ' ')}"
        groups.append((f"ρ {r['rho']:.1f}, K={r['connections']}\n{r['listener_mode']}\n{queue}", r))
    return _share_bars(groups, outdir / "http_balance.png", arm[0]["c"],
                       "Per-backend load behind K persistent client connections: mode tcp vs mode http",
                       "utilisation")


def _share_bars(groups: list, path: Path, c: int, title: str, util_label: str) -> Path:
    """Bars per run of each backend's share of requests (top) and utilisation (bottom, the run's rho
    dashed)."""
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 1.4 * len(groups)), 7), sharex=True)
    names = sorted({b for _, r in groups for b in json.loads(r["per_backend"] or "{}")})
    width = 0.8 / max(1, len(names))
    palette = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for gi, (_, r) in enumerate(groups):
        counts = json.loads(r["per_backend"] or "{}")
        total = sum(counts.values()) or 1
        utils = json.loads(r["util_by_backend"]) if r["util_by_backend"] else {}
        for bi, b in enumerate(names):
            x = gi + (bi - (len(names) - 1) / 2) * width
            ax1.bar(x, 100 * counts.get(b, 0) / total, width, color=palette[bi % len(palette)],
                    label=b if gi == 0 else None)
            if b in utils:
                ax2.bar(x, utils[b], width, color=palette[bi % len(palette)])
    ax1.axhline(100 / c, ls="--", color="gray", lw=1)
    ax1.set_ylabel("share of requests (%)")
    ax1.set_title(title)
    ax1.legend(fontsize=8)
    for gi, (_, r) in enumerate(groups):
        ax2.hlines(r["rho"], gi - 0.45, gi + 0.45, linestyles="--", color="gray", lw=1)
    ax2.set_ylabel(util_label)
    ax2.set_xticks(range(len(groups)))
    ax2.set_xticklabels([g[0] for g in groups], fontsize=7.5)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def blocking(outdir: Path, rows: list[dict]) -> Path | None:
    fin = [r for r in rows if r["family"] == "finite" and _num(r["blocking"])]
    if not fin:
        return None
    c, s = fin[0]["c"], fin[0]["mean_service_ms"] / 1e3
    mu = 1 / s
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    grid = [i / 100 for i in range(20, 141)]
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for i, k in enumerate(sorted({r["K"] for r in fin})):
        color = colors[i % len(colors)]
        ax.plot(grid, [q.mmck(g * c * mu, mu, c, k)["blocking"] for g in grid], "-", color=color, lw=1.2,
                label=f"M/M/c/K, K = {k}" + (" (Erlang B)" if k == c else ""))
        fr = sorted((r for r in fin if r["K"] == k), key=lambda r: r["rho"])
        ax.errorbar([r["rho"] for r in fr], [r["blocking"] for r in fr],
                    yerr=[r["blocking_half"] if _num(r["blocking_half"]) else 0 for r in fr], fmt="o", color=color,
                    capsize=3, label=f"measured, K = {k}")
    ax.set_xlabel("ρ = λ / (c μ)")
    ax.set_ylabel("fraction of arrivals refused")
    ax.set_title(f"Finite queue: queue.max_length = K − c, c = {c}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = outdir / "blocking.png"
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
