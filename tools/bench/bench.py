#!/usr/bin/python3
"""The proxy benchmark behind scripts/bench.sh: Sluice against HAProxy 2.6 and nginx stream, and
against no proxy at all, on loopback, each proxy single-threaded on CPU 0 and everything else
(load generators, backends, this driver) on CPU 1.

Backends (started once): one nginx (its own prefix in a temp dir, not the system service) serving
`GET /ok` and a 1 MiB file on three ports, `iperf3 -s`, and `idleconns sink` holding idle
connections. Each proxy gets three listeners of its own (web: the three nginx ports; iperf: the
iperf3 server; idle: the sink) and is started fresh for each repetition. The tests, in order:

  idle     RSS growth over N idle connections opened through it (`idleconns open`), KiB/connection
  ka       `wrk -t1 -c50` keep-alive GET /ok: req/s, p99, proxy CPU per request (/proc/PID/stat)
  close    the same with `Connection: close`: new connections/s, proxy CPU per connection
  big      `wrk -t1 -c8` GET of a 1 MiB file: Gbit/s
  iperf1   `iperf3 -P 1`: Gbit/s
  iperf4   `iperf3 -P 4`: Gbit/s

Not run unless asked (`--tests ka-http`), so the default run is unchanged:

  ka-http  `wrk -t1 -c50` keep-alive GET /ok through each proxy's HTTP listener (a fourth one, only
           in this test): HAProxy `mode http` with `http-reuse safe` and server keep-alive, nginx
           `proxy_pass` to an upstream with `keepalive` (HTTP/1.1, `Connection ""`), Sluice with a
           listener `mode: http`. req/s, p99, proxy CPU per request, ratios to HAProxy. A Sluice
           binary that rejects `mode: http` stops the run before anything starts (leave the Sluice
           variants out of --proxies to measure the others).

All proxies of a repetition run at once and each test goes through them back to back, in an order
that rotates every repetition. The report gives medians over repetitions, each figure's ratio to
HAProxy from the same repetition (median of the per-repetition ratios) and its spread ((max - min)
/ median). `sluice+scrape` is Sluice with its admin endpoint scraped every second (the cost of
metrics collection; Sluice has no switch to turn its bookkeeping off).

Everything it starts dies with it (PR_SET_PDEATHSIG, bounded client runs, a global deadline).
"""

import argparse
import ctypes
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROXY_CPU = "0"
LOAD_CPU = "1"
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
ALL_PROXIES = ["none", "sluice", "sluice-lc", "sluice+scrape", "sluice-nometrics", "sluice-nosplice",
               "sluice-w2", "haproxy", "haproxy-lc", "haproxy+splice", "nginx", "nginx-lc"]
# Which HAProxy a row is compared with (same balancing policy).
REFERENCE = {p: ("haproxy-lc" if p.endswith("-lc") else "haproxy") for p in ALL_PROXIES}
THROUGHPUT_ONLY = {"haproxy+splice", "sluice-nosplice"}
# Sluice with `workers: 2` may use both CPUs (the load generators' too): see the report's note.
PROXY_CPUS = {"sluice-w2": "0,1"}
QUICK_PROXIES = ["none", "sluice", "sluice+scrape", "haproxy", "haproxy+splice", "nginx"]  # a variant that only matters for bulk transfer
TESTS = ["idle", "ka", "close", "big", "iperf1", "iperf4"]
HTTP_TESTS = ["ka-http"]  # request-level proxying: only when --tests names it

# --- processes --------------------------------------------------------------------------------

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_children = []  # every Popen we started, stopped at exit
_log = None


def log(*parts):
    line = time.strftime("%H:%M:%S ") + " ".join(str(p) for p in parts)
    print(line, flush=True)
    if _log is not None:
        _log.write(line + "\n")
        _log.flush()


def _die_with_parent():
    _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the driver died, so do we
    os.setpgrp()  # our own group: a Ctrl-C reaches the driver, which stops us in order


def start(cmd, cpu, stdout=None, stderr=None, cwd=None):
    full = ["taskset", "-c", cpu] + cmd
    proc = subprocess.Popen(full, stdout=stdout or subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, cwd=cwd)
    _children.append(proc)
    return proc


def stop(proc, grace=5.0):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def stop_all():
    for proc in reversed(_children):
        stop(proc, grace=3.0)


def run(cmd, cpu, timeout):
    """Runs a bounded client command pinned to `cpu`; returns (exit code, stdout, stderr)."""
    proc = start(cmd, cpu, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=1.0)
        out, err = proc.communicate()
        return 124, out.decode(errors="replace"), err.decode(errors="replace") + "\n(timed out)"
    finally:
        _children.remove(proc)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# --- ports ------------------------------------------------------------------------------------


def port_is_free(port):
    """Nobody listens on it (TIME_WAIT remnants are fine: servers bind with SO_REUSEADDR)."""
    for host in ("127.0.0.1", "0.0.0.0"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


class Ports:
    """Hands out free ports below the ephemeral range (32768-60999 here), from a random start."""

    def __init__(self):
        low = 20000
        high = 32000
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                high = min(high, int(f.read().split()[0]) - 1)
        except OSError:
            pass
        self.low, self.high = low, high
        self.next = random.randrange(low, high)
        self.taken = set()

    def take(self):
        for _ in range(self.high - self.low):
            port = self.next
            self.next = self.low if self.next + 1 >= self.high else self.next + 1
            if port not in self.taken and port_is_free(port):
                self.taken.add(port)
                return port
        raise RuntimeError("no free port")


def listener_pids(port):
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(p) for p in re.findall(r"pid=(\d+)", out)}


def family(pid):
    """pid and its descendants."""
    pids, todo = {pid}, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        for k in kids:
            if k not in pids:
                pids.add(k)
                todo.append(k)
    return pids


def wait_listening(proc, ports, what, timeout=15.0):
    """Waits until every port accepts and is owned by `proc` (or a child): nobody else took it."""
    deadline = time.time() + timeout
    pending = list(ports)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        port = pending[0]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            owners = listener_pids(port)
            if owners and not owners & family(proc.pid):
                raise RuntimeError(f"port {port} for {what} is owned by pids {owners}, not ours")
            pending.pop(0)
            continue
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError(f"{what} is not listening on {port} after {timeout}s")
        time.sleep(0.05)


