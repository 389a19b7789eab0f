"""The local scaler of the scaling experiment (docs/experiments.md, "Dynamic scaling").

A Fleet is a set of one-slot `sluice-backend` processes (exponential service, sleep mode), each on its own
loopback address 127.0.F.N and one fixed port, published to Sluice as the A records of one name served by a
dnsmasq of the fleet's own (its hosts file rewritten whole, then SIGHUP). Scaling up starts a process D
seconds after the decision (a pod start) and then adds its record; scaling down takes the record out first,
waits until Sluice has drained the backend (it is gone from /backends), and only then stops the process.

The policies say how many backends a lane wants, every `period` seconds:
- StaticPolicy: a fixed count (static peak or static mean provisioning);
- HpaPolicy: desired = ceil(ready x utilisation / 0.7), utilisation the backends' busy fraction from Sluice's
  /metrics over the last window, within HPA's 10 % tolerance;
- ErlangPolicy: desired = /scaling's recommended_backends (only while its state is "ok").
Both dynamic policies go through HPA's scale-down stabilisation (the largest desire of the last S seconds),
as they would through a HorizontalPodAutoscaler or KEDA in Kubernetes. Every decision and action is logged
with its time (seconds since the lane's start)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import harness as h
import queueing as q
import rate_profile

DNSMASQ = "/usr/sbin/dnsmasq"


def get_json(admin: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{admin}{path}", timeout=5) as r:
        return json.loads(r.read().decode())


def service_scaling(admin: str, service: str) -> dict | None:
    """The service's entry of /scaling; None if the daemon has no such endpoint (404)."""
    try:
        doc = get_json(admin, "/scaling")
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise
    return next((sv for sv in doc.get("services", []) if sv.get("service") == service), None)


@dataclass
class Member:
    index: int               # N of 127.0.F.N
    decided_at: float        # the scale-up decision (cost counts from here: a starting pod is paid for)
    due_at: float            # when it starts (decided_at + delay)
    proc: h.Proc | None = None
    published_at: float | None = None
    removed_at: float | None = None   # taken out of DNS
    stopped_at: float | None = None


