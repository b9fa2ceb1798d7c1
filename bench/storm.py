"""Deadline storm: a one-shot burst of concurrent reviews, and a /healthz sampler.

Not a throughput test, so not wrk: every request needs its own latency against the deadline.
The burst is a plain asyncio driver on uvloop that speaks HTTP/1.1 over asyncio streams (one
pre-opened connection per request, bodies built beforehand) so the client's own cost per
request stays in the tens of microseconds and does not blur a 50 ms margin. The sampler runs
in a separate process (``python -m bench.storm sample``) with its own keep-alive connection,
so it measures the service's event loop, not the burst driver's.

Both record ``time.monotonic()`` stamps (CLOCK_MONOTONIC, shared by processes on Linux) so
the sampler's probes can be placed inside the storm window.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Answer:
    sent: float
    done: float
    status: int
    body: bytes

    @property
    def latency_s(self) -> float:
        return self.done - self.sent


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _burst(port: int, bodies: list[bytes], timeout_s: float) -> list[Answer]:
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in bodies))
    requests = [
        (
            b"POST /review HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        for body in bodies
    ]

    async def one(i: int) -> Answer:
        reader, writer = conns[i]
        sent = time.monotonic()
        writer.write(requests[i])
        try:
            status, body = await asyncio.wait_for(_read_response(reader), timeout_s)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            return Answer(sent, time.monotonic(), 0, repr(exc).encode())
        done = time.monotonic()
        writer.close()
        return Answer(sent, done, status, body)

    return await asyncio.gather(*(one(i) for i in range(len(bodies))))


def burst(port: int, bodies: list[bytes], timeout_s: float = 60.0) -> list[Answer]:
    """Send every body at once (one connection each) and return every answer."""
    import uvloop

    return uvloop.run(_burst(port, bodies, timeout_s))


def sample(port: int, interval_s: float, duration_s: float) -> list[dict[str, Any]]:
    """GET /healthz every ``interval_s`` for ``duration_s``; one record per probe."""
    out: list[dict[str, Any]] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    end = time.monotonic() + duration_s
    while (t0 := time.monotonic()) < end:
        try:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = 0
        t1 = time.monotonic()
        out.append({"t": t0, "latency_ms": (t1 - t0) * 1000.0, "status": status})
        pause = interval_s - (t1 - t0)
        if pause > 0:
            time.sleep(pause)
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.storm")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample", help="probe /healthz at a fixed interval")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--interval", type=float, default=0.01)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.cmd == "sample":
        records = sample(args.port, args.interval, args.duration)
        args.out.write_text(json.dumps(records))


if __name__ == "__main__":
    main()