# --- /proc --------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def proc_table():
    """{pid: (ppid, utime+stime+cutime+cstime ticks, comm)} of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        table[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]), comm)
    return table


def busy_ticks():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait


class LoadSampler(threading.Thread):
    """Every 5 s: the 1-minute load average (it lags: an exponential average) and how many cores
    processes other than this benchmark used meanwhile (all busy time minus ours, with our reaped
    children's time counted through our cutime/cstime)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []  # (time, load average, cores used by others)
        self.halt = threading.Event()

    def ours(self, table):
        me = os.getpid()
        kids = {}
        for pid, (ppid, _, _) in table.items():
            kids.setdefault(ppid, []).append(pid)
        family, todo = {me}, [me]
        while todo:
            for k in kids.get(todo.pop(), []):
                if k not in family:
                    family.add(k)
                    todo.append(k)
        return sum(table[p][1] for p in family if p in table)

    def run(self):
        last = None
        while not self.halt.is_set():
            t, busy, ours = time.time(), busy_ticks(), self.ours(proc_table())
            others = None
            if last:
                others = max(0.0, ((busy - last[1]) - (ours - last[2])) / CLK_TCK / (t - last[0]))
            self.samples.append((t, loadavg(), others))
            last = (t, busy, ours)
            self.halt.wait(5)


def wait_quiet(max_wait_s, threshold=1.0, for_s=60):
    """Waits until the 1-min load average stayed below threshold for `for_s` seconds."""
    if max_wait_s <= 0:
        return loadavg() < threshold
    deadline = time.time() + max_wait_s
    quiet_since = None
    while time.time() < deadline:
        la = loadavg()
        if la < threshold:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since >= for_s:
                return True
        else:
            quiet_since = None
        time.sleep(5)
    return False


def busy_processes():
    out = subprocess.run(["ps", "-eo", "pid,pcpu,etime,comm", "--sort=-pcpu"], capture_output=True,
                         text=True).stdout.splitlines()
    return out[:12]


# --- backends -----------------------------------------------------------------------------------


class Backends:
    def __init__(self, tmp, ports, idleconns, max_life_s):
        self.tmp, self.idleconns = tmp, idleconns
        self.web = [ports.take() for _ in range(3)]
        self.iperf = ports.take()
        self.max_life_s = max_life_s

    def start(self):
        prefix = os.path.join(self.tmp, "backend-nginx")
        os.makedirs(os.path.join(prefix, "www"), exist_ok=True)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        with open(os.path.join(prefix, "www", "1m"), "wb") as f:
            f.write(os.urandom(1 << 20))
        listens = "\n".join(f"    listen 127.0.0.1:{p} backlog=4096;" for p in self.web)
        conf = f"""
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {prefix}/tmp_body;
  proxy_temp_path {prefix}/tmp_proxy;
  fastcgi_temp_path {prefix}/tmp_fastcgi;
  uwsgi_temp_path {prefix}/tmp_uwsgi;
  scgi_temp_path {prefix}/tmp_scgi;
  server {{
{listens}
    root {prefix}/www;
    location = /ok {{ return 200 "ok\\n"; }}
  }}
}}
"""
        conf_path = os.path.join(prefix, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        self.nginx = start(["nginx", "-p", prefix, "-c", conf_path, "-e", f"{prefix}/logs/error.log"], LOAD_CPU,
                           stderr=open(os.path.join(prefix, "logs", "stderr.log"), "w"))
        wait_listening(self.nginx, self.web, "backend nginx")

        self.iperf3 = start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(self.iperf)], LOAD_CPU,
                            stdout=open(os.path.join(self.tmp, "iperf3-server.log"), "w"),
                            stderr=subprocess.STDOUT)
        wait_listening(self.iperf3, [self.iperf], "iperf3 server")

        self.port_file = os.path.join(self.tmp, "sink.port")
        self.count_file = os.path.join(self.tmp, "sink.count")
        self.sink = start([self.idleconns, "sink", "--port-file", self.port_file, "--count-file", self.count_file,
                           "--max-seconds", str(self.max_life_s)], LOAD_CPU,
                          stderr=open(os.path.join(self.tmp, "sink.log"), "w"))
        deadline = time.time() + 10
        while not os.path.exists(self.port_file):
            if time.time() > deadline or self.sink.poll() is not None:
                raise RuntimeError("idleconns sink did not start")
            time.sleep(0.05)
        with open(self.port_file) as f:
            self.sink_port = int(f.read())
        log(f"backends: nginx {self.web} iperf3 {self.iperf} sink {self.sink_port}")

    def sink_count(self):
        with open(self.count_file) as f:
            return int(f.read() or 0)

    def wait_sink(self, predicate, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            count = self.sink_count()
            if predicate(count):
                return count
            time.sleep(0.1)
        return self.sink_count()


# --- proxies ------------------------------------------------------------------------------------


def sluice_http_listener(port):
    """Sluice's HTTP listener (request-level balancing over the web service), or "" without one."""
    if port is None:
        return ""
    return (f'  - {{ name: http, bind: "127.0.0.1:{port}", service: web, mode: http, max_connections: 20000,'
            f" idle_timeout: 1h }}\n")


def haproxy_http_section(port, web_ports, balance):
    """HAProxy `mode http` over the web backends: keep-alive on both sides, idle server connections
    shared between clients when safe (`http-reuse safe`, also 2.6's default)."""
    if port is None:
        return ""
    servers = "\n".join(f"  server http{i} 127.0.0.1:{p}" for i, p in enumerate(web_ports))
    return (f"frontend http\n  mode http\n  option http-keep-alive\n  timeout http-keep-alive 1h\n"
            f"  bind 127.0.0.1:{port}\n  default_backend http\n"
            f"backend http\n  mode http\n  option http-keep-alive\n  http-reuse safe\n  balance {balance}\n"
            f"{servers}\n")


def nginx_http_block(port, web_ports, least_conn, directory):
    """nginx `proxy_pass` to an upstream with a pool of kept-alive HTTP/1.1 connections."""
    if port is None:
        return ""
    servers = "\n".join(f"    server 127.0.0.1:{p};" for p in web_ports)
    temp = "".join(f"  {kind}_temp_path {directory}/tmp_{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"http {{\n  access_log off;\n{temp}"
            f"  keepalive_requests 10000000;\n  keepalive_timeout 1h;\n"
            f"  upstream http_web {{\n{least_conn}{servers}\n    keepalive 64;\n"
            f"    keepalive_requests 10000000;\n    keepalive_timeout 1h;\n  }}\n"
            f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://http_web;\n"
            f"      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n")


class Proxy:
    """One proxy under test: its config, process, and the pid that does the work."""

    def __init__(self, name, tmp, ports, backends, args):
        self.name, self.backends, self.args = name, backends, args
        self.dir = os.path.join(tmp, name.replace("+", "_"))
        os.makedirs(self.dir, exist_ok=True)
        self.direct = name == "none"
        # The HTTP listener exists only when an HTTP test runs, so the other tests' configs stay as they were.
        wants_http = bool(set(HTTP_TESTS) & set(args.tests.split(",")))
        if self.direct:
            self.web, self.iperf, self.idle = backends.web[0], backends.iperf, None
            self.http = backends.web[0] if wants_http else None
        else:
            self.web, self.iperf, self.idle = ports.take(), ports.take(), ports.take()
            self.http = ports.take() if wants_http else None
        self.admin = ports.take() if name == "sluice+scrape" else None
        self.proc = None
        self.pid = None
        self.scraper = None
        self.binary = None  # another Sluice binary (the profile's -g build)
        self.wrapper = []  # e.g. valgrind
        self.start_timeout = 15

    def listen_ports(self):
        return [p for p in (self.web, self.iperf, self.idle, self.http, self.admin) if p is not None]

    def write_config(self):
        b = self.backends
        if self.name.startswith("sluice"):
            policy = "least_connections" if self.name.endswith("-lc") else "round_robin"
            admin = f"admin:\n  bind: 127.0.0.1:{self.admin}\n" if self.admin else ""

            def service(name, ports):
                backends = "\n".join(
                    f'      - {{ name: {name}{i}, address: "127.0.0.1:{p}" }}' for i, p in enumerate(ports))
                return (f"  - name: {name}\n    policy: {policy}\n    connect_timeout: 5s\n"
                        f"    health_check: {{ enabled: false }}\n    queue: {{ max_length: 20000 }}\n"
                        f"    backends:\n{backends}\n")

            workers = "workers: 2\n" if self.name == "sluice-w2" else ""
            splice = ", splice: false" if self.name == "sluice-nosplice" else ""
            config = (f"{workers}drain_timeout: 1s\nlog: {{ level: warn }}\n{admin}listeners:\n"
                      f'  - {{ name: web, bind: "127.0.0.1:{self.web}", service: web, max_connections: 20000,'
                      f" idle_timeout: 1h{splice} }}\n"
                      f'  - {{ name: iperf, bind: "127.0.0.1:{self.iperf}", service: iperf, max_connections: 20000,'
                      f" idle_timeout: 1h{splice} }}\n"
                      f'  - {{ name: idle, bind: "127.0.0.1:{self.idle}", service: idle, max_connections: 20000,'
                      f" idle_timeout: 1h{splice} }}\n"
                      f"{sluice_http_listener(self.http)}"
                      f"services:\n{service('web', b.web)}{service('iperf', [b.iperf])}"
                      f"{service('idle', [b.sink_port])}")
            path = os.path.join(self.dir, "sluice.yaml")
            with open(path, "w") as f:
                f.write(config)
            binary = self.binary or (self.args.sluice_nometrics if self.name == "sluice-nometrics" else self.args.sluice)
            return [binary, "--config", path]

        if self.name.startswith("haproxy"):
            balance = "leastconn" if self.name.endswith("-lc") else "roundrobin"
            splice = "  option splice-auto\n" if "splice" in self.name else ""
            maxconn = self.args.haproxy_maxconn
            if splice:  # a pipe pair per 4 connections: 2.5 descriptors per connection under the limit
                maxconn = min(maxconn, 7500)

            def section(name, port, ports):
                servers = "\n".join(f"  server {name}{i} 127.0.0.1:{p}" for i, p in enumerate(ports))
                return (f"frontend {name}\n  bind 127.0.0.1:{port}\n  default_backend {name}\n"
                        f"backend {name}\n  balance {balance}\n{servers}\n")

            config = (f"global\n  nbthread 1\n  maxconn {maxconn}\n\n"
                      f"defaults\n  mode tcp\n  maxconn {maxconn}\n  timeout connect 5s\n"
                      f"  timeout client 1h\n  timeout server 1h\n{splice}\n"
                      f"{section('web', self.web, b.web)}{section('iperf', self.iperf, [b.iperf])}"
                      f"{section('idle', self.idle, [b.sink_port])}"
                      f"{haproxy_http_section(self.http, b.web, balance)}")
            path = os.path.join(self.dir, "haproxy.cfg")
            with open(path, "w") as f:
                f.write(config)
            return ["haproxy", "-db", "-f", path]

        if self.name.startswith("nginx"):
            lc = "    least_conn;\n" if self.name.endswith("-lc") else ""

            def upstream(name, port, ports):
                servers = "\n".join(f"    server 127.0.0.1:{p};" for p in ports)
                return (f"  upstream {name} {{\n{lc}{servers}\n  }}\n"
                        f"  server {{ listen 127.0.0.1:{port}; proxy_pass {name}; }}\n")

            # under valgrind: one process (a forked worker renames itself and callgrind_control loses it)
            single = "master_process off;\n" if self.wrapper else ""
            config = (f"load_module {NGINX_STREAM_MODULE};\n{single}worker_processes 1;\nworker_rlimit_nofile 20000;\n"
                      f"daemon off;\nuser root;\npid {self.dir}/nginx.pid;\nerror_log {self.dir}/error.log warn;\n"
                      f"events {{ worker_connections 19900; }}\n"
                      f"stream {{\n  proxy_connect_timeout 5s;\n  proxy_timeout 1h;\n"
                      f"{upstream('web', self.web, b.web)}{upstream('iperf', self.iperf, [b.iperf])}"
                      f"{upstream('idle', self.idle, [b.sink_port])}}}\n"
                      f"{nginx_http_block(self.http, b.web, lc, self.dir)}")
            path = os.path.join(self.dir, "nginx.conf")
            with open(path, "w") as f:
                f.write(config)
            return ["nginx", "-p", self.dir, "-c", path, "-e", f"{self.dir}/error.log"]
        raise ValueError(self.name)

    def start(self):
        if self.direct:
            return
        for port in self.listen_ports():
            if not port_is_free(port):
                raise RuntimeError(f"port {port} for {self.name} is in use")
        cmd = self.wrapper + self.write_config()
        self.proc = start(cmd, PROXY_CPUS.get(self.name, PROXY_CPU), stdout=open(os.path.join(self.dir, "stdout.log"), "a"),
                          stderr=open(os.path.join(self.dir, "stderr.log"), "a"))
        wait_listening(self.proc, self.listen_ports(), self.name, timeout=self.start_timeout)
        self.pid = self.proc.pid
        if self.name.startswith("nginx") and not self.wrapper:
            deadline = time.time() + self.start_timeout
            while True:  # the worker does the work; the master only waits
                kids = family(self.proc.pid) - {self.proc.pid}
                if kids:
                    self.pid = min(kids)
                    break
                if time.time() > deadline:
                    raise RuntimeError("nginx worker not found")
                time.sleep(0.05)
        if self.admin:
            self.scraper = Scraper(self.admin)
            self.scraper.start()

    def stop(self):
        if self.scraper:
            self.scraper.halt.set()
            self.scraper.join(5)
            self.scraper = None
        stop(self.proc)
        if self.proc in _children:
            _children.remove(self.proc)
        self.proc = None


class Scraper(threading.Thread):
    """GET /metrics every second, as Prometheus would."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.halt = threading.Event()
        self.ok = self.failed = 0
        self.last_bytes = 0

    def run(self):
        while not self.halt.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    self.last_bytes = len(response.read())
                self.ok += 1
            except OSError:
                self.failed += 1
            self.halt.wait(1.0)


# --- tests --------------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_wrk(text):
    result = {}
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    result["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    result["requests"] = int(m.group(1)) if m else None
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)", text, re.M)
    result["p99_ms"] = float(m.group(1)) * UNITS[m.group(2)] if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    result["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    result["bad_responses"] = int(m.group(1)) if m else 0
    return result


class Runner:
    def __init__(self, args, backends, raw_dir):
        self.args, self.backends, self.raw_dir = args, backends, raw_dir

    def save(self, proxy, rep, test, text):
        with open(os.path.join(self.raw_dir, f"r{rep}-{proxy.name.replace('+', '_')}-{test}.txt"), "w") as f:
            f.write(text)

    def measured(self, proxy, fn):
        """Runs fn(); returns its result with the proxy's CPU seconds and utilisation meanwhile."""
        cpu0 = cpu_seconds(proxy.pid) if proxy.pid else None
        t0 = time.time()
        result = fn()
        wall = time.time() - t0
        if cpu0 is not None and proxy.proc is not None and proxy.proc.poll() is None:
            cpu = cpu_seconds(proxy.pid) - cpu0
            result["proxy_cpu_s"] = cpu
            result["proxy_cpu_pct"] = 100.0 * cpu / wall
        return result

    def wrk(self, proxy, rep, test, path, connections, extra=(), port=None):
        d = self.args.duration
        url = f"http://127.0.0.1:{port or proxy.web}{path}"
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{d}s", "--latency", *extra, url]
        code, out, err = run(cmd, LOAD_CPU, timeout=d + 30)
        self.save(proxy, rep, test, " ".join(cmd) + "\n" + out + err)
        result = parse_wrk(out)
        if code != 0 or result["rps"] is None:
            result["error"] = f"wrk exit {code}: {err.strip()[:200]}"
        return result

    def test_ka(self, proxy, rep):
        r = self.measured(proxy, lambda: self.wrk(proxy, rep, "ka", "/ok", 50))
        if r.get("proxy_cpu_s") is not None and r.get("requests"):
            r["cpu_us_per_req"] = 1e6 * r["proxy_cpu_s"] / r["requests"]
        return r

    def test_ka_http(self, proxy, rep):
        r = self.measured(proxy, lambda: self.wrk(proxy, rep, "ka-http", "/ok", 50, port=proxy.http))
        if r.get("proxy_cpu_s") is not None and r.get("requests"):
            r["cpu_us_per_req"] = 1e6 * r["proxy_cpu_s"] / r["requests"]
        return r

    def test_close(self, proxy, rep):
        r = self.measured(proxy, lambda: self.wrk(proxy, rep, "close", "/ok", 50, ["-H", "Connection: close"]))
        if r.get("proxy_cpu_s") is not None and r.get("requests"):
            r["cpu_us_per_conn"] = 1e6 * r["proxy_cpu_s"] / r["requests"]
        return r

    def test_big(self, proxy, rep):
        r = self.measured(proxy, lambda: self.wrk(proxy, rep, "big", "/1m", 8))
        if r.get("rps") is not None:
            r["gbps"] = r["rps"] * (1 << 20) * 8 / 1e9
        return r

    def iperf(self, proxy, rep, test, streams):
        d = self.args.duration
        omit = 1 if d >= 5 else 0
        cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(proxy.iperf), "-t", str(d), "-O", str(omit),
               "-P", str(streams), "-J"]
        for attempt in range(3):  # the server takes one test at a time; it may still be tidying up
            code, out, err = run(cmd, LOAD_CPU, timeout=d + omit + 30)
            self.save(proxy, rep, test, " ".join(cmd) + "\n" + out + err)
            try:
                doc = json.loads(out)
            except ValueError:
                doc = {"error": f"exit {code}: {err.strip()[:200]}"}
            if "error" not in doc:
                bps = doc["end"]["sum_received"]["bits_per_second"]
                return {"gbps": bps / 1e9}
            if "busy" not in doc["error"]:
                break
            time.sleep(1)
        return {"error": doc.get("error")}

    def test_iperf1(self, proxy, rep):
        return self.measured(proxy, lambda: self.iperf(proxy, rep, "iperf1", 1))

    def test_iperf4(self, proxy, rep):
        return self.measured(proxy, lambda: self.iperf(proxy, rep, "iperf4", 4))

    def idle_open(self, proxy, port, count, rep, test, rss_pid, settle_s=1.0):
        """Opens `count` idle connections to `port`; returns what the sink and the proxy saw."""
        b = self.backends
        before = b.wait_sink(lambda c: c == 0, 30)
        if before != 0:
            return {"error": f"sink still holds {before} connections"}
        time.sleep(0.2 if self.args.quick else 0.5)
        rss0 = rss_kib(rss_pid) if rss_pid else None
        out_path = os.path.join(self.raw_dir, f"r{rep}-{proxy.name.replace('+', '_')}-{test}.txt")
        out = open(out_path, "w")
        opener = start([self.args.idleconns, "open", "--port", str(port), "-n", str(count), "--parallel", "256",
                        "--max-seconds", "600"], LOAD_CPU, stdout=out, stderr=subprocess.STDOUT)
        result = {"requested": count}
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                with open(out_path) as f:
                    text = f.read()
                if "connected=" in text or opener.poll() is not None:
                    break
                time.sleep(0.1)
            m = re.search(r"connected=(\d+) failed=(\d+) seconds=([\d.]+)", text)
            if not m:
                return {"error": "idleconns open did not finish connecting"}
            connected = int(m.group(1))
            result.update(connected=connected, failed=int(m.group(2)), connect_s=float(m.group(3)))
            # settled: the proxy has connected every client through to the sink, and the count holds
            last, stable_since = -1, time.time()
            deadline = time.time() + 60
            while time.time() < deadline:
                c = b.sink_count()
                if c != last:
                    last, stable_since = c, time.time()
                if (c >= connected and time.time() - stable_since >= 0.3) or time.time() - stable_since >= 5:
                    break
                time.sleep(0.1)
            time.sleep(0.3 if self.args.quick else settle_s)
            result["at_sink"] = b.sink_count()
            if rss_pid:
                rss1 = rss_kib(rss_pid)
                result.update(rss0_kib=rss0, rss1_kib=rss1)
        finally:
            stop(opener, grace=10)
            _children.remove(opener)
            out.close()
        with open(out_path) as f:
            m = re.search(r"held=(\d+) closed=(\d+)", f.read())
        if m:
            result["held"] = int(m.group(1))
            result["closed_meanwhile"] = int(m.group(2))
        held = min(result.get("held", 0), result.get("at_sink", 0))
        result["held_through"] = held
        if rss_pid and held > 0:
            result["kib_per_conn"] = (result["rss1_kib"] - result["rss0_kib"]) / held
        b.wait_sink(lambda c: c == 0, 30)
        return result

    def test_idle(self, proxy, rep):
        if proxy.direct:
            return {"skipped": "no proxy"}
        return self.idle_open(proxy, proxy.idle, self.args.idle_conns, rep, "idle", proxy.pid)


# --- profile ------------------------------------------------------------------------------------

SYSCALLS = ["read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "epoll_wait",
            "epoll_pwait", "epoll_ctl", "accept", "accept4", "connect", "socket", "close", "shutdown",
            "setsockopt", "getsockopt", "getpeername", "getsockname", "splice", "pipe2", "fcntl", "ioctl",
            "clock_gettime", "brk", "mmap", "munmap", "futex"]


def parse_callgrind(path):
    """Self cost (Ir) of a callgrind file by object, by function and by source file, the last
    counting inlined code (fi=/fe=) under the file it came from (histogram.hpp and the like)."""
    names = {"fl": {}, "fn": {}, "ob": {}}
    kind_of = {"fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl", "cfl": "fl", "fn": "fn", "cfn": "fn",
               "ob": "ob", "cob": "ob"}
    by_fn, by_file, by_ob, callees = {}, {}, {}, {}
    ob = fl = fn = cur_file = ""
    cfn = ""
    skip_next = False
    total = 0
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:  # the inclusive cost of a call, not self cost
                    skip_next = False
                    continue
                parts = line.split()
                cost = int(parts[1]) if len(parts) > 1 else 0
                total += cost
                key = (ob, fn)
                by_fn[key] = by_fn.get(key, 0) + cost
                by_file[cur_file] = by_file.get(cur_file, 0) + cost
                by_ob[ob] = by_ob.get(ob, 0) + cost
                continue
            if "=" not in line:
                continue
            key, _, rest = line.partition("=")
            if key == "calls":
                skip_next = True
                callees.setdefault((ob, fn), set()).add(cfn)
                continue
            if key not in kind_of:
                continue
            table = names[kind_of[key]]
            m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
            if m:
                if m.group(2) is not None:
                    table[m.group(1)] = m.group(2)
                name = table.get(m.group(1), "?")
            else:
                name = rest
            if key == "ob":
                ob = name
            elif key == "fl":
                fl = cur_file = name
            elif key in ("fi", "fe"):
                cur_file = name
            elif key == "fn":
                fn = name
                cur_file = fl
            elif key == "cfn":
                cfn = name
    return {"total": total, "by_fn": by_fn, "by_file": by_file, "by_ob": by_ob, "callees": callees}


def short_fn(name, limit=90):
    name = re.sub(r"\(.*\)", "()", name) if len(name) > limit else name
    return name if len(name) <= limit else name[:limit - 1] + "…"


def describe_fn(ob, fn, callees):
    """A stripped library's function has only an address; say what it calls."""
    label = f"{short_fn(fn)} [{os.path.basename(ob)}]"
    if fn.startswith("0x"):
        calls = sorted(c for c in callees.get((ob, fn), ()) if not c.startswith("0x"))
        if calls:
            label += " (calls " + ", ".join(short_fn(c, 40) for c in calls[:4]) + ")"
    return label


class Profiler:
    """Where the proxies' CPU goes, for the closing note: syscalls per request (perf tracepoints),
    kernel vs user time (perf cpu-clock samples: this VM has no hardware counters) and user-space
    instructions per request by function (callgrind), under the keep-alive and close tests."""

    def __init__(self, args, runner, ports, backends, out_dir):
        self.args, self.runner, self.ports, self.backends = args, runner, ports, backends
        self.dir = os.path.join(out_dir, "profile")
        os.makedirs(self.dir, exist_ok=True)
        self.lines = []
        self.data = {}

    def wrk_args(self, test):
        return ("/ok", 50, ["-H", "Connection: close"] if test == "close" else [])

    def background(self, cmd):
        return start(cmd, LOAD_CPU, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def finish(self, proc, sig=signal.SIGINT, timeout=60):
        try:
            proc.send_signal(sig)  # perf: SIGINT ends the count / recording and writes it out
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            out, err = proc.communicate()
        _children.remove(proc)
        return out.decode(errors="replace"), err.decode(errors="replace")

    def syscalls(self, proxy, test):
        events = ",".join(["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{n}" for n in SYSCALLS])
        perf = self.background(["perf", "stat", "-x", ",", "-e", events, "-p", str(proxy.pid)])
        time.sleep(0.3)
        path, conns, extra = self.wrk_args(test)
        r = self.runner.wrk(proxy, "p", f"syscalls-{test}", path, conns, extra)
        _, err = self.finish(perf)
        counts = {}
        for line in err.splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[0].strip().isdigit():
                counts[parts[2].split(":")[-1].replace("sys_enter_", "")] = int(parts[0])
        requests = r.get("requests") or 0
        per = {k: v / requests for k, v in counts.items() if requests and v}
        with open(os.path.join(self.dir, f"syscalls-{proxy.name}-{test}.txt"), "w") as f:
            f.write(err)
        return per, requests

    def perf_record(self, proxy, test):
        data = os.path.join(self.dir, f"perf-{proxy.name}-{test}.data")
        perf = self.background(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", data,
                                "-p", str(proxy.pid)])
        time.sleep(0.5)
        path, conns, extra = self.wrk_args(test)
        self.runner.wrk(proxy, "p", f"perf-{test}", path, conns, extra)
        self.finish(perf)
        by_dso = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso",
                                 "-g", "none", "--percent-limit", "0.5"], capture_output=True, text=True).stdout
        by_sym = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                                 "-g", "none", "--percent-limit", "0.8"], capture_output=True, text=True).stdout
        with open(data + ".txt", "w") as f:
            f.write(by_dso + "\n" + by_sym)
        dsos = re.findall(r"^\s+([\d.]+)%\s+(\S+)\s*$", by_dso, re.M)
        syms = re.findall(r"^\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)\s*$", by_sym, re.M)
        return [(float(p), d) for p, d in dsos], [(float(p), d, s) for p, d, s in syms]

    def callgrind(self, proxy, test):
        out = os.path.join(self.dir, f"callgrind-{proxy.name}-{test}.%p")
        proxy.wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--instr-atstart=no",
                         "--dump-instr=no", "--dump-line=yes"]
        proxy.start_timeout = 120
        proxy.start()
        try:
            ctl = subprocess.run(["callgrind_control", "-i", "on", str(proxy.pid)], capture_output=True,
                                 text=True, timeout=60)
            if ctl.returncode != 0:
                return {"error": "callgrind_control: " + (ctl.stdout + ctl.stderr).strip()[-200:]}
            time.sleep(0.5)
            path, conns, extra = self.wrk_args(test)
            r = self.runner.wrk(proxy, "p", f"callgrind-{test}", path, conns, extra)
            subprocess.run(["callgrind_control", "-d", str(proxy.pid)], capture_output=True, timeout=120)
        finally:
            proxy.stop()
            proxy.wrapper, proxy.start_timeout = [], 15
        dumps = sorted(f for f in os.listdir(self.dir)
                       if f.startswith(f"callgrind-{proxy.name}-{test}.") and f.split(".")[-1] != "data")
        # the dump taken after the run (name.PID.1), not the one written at exit (name.PID)
        chosen = [f for f in dumps if re.search(r"\.\d+\.\d+$", f)] or dumps
        if not chosen:
            return {"error": "no callgrind output"}
        parsed = parse_callgrind(os.path.join(self.dir, chosen[0]))
        parsed["requests"] = r.get("requests") or 0
        parsed["file"] = chosen[0]
        return parsed

    def run(self, names):
        tests = ["ka", "close"]
        for name in names:
            proxy = Proxy(name, os.path.join(self.dir, "proxies"), self.ports, self.backends, self.args)
            if name in ("sluice", "sluice-lc", "sluice+scrape") and self.args.sluice_prof:
                proxy.binary = self.args.sluice_prof
            for test in tests:
                log(f"profile {name} {test}")
                proxy.start()
                try:
                    per, requests = self.syscalls(proxy, test)
                    dsos, syms = self.perf_record(proxy, test)
                finally:
                    proxy.stop()
                cg = self.callgrind(proxy, test)
                self.data[(name, test)] = {"syscalls": per, "requests": requests, "dsos": dsos, "syms": syms,
                                           "callgrind": cg}
        return self.write(names, tests)

    def write(self, names, tests):
        L = []
        L.append("## Profile")
        L.append("")
        L.append("No hardware counters in this VM (`perf stat -e instructions` is not supported), so: syscalls "
                 "per request from perf's syscall tracepoints, kernel vs user time from `perf record -e cpu-clock` "
                 "samples, and user-space instructions (Ir) per request from callgrind "
                 f"(`--instr-atstart=no`, switched on for one {self.args.duration} s wrk run and dumped).")
        L.append("")
        for test in tests:
            title = "keep-alive (`wrk -c50`)" if test == "ka" else "new connections (`Connection: close`)"
            L.append(f"### {title}")
            L.append("")
            L.append("| | " + " | ".join(f"`{n}`" for n in names) + " |")
            L.append("|---|" + "|".join(["---:"] * len(names)) + "|")
            row = ["syscalls per request"]
            for n in names:
                d = self.data.get((n, test), {})
                row.append(f"{d.get('syscalls', {}).get('sys_enter', 0):.2f}")
            L.append("| " + " | ".join(row) + " |")
            used = set()
            for n in names:
                for k, v in self.data.get((n, test), {}).get("syscalls", {}).items():
                    if k != "sys_enter" and v >= 0.01:
                        used.add(k)
            for k in sorted(used, key=lambda k: -max(self.data.get((n, test), {}).get("syscalls", {}).get(k, 0)
                                                        for n in names)):
                row = [f"&nbsp;&nbsp;{k}"]
                for n in names:
                    v = self.data.get((n, test), {}).get("syscalls", {}).get(k)
                    row.append(f"{v:.2f}" if v else "")
                L.append("| " + " | ".join(row) + " |")
            row = ["CPU in the kernel (perf samples)"]
            for n in names:
                dsos = self.data.get((n, test), {}).get("dsos", [])
                kernel = sum(p for p, d in dsos if "kernel" in d)
                row.append(f"{kernel:.0f}%" if dsos else "")
            L.append("| " + " | ".join(row) + " |")
            row = ["user-space Ir per request (callgrind)"]
            for n in names:
                cg = self.data.get((n, test), {}).get("callgrind", {})
                row.append(f"{cg['total'] / cg['requests']:,.0f}" if cg.get("requests") else
                           cg.get("error", "")[:60])
            L.append("| " + " | ".join(row) + " |")
            L.append("")
            for n in names:
                d = self.data.get((n, test), {})
                if d.get("dsos"):
                    L.append(f"`{n}` perf samples by object: " + ", ".join(
                        f"{os.path.basename(dso)} {p:.1f}%" for p, dso in d["dsos"][:8]))
                    L.append("")
            sl = next((n for n in names if n.startswith("sluice")), None)
            d = self.data.get((sl, test), {}) if sl else {}
            if d.get("syms"):
                L.append(f"`{sl}` top symbols (perf cpu-clock, self time):")
                L.append("")
                for p, dso, sym in d["syms"][:15]:
                    L.append(f"- {p:.1f}% {os.path.basename(dso)} {short_fn(sym)}")
                L.append("")
            cg = d.get("callgrind", {})
            if cg.get("requests"):
                total, req = cg["total"], cg["requests"]
                L.append(f"`{sl}` callgrind, user space only: {total:,} Ir over {req:,} requests = "
                         f"{total / req:,.0f} Ir/request ({cg['file']}). By object: " + ", ".join(
                             f"{os.path.basename(o) or '?'} {100 * c / total:.1f}%"
                             for o, c in sorted(cg["by_ob"].items(), key=lambda x: -x[1])[:6]))
                L.append("")
                L.append("Top functions by self Ir:")
                L.append("")
                for (o, fn), c in sorted(cg["by_fn"].items(), key=lambda x: -x[1])[:15]:
                    L.append(f"- {100 * c / total:.1f}% ({c / req:,.0f} Ir/req) {describe_fn(o, fn, cg['callees'])}")
                L.append("")
                book = {f: c for f, c in cg["by_file"].items()
                        if re.search(r"(histogram|time_integral|stats)\.hpp$", f)}
                b = sum(book.values())
                L.append(f"Metrics bookkeeping (inlined code from histogram.hpp, time_integral.hpp, stats.hpp): "
                         f"{b:,} Ir = {100 * b / total:.2f}% of Sluice's user-space instructions, "
                         f"{b / req:,.1f} Ir/request" + (" (" + ", ".join(
                             f"{os.path.basename(f)} {c:,}" for f, c in book.items()) + ")" if book else "") + ".")
                L.append("")
        text = "\n".join(L)
        with open(os.path.join(self.dir, "profile.md"), "w") as f:
            f.write(text)
        return text