@dataclass
class Fleet:
    procs: h.Processes
    backend_binary: str
    rundir: Path
    net: int                 # F of 127.0.F.N
    port: int
    mean_service_s: float
    seed: int
    rt: list[str]
    delay_s: float
    t0: float = field(default_factory=time.monotonic)
    members: list[Member] = field(default_factory=list)
    actions: list[dict] = field(default_factory=list)
    dns_port: int = 0
    dnsmasq: h.Proc | None = None

    name = "pool.test"

    # -- DNS ------------------------------------------------------------------------------------------

    def address(self, m: Member) -> str:
        return f"127.0.{self.net}.{m.index}"

    def start_dns(self) -> str:
        """dnsmasq on 127.0.0.1 and a port free for UDP and TCP, answering only from the fleet's hosts file."""
        self.hosts = self.rundir / "hosts"
        self.hosts.write_text("")
        for attempt in range(20):
            self.dns_port = h.free_dns_port(attempt)
            cmd = [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", "--pid-file=", "--no-resolv", "--no-hosts",
                   "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={self.dns_port}",
                   f"--addn-hosts={self.hosts}", "--local=/test/", "--log-facility=-"]
            if os.geteuid() == 0:
                cmd.append("--user=root")  # else it switches to a user "dnsmasq"
            self.dnsmasq = self.procs.start("dnsmasq", cmd, self.rundir / "dnsmasq.log")
            try:
                h.wait_for_line(self.dnsmasq, r"read .*hosts|started, version", timeout=5)
                time.sleep(0.2)
                if self.dnsmasq.popen.poll() is None:
                    return f"127.0.0.1:{self.dns_port}"
            except h.HarnessError:
                pass
            self.procs.stop(self.dnsmasq)
        raise h.HarnessError("dnsmasq did not start (is dnsmasq-base installed? scripts/install-deps.sh)")

    def publish(self) -> None:
        if self.dnsmasq is None:  # not serving yet (the self-check's fleets never do)
            return
        lines = [f"{self.address(m)} {self.name}\n" for m in self.members
                 if m.published_at is not None and m.removed_at is None]
        tmp = self.hosts.with_suffix(".next")
        tmp.write_text("".join(lines))
        tmp.replace(self.hosts)
        self.dnsmasq.popen.send_signal(signal.SIGHUP)

    # -- membership ------------------------------------------------------------------------------------

    def shift_clock(self, t0: float) -> None:
        """Makes t0 (monotonic) the fleet's time 0: what happened before has negative times."""
        delta = t0 - self.t0
        for m in self.members:
            for key in ("decided_at", "due_at", "published_at", "removed_at", "stopped_at"):
                if getattr(m, key) is not None:
                    setattr(m, key, getattr(m, key) - delta)
        for a in self.actions:
            a["t_s"] = round(a["t_s"] - delta, 3)
        self.t0 = t0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, action: str, m: Member | None = None, **detail) -> None:
        row = {"t_s": round(self.now(), 3), "action": action,
               "backend": self.address(m) if m else "", **detail}
        self.actions.append(row)

    def planned(self) -> list[Member]:
        """Started or starting, not on its way out."""
        return [m for m in self.members if m.removed_at is None]

    def ready_count(self) -> int:
        return sum(1 for m in self.planned() if m.published_at is not None)

    def scale_to(self, n: int, reason: str, delay: float | None = None) -> None:
        planned = self.planned()
        if n == len(planned):
            return
        self.log("decide", desired=n, planned=len(planned), reason=reason)
        delay = self.delay_s if delay is None else delay
        now = self.now()
        if n > len(planned):
            used = {m.index for m in self.members if m.stopped_at is None}
            for _ in range(n - len(planned)):
                index = next(i for i in range(1, 250) if i not in used)
                used.add(index)
                self.members.append(Member(index, now, now + delay))
            return
        # Down: the newest first; one not started yet is simply cancelled.
        for m in sorted(planned, key=lambda m: (m.decided_at, m.index), reverse=True)[: len(planned) - n]:
            m.removed_at = now
            if m.proc is None:
                m.stopped_at = now
                self.log("cancel", m)
            else:
                self.log("unpublish", m)
        self.publish()

    def tick(self, backends_json: dict | None) -> None:
        """Starts what is due, publishes what listens, stops what Sluice has drained."""
        now = self.now()
        started = []
        for m in self.members:
            if m.proc is None and m.removed_at is None and now >= m.due_at:
                cmd = self.rt + [self.backend_binary, "--listen", f"{self.address(m)}:{self.port}",
                                 "--name", f"b{m.index}", "--mean-service", f"{self.mean_service_s * 1e6:.0f}us",
                                 "--distribution", "exponential", "--mode", "sleep", "--concurrency", "1",
                                 "--seed", str(self.seed * 1000 + m.index)]
                m.proc = self.procs.start(f"b{m.index}", cmd, self.rundir / f"backend-{m.index}.log",
                                          env={"NODE_NAME": f"node-{m.index}"})
                started.append(m)
        for m in started:
            h.wait_for_line(m.proc, r"listening on ", timeout=10)
            m.published_at = self.now()
            self.log("start+publish", m)
        if started:
            self.publish()
        if backends_json is None:
            return
        known = {b.get("resolved") or b.get("address") for s in backends_json["services"] for b in s["backends"]}
        known |= {b.get("name") for s in backends_json["services"] for b in s["backends"]}
        for m in self.members:
            if m.removed_at is not None and m.stopped_at is None and m.proc is not None:
                if not any(k and k.startswith(self.address(m) + ":") or k == self.address(m) for k in known):
                    self.procs.stop(m.proc)
                    m.stopped_at = self.now()
                    self.log("drained+stop", m)

    def backend_seconds(self, start: float, end: float) -> float:
        """Time each backend was paid for (from its decision to its stop) inside [start, end]."""
        total = 0.0
        for m in self.members:
            stop = m.stopped_at if m.stopped_at is not None else end
            total += max(0.0, min(stop, end) - max(m.decided_at, start))
        return total

    def count_at(self, t: float) -> int:
        return sum(1 for m in self.members if m.decided_at <= t and (m.stopped_at is None or m.stopped_at > t))


# ---------------------------------------------------------------------------------------------------
# Policies.


@dataclass
class Target:
    mean_s: float = 0.010       # mean queue wait
    wait_s: float = 0.050       # the SLO's bound
    share: float = 0.95         # of requests within wait_s (the acceptance)
    design_p: float = 0.999     # the quantile the scalers provision for (a margin for transients)


