#!/usr/bin/python3
"""An HTTP backend that stalls mid-response, for the test that kills it (SIGKILL) there.

Each request gets a head announcing 4 MiB (GET /length...: Content-Length; GET /chunked...:
chunked), then 1 MiB of body, then nothing: the connection stays open until the process dies.
Prints "stall-backend listening on 127.0.0.1:PORT" once bound, and "stalled PATH" per request.
"""
import socketserver
import sys

MIB = 1 << 20


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        path = data.split(b"\r\n", 1)[0].split(b" ")[1]
        if path.startswith(b"/chunked"):
            self.request.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            self.request.sendall(b"%x\r\n" % MIB + b"x" * MIB + b"\r\n")
        else:
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (4 * MIB))
            self.request.sendall(b"x" * MIB)
        print("stalled " + path.decode(), flush=True)
        while self.request.recv(65536):
            pass


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


with Server(("127.0.0.1", 0), Handler) as server:
    print("stall-backend listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
    sys.stdout.flush()
    server.serve_forever()