# --- report -------------------------------------------------------------------------------------

# (test, field, column title, format, higher is better)
COLUMNS = [
    ("ka", "rps", "keep-alive req/s", "{:,.0f}", True),
    ("ka", "p99_ms", "keep-alive p99 ms", "{:.2f}", False),
    ("ka", "cpu_us_per_req", "proxy CPU µs/req", "{:.1f}", False),
    ("close", "rps", "new conn/s", "{:,.0f}", True),
    ("close", "cpu_us_per_conn", "proxy CPU µs/conn", "{:.1f}", False),
    ("big", "gbps", "1 MiB GET Gbit/s", "{:.2f}", True),
    ("iperf1", "gbps", "iperf3 -P1 Gbit/s", "{:.2f}", True),
    ("iperf4", "gbps", "iperf3 -P4 Gbit/s", "{:.2f}", True),
    ("idle", "kib_per_conn", "idle KiB/conn", "{:.2f}", False),
]


# The ka-http test's own table (printed only when it ran).
HTTP_COLUMNS = [
    ("ka-http", "rps", "req/s", "{:,.0f}", True),
    ("ka-http", "p99_ms", "p99 ms", "{:.2f}", False),
    ("ka-http", "cpu_us_per_req", "proxy CPU µs/req", "{:.1f}", False),
]


