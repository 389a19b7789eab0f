#!/usr/bin/env python3
"""The soak run behind scripts/soak.sh (see its --help); run that, not this.

Starts the backends (sluice-backend for HTTP, load_client.py echo servers for checksummed
streams), two of each on loopback and, as root, one of each on a "node" in a network namespace
(veth, an unused /24 of 198.18.0.0/15), then the daemon; drives mixed traffic for the given time
while injecting a fault every few seconds (a backend SIGKILLed and restarted on its port, the
node's link down and up, a SIGHUP reload alternating two configs); then checks every completed
transfer's checksum, the daemon's RSS and open fds against the baseline taken before the faults,
and prints the figures. Exit 0 when all holds.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "load_client.py")


def log(message):
    print(f"soak: {message}", flush=True)


class Proc:
    """A child process whose output goes to a file; `wait_line` reads that file."""

    def __init__(self, name, argv, run_dir, prefix=()):
        self.name = name
        self.argv = list(argv)
        self.prefix = list(prefix)
        self.path = os.path.join(run_dir, f"{name}.log")
        self.popen = None

    def start(self):
        out = open(self.path, "ab")
        self.popen = subprocess.Popen(self.prefix + self.argv, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        out.close()
        return self

    def wait_line(self, pattern, timeout=15.0, after=0):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.path, "r", errors="replace") as f:
                lines = f.read().splitlines()[after:]
            for line in lines:
                if regex.search(line):
                    return line
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no line /{pattern}/ within {timeout}s; see {self.path}")

    def line_count(self):
        with open(self.path, "r", errors="replace") as f:
            return len(f.read().splitlines())

    def signal(self, sig):
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout=10.0):
        if not self.popen or self.popen.poll() is not None:
            return self.popen.returncode if self.popen else None
        self.popen.terminate()
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait()


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class Node:
    """A network namespace joined to the host by a veth pair: a Kubernetes node stand-in."""

    def __init__(self, tag):
        self.netns = f"sluice-soak-{tag}"
        self.host_link = f"sks{tag}h"[:15]
        self.subnet = None

    def create(self):
        used = ip("-o", "-4", "addr", "show").stdout + ip("-4", "route", "show", "table", "all").stdout
        # From the top of 198.18.0.0/15 down: the integration tests take /24s from the bottom up.
        for index in range(511, 255, -1):
            prefix = f"198.{18 + index // 256}.{index % 256}."
            if prefix not in used:
                self.subnet = prefix
                break
        if self.subnet is None:
            raise RuntimeError("no free /24 in 198.18.0.0/15")
        ip("netns", "add", self.netns)
        ip("link", "add", self.host_link, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        ip("addr", "add", f"{self.subnet}1/24", "dev", self.host_link)
        ip("link", "set", self.host_link, "up")
        ip("-n", self.netns, "addr", "add", f"{self.subnet}2/24", "dev", "eth0")
        ip("-n", self.netns, "link", "set", "eth0", "up")
        ip("-n", self.netns, "link", "set", "lo", "up")

    @property
    def address(self):
        return f"{self.subnet}2"

    def link(self, up):
        ip("-n", self.netns, "link", "set", "eth0", "up" if up else "down")

    def destroy(self):
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        ip("link", "del", self.host_link, check=False)
        ip("netns", "del", self.netns, check=False)


class Backend:
    """One backend (HTTP or echo), restartable on the port it first bound."""

    def __init__(self, kind, name, host, args, run_dir, prefix=()):
        self.kind, self.name, self.host, self.args = kind, name, host, args
        self.run_dir, self.prefix = run_dir, list(prefix)
        self.port = 0
        self.proc = None
        self.starts = 0

    def argv(self):
        listen = f"{self.host}:{self.port}"
        if self.kind == "http":
            return [self.args.backend, "--listen", listen, "--name", self.name]
        return [sys.executable, CLIENT, "echo-server", "--listen", listen]

    def start(self):
        self.proc = Proc(f"backend-{self.name}", self.argv(), self.run_dir, self.prefix)
        before = self.proc.line_count() if os.path.exists(self.proc.path) else 0
        self.proc.start()
        self.starts += 1
        line = self.proc.wait_line(r"listening on", after=before)
        self.port = int(line.rsplit(":", 1)[1])

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def kill(self):
        self.proc.signal(signal.SIGKILL)
        self.proc.popen.wait()


def config_text(variant, http_backends, echo_backends):
    policy = "least_connections" if variant == "a" else "round_robin"
    mode = "shared" if variant == "a" else "per_backend"
    weight = 1 if variant == "a" else 2

    def backends(items):
        return "\n".join(
            f'      - {{name: {b.name}, address: "{b.address}", node: {"node-1" if b.prefix else "local"}, '
            f'weight: {weight if i == 0 else 1}, max_connections: 8}}' for i, b in enumerate(items))

    return f"""# soak config {variant}
