"""``/healthz`` and ``/readyz`` on their own port, answered by one small thread.

On the main port a probe waits in the same event loop as the reviews: when hundreds of reviews
finish at once it queues behind all of them (measured: p99 0.2-0.8 s). Here a thread with its
own listening socket answers from a snapshot the event loop keeps fresh, so a probe costs a
few microseconds of Python and never waits for the review work to drain.

What the answers mean (kept honest although they are served beside the loop, not by it):
- ``/healthz`` is 200 while the event loop ticks: a loop blocked longer than
  ``PROBE_LOOP_STALL_SECONDS`` answers 503, so liveness still catches a wedged process.
- ``/readyz`` is 200 when the last state refresh reached the database recently (the poller
  runs every ``CONTROLS_REFRESH_SECONDS``), an artifact serves and the controls are loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import orjson

from app.registry.cache import LiveState

# The loop's heartbeat period; a stall shorter than a few of these is invisible to probes.
_TICK_S = 0.25


class ProbeState:
    """What the probe thread reads. Written by the event loop only; plain attribute reads and
    writes are atomic under the GIL, so no lock."""

    def __init__(self, live: LiveState, *, stall_s: float, db_stale_s: float) -> None:
        self.live = live
        self.stall_s = stall_s
        self.db_stale_s = db_stale_s
        self.loop_tick = time.monotonic()

    async def tick(self) -> None:
        """Run on the event loop: the heartbeat ``/healthz`` checks."""
        while True:
            self.loop_tick = time.monotonic()
            await asyncio.sleep(_TICK_S)

    def healthz(self) -> tuple[int, dict[str, Any]]:
        stalled = time.monotonic() - self.loop_tick
        if stalled > self.stall_s:
            return 503, {"status": "stalled", "loop_stalled_s": round(stalled, 3)}
        return 200, {"status": "ok"}

    def readyz(self) -> tuple[int, dict[str, Any]]:
        live = self.live
        checks: dict[str, Any] = {}
        refreshed = live.refreshed_at
        if refreshed is None:
            checks["database"] = "unavailable: never reached"
        elif (age := time.monotonic() - refreshed) > self.db_stale_s:
            checks["database"] = f"unavailable: last reached {age:.1f} s ago"
        else:
            checks["database"] = "ok"
        artifact = live.artifact
        checks["artifact"] = artifact.artifact_hash if artifact else "none"
        if live.last_error is not None:
            checks["artifact_error"] = live.last_error
        checks["controls"] = "ok" if live.controls_loaded else "not loaded"
        status, _ = self.healthz()
        if status != 200:
            checks["loop"] = "stalled"
        ready = (
            checks["database"] == "ok"
            and artifact is not None
            and live.controls_loaded
            and status == 200
        )
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return (200 if ready else 503), body


def _handler(state: ProbeState) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[], tuple[int, dict[str, Any]]]] = {
        "/healthz": state.healthz,
        "/readyz": state.readyz,
    }

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection (kubelet opens one per probe), so a client
        # holding its connection open cannot keep the single probe thread busy.
        protocol_version = "HTTP/1.0"
        timeout = 2.0  # a client that sends nothing cannot hold the thread either

        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            status, body = (404, {"status": "not_found"}) if route is None else route()
            payload = orjson.dumps(body)
            self.send_response_only(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every second would drown the log

    return Handler


class ProbeServer:
    """The probe listener and its thread; ``start``/``stop`` from the app lifespan."""

    def __init__(self, state: ProbeState, host: str, port: int) -> None:
        self._server = HTTPServer((host, port), _handler(state), bind_and_activate=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True,
            name="probe-server",
        )  # fmt: skip

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