def value(results, rep, proxy, test, field):
    r = results.get((rep, proxy, test))
    if not r or "error" in r:
        return None
    return r.get(field)


def summarize(results, proxies, reps):
    """{(proxy, test, field): (median, min, max, n, median ratio to reference, ratio spread)}"""
    summary = {}
    for proxy in proxies:
        for test, field, *_ in COLUMNS + HTTP_COLUMNS + [("ka", "proxy_cpu_pct", "", "", 0),
                                                         ("ka-http", "proxy_cpu_pct", "", "", 0),
                                                         ("close", "proxy_cpu_pct", "", "", 0),
                                          ("big", "proxy_cpu_pct", "", "", 0),
                                          ("iperf1", "proxy_cpu_pct", "", "", 0),
                                          ("iperf4", "proxy_cpu_pct", "", "", 0)]:
            values, ratios = [], []
            for rep in range(reps):
                v = value(results, rep, proxy, test, field)
                if v is None:
                    continue
                values.append(v)
                ref = value(results, rep, REFERENCE[proxy], test, field)
                if ref:
                    ratios.append(v / ref)
            if values:
                med = statistics.median(values)
                summary[(proxy, test, field)] = {
                    "median": med, "min": min(values), "max": max(values), "n": len(values),
                    "spread_pct": 100.0 * (max(values) - min(values)) / med if med else 0.0,
                    "ratio": statistics.median(ratios) if ratios else None,
                    "values": values, "ratios": ratios}
    return summary


