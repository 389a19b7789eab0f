#!/usr/bin/env python3
"""Bounded client traffic for scripts/leak-check.sh and scripts/soak.sh (standard library only).

Kinds of connection, each returning an outcome word ("ok" or why not):
  http      GET / HTTP/1.0; ok when a 200 with "backend=" comes back and the proxy closes
  post      POST with a body of N bytes (the backend skips it by Content-Length), then as http
  halfclose the request, then shutdown(SHUT_WR) at once (`nc -N`): must still be answered
  reset     connect, maybe send half a request, then close with RST (SO_LINGER 0)
  idle      connect and send nothing; ok when the proxy closes it (its idle_timeout)
  echo      N random bytes to an echo backend, shutdown(SHUT_WR), read everything back; ok when
            the SHA-256 of what came back equals that of what was sent

  load_client.py mix --proxy [NAME=]H:P[,...] [--admin H:P] --connections N --concurrency C
      a fixed mix of every kind, each to one of the proxies (leak check); prints one JSON object
      of outcome counts per proxy name and kind
  load_client.py soak --http H:P --echo H:P --seconds S --concurrency C --log FILE
      random kinds until S seconds are over; one JSON line per transfer to FILE
  load_client.py echo-server --listen H:P
      a TCP echo server (one thread per connection; EOF is passed back as EOF once all is sent);
      prints "echo listening on H:P" with the bound port
"""

import argparse
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time
import urllib.request
from collections import Counter