def needed(lam: float, mu: float, t: Target, lo: int = 1, hi: int = 64) -> int:
    """c*: the fewest one-slot backends whose M/M/c mean wait and P(Wq > wait_s) meet the target."""
    for c in range(lo, hi + 1):
        if lam >= c * mu:
            continue
        p_late = q.erlang_c(c, lam / mu) * math.exp(-(c * mu - lam) * t.wait_s)
        if q.mmc_wq(lam, mu, c) <= t.mean_s and p_late <= 1 - t.design_p:
            return c
    return hi



class StaticPolicy:
    dynamic = False

    def __init__(self, n: int):
        self.n = n

    def desired(self, lane) -> tuple[int | None, str]:
        return self.n, "static"


class Stabiliser:
    """HPA's scale-down stabilisation: act on the largest desire of the last `window_s` seconds."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self.history: deque = deque()

    def apply(self, t: float, desired: int) -> int:
        self.history.append((t, desired))
        while self.history and self.history[0][0] < t - self.window_s:
            self.history.popleft()
        return max(d for _, d in self.history)


class HpaPolicy:
    """Kubernetes HPA on CPU-like utilisation: ceil(ready x u / target), no change within the tolerance."""

    dynamic = True

    def __init__(self, window_s: float, target: float = 0.7, tolerance: float = 0.1):
        self.window_s, self.target, self.tolerance = window_s, target, tolerance
        self.samples: deque = deque()  # (t, {backend label: busy seconds})

    def observe(self, t: float, metrics: dict) -> None:
        busy = {k: v for k, v in metrics.items() if k.startswith("sluice_backend_busy_seconds_total")}
        self.samples.append((t, busy))
        while self.samples and self.samples[0][0] < t - self.window_s:
            self.samples.popleft()

    def utilisation(self) -> float | None:
        """The mean over the current backends of each one's busy fraction over the window (from its first
        sample in the window: a new backend counts from when it appeared, as a new pod does). None until
        the samples span the window, as an HPA has its metrics' full window from the start."""
        if len(self.samples) < 2 or self.samples[-1][0] - self.samples[0][0] < self.window_s - 1.5:
            return None
        t_last, last = self.samples[-1]
        fractions = []
        for key, value in last.items():
            first = next(((t, s[key]) for t, s in self.samples if key in s), None)
            if first and t_last - first[0] >= 1.0:
                fractions.append((value - first[1]) / (t_last - first[0]))
        return sum(fractions) / len(fractions) if fractions else None

    def desired(self, lane) -> tuple[int | None, str]:
        u = self.utilisation()
        ready = lane.fleet.ready_count()
        if u is None or ready == 0:
            return None, "no utilisation yet"
        ratio = u / self.target
        if abs(ratio - 1) <= self.tolerance:
            return ready, f"u={u:.3f} within tolerance"
        return math.ceil(ready * ratio), f"u={u:.3f}"


class ErlangPolicy:
    """Sluice's own answer: /scaling's recommended_backends for the service."""

    dynamic = True

    def desired(self, lane) -> tuple[int | None, str]:
        s = lane.scaling
        if not s or s.get("state") != "ok":
            return None, f"scaling state {s.get('state') if s else 'unavailable'}"
        return int(s["recommended_backends"]), (f"lambda={s.get('arrival_rate', 0):.1f} "
                                                f"rho={s.get('utilisation', 0):.3f}")