def cell(s, fmt, show_ratio=True):
    if s is None:
        return "—"
    text = fmt.format(s["median"])
    if show_ratio and s["ratio"] is not None:
        text += f" ×{s['ratio']:.2f}"
    if s["n"] > 1:
        text += f" ±{s['spread_pct'] / 2:.0f}%"
    return text


def report(args, results, proxies, reps, meta, capacity, out_dir):
    summary = summarize(results, proxies, reps)
    lines = []
    lines.append(f"# Sluice benchmark {meta['started']}")
    lines.append("")
    if reps == 0:
        lines.append(f"Profile only. Load average (1 min) during the run: min {meta['load_min']:.2f}, "
                     f"max {meta['load_max']:.2f}.")
        lines.append("")
        text = "\n".join(lines)
        with open(os.path.join(out_dir, "report.md"), "w") as f:
            f.write(text)
        return text
    lines.append(f"{reps} repetition(s), {args.duration} s per test, {args.idle_conns} idle connections; "
                 f"proxy on CPU {PROXY_CPU}, load generators and backends on CPU {LOAD_CPU}. "
                 f"Load average (1 min): {meta['load_at_start']:.2f} at the start, during the run (ours included) "
                 f"min {meta['load_min']:.2f}, median {meta['load_median']:.2f}, max {meta['load_max']:.2f}; "
                 f"other processes used {meta['others_mean']:.2f} cores on average (max {meta['others_max']:.2f} "
                 f"over 5 s){'' if meta['quiet'] else ' — THE MACHINE WAS NOT QUIET'}.")
    lines.append("")
    lines.append("Each cell: median over repetitions, ×ratio to HAProxy (same policy, same repetition, "
                 "median of the per-repetition ratios), ±half the spread ((max−min)/2 as % of the median).")
    lines.append("")
    tests = args.tests.split(",")
    if set(HTTP_TESTS) & set(tests):
        http_report(lines, summary, proxies)
    if not set(TESTS) & set(tests):  # only the HTTP test ran
        return finish_report(lines, results, summary, meta, capacity, out_dir)
    header = ["proxy"] + [c[2] for c in COLUMNS]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|")
    for proxy in proxies:
        row = [f"`{proxy}`"]
        for test, field, _, fmt, _ in COLUMNS:
            if proxy in THROUGHPUT_ONLY and test not in ("big", "iperf1", "iperf4"):
                row.append("")
                continue
            row.append(cell(summary.get((proxy, test, field)), fmt, show_ratio=proxy != REFERENCE[proxy]))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Proxy CPU utilisation during each test (% of CPU 0; ~100% means the proxy was the bottleneck):")
    lines.append("")
    cpu_tests = ["ka", "close", "big", "iperf1", "iperf4"]
    lines.append("| proxy | " + " | ".join(cpu_tests) + " |")
    lines.append("|---|" + "|".join(["---:"] * len(cpu_tests)) + "|")
    for proxy in proxies:
        if proxy == "none":
            continue
        row = [f"`{proxy}`"]
        for t in cpu_tests:
            s = summary.get((proxy, t, "proxy_cpu_pct"))
            row.append(f"{s['median']:.0f}%" if s else "")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")

    def comparison(variant, intro, tests=None):
        """A Sluice variant against plain `sluice`, figure by figure, from the same repetitions."""
        if "sluice" not in proxies or variant not in proxies:
            return
        lines.append(intro)
        lines.append("")
        lines.append(f"| figure | sluice | {variant} | ratio (per-repetition median) |")
        lines.append("|---|---:|---:|---:|")
        for test, field, title, fmt, _ in COLUMNS:
            a, b = summary.get(("sluice", test, field)), summary.get((variant, test, field))
            if not a or not b or (tests and test not in tests):
                continue
            ratios = []
            for rep in range(reps):
                va = value(results, rep, "sluice", test, field)
                vb = value(results, rep, variant, test, field)
                if va and vb:
                    ratios.append(vb / va)
            ratio = f"{statistics.median(ratios):.3f}" if ratios else "—"
            lines.append(f"| {title} | {fmt.format(a['median'])} | {fmt.format(b['median'])} | {ratio} |")
        lines.append("")

    comparison("sluice+scrape", "Metrics collection (`sluice+scrape`: admin endpoint present and scraped every 1 s, "
               "vs `sluice`: no admin endpoint; the per-connection bookkeeping runs in both):")
    comparison("sluice-nometrics", "Metrics bookkeeping (`sluice-nometrics`: built with `SLUICE_EXACT_METRICS=OFF`, "
               "so no time integral or histogram is kept, vs `sluice`: the exact integrals and histograms "
               "updated at every change):")
    comparison("sluice-nosplice", "Zero-copy (`sluice-nosplice`: `splice: false`, every byte read into a "
               "pooled buffer and written out, vs `sluice`: bulk transfers through `splice(2)`):",
               tests=("big", "iperf1", "iperf4"))
    comparison("sluice-w2", "Workers (`sluice-w2`: `workers: 2` on both CPUs, vs `sluice`: one worker on CPU 0). "
               "This machine has 2 cores and the load generator and the backends run on CPU 1, so with two "
               "workers Sluice competes with them for that core: where wrk and nginx on CPU 1 were already "
               "the bottleneck for one worker (see the CPU table), a second worker cannot raise req/s, and "
               "this figure says nothing of how Sluice scales on a machine with cores to spare:",
               tests=("ka", "close", "big", "iperf4"))

    lines.append("Targets (Sluice single worker vs HAProxy single thread, same run, medians):")
    lines.append("")

    def target(label, proxy, test, field, goal, higher, ref="haproxy", ratio=True):
        s = summary.get((proxy, test, field))
        if s is None:
            lines.append(f"- {label}: not measured")
            return
        if ratio:
            r = s["ratio"] if ref == REFERENCE[proxy] else None
            if r is None:
                lines.append(f"- {label}: no reference")
                return
            got = r
            shown = f"×{r:.2f}"
        else:
            got = s["median"]
            shown = f"{got:.2f}"
        ok = got >= goal if higher else got <= goal
        lines.append(f"- {label}: {shown} — {'met' if ok else 'MISSED'}")

    target("keep-alive req/s ≥ 1.10× HAProxy", "sluice", "ka", "rps", 1.10, True)
    target("proxy CPU per request ≤ 0.90× HAProxy", "sluice", "ka", "cpu_us_per_req", 0.90, False)
    target("new connections/s ≥ 1.0× HAProxy", "sluice", "close", "rps", 1.0, True)
    target("iperf3 one stream ≥ 1.0× HAProxy", "sluice", "iperf1", "gbps", 1.0, True)
    s, n = summary.get(("sluice", "iperf1", "gbps")), summary.get(("none", "iperf1", "gbps"))
    if s and n:
        ratios = [value(results, r, "sluice", "iperf1", "gbps") / value(results, r, "none", "iperf1", "gbps")
                  for r in range(reps) if value(results, r, "sluice", "iperf1", "gbps")
                  and value(results, r, "none", "iperf1", "gbps")]
        r = statistics.median(ratios)
        lines.append(f"- iperf3 one stream ≥ 0.8× no proxy (aim, with splice): ×{r:.2f} — {'met' if r >= 0.8 else 'MISSED'}")
    target("idle memory ≤ 1.7 KiB per connection", "sluice", "idle", "kib_per_conn", 1.7, False, ratio=False)
    if capacity:
        ok = capacity.get("held_through", 0) >= capacity["requested"]
        lines.append(f"- {capacity['requested']:,} concurrent connections held: {capacity.get('held_through', 0):,} held "
                     f"through Sluice, RSS {capacity.get('rss1_kib', 0) / 1024:.1f} MiB "
                     f"({capacity.get('kib_per_conn', float('nan')):.2f} KiB/connection over "
                     f"{capacity.get('rss0_kib', 0) / 1024:.1f} MiB at start) — {'met' if ok else 'MISSED'}"
                     f"{'' if ok else ' (' + capacity.get('why', '') + ')'}")
    lines.append("")

    return finish_report(lines, results, summary, meta, capacity, out_dir)


