"""One deadline for the answer: ``LLM_DSPY_TIMEOUT_SECONDS`` runs from the request's arrival
(before its body is read) to the answer, whatever the executor; a request whose budget is
already spent goes to the heuristic without calling Jangar, with ``budget_exhausted``.

Time bounds are correctness bounds with generous margins, never speed targets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from jangar_stub import Behaviour, JangarStub
from tests.support.live import (
    DEADLINE_S,
    MARGIN_S,
    AppFactory,
    assert_fallback,
    review_row,
    serve_live,
    unique_request,
)
from tests.support.server import running_service


async def _slow_body(body: dict[str, Any], delay_s: float) -> AsyncIterator[bytes]:
    # The server has the request (headers) now; the body trickles in after ``delay_s``.
    await asyncio.sleep(delay_s)
    yield json.dumps(body).encode()


async def _post_slowly(
    client: httpx.AsyncClient, body: dict[str, Any], delay_s: float
) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = await client.post(
        "/review",
        content=_slow_body(body, delay_s),
        headers={"content-type": "application/json"},
    )
    return r, time.perf_counter() - t0


async def test_hanging_jangar_when_body_arrives_late_then_llm_step_gets_only_what_is_left(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    delay = DEADLINE_S / 2
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        jangar_stub.set_behaviour(Behaviour.HANG)
        r, elapsed = await _post_slowly(client, unique_request("late-body"), delay)

    assert r.status_code == 200, r.text
    body = r.json()
    assert_fallback(body, "timeout")
    assert len(jangar_stub.requests) == 1
    timings = body["timings_ms"]
    # The body's wait counts against the deadline: the LLM step had at most what was left.
    assert timings["queued"] >= delay * 1000 * 0.9, timings
    assert timings["llm"] < (DEADLINE_S - delay * 0.9) * 1000, timings
    assert elapsed < DEADLINE_S + MARGIN_S, (elapsed, timings)


async def test_request_when_budget_spent_before_review_then_heuristic_without_calling_jangar(
    live_app: AppFactory, jangar_stub: JangarStub, sqlite_url: str
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        r, _ = await _post_slowly(client, unique_request("spent"), DEADLINE_S * 1.1)

    assert r.status_code == 200, r.text
    body = r.json()
    assert_fallback(body, "budget_exhausted")
    assert "llm" not in body["timings_ms"]
    assert jangar_stub.requests == []  # no call spent on a sure timeout
    row = await review_row(sqlite_url, body["review_id"])
    assert row["fallback_reason"] == "budget_exhausted"
    assert row["executor"] == "heuristic"


async def test_hanging_jangar_when_commit_reserve_measured_then_answer_total_within_deadline(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        budget = app.state.pipeline.budget
        for i in range(3):  # a few reviews teach the reserve what the tail costs here
            r, _ = await _post_slowly(client, unique_request(f"warm{i}"), 0.0)
            assert r.status_code == 200
        assert budget.tail.samples >= 3
        reserve = budget.tail.reserve()
        assert 0 < reserve <= DEADLINE_S / 2
        jangar_stub.set_behaviour(Behaviour.HANG)
        r, elapsed = await _post_slowly(client, unique_request("hang"), 0.0)

    assert r.status_code == 200, r.text
    body = r.json()
    assert_fallback(body, "timeout")
    # The LLM step ended a reserve before the deadline, so the commit fits inside it.
    # (The reserve's arithmetic is proven exactly in tests/unit/test_answer_budget.py; here a
    # wall-clock bound only shows the step was cut, with a margin a loaded machine keeps.)
    assert body["timings_ms"]["llm"] >= (DEADLINE_S - reserve) * 1000 - 50, body["timings_ms"]
    assert body["timings_ms"]["llm"] <= (DEADLINE_S - reserve + MARGIN_S) * 1000, body["timings_ms"]
    assert elapsed < DEADLINE_S + MARGIN_S, (elapsed, body["timings_ms"])


def test_served_by_uvicorn_when_body_arrives_late_then_deadline_counts_from_first_bytes(
    tmp_path: Path,
) -> None:
    # The real server (`python -m app serve`, the stamping httptools protocol): the wait for
    # the body is on the answer's clock.
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'served.db'}"}
    body = json.dumps(unique_request("served")).encode()
    delay = 0.4
    with running_service(env) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                b"POST /review HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
            )
            time.sleep(delay)
            sock.sendall(body)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:300]
    timings = json.loads(payload)["timings_ms"]
    assert timings["queued"] >= delay * 1000 * 0.9, timings


async def test_each_request_when_stamped_then_own_arrival_not_an_earlier_requests(
    live_app: AppFactory, jangar_stub: JangarStub
) -> None:
    # Regression: a stamp kept in a dict shared by all requests made every later request look
    # as old as the first one, so each went to budget_exhausted.
    async with live_app(jangar_base_url=jangar_stub.base_url) as (client, app):
        await serve_live(app, jangar_stub)
        jangar_stub.set_behaviour(Behaviour.HANG)
        first, _ = await _post_slowly(client, unique_request("first"), 0.0)
        await asyncio.sleep(DEADLINE_S * 1.2)  # longer than a whole budget
        second, _ = await _post_slowly(client, unique_request("second"), 0.0)

    for r in (first, second):
        assert r.status_code == 200, r.text
        assert_fallback(r.json(), "timeout")  # each had its own budget for the LLM call
        assert r.json()["timings_ms"]["queued"] < DEADLINE_S * 1000 / 2
    assert len(jangar_stub.requests) == 2
