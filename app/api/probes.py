"""``/healthz`` and ``/readyz`` on their own port, answered by a separate small process.

On the main port a probe waits in the same event loop as the reviews: when hundreds of reviews
finish at once it queues behind all of them (measured: p99 0.2-0.8 s). A thread in this
process would still wait for the GIL behind them (measured: p99 30-190 ms in the storm). So a
child process (``app/api/probe_server.py``, standard library only) owns the probe socket and
answers from a snapshot the event loop writes into shared memory four times a second.

What the answers mean (kept honest although they are served beside the loop, not by it):
- ``/healthz`` is 200 while the event loop ticks: a loop blocked longer than
  ``PROBE_LOOP_STALL_SECONDS`` answers 503, so liveness still catches a wedged process.
- ``/readyz`` is 200 when the last state refresh reached the database recently (the poller
  runs every ``CONTROLS_REFRESH_SECONDS``), an artifact serves, the controls are loaded and the
  loop ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from app.api import probe_server
from app.registry.cache import LiveState

# The heartbeat period; a stall shorter than a few of these is invisible to probes.
_TICK_S = 0.25


class ProbeState:
    """Readiness as the service sees it, published to the probe process on every tick."""

    def __init__(self, live: LiveState, *, db_stale_s: float) -> None:
        self.live = live
        self.db_stale_s = db_stale_s

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
        if live.last_refusal is not None:
            checks["artifact_refusal"] = live.last_refusal.value  # closed set: the code
        checks["controls"] = "ok" if live.controls_loaded else "not loaded"
        ready = checks["database"] == "ok" and artifact is not None and live.controls_loaded
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return (200 if ready else 503), body


class ProbeProcess:
    """The probe socket, the shared snapshot and the child that serves them."""

    def __init__(self, state: ProbeState, host: str, port: int, *, stall_s: float) -> None:
        self._state = state
        self._stall_s = stall_s
        # Bound here, so a taken port fails the start loudly and port 0 is known at once.
        self._sock = socket.create_server((host, port), backlog=128, reuse_port=False)
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # noqa: S108
        fd, path = tempfile.mkstemp(prefix="trade-review-probe-", dir=shm)
        os.ftruncate(fd, probe_server.SIZE)
        self._path = path
        self._buf = mmap.mmap(fd, probe_server.SIZE)
        os.close(fd)
        self._proc: subprocess.Popen[bytes] | None = None
        self.publish()

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def publish(self) -> None:
        status, body = self._state.readyz()
        probe_server.write_snapshot(self._buf, time.monotonic(), status, orjson.dumps(body))

    def start(self) -> None:
        fd = self._sock.fileno()
        argv = [
            sys.executable, "-S", probe_server.__file__, "--fd", str(fd), "--state", self._path,
            "--parent", str(os.getpid()), "--stall", str(self._stall_s),
        ]  # fmt: skip
        self._proc = subprocess.Popen(argv, pass_fds=(fd,), stdin=subprocess.DEVNULL)  # noqa: S603

    async def tick(self) -> None:
        """Run on the event loop: the heartbeat and readiness the probe process serves."""
        while True:
            self.publish()
            await asyncio.sleep(_TICK_S)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._sock.close()
        self._buf.close()
        with contextlib.suppress(OSError):
            os.unlink(self._path)