def http_report(lines, summary, proxies):
    """The ka-http table: request-level proxying with keep-alive on both sides, and its targets."""
    lines.append("HTTP proxying (`ka-http`: `wrk -t1 -c50` keep-alive GET /ok through each proxy's HTTP "
                 "listener: HAProxy `mode http` with `http-reuse safe` and server keep-alive, nginx `proxy_pass` "
                 "to an upstream with `keepalive`, Sluice a listener `mode: http`; `none`: straight to one nginx "
                 "backend):")
    lines.append("")
    lines.append("| proxy | " + " | ".join(c[2] for c in HTTP_COLUMNS) + " | proxy CPU % |")
    lines.append("|---|" + "|".join(["---:"] * (len(HTTP_COLUMNS) + 1)) + "|")
    for proxy in proxies:
        if proxy in THROUGHPUT_ONLY:
            continue
        row = [f"`{proxy}`"]
        for test, field, _, fmt, _ in HTTP_COLUMNS:
            row.append(cell(summary.get((proxy, test, field)), fmt, show_ratio=proxy != REFERENCE[proxy]))
        pct = summary.get((proxy, "ka-http", "proxy_cpu_pct"))
        row.append(f"{pct['median']:.0f}%" if pct and proxy != "none" else "")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for label, field, goal, higher in (("`mode http` req/s ≥ 1.0× HAProxy `mode http`", "rps", 1.0, True),
                                       ("proxy CPU per request ≤ 1.0× HAProxy `mode http`", "cpu_us_per_req",
                                        1.0, False)):
        s = summary.get(("sluice", "ka-http", field))
        if s is None or s["ratio"] is None:
            lines.append(f"- {label}: not measured")
            continue
        ok = s["ratio"] >= goal if higher else s["ratio"] <= goal
        lines.append(f"- {label}: ×{s['ratio']:.2f} — {'met' if ok else 'MISSED'}")
    lines.append("")


