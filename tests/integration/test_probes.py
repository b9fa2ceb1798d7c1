"""The probe port: ``/healthz`` and ``/readyz`` answered by their own process, so a busy (or
blocked) event loop does not delay them, while liveness still sees a loop that stopped ticking.

Blocking the loop on purpose is the harshest form of "reviews finishing at once": the checks
are on ordering (the probe answered while the loop was still blocked), not on speed.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from typing import Any

from tests.conftest import AppFactory


def _get(port: int, path: str) -> tuple[int, bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic()
    finally:
        conn.close()


def _probe_port(app: Any) -> int:
    server = app.state.probe_server
    assert server is not None
    return int(server.port)


async def test_probe_port_when_serving_then_healthz_and_readyz_answer_with_state(
    app_factory: AppFactory,
) -> None:
    async with app_factory(probe_port=0, probe_host="127.0.0.1") as (_, app):
        port = _probe_port(app)
        status, body, _ = await asyncio.to_thread(_get, port, "/healthz")
        assert (status, body) == (200, b'{"status":"ok"}')
        status, body, _ = await asyncio.to_thread(_get, port, "/readyz")
        assert status == 200, body
        assert b'"status":"ready"' in body
        artifact = app.state.pipeline.live.artifact
        assert artifact.artifact_hash.encode() in body
        status, _, _ = await asyncio.to_thread(_get, port, "/nope")
        assert status == 404
    # Stopped with the lifespan: no orphan process, the port is free again.
    assert app.state.probe_server._proc.poll() is not None  # pyright: ignore[reportPrivateUsage]
    with socket.create_server(("127.0.0.1", port)):
        pass


async def test_probe_when_event_loop_blocked_then_still_answers_before_loop_frees(
    app_factory: AppFactory,
) -> None:
    async with app_factory(probe_port=0, probe_host="127.0.0.1") as (_, app):
        port = _probe_port(app)
        answers: list[tuple[int, bytes, float]] = []

        def probe() -> None:
            time.sleep(0.1)  # the loop is blocked by now
            answers.append(_get(port, "/healthz"))
            answers.append(_get(port, "/readyz"))

        thread = threading.Thread(target=probe)
        thread.start()
        time.sleep(1.0)  # noqa: ASYNC251 - on purpose: the loop does nothing else meanwhile
        freed = time.monotonic()
        thread.join()

    assert [a[0] for a in answers] == [200, 200], answers
    assert all(a[2] < freed for a in answers), (answers, freed)


async def test_healthz_when_loop_stalled_past_limit_then_503(app_factory: AppFactory) -> None:
    async with app_factory(probe_port=0, probe_host="127.0.0.1", probe_loop_stall_seconds=0.5) as (
        _,
        app,
    ):
        port = _probe_port(app)
        answers: list[tuple[int, bytes, float]] = []

        def probe() -> None:
            time.sleep(1.0)  # the loop has been blocked for longer than the stall limit
            answers.append(_get(port, "/healthz"))
            answers.append(_get(port, "/readyz"))

        thread = threading.Thread(target=probe)
        thread.start()
        time.sleep(1.5)  # noqa: ASYNC251 - a wedged loop, on purpose
        thread.join()
        await asyncio.sleep(0.6)  # the loop ticks again
        recovered = await asyncio.to_thread(_get, port, "/healthz")

    assert answers[0][0] == 503 and b"stalled" in answers[0][1], answers
    assert answers[1][0] == 503 and b'"loop":"stalled"' in answers[1][1], answers
    assert recovered[0] == 200
