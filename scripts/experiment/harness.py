"""Processes of one experiment run on loopback: the backends, Sluice (or HAProxy), the load generator,
and the scrapes of Sluice's /metrics. Every process is started by a Processes group that stops it
(SIGTERM, then SIGKILL) however the run ends; every wait is bounded."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class HarnessError(RuntimeError):
    pass


def realtime_prefix(wanted: bool) -> list[str]:
    """chrt -f 10 when asked for and permitted. The measured processes then preempt whatever else runs
    on the machine (a shared 2-core VM): its scheduling delays would otherwise be part of every
    service and wait time. Only for sleep-mode backends: a spinning real-time process starves the rest."""
    if not wanted or shutil.which("chrt") is None:
        return []
    ok = subprocess.run(["chrt", "-f", "10", "true"], capture_output=True, timeout=5).returncode == 0
    return ["chrt", "-f", "10"] if ok else []


def free_port() -> int:
    """A port that was free a moment ago (for HAProxy, which cannot report a port-0 bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_dns_port(attempt: int) -> int:
    """A port for dnsmasq, which binds UDP and TCP and exits if either is taken: from 20000..32767,
    below Linux's ephemeral range (where a TCP client's port could take it a moment later), free
    for both now; spread by process and attempt, as tests/common/dnsmasq.hpp does."""
    first, count = 20000, 12768
    for probe in range(count):
        port = first + (os.getpid() * 7919 + attempt * 997 + probe * 131) % count
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise HarnessError("no port in 20000..32767 free for UDP and TCP on 127.0.0.1")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path


@dataclass
class Processes:
    """Owns the processes of a run. Use as a context manager: leaving it stops them all."""

    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], log: Path, env: dict | None = None) -> Proc:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "wb")
        try:
            popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        finally:
            out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, timeout: float = 5.0) -> int | None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait(timeout=5)
        return proc.popen.returncode

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            try:
                self.stop(proc)
            except Exception:  # noqa: BLE001 - best effort: the others must still be stopped
                pass
        self.procs.clear()

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()