drain_timeout: 5s
log: {{level: info, access_log: false}}
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - {{name: http, bind: "127.0.0.1:0", service: http, idle_timeout: 30s}}
  - {{name: echo, bind: "127.0.0.1:0", service: echo, idle_timeout: 30s}}
services:
  - name: http
    policy: {policy}
    connect_timeout: 1s
    retries: 2
    health_check: {{interval: 1s, timeout: 500ms, rise: 2, fall: 2}}
    queue: {{mode: {mode}, max_length: 200, timeout: 10s}}
    backends:
{backends(http_backends)}
  - name: echo
    policy: {policy}
    connect_timeout: 1s
    retries: 2
    health_check: {{interval: 1s, timeout: 500ms, rise: 2, fall: 2}}
    queue: {{mode: {mode}, max_length: 200, timeout: 10s}}
    backends:
{backends(echo_backends)}
"""


def proc_status(pid):
    rss_kib = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return {"rss_kib": rss_kib, "fds": fds, "threads": threads}


def metric_sum(admin, name):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_idle(admin, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if metric_sum(admin, "sluice_listener_connections_active") == 0 and \
               metric_sum(admin, "sluice_backend_connections_active") == 0:
                return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--daemon", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--fault-every", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--netns", choices=["auto", "on", "off"], default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tag", default=str(os.getpid()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    run = args.run_dir
    procs, node = [], None
    # soak.sh's cleanup sends SIGTERM: unwind through `finally`, which stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    traffic = None
    result = 1
    try:
        use_netns = args.netns == "on" or (args.netns == "auto" and os.geteuid() == 0)
        if use_netns:
            node = Node(args.tag)
            try:
                node.create()
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                if args.netns == "on":
                    raise
                log(f"no network namespace ({exc}); the node-link faults are left out")
                node.destroy()
                node = None
        prefix = ["ip", "netns", "exec", node.netns] if node else []
        http = [Backend("http", f"http-{i}", "127.0.0.1", args, run) for i in (1, 2)]
        echo = [Backend("echo", f"echo-{i}", "127.0.0.1", args, run) for i in (1, 2)]
        if node:
            http.append(Backend("http", "http-node", node.address, args, run, prefix))
            echo.append(Backend("echo", "echo-node", node.address, args, run, prefix))
        for b in http + echo:
            b.start()
        configs = {v: os.path.join(run, f"sluice-{v}.yaml") for v in ("a", "b")}
        for variant, path in configs.items():
            with open(path, "w") as f:
                f.write(config_text(variant, http, echo))
        config_path = os.path.join(run, "sluice.yaml")
        with open(config_path, "w") as f:
            f.write(config_text("a", http, echo))
        daemon = Proc("daemon", [args.daemon, "--config", config_path], run).start()
        procs.append(daemon)
        addresses = {}
        for name in ("http", "echo"):
            line = daemon.wait_line(rf"listening listener={name} ")
            addresses[name] = re.search(r"address=(\S+)", line).group(1)
        admin = re.search(r"address=(\S+)", daemon.wait_line(r"admin listening")).group(1)
        pid = daemon.popen.pid
        log(f"daemon pid {pid}: http {addresses['http']}, echo {addresses['echo']}, admin {admin}; "
            f"backends {', '.join(b.name + '=' + b.address for b in http + echo)}"
            + (f"; node netns {node.netns} ({node.subnet}0/24)" if node else ""))

        # Warm-up: 10 s of the same traffic without faults, then the baseline at rest.
        warm_log = os.path.join(run, "warmup.jsonl")
        subprocess.run([sys.executable, CLIENT, "soak", "--http", addresses["http"], "--echo", addresses["echo"],
                        "--seconds", "10", "--concurrency", str(args.concurrency), "--log", warm_log,
                        "--seed", str(args.seed + 1)], check=True)
        wait_idle(admin, 30)
        time.sleep(1)
        baseline = proc_status(pid)
        log(f"baseline after warm-up: RSS {baseline['rss_kib']} KiB, {baseline['fds']} fds, "
            f"{baseline['threads']} threads")

        # The run: traffic in the background, faults from here.
        seconds = args.minutes * 60
        traffic_log = os.path.join(run, "transfers.jsonl")
        traffic = subprocess.Popen([sys.executable, CLIENT, "soak", "--http", addresses["http"], "--echo",
                                    addresses["echo"], "--seconds", str(seconds), "--concurrency",
                                    str(args.concurrency), "--log", traffic_log, "--seed", str(args.seed)])
        faults = []
        kinds = ["backend_kill", "reload"] + (["node_link_down"] if node else [])
        samples = []
        variant = "a"
        reload_count = daemon.line_count()
        started = time.monotonic()
        stop_faults = started + seconds - 8  # the last seconds are quiet so that everything settles
        index = 0
        while time.monotonic() < stop_faults and traffic.poll() is None:
            time.sleep(args.fault_every * rng.uniform(0.7, 1.3))
            if time.monotonic() >= stop_faults:
                break
            kind = kinds[index % len(kinds)]
            index += 1
            fault = {"kind": kind, "start": time.time()}
            if kind == "backend_kill":
                victim = rng.choice(http + echo)
                fault["target"] = victim.name
                victim.kill()
                time.sleep(rng.uniform(1.0, 3.0))
                victim.start()
            elif kind == "node_link_down":
                fault["target"] = node.netns
                node.link(False)
                time.sleep(rng.uniform(2.0, 4.0))
                node.link(True)
            else:
                variant = "b" if variant == "a" else "a"
                fault["target"] = f"config {variant}"
                with open(configs[variant]) as src, open(config_path + ".tmp", "w") as dst:
                    dst.write(src.read())
                os.replace(config_path + ".tmp", config_path)
                daemon.signal(signal.SIGHUP)
                daemon.wait_line(r"config: reload (applied|rejected)", timeout=10, after=reload_count)
                reload_count = daemon.line_count()
            fault["end"] = time.time()
            faults.append(fault)
            if daemon.popen.poll() is not None:
                raise RuntimeError(f"the daemon exited during the run (code {daemon.popen.returncode})")
            samples.append(proc_status(pid))
        traffic.wait(timeout=seconds + 120)
        if node:
            node.link(True)
        idle = wait_idle(admin, 60)
        time.sleep(2)
        final = proc_status(pid)
        reloads = {r: metric_sum(admin, f'sluice_config_reloads_total{{result="{r}"}}')
                   for r in ("success", "failure")}
        elapsed = time.monotonic() - started

        # Stop the daemon: SIGTERM, exit code 0.
        daemon.signal(signal.SIGTERM)
        try:
            exit_code = daemon.popen.wait(30)
        except subprocess.TimeoutExpired:
            exit_code = None

        # --- figures ---------------------------------------------------------------------------
        transfers = [json.loads(line) for line in open(traffic_log)]
        grace = {"backend_kill": 5.0, "node_link_down": 6.0, "reload": 3.0}

        def fault_for(t):
            for f in faults:
                if t["start"] <= f["end"] + grace[f["kind"]] and t["end"] >= f["start"] - 0.2:
                    return f["kind"]
            return None

        outcomes = Counter()
        failed_by_fault, failed_unexplained = Counter(), []
        mismatches = [t for t in transfers if t["outcome"] in ("checksum_mismatch",)]
        verified_bytes = sum(t["bytes"] for t in transfers if t["kind"] == "echo" and t["outcome"] == "ok")
        completed = sum(1 for t in transfers if t["outcome"] == "ok")
        for t in transfers:
            outcomes[f'{t["kind"]}:{t["outcome"]}'] += 1
            if t["outcome"] == "ok":
                continue
            cause = fault_for(t)
            if cause and t["outcome"] != "checksum_mismatch":
                failed_by_fault[cause] += 1
            else:
                failed_unexplained.append(t)
        fault_counts = Counter(f["kind"] for f in faults)
        rss_limit = baseline["rss_kib"] * 1.25 + 4096
        fd_limit = baseline["fds"] + 2
        peak_rss = max([s["rss_kib"] for s in samples] + [final["rss_kib"]])
        peak_fds = max([s["fds"] for s in samples] + [final["fds"]])

        print()
        print(f"soak: duration {elapsed:.0f} s of faults and traffic (+10 s warm-up)")
        print(f"soak: transfers {len(transfers)}, completed {completed}, echo bytes verified by SHA-256 "
              f"{verified_bytes} ({verified_bytes / 2**20:.1f} MiB), checksum mismatches {len(mismatches)}")
        print(f"soak: faults injected {sum(fault_counts.values())}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(fault_counts.items())))
        print(f"soak: reloads applied {reloads['success']:.0f}, rejected {reloads['failure']:.0f}")
        print(f"soak: failed transfers {sum(failed_by_fault.values()) + len(failed_unexplained)}: "
              f"attributable to injected faults {sum(failed_by_fault.values())} "
              f"({', '.join(f'{k} {v}' for k, v in sorted(failed_by_fault.items())) or 'none'}), "
              f"not attributable {len(failed_unexplained)}")
        print("soak: outcomes " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        print(f"soak: daemon RSS baseline {baseline['rss_kib']} KiB, peak {peak_rss} KiB, end {final['rss_kib']} "
              f"KiB (limit {rss_limit:.0f}); fds baseline {baseline['fds']}, peak {peak_fds}, end {final['fds']} "
              f"(limit {fd_limit}); threads {baseline['threads']} -> {final['threads']}; "
              f"idle at the end: {idle}; exit code on SIGTERM {exit_code}")
        for t in failed_unexplained[:10]:
            print(f"soak:   not attributable: {json.dumps(t)}")
        problems = []
        if mismatches:
            problems.append(f"{len(mismatches)} checksum mismatches")
        if failed_unexplained:
            problems.append(f"{len(failed_unexplained)} failed transfers not attributable to a fault")
        if final["rss_kib"] > rss_limit:
            problems.append("RSS did not come back to the baseline")
        if final["fds"] > fd_limit:
            problems.append("open fds did not come back to the baseline")
        if not idle:
            problems.append("connections still active at the end")
        if exit_code != 0:
            problems.append(f"exit code {exit_code} on SIGTERM")
        if completed == 0:
            problems.append("no transfer completed")
        with open(os.path.join(run, "summary.json"), "w") as f:
            json.dump({"faults": faults, "baseline": baseline, "final": final, "samples": samples,
                       "outcomes": outcomes, "failed_by_fault": failed_by_fault,
                       "not_attributable": failed_unexplained}, f, indent=1)
        if problems:
            print("soak: FAIL: " + "; ".join(problems))
        else:
            print("soak: PASS")
        result = 1 if problems else 0
    finally:
        if traffic is not None and traffic.poll() is None:
            traffic.terminate()
            traffic.wait()
        for p in procs:
            p.stop()
        for b in (locals().get("http") or []) + (locals().get("echo") or []):
            if b.proc:
                b.proc.stop()
        if node:
            node.destroy()
    return result


if __name__ == "__main__":
    sys.exit(main())