def finish_report(lines, results, summary, meta, capacity, out_dir):
    """Errors, versions; writes report.md and summary.json; returns the report's text."""
    errors = [(k, v["error"]) for k, v in results.items() if "error" in v]
    warn = [(k, v) for k, v in results.items() if v.get("socket_errors") or v.get("bad_responses")]
    if errors or warn:
        lines.append("Errors and warnings:")
        lines.append("")
        for (rep, proxy, test), e in errors:
            lines.append(f"- rep {rep} {proxy} {test}: {e}")
        for (rep, proxy, test), v in warn:
            lines.append(f"- rep {rep} {proxy} {test}: socket errors {v.get('socket_errors')}, "
                         f"non-2xx {v.get('bad_responses')}")
        lines.append("")
    lines.append("Versions: " + "; ".join(meta["versions"]))
    lines.append("")
    text = "\n".join(lines)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump({"meta": meta, "capacity": capacity,
                   "summary": {f"{p}|{t}|{fld}": s for (p, t, fld), s in summary.items()}}, f, indent=1)
    return text


def versions(args):
    out = []
    for cmd in (["haproxy", "-v"], ["nginx", "-v"], ["wrk", "--version"], ["iperf3", "--version"],
                [args.sluice, "--version"]):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            out.append((p.stdout + p.stderr).strip().splitlines()[0])
        except (OSError, IndexError, subprocess.TimeoutExpired):
            out.append(f"{cmd[0]}: ?")
    out.append(f"kernel {os.uname().release}")
    return out


# --- main ---------------------------------------------------------------------------------------