def address(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def connect(addr, timeout):
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(addr)
    return sock


def read_all(sock, limit=1 << 26):
    chunks, size = [], 0
    while size < limit:
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def classify(exc):
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken_pipe"
    return type(exc).__name__


def http_answer(data):
    if not data:
        return "closed_empty"
    if data.startswith(b"HTTP/1.1 200") and b"backend=" in data:
        return "ok"
    return "bad_answer"


def do_http(addr, timeout=10.0, body_bytes=0, half_close=False):
    try:
        with connect(addr, timeout) as sock:
            if body_bytes:
                head = b"POST / HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % body_bytes
                sock.sendall(head)
                chunk = b"x" * 65536
                left = body_bytes
                while left > 0:
                    sock.sendall(chunk[: min(left, len(chunk))])
                    left -= min(left, len(chunk))
            else:
                sock.sendall(b"GET / HTTP/1.0\r\nHost: sluice\r\n\r\n")
            if half_close:
                sock.shutdown(socket.SHUT_WR)
            return http_answer(read_all(sock)), body_bytes
    except Exception as exc:  # noqa: BLE001 - every failure is an outcome
        return classify(exc), 0


def do_reset(addr, timeout=10.0, delay=0.0, partial=True):
    try:
        sock = connect(addr, timeout)
        if partial:
            sock.sendall(b"GET / HT")
        if delay:
            time.sleep(delay)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        return "ok", 0
    except Exception as exc:  # noqa: BLE001
        return classify(exc), 0


def do_idle(addr, timeout=10.0):
    try:
        with connect(addr, timeout) as sock:
            data = read_all(sock)  # the proxy closes an idle client after its idle_timeout
            return ("ok" if not data else "bad_answer"), 0
    except Exception as exc:  # noqa: BLE001
        return classify(exc), 0


def do_echo(addr, nbytes, rng, timeout=20.0):
    """Sends nbytes of random data while reading the echo; compares SHA-256 of both ways."""
    payload = rng.randbytes(nbytes)
    sent_digest = hashlib.sha256(payload).hexdigest()
    received = hashlib.sha256()
    received_bytes = 0
    try:
        with connect(addr, timeout) as sock:
            error = []

            def writer():
                try:
                    view = memoryview(payload)
                    for at in range(0, nbytes, 65536):
                        sock.sendall(view[at:at + 65536])
                    sock.shutdown(socket.SHUT_WR)
                except Exception as exc:  # noqa: BLE001
                    error.append(exc)

            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                received.update(data)
                received_bytes += len(data)
            thread.join(timeout)
            if error:
                return classify(error[0]), received_bytes, False
        if received_bytes != nbytes:
            return "short_echo", received_bytes, False
        return ("ok" if received.hexdigest() == sent_digest else "checksum_mismatch"), received_bytes, True
    except Exception as exc:  # noqa: BLE001
        return classify(exc), received_bytes, False


def scrape(admin, path):
    try:
        with urllib.request.urlopen(f"http://{admin[0]}:{admin[1]}{path}", timeout=5) as answer:
            answer.read()
            return "ok"
    except Exception as exc:  # noqa: BLE001
        return classify(exc)


def run_pool(tasks, concurrency):
    """Runs callables on `concurrency` threads; returns the Counter of their outcome words."""
    counts = Counter()
    lock = threading.Lock()
    it = iter(tasks)

    def worker():
        while True:
            with lock:
                task = next(it, None)
            if task is None:
                return
            kind, fn = task
            outcome = fn()[0]
            with lock:
                counts[f"{kind}:{outcome}"] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def mix(args):
    # "NAME=H:P" or "H:P", comma-separated; repeat one to weight it. Outcomes are counted per name.
    proxies = [(p.split("=", 1)[0], address(p.split("=", 1)[1])) if "=" in p else (p, address(p))
               for p in args.proxy.split(",")]
    admin = address(args.admin) if args.admin else None
    rng = random.Random(args.seed)
    kinds = ["http"] * 50 + ["post"] * 10 + ["halfclose"] * 15 + ["reset_queued"] * 10 + \
            ["reset_connected"] * 10 + ["idle"] * 2 + ["scrape"] * 3
    tasks = []
    for _ in range(args.connections):
        kind = rng.choice(kinds)
        name, proxy = rng.choice(proxies)
        if kind != "scrape":
            kind = f"{name}/{kind}"
        if kind.endswith("/http"):
            tasks.append((kind, lambda p=proxy: do_http(p)))
        elif kind.endswith("/post"):
            n = rng.choice([1 << 10, 1 << 16, 1 << 20])
            tasks.append((kind, lambda p=proxy, n=n: do_http(p, body_bytes=n)))
        elif kind.endswith("/halfclose"):
            tasks.append((kind, lambda p=proxy: do_http(p, half_close=True)))
        elif kind.endswith("/reset_queued"):  # RST at once: often while still queued or connecting
            tasks.append((kind, lambda p=proxy: do_reset(p, delay=0.0)))
        elif kind.endswith("/reset_connected"):
            tasks.append((kind, lambda p=proxy, d=rng.uniform(0.05, 0.4): do_reset(p, delay=d)))
        elif kind.endswith("/idle"):
            tasks.append((kind, lambda p=proxy: do_idle(p, timeout=args.idle_wait)))
        elif kind == "scrape" and admin:
            path = rng.choice(["/metrics", "/backends", "/healthz"])
            tasks.append((kind, lambda path=path: (scrape(admin, path), 0)))
    counts = run_pool(tasks, args.concurrency)
    print(json.dumps(dict(sorted(counts.items()))))


def soak(args):
    http = address(args.http)
    echo = address(args.echo)
    deadline = time.monotonic() + args.seconds
    lock = threading.Lock()
    log = open(args.log, "w", buffering=1)

    def worker(index):
        rng = random.Random(args.seed * 1000 + index)
        while time.monotonic() < deadline:
            kind = rng.choices(["echo", "http", "post", "reset"], weights=[45, 40, 10, 5])[0]
            start = time.time()
            verified = False
            if kind == "echo":
                n = rng.choice([1, 100, 4096, 65536, 1 << 20, 4 << 20])
                outcome, nbytes, verified = do_echo(echo, n, rng)
            elif kind == "http":
                outcome, nbytes = do_http(http)
            elif kind == "post":
                outcome, nbytes = do_http(http, body_bytes=rng.choice([1 << 10, 1 << 18]))
            else:
                outcome, nbytes = do_reset(http, delay=rng.uniform(0, 0.2))
            end = time.time()
            record = {"kind": kind, "outcome": outcome, "bytes": nbytes, "verified": verified,
                      "start": round(start, 4), "end": round(end, 4)}
            with lock:
                log.write(json.dumps(record) + "\n")
            if outcome != "ok":
                time.sleep(0.05)  # no hot loop against a proxy that is refusing
            else:
                time.sleep(rng.uniform(0, args.pause))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()


def echo_server(args):
    host, port = address(args.listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(128)
    bound = server.getsockname()
    print(f"echo listening on {bound[0]}:{bound[1]}", flush=True)

    def serve(conn):
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        conn.shutdown(socket.SHUT_WR)
                        return
                    conn.sendall(data)
            except OSError:
                return

    while True:
        conn, _ = server.accept()
        conn.settimeout(120)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("mix")
    m.add_argument("--proxy", required=True)
    m.add_argument("--admin")
    m.add_argument("--connections", type=int, default=600)
    m.add_argument("--concurrency", type=int, default=16)
    m.add_argument("--idle-wait", type=float, default=10.0)
    m.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("soak")
    s.add_argument("--http", required=True)
    s.add_argument("--echo", required=True)
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--concurrency", type=int, default=6)
    s.add_argument("--pause", type=float, default=0.05)
    s.add_argument("--log", required=True)
    s.add_argument("--seed", type=int, default=1)
    e = sub.add_parser("echo-server")
    e.add_argument("--listen", required=True)
    args = parser.parse_args()
    socket.setdefaulttimeout(30)
    {"mix": mix, "soak": soak, "echo-server": echo_server}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
