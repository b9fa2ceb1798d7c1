"""The probe process: ``/healthz`` and ``/readyz`` on their own port, in their own process.

Started by ``app.api.probes.ProbeProcess`` (run as a script, standard library only, so it
starts in tens of milliseconds and imports nothing of the service). It never touches the
database or the event loop: the service writes a small snapshot into a shared memory file
four times a second (the event loop's heartbeat plus the readiness answer) and this process
answers from it. Being another process, a probe does not even wait for the service's GIL, so
a storm of reviews cannot delay it; a service whose loop stopped ticking is still reported.

    python -S app/api/probe_server.py --fd N --state PATH --parent PID --stall SECONDS
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
import socket
import struct
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

# seq (even: stable), loop heartbeat (time.monotonic()), readiness status, payload length
HEADER = struct.Struct("<QdHI")
SIZE = 16384


def read_snapshot(buf: mmap.mmap) -> tuple[float, int, bytes]:
    """(heartbeat, readiness status, readiness body), consistent (a seqlock: retry while the
    writer is mid-update)."""
    for _ in range(100):
        seq, tick, status, length = HEADER.unpack_from(buf, 0)
        if seq % 2 == 0:
            body = bytes(buf[HEADER.size : HEADER.size + min(length, SIZE - HEADER.size)])
            if HEADER.unpack_from(buf, 0)[0] == seq:
                return tick, status, body
        time.sleep(0.0001)
    return 0.0, 503, b'{"status":"not_ready","checks":{"snapshot":"unreadable"}}'


def write_snapshot(buf: mmap.mmap, tick: float, status: int, body: bytes) -> None:
    """The writer's half (the service side); one writer only."""
    seq = HEADER.unpack_from(buf, 0)[0]
    body = body[: SIZE - HEADER.size]
    HEADER.pack_into(buf, 0, seq + 1, tick, status, len(body))
    buf[HEADER.size : HEADER.size + len(body)] = body
    HEADER.pack_into(buf, 0, seq + 2, tick, status, len(body))


def answers(buf: mmap.mmap, stall_s: float, path: str) -> tuple[int, bytes]:
    tick, status, body = read_snapshot(buf)
    stalled = time.monotonic() - tick
    if path == "/healthz":
        if stalled > stall_s:
            return 503, json.dumps(
                {"status": "stalled", "loop_stalled_s": round(stalled, 3)}
            ).encode()
        return 200, b'{"status":"ok"}'
    if path == "/readyz":
        if stalled > stall_s:
            ready: dict[str, Any] = json.loads(body or b"{}")
            ready["status"] = "not_ready"
            ready.setdefault("checks", {})["loop"] = "stalled"
            return 503, json.dumps(ready, separators=(",", ":")).encode()
        return status, body
    return 404, b'{"status":"not_found"}'


def serve(sock: socket.socket, buf: mmap.mmap, parent: int, stall_s: float) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: nobody holds the process
        timeout = 2.0

        def do_GET(self) -> None:
            status, payload = answers(buf, stall_s, self.path.split("?", 1)[0])
            self.send_response_only(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = HTTPServer(sock.getsockname()[:2], Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.timeout = 1.0
    while os.getppid() == parent:  # the service is gone: so are we
        server.handle_request()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--stall", type=float, required=True)
    args = parser.parse_args()
    sock = socket.socket(fileno=args.fd)
    with open(args.state, "rb") as f:
        buf = mmap.mmap(f.fileno(), SIZE, access=mmap.ACCESS_READ)
    with contextlib.suppress(KeyboardInterrupt):
        serve(sock, buf, args.parent, args.stall)


if __name__ == "__main__":
    main()
