"""A FastAPI app under uvicorn, a backend of the mode: http tests (Debian python3-fastapi,
python3-uvicorn). Usage: fastapi_backend.py NAME. Listens on a loopback port the kernel picks and
prints "fastapi NAME listening on 127.0.0.1:PORT" once it accepts. Keep-alive as uvicorn does it
(HTTP/1.1, h11). Paths:
  GET  /r          "backend=NAME ok\\n"
  GET  /blob/N     N bytes of a fixed pattern (bytes(i % 251)), Content-Length framed
  POST /echo       the request body back
SIGTERM: uvicorn's graceful shutdown, exit 0."""
import socket
import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

name = sys.argv[1]
app = FastAPI()


@app.get("/r", response_class=PlainTextResponse)
async def r():
    return f"backend={name} ok\n"


@app.get("/blob/{size}")
async def blob(size: int):
    return Response(bytes(i % 251 for i in range(size)), media_type="application/octet-stream")


@app.post("/echo")
async def echo(request: Request):
    return Response(await request.body(), media_type="application/octet-stream")


sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
print(f"fastapi {name} listening on 127.0.0.1:{sock.getsockname()[1]}", flush=True)
# The keep-alive timeout above Sluice's pool_idle_timeout (4 s), as the README advises.
config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30)
uvicorn.Server(config).run(sockets=[sock])