def wait_for_line(proc: Proc, pattern: str, timeout: float = 10.0) -> re.Match:
    """Waits until the process's log has a line matching `pattern`; fails if it exits first."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
        for line in text.splitlines():
            m = regex.search(line)
            if m:
                return m
        if proc.popen.poll() is not None:
            raise HarnessError(f"{proc.name} exited ({proc.popen.returncode}) before '{pattern}':\n{text[-2000:]}")
        time.sleep(0.02)
    raise HarnessError(f"{proc.name}: no '{pattern}' within {timeout:.0f}s:\n{proc.log.read_text(errors='replace')[-2000:]}")


# ---------------------------------------------------------------------------------------------------
# Backends, Sluice, HAProxy.


@dataclass
class Backend:
    name: str
    node: str
    port: int
    proc: Proc


def start_backends(procs: Processes, binary: str, rundir: Path, c: int, mean_service_s: float,
                   overhead_s: float, concurrency: int, seed: int, rt: list[str]) -> list[Backend]:
    backends = []
    for i in range(c):
        name, node = f"b{i + 1}", f"node-{i + 1}"
        cmd = rt + [binary, "--listen", "127.0.0.1:0", "--name", name,
                    "--mean-service", f"{mean_service_s * 1e6:.0f}us", "--distribution", "exponential",
                    "--mode", "sleep", "--concurrency", str(concurrency), "--seed", str(seed * 1000 + i + 1),
                    "--overhead", f"{overhead_s * 1e6:.0f}us"]
        proc = procs.start(name, cmd, rundir / f"backend-{name}.log", env={"NODE_NAME": node})
        backends.append((name, node, proc))
    out = []
    for name, node, proc in backends:
        m = wait_for_line(proc, r"listening on 127\.0\.0\.1:(\d+)")
        out.append(Backend(name, node, int(m.group(1)), proc))
    return out


def sluice_config(backends: list[Backend], queue_mode: str, policy: str, max_length: int,
                  slots_per_backend: int, listener_mode: str = "tcp", pipeline_depth: int = 1) -> str:
    """One listener, one service, health checks off (their connects would disturb the measurement), the
    queue as the run wants it. Ports 0: Sluice prints the ones it got. listener_mode http: each request
    is a job; a keep-alive client connection may wait a while between requests when the client is slow
    to send (a VM stall), hence the long request_timeout; pipeline_depth: http.pipeline_depth."""
    lines = [
        "# Written by scripts/experiment for one run.",
        "drain_timeout: 1s",
        "log: { level: info, format: text, access_log: false }",
        'admin: { bind: "127.0.0.1:0" }',
    ]
    if listener_mode == "http":
        lines.append(f"http: {{ request_timeout: 10m, response_timeout: 10m, pipeline_depth: {pipeline_depth} }}")
    lines += [
        "listeners:",
        '  - { name: web, bind: "127.0.0.1:0", service: web, max_connections: 200000, idle_timeout: 10m, backlog: 4096,'
        f" mode: {listener_mode} }}",
        "services:",
        "  - name: web",
        f"    policy: {policy}",
        "    connect_timeout: 2s",
        "    retries: 0",
        "    health_check: { enabled: false }",
        f"    queue: {{ mode: {queue_mode}, max_length: {max_length}, timeout: 10m }}",
        "    backends:",
    ]
    for b in backends:
        lines.append(f'      - {{ name: {b.name}, address: "127.0.0.1:{b.port}", node: {b.node}, '
                     f"max_connections: {slots_per_backend} }}")
    return "\n".join(lines) + "\n"


def start_sluice(procs: Processes, binary: str, rundir: Path, config: str, rt: list[str]) -> tuple[Proc, str, str]:
    path = rundir / "sluice.yaml"
    path.write_text(config)
    check = subprocess.run([binary, "--check", "--config", str(path)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise HarnessError(f"sluice --check rejected {path}:\n{check.stdout}{check.stderr}")
    proc = procs.start("sluice", rt + [binary, "--config", str(path)], rundir / "sluice.log")
    # format text: `listening listener=web address=A`; json: {..."event":"listening","listener":"web","address":"A"...}
    found = wait_for_line(proc, r'listening listener=web address=([^\s"]+)|"event":"listening","listener":"web","address":"([^"]+)"')
    listener = found.group(1) or found.group(2)
    admin = wait_for_line(proc, r'admin listening address=([^\s"]+)').group(1)
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://{admin}/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise HarnessError("sluice /healthz did not answer 200 within 10 s")
        time.sleep(0.05)
    return proc, listener, admin


def haproxy_config(backends: list[Backend], port: int, balance: str, slots_per_backend: int) -> str:
    """HAProxy in TCP mode with `maxconn` per server: a connection that finds every server full waits
    in the backend's queue (`timeout queue`). One thread, as Sluice has one loop."""
    maxconn = f" maxconn {slots_per_backend}" if slots_per_backend > 0 else ""
    lines = [
        "global", "  nbthread 1", "  maxconn 9000",  # 2 descriptors per connection within the 20000 limit
        "defaults", "  mode tcp", "  timeout connect 2s", "  timeout client 10m", "  timeout server 10m",
        "  timeout queue 10m",
        "frontend web", f"  bind 127.0.0.1:{port}", "  maxconn 9000", "  default_backend web",
        "backend web", f"  balance {balance}",
    ]
    for b in backends:
        lines.append(f"  server {b.name} 127.0.0.1:{b.port}{maxconn}")
    return "\n".join(lines) + "\n"


def start_haproxy(procs: Processes, binary: str, rundir: Path, config_for_port, rt: list[str]) -> tuple[Proc, str]:
    port = free_port()
    path = rundir / "haproxy.cfg"
    path.write_text(config_for_port(port))
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise HarnessError(f"haproxy -c rejected {path}:\n{check.stdout}{check.stderr}")
    proc = procs.start("haproxy", rt + [binary, "-db", "-f", str(path)], rundir / "haproxy.log")
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(f"haproxy did not listen on {port}:\n{proc.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


# ---------------------------------------------------------------------------------------------------
# Metrics.

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_KEEP = re.compile(r"^sluice_(service_queue_|backend_(busy|connections_total|connections_active|queue_length|"
                   r"session_seconds_(sum|count)|connect_seconds_(sum|count)|queue_wait_seconds_(sum|count))|"
                   r"listener_connections_(accepted|rejected)|http_errors_total|backend_pool_reuses_total)")


def parse_prometheus(text: str) -> dict[str, float]:
    """The samples the analysis uses, keyed 'name{k="v",...}' with labels sorted (histogram buckets
    are left out: the sums and counts are exact, the buckets are not needed)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m or not _KEEP.match(m.group(1)) or m.group(1).endswith("_bucket"):
            continue
        labels = sorted(_LABEL.findall(m.group(3) or ""))
        key = m.group(1) + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"
        out[key] = float(m.group(4))
    return out


def scrape(admin: str) -> dict:
    """One /metrics scrape, stamped with CLOCK_MONOTONIC (the clock of the loadgen's records) at the
    middle of the request."""
    t0 = time.monotonic_ns()
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    t1 = time.monotonic_ns()
    return {"t_ns": (t0 + t1) // 2, "rtt_ns": t1 - t0, "values": parse_prometheus(text)}
