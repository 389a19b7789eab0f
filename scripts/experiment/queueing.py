"""Queueing theory and the statistics of the experiment: Erlang B/C, M/M/c/K, split M/M/1 and E_c/M/1
(round-robin splitting), sample-path replays, batch means and Student-t intervals.

Pure Python (no numpy needed here), so the formulas can be checked in isolation:
    /usr/bin/python3 scripts/experiment/queueing.py      # runs the self-checks
"""

from __future__ import annotations

import heapq
import math
from typing import Sequence

# ---------------------------------------------------------------------------------------------------
# Theory. Rates are per second, times in seconds. a = lam / mu is the offered load in Erlangs.


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c (Erlang B), by the stable recursion B(k) = aB(k-1)/(k + aB(k-1))."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c (Erlang C); 1 when a >= c (no steady state)."""
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return b / (1.0 - (a / c) * (1.0 - b))


def mmc_wq(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue of M/M/c, FCFS."""
    if lam >= c * mu:
        return math.inf
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mm1_split_wq(lam: float, mu: float, c: int) -> float:
    """c independent M/M/1 queues each fed lam/c (random splitting: per-backend queues, no balancing)."""
    per = lam / c
    if per >= mu:
        return math.inf
    rho = per / mu
    return rho / (mu - per)


def ecm1_wq(lam: float, mu: float, c: int) -> float:
    """Round-robin splitting of a Poisson stream: each backend sees Erlang-c inter-arrival times with rate
    lam/c, an E_c/M/1 queue. GI/M/1: Wq = sigma / (mu (1 - sigma)), sigma the root in (0, 1) of
    sigma = A*(mu (1 - sigma)), with A*(s) = (lam / (lam + s))^c the transform of an Erlang-c gap."""
    if lam >= c * mu:
        return math.inf
    sigma = lam / (c * mu)  # start at rho; the iteration is a contraction towards the root below 1
    for _ in range(10000):
        nxt = (lam / (lam + mu * (1.0 - sigma))) ** c
        if abs(nxt - sigma) < 1e-15:
            break
        sigma = nxt
    return sigma / (mu * (1.0 - sigma))


def mmck(lam: float, mu: float, c: int, k: int) -> dict:
    """M/M/c/K (K >= c places in all): the stationary distribution, blocking P_K, Lq and the mean wait of
    admitted customers. K = c is Erlang B."""
    a = lam / mu
    weights = []
    for n in range(k + 1):
        if n <= c:
            weights.append(a**n / math.factorial(n))
        else:
            weights.append(a**c / math.factorial(c) * (a / c) ** (n - c))
    total = sum(weights)
    p = [w / total for w in weights]
    lq = sum((n - c) * p[n] for n in range(c + 1, k + 1))
    admitted = lam * (1.0 - p[k])
    return {"blocking": p[k], "lq": lq, "wq": lq / admitted if admitted > 0 else math.inf, "p": p}


# ---------------------------------------------------------------------------------------------------
# Sample-path replays: the exact queue a model predicts for the recorded arrivals and service draws.


def replay_fcfs(arrivals: Sequence[float], services: Sequence[float], c: int) -> list[float]:
    """Waits of an FCFS c-server queue (M/M/c when the inputs are Poisson and exponential): each customer
    takes the server that frees first (Kiefer-Wolfowitz). Inputs in arrival order."""
    free = [0.0] * c
    waits = []
    for a, s in zip(arrivals, services):
        f = heapq.heappop(free)
        start = a if a > f else f
        waits.append(start - a)
        heapq.heappush(free, start + s)
    return waits


def replay_connections(arrivals: Sequence[float], services: Sequence[float], c: int,
                       connection: Sequence[int], depth: int = 1) -> tuple[list[float], list[float]]:
    """The same path through `mode: http` behind a client with few persistent connections: each request
    is written on its connection (`connection[i]`) at once, but the balancer reads a connection's next
    request only while fewer than `depth` (http.pipeline_depth) of that connection's requests are
    inside it; a request stays inside until its response and every one before it on its connection are
    out (answered in order). Once read it queues in the shared FIFO before c servers. Returns, per
    request, the wait in the balancer's FIFO (what its queue_wait metric counts) and the whole wait
    before service (behind the connection's earlier requests too: what the client sees). With a
    connection of its own per request, or a depth no connection reaches, both are replay_fcfs's waits."""
    import collections

    n = len(arrivals)
    pending: dict[int, collections.deque] = collections.defaultdict(collections.deque)
    inside: dict[int, collections.deque] = collections.defaultdict(collections.deque)  # in request order
    finished = [False] * n
    fifo: collections.deque = collections.deque()  # requests in the balancer's queue, in entry order
    entered = [0.0] * n
    fifo_wait, total_wait = [0.0] * n, [0.0] * n
    ends: list[tuple[float, int]] = []  # (service end, request)
    free = c

    def enter(i: int, now: float) -> None:
        nonlocal free
        inside[connection[i]].append(i)
        entered[i] = now
        if free > 0:
            free -= 1
            start(i, now)
        else:
            fifo.append(i)

    def start(i: int, now: float) -> None:
        fifo_wait[i] = now - entered[i]
        total_wait[i] = now - arrivals[i]
        heapq.heappush(ends, (now + services[i], i))

    nxt = 0
    while nxt < n or ends:
        if nxt < n and (not ends or arrivals[nxt] <= ends[0][0]):
            i, now = nxt, arrivals[nxt]
            nxt += 1
            conn = connection[i]
            if pending[conn] or len(inside[conn]) >= depth:
                pending[conn].append(i)
            else:
                enter(i, now)
            continue
        now, done = heapq.heappop(ends)
        free += 1
        finished[done] = True
        if fifo:
            free -= 1
            start(fifo.popleft(), now)
        conn = connection[done]
        while inside[conn] and finished[inside[conn][0]]:
            inside[conn].popleft()
        while pending[conn] and len(inside[conn]) < depth:
            enter(pending[conn].popleft(), now)
    return fifo_wait, total_wait


def simulate_jsq(lam: float, mu: float, c: int, n: int, seed: int = 7) -> float:
    """Mean wait of c FCFS servers fed by join-the-shortest-queue (counting the one in service; ties
    round-robin), as per_backend + least_connections does. No closed form: a long simulation."""
    import random

    rng = random.Random(seed)
    departures = [[] for _ in range(c)]  # per server: departure times still ahead, in order
    heads = [0] * c
    last_end = [0.0] * c
    rr = 0
    t = 0.0
    total_wait = 0.0
    warm = n // 10
    for i in range(n):
        t += rng.expovariate(lam)
        counts = []
        for j in range(c):
            d = departures[j]
            while heads[j] < len(d) and d[heads[j]] <= t:
                heads[j] += 1
            counts.append(len(d) - heads[j])
        least = min(counts)
        ties = [j for j in range(c) if counts[j] == least]
        j = ties[rr % len(ties)] if len(ties) > 1 else ties[0]
        rr += 1
        start = max(t, last_end[j])
        end = start + rng.expovariate(mu)
        last_end[j] = end
        departures[j].append(end)
        if heads[j] > 4096:  # keep the lists short
            del departures[j][: heads[j]]
            heads[j] = 0
        if i >= warm:
            total_wait += start - t
    return total_wait / (n - warm)


# ---------------------------------------------------------------------------------------------------
# Statistics.

_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
         18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060,
         26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042}


def t975(df: int) -> float:
    """Two-sided 95 % Student-t quantile."""
    if df < 1:
        return math.nan
    if df in _T975:
        return _T975[df]
    # Beyond the table: Cornish-Fisher expansion around the normal quantile (error < 1e-4 for df > 30).
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % half-width of independent values (here: batch means)."""
    n = len(values)
    if n < 2:
        return (values[0] if n else math.nan), math.nan
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, t975(n - 1) * math.sqrt(var / n)


def batch_means(series: Sequence[float], batches: int = 20) -> dict:
    """Batch means: waiting times are autocorrelated, so the plain standard error understates the error.
    The series (in time order, warm-up already dropped) is cut into `batches` contiguous batches whose
    means are nearly independent when a batch is much longer than the correlation time; the interval is
    a t interval over the batch means. lag1 is the lag-1 autocorrelation of the batch means: near 0 when
    the batches are long enough."""
    n = len(series)
    if n < batches * 2:
        batches = max(2, n // 2)
    size = n // batches
    if size == 0:
        return {"mean": math.nan, "half": math.nan, "batches": 0, "lag1": math.nan}
    start = n - size * batches  # drop the oldest remainder (closest to the warm-up)
    means = [sum(series[start + b * size:start + (b + 1) * size]) / size for b in range(batches)]
    grand = sum(series[start:]) / (size * batches)
    _, half = mean_ci(means)
    return {"mean": grand, "half": half, "batches": batches, "lag1": lag1(means)}


def lag1(values: Sequence[float]) -> float:
    n = len(values)
    if n < 3:
        return math.nan
    m = sum(values) / n
    den = sum((v - m) ** 2 for v in values)
    if den == 0:
        return 0.0
    return sum((values[i] - m) * (values[i + 1] - m) for i in range(n - 1)) / den


def ratio_ci(ys: Sequence[float], xs: Sequence[float]) -> tuple[float, float]:
    """Ratio estimator sum(y)/sum(x) over batches (e.g. total wait / dispatches per time batch) with its
    95 % half-width by the delta method: the residuals y_j - R x_j, scaled by the mean x, are batch means."""
    b = len(ys)
    sx, sy = sum(xs), sum(ys)
    if b < 2 or sx == 0:
        return (sy / sx if sx else math.nan), math.nan
    r = sy / sx
    xbar = sx / b
    resid = [(y - r * x) / xbar for y, x in zip(ys, xs)]
    _, half = mean_ci(resid)
    return r, half


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx else math.nan
    return slope, my - slope * mx


# ---------------------------------------------------------------------------------------------------


def _self_check() -> None:
    import random

    # Erlang C for c = 1 is rho; Wq of M/M/1 is rho / (mu - lam).
    assert abs(erlang_c(1, 0.5) - 0.5) < 1e-12
    assert abs(mmc_wq(0.5, 1.0, 1) - 1.0) < 1e-12
    # A textbook value: c = 3, a = 2.4 -> C = 0.6472.
    assert abs(erlang_c(3, 2.4) - 0.64719) < 1e-4
    # E_1/M/1 is M/M/1.
    assert abs(ecm1_wq(0.5, 1.0, 1) - 1.0) < 1e-9
    # RR splitting sits between M/M/c and random splitting.
    assert mmc_wq(2.4, 1, 3) < ecm1_wq(2.4, 1, 3) < mm1_split_wq(2.4, 1, 3)
    # M/M/c/K with K = c is Erlang B, and a large K tends to M/M/c.
    assert abs(mmck(2.4, 1, 3, 3)["blocking"] - erlang_b(3, 2.4)) < 1e-12
    assert abs(mmck(2.4, 1, 3, 400)["wq"] - mmc_wq(2.4, 1, 3)) < 1e-9
    # The replay of a long M/M/3 path agrees with Erlang C.
    rng = random.Random(3)
    lam, mu, c, n = 2.4, 1.0, 3, 400000
    t, arrivals = 0.0, []
    for _ in range(n):
        t += rng.expovariate(lam)
        arrivals.append(t)
    waits = replay_fcfs(arrivals, [rng.expovariate(mu) for _ in range(n)], c)
    assert abs(sum(waits) / n / mmc_wq(lam, mu, c) - 1) < 0.05
    # One connection per request: the connection replay is replay_fcfs; one connection for all: M/M/1 FIFO.
    m = 20000
    svc = [rng.expovariate(mu) for _ in range(m)]
    own, own_total = replay_connections(arrivals[:m], svc, c, list(range(m)))
    assert own == own_total and max(abs(x - y) for x, y in zip(own, replay_fcfs(arrivals[:m], svc, c))) < 1e-9
    one, one_total = replay_connections(arrivals[:m], svc, c, [0] * m)
    assert max(one) == 0 and abs(sum(one_total) - sum(replay_fcfs(arrivals[:m], svc, 1))) < 1e-6
    # Four round-robin connections before three servers: less wait in the balancer, more in all.
    rr, rr_total = replay_connections(arrivals[:m], svc, c, [i % 4 for i in range(m)])
    assert sum(rr) < sum(own) < sum(rr_total)
    # Read ahead deep enough, the four connections hold nothing back: replay_fcfs again, in and out.
    deep, deep_total = replay_connections(arrivals[:m], svc, c, [i % 4 for i in range(m)], depth=64)
    assert deep == deep_total and max(abs(x - y) for x, y in zip(deep, replay_fcfs(arrivals[:m], svc, c))) < 1e-9
    # Batch means of iid normals cover their mean.
    bm = batch_means([rng.gauss(5, 1) for _ in range(20000)])
    assert abs(bm["mean"] - 5) < 3 * bm["half"]
    assert abs(t975(40) - 2.021) < 2e-3 and abs(t975(120) - 1.980) < 2e-3
    print("queueing.py: self-checks passed")


if __name__ == "__main__":
    _self_check()
