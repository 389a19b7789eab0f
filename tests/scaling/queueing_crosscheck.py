"""The daemon's Erlang C library against the experiment's analysis code: the same C and Wq both ways.

Feeds a grid of (c, lambda, mu) to the C++ tool given as argv[1] (tests/scaling/erlang_grid.cpp) and
compares every line with scripts/experiment/queueing.py's own erlang_c and mmc_wq, to 1e-9 relative.
Both compute B by the same recursion in doubles; they write C as c B / (c - a (1 - B)) and
B / (1 - rho (1 - B)), which differ by a few ulps. Values below 1e-300 (subnormal doubles, where a
few ulps are a large relative error) count as equal when both are: they arise for c far above a.
Points with rho >= 1 must be "none" in C++ and Wq = inf in Python.
    /usr/bin/python3 tests/scaling/queueing_crosscheck.py build/erlang_grid
"""

from __future__ import annotations

import math
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "scripts" / "experiment"))
import queueing  # noqa: E402

RELATIVE = 1e-9
TINY = 1e-300


def grid() -> list[tuple[int, float, float]]:
    points = []
    for c in (1, 2, 3, 5, 8, 10, 20, 50, 200, 1000, 5000):
        for mu in (1.0, 50.0, 0.37):
            for rho in (0.05, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 0.999):
                points.append((c, rho * c * mu, mu))
            points.append((c, c * mu, mu))          # rho = 1: no steady state
            points.append((c, 1.5 * c * mu, mu))    # rho > 1
    return points


def close(x: float, y: float) -> bool:
    if abs(x) < TINY and abs(y) < TINY:
        return True
    return abs(x - y) <= RELATIVE * max(abs(x), abs(y))


def main() -> int:
    points = grid()
    text = "".join(f"{c} {lam!r} {mu!r}\n" for c, lam, mu in points)
    out = subprocess.run([sys.argv[1]], input=text, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    if len(lines) != len(points):
        print(f"FAIL: the C++ tool answered {len(lines)} lines for {len(points)} points")
        return 1
    failures = compared = unstable = 0
    for (c, lam, mu), line in zip(points, lines):
        fields = line.split()
        if int(fields[0]) != c or float(fields[1]) != lam or float(fields[2]) != mu:
            print(f"FAIL: line {line!r} does not echo the point {c} {lam!r} {mu!r}")
            return 1
        py_c, py_wq = queueing.erlang_c(c, lam / mu), queueing.mmc_wq(lam, mu, c)
        if fields[3] == "none":
            unstable += 1
            if not math.isinf(py_wq):
                failures += 1
                print(f"FAIL c={c} lambda={lam!r} mu={mu!r}: C++ none, Python C={py_c!r} Wq={py_wq!r}")
            continue
        cpp_c, cpp_wq = float(fields[3]), float(fields[4])
        compared += 1
        if not (close(cpp_c, py_c) and close(cpp_wq, py_wq)):
            failures += 1
            print(f"FAIL c={c} lambda={lam!r} mu={mu!r}: C++ C={cpp_c!r} Wq={cpp_wq!r}, "
                  f"Python C={py_c!r} Wq={py_wq!r}")
    print(f"{compared} points equal to {RELATIVE:g} relative, {unstable} with rho >= 1 refused by both, "
          f"{failures} failures")
    # Both kinds of point must be there: a grid that lost one would pass without comparing it.
    return 0 if failures == 0 and compared > 200 and unstable > 50 else 1


if __name__ == "__main__":
    sys.exit(main())