def check_sluice_http(args, proxies):
    """Before anything starts: every Sluice binary the HTTP test would run must accept a listener
    `mode: http`. One that does not stops the run here, saying so, rather than a proxy that fails to
    start halfway (or a figure of something else)."""
    binaries = {}
    for p in proxies:
        if p.startswith("sluice") and p not in THROUGHPUT_ONLY:
            binaries.setdefault(args.sluice_nometrics if p == "sluice-nometrics" else args.sluice, []).append(p)
    path = os.path.join(args.out, "sluice-http-check.yaml")
    with open(path, "w") as f:
        f.write("listeners:\n" + sluice_http_listener(1) +
                'services:\n  - name: web\n    backends: [{ name: a, address: "127.0.0.1:1" }]\n')
    for binary, names in binaries.items():
        p = subprocess.run([binary, "--check", "--config", path], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            sys.exit(f"bench: ka-http needs a Sluice whose listeners take `mode: http` (issue 18), and {binary} "
                     f"(for {', '.join(names)}) rejects it:\n{(p.stdout + p.stderr).strip()}\n"
                     f"Leave the Sluice variants out of --proxies (e.g. --proxies none,haproxy,nginx) to measure "
                     f"the others.")



def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run: 1 repetition, 1 s tests")
    parser.add_argument("--reps", type=int, help="repetitions (default 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk/iperf3 test (default 10)")
    parser.add_argument("--idle-conns", type=int, help="idle connections per proxy (default 9000)")
    parser.add_argument("--capacity", type=int,
                        help="concurrent connections to hold through Sluice once (0: skip; default 15000)")
    parser.add_argument("--proxies", help="comma-separated subset of " + ",".join(ALL_PROXIES)
                        + " (default: all; --quick: " + ",".join(QUICK_PROXIES) + ")")
    parser.add_argument("--tests", default=",".join(TESTS),
                        help="comma-separated subset of " + ",".join(TESTS) + " (default: all of these), and "
                        + ",".join(HTTP_TESTS) + " (request-level HTTP proxying, only when named)")
    parser.add_argument("--wait-quiet", type=int, default=0, metavar="S",
                        help="first wait up to S seconds for the 1-min load average to stay < 1.0 for a minute")
    parser.add_argument("--haproxy-maxconn", type=int, default=9950)
    parser.add_argument("--max-minutes", type=float, default=120, help="the whole run's deadline")
    parser.add_argument("--profile", action="store_true",
                        help="also profile Sluice under the keep-alive test (callgrind; perf if it works)")
    parser.add_argument("--profile-only", action="store_true", help="only the profile")
    parser.add_argument("--profile-proxies", default="sluice,haproxy,nginx", help="proxies to profile")
    parser.add_argument("--sluice-prof", help="a Sluice built with -g for the profile (bench.sh builds it)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sluice", required=True)
    parser.add_argument("--sluice-nometrics", help="Sluice built with SLUICE_EXACT_METRICS=OFF (bench.sh builds it)")
    parser.add_argument("--idleconns", required=True)
    args = parser.parse_args()
    # --quick changes the defaults; explicit values win
    defaults = dict(reps=1, duration=1, idle_conns=1000, capacity=2000, proxies=",".join(QUICK_PROXIES)) \
        if args.quick else dict(reps=3, duration=10, idle_conns=9000, capacity=15000, proxies=",".join(ALL_PROXIES))
    for key, default in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.profile_only:
        args.reps, args.capacity, args.profile = 0, 0, True
    proxies = [p for p in args.proxies.split(",") if p]
    for p in proxies:
        if p not in ALL_PROXIES:
            parser.error(f"unknown proxy {p}")
    tests = [t for t in args.tests.split(",") if t]
    for t in tests:
        if t not in TESTS + HTTP_TESTS:
            parser.error(f"unknown test {t}")

    os.makedirs(args.out, exist_ok=True)
    if set(HTTP_TESTS) & set(tests):
        check_sluice_http(args, proxies)
    raw_dir = os.path.join(args.out, "raw")
    os.makedirs(raw_dir, exist_ok=True)
    global _log
    _log = open(os.path.join(args.out, "bench.log"), "w")
    os.sched_setaffinity(0, {int(LOAD_CPU)})

    def on_signal(signum, _frame):
        log(f"signal {signum}: stopping")
        stop_all()
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(args.max_minutes * 60))

    meta = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ"),
            "args": vars(args), "versions": versions(args)}
    if args.wait_quiet:
        log(f"waiting up to {args.wait_quiet}s for a quiet machine (load {loadavg():.2f})")
        meta["waited_quiet"] = wait_quiet(args.wait_quiet)
    meta["load_at_start"] = loadavg()
    meta["busy_at_start"] = busy_processes()
    log(f"load average {meta['load_at_start']:.2f}; out {args.out}")

    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    sampler = LoadSampler()
    sampler.start()
    results = {}
    capacity = None
    profile_text = ""
    try:
        ports = Ports()
        backends = Backends(tmp, ports, args.idleconns, max_life_s=int(args.max_minutes * 60) + 60)
        backends.start()
        runner = Runner(args, backends, raw_dir)
        # configs and logs of each proxy stay with the results
        objs = {p: Proxy(p, os.path.join(args.out, "proxies"), ports, backends, args) for p in proxies}
        jsonl = open(os.path.join(args.out, "runs.jsonl"), "w")
        for rep in range(args.reps):
            shift = rep % len(proxies)
            order = proxies[shift:] + proxies[:shift]
            log(f"repetition {rep + 1}/{args.reps}: {' '.join(order)} (load {loadavg():.2f})")
            # Every proxy of the repetition runs at once (idle ones cost nothing), and each test goes
            # through all of them back to back: what is compared is measured seconds apart, not minutes,
            # so a change in the machine's load between the two hurts less.
            started = []
            try:
                for name in order:
                    objs[name].start()
                    started.append(objs[name])
                for test in tests:
                    for name in order:
                        if name in THROUGHPUT_ONLY and test not in ("big", "iperf1", "iperf4"):
                            continue
                        proxy = objs[name]
                        if proxy.proc is not None and proxy.proc.poll() is not None:
                            r = {"error": f"{name} exited with {proxy.proc.returncode}"}
                        else:
                            r = getattr(runner, f"test_{test.replace('-', '_')}")(proxy, rep)
                        r.update(rep=rep, proxy=name, test=test, load=loadavg(), time=time.time())
                        if proxy.scraper:
                            r["scrapes_ok"], r["scrapes_failed"] = proxy.scraper.ok, proxy.scraper.failed
                        results[(rep, name, test)] = r
                        jsonl.write(json.dumps(r) + "\n")
                        jsonl.flush()
                        brief = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                                 if k in ("rps", "p99_ms", "cpu_us_per_req", "cpu_us_per_conn", "gbps",
                                          "kib_per_conn", "proxy_cpu_pct", "held_through", "error",
                                          "socket_errors")}
                        log(f"  {name:15s} {test:7s} {brief}")
            finally:
                for proxy in started:
                    proxy.stop()
        if args.capacity and "sluice" in objs:
            proxy = objs["sluice"]
            proxy.start()
            try:
                log(f"capacity: {args.capacity} idle connections through sluice")
                capacity = runner.idle_open(proxy, proxy.idle, args.capacity, 0, "capacity", proxy.pid,
                                            settle_s=2.0)
                with open(f"/proc/{proxy.pid}/limits") as f:
                    limit = re.search(r"Max open files\s+(\d+)", f.read()).group(1)
                capacity["fd_limit"] = int(limit)
                if capacity.get("held_through", 0) < args.capacity:
                    capacity["why"] = (f"the proxy needs 2 descriptors per connection (client + backend) and "
                                       f"its fd limit is {limit}")
                log(f"  capacity {capacity}")
            finally:
                proxy.stop()
        if args.profile:
            profile_text = Profiler(args, runner, ports, backends, args.out).run(args.profile_proxies.split(","))
    finally:
        sampler.halt.set()
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    loads = [la for _, la, _ in sampler.samples] or [loadavg()]
    others = [o for _, _, o in sampler.samples if o is not None] or [0.0]
    meta.update(load_min=min(loads), load_max=max(loads), load_median=statistics.median(loads),
                others_mean=statistics.mean(others), others_max=max(others),
                quiet=meta["load_at_start"] < 1.0 and statistics.mean(others) < 0.1,
                load_samples=sampler.samples, busy_at_end=busy_processes())
    text = report(args, results, proxies, args.reps, meta, capacity, args.out)
    if profile_text:
        text += "\n" + profile_text + "\n"
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(text)
    print()
    print(text)


if __name__ == "__main__":
    main()