def _self_check() -> None:
    """The policies' arithmetic with made-up inputs (a unit test: no process, no Sluice)."""
    t = Target(design_p=0.99)
    # c* against M/M/c directly: at lambda 60/s, 1/mu 20 ms, 2 backends give a mean wait of 11.2 ms (> 10).
    assert q.mmc_wq(60, 50, 2) > 0.010 and needed(60, 50, t) == 3, needed(60, 50, t)
    assert needed(1, 50, t) == 1 and needed(300, 50, t) == 8 and needed(10_000, 50, t, hi=20) == 20
    # P(Wq > 50 ms) at 3 backends and 60/s: C(3, 1.2) e^(-(150 - 60) 0.05) = 0.1412 x 0.0111 = 0.0016: p 0.99 yes, 0.999 no.
    assert abs(q.erlang_c(3, 1.2) * math.exp(-90 * 0.05) - 0.0016) < 1e-4
    assert needed(60, 50, Target(design_p=0.999)) == 4

    class FakeFleet:
        def __init__(self, ready):
            self.ready = ready

        def ready_count(self):
            return self.ready

    class FakeLane:
        def __init__(self, ready, scaling=None):
            self.fleet, self.scaling = FakeFleet(ready), scaling

    def busy_fraction(u: float, backends: int = 4) -> HpaPolicy:
        hpa = HpaPolicy(window_s=10)
        for second in range(11):  # the window (10 s) spanned: 0 .. 10
            hpa.observe(float(second), {f'sluice_backend_busy_seconds_total{{backend="b{i}"}}': u * second
                                        for i in range(backends)})
        return hpa

    assert busy_fraction(0.9).desired(FakeLane(4))[0] == 6          # ceil(4 x 0.9 / 0.7)
    assert busy_fraction(0.75).desired(FakeLane(4))[0] == 4         # 0.75 / 0.7 = 1.07: within 10 %
    assert busy_fraction(0.35).desired(FakeLane(4))[0] == 2
    assert busy_fraction(1.0).desired(FakeLane(4))[0] == 6          # saturated: at most x 1/0.7 a step
    assert HpaPolicy(10).desired(FakeLane(4))[0] is None            # no samples yet
    short = HpaPolicy(10)
    for second in range(5):
        short.observe(float(second), {'sluice_backend_busy_seconds_total{backend="b0"}': 0.9 * second})
    assert short.desired(FakeLane(1))[0] is None                    # 4 s of a 10 s window: not yet
    # A backend that appears within the window counts from its first sample.
    hpa = busy_fraction(0.5, backends=2)
    hpa.observe(11.0, {'sluice_backend_busy_seconds_total{backend="b0"}': 5.5,
                       'sluice_backend_busy_seconds_total{backend="b1"}': 5.5,
                       'sluice_backend_busy_seconds_total{backend="new"}': 0.0})
    hpa.observe(13.0, {'sluice_backend_busy_seconds_total{backend="b0"}': 6.5,
                       'sluice_backend_busy_seconds_total{backend="b1"}': 6.5,
                       'sluice_backend_busy_seconds_total{backend="new"}': 1.8})
    assert abs(hpa.utilisation() - (0.5 + 0.5 + 0.9) / 3) < 1e-9, hpa.utilisation()

    erlang = ErlangPolicy()
    assert erlang.desired(FakeLane(3, {"state": "warming_up", "recommended_backends": 9}))[0] is None
    assert erlang.desired(FakeLane(3, None))[0] is None
    assert erlang.desired(FakeLane(3, {"state": "ok", "recommended_backends": 7, "arrival_rate": 1.0}))[0] == 7

    st = Stabiliser(window_s=20)
    assert [st.apply(t, d) for t, d in [(0, 6), (5, 3), (19, 3), (21, 3), (26, 2)]] == [6, 6, 6, 3, 3]

    # The fleet's bookkeeping without processes: a decision costs from when it is taken, a cancelled
    # start stops costing at once, the newest goes first.
    fleet = Fleet(procs=None, backend_binary="", rundir=Path("/nonexistent"), net=1, port=1, mean_service_s=0.02,
                  seed=1, rt=[], delay_s=5)
    fleet.t0 = time.monotonic() - 10  # now() is ~10
    fleet.scale_to(3, "up")
    assert len(fleet.planned()) == 3 and all(abs(m.due_at - m.decided_at - 5) < 1e-9 for m in fleet.members)
    assert sorted(m.index for m in fleet.members) == [1, 2, 3]
    fleet.members[0].decided_at -= 1  # the first decided a second earlier
    fleet.scale_to(1, "down")
    assert [m.index for m in fleet.planned()] == [1] and sum(a["action"] == "cancel" for a in fleet.actions) == 2
    cost = fleet.backend_seconds(0, 100)
    assert abs(cost - (100 - fleet.members[0].decided_at) - sum(m.stopped_at - m.decided_at
                                                                for m in fleet.members[1:])) < 1e-6
    assert fleet.count_at(fleet.members[0].decided_at + 0.5) == 1
    rate_profile._self_check()
    print("scaler: self-check passed")


if __name__ == "__main__":
    _self_check()
