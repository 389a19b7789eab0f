"""lambda(t) of a sluice-loadgen --profile spec (tools/loadgen/profile.hpp), for the analysis and the
plots: the same three forms, the same arithmetic. The self-check compares a few values with the C++
unit test's."""

from __future__ import annotations

import math


def _seconds(text: str) -> float:
    for unit, scale in (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(f"'{text}' has no unit")


class Profile:
    def __init__(self, spec: str):
        self.spec = spec
        self.kind = "steps"
        body = spec
        for kind in ("steps", "linear", "sine"):
            if spec.startswith(kind + ":"):
                self.kind, body = kind, spec[len(kind) + 1:]
        if self.kind == "sine":
            kv = dict(item.split("=", 1) for item in body.split(","))
            self.mean, self.amplitude = float(kv["mean"]), float(kv["amplitude"])
            self.period = _seconds(kv["period"])
            self.phase = math.radians(float(kv.get("phase", 0)))
        else:
            self.points = [(_seconds(t), float(r)) for t, r in (item.split(":", 1) for item in body.split(","))]

    def rate_at(self, t: float) -> float:
        if self.kind == "sine":
            return max(0.0, self.mean + self.amplitude * math.sin(2 * math.pi * t / self.period + self.phase))
        i = max(k for k, (start, _) in enumerate(self.points) if start <= t) if t >= 0 else 0
        start, rate = self.points[i]
        if self.kind == "steps" or i + 1 == len(self.points):
            return rate
        end, rate_end = self.points[i + 1]
        return rate + (t - start) / (end - start) * (rate_end - rate)

    def max_rate(self, until: float) -> float:
        """The largest lambda on [0, until] (the pieces' ends and the sine's crest are where it can be)."""
        if self.kind == "sine":
            return max(self.rate_at(x * until / 1000) for x in range(1001))
        return max([self.rate_at(t) for t, _ in self.points if t <= until] + [self.rate_at(until)])

    def expected(self, t0: float, t1: float, steps: int = 2000) -> float:
        """The integral of lambda over [t0, t1] (midpoint rule: the plots and tables need no more)."""
        dt = (t1 - t0) / steps
        return sum(self.rate_at(t0 + (k + 0.5) * dt) for k in range(steps)) * dt


def _self_check() -> None:
    """The values of tools_test.cpp's "load profiles" case."""
    steps = Profile("0s:20,120s:60,240s:30")
    assert steps.rate_at(119.999) == 20 and steps.rate_at(120) == 60 and steps.rate_at(1e6) == 30
    assert abs(steps.expected(100, 250) - (20 * 20 + 120 * 60 + 10 * 30)) < 1
    ramp = Profile("linear:0s:10,60s:70,90s:70")
    assert abs(ramp.rate_at(30) - 40) < 1e-9 and abs(ramp.expected(0, 90) - (60 * 40 + 30 * 70)) < 0.05
    sine = Profile("sine:mean=40,amplitude=25,period=300s")
    assert abs(sine.rate_at(75) - 65) < 1e-9 and abs(sine.expected(0, 150) - (40 * 150 + 25 * 300 / math.pi)) < 1e-3
    assert abs(Profile("sine:mean=40,amplitude=25,period=300s,phase=90").rate_at(0) - 65) < 1e-9
    print("rate_profile: self-check passed")


if __name__ == "__main__":
    _self_check()
