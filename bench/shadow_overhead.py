"""Shadow overhead on the served path (standalone; not part of ``make bench``).

Scenario: the served arm is the deterministic heuristic (the most latency-sensitive case: a few
ms per review); a SHADOW ``dspy_live`` artifact mirrors every request to a loopback Jangar stub
that answers after ``SHADOW_BENCH_STUB_DELAY`` s, with a queue of ``SHADOW_BENCH_QUEUE`` and
``SHADOW_BENCH_CONCURRENCY`` workers, so the queue is saturated and most shadow jobs are dropped.
The same requests run with the shadow runner off, then on; the served p50/p99 and the change in
p99 are printed (target: < 10%), with the shadow's done/dropped counts proving saturation.

    .venv/bin/python -m bench.shadow_overhead    # SHADOW_BENCH_REQUESTS [600] SHADOW_BENCH_CONC [8]
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.registry.states import ArtifactState
from app.settings import load_settings
from jangar_stub import DEFAULT_ANSWER, JangarStub
from tests.support import db
from tests.support.requests import base_request
from tests.support.rollout import register_live, wait_until

REQUESTS = int(os.environ.get("SHADOW_BENCH_REQUESTS", "600"))
CONC = int(os.environ.get("SHADOW_BENCH_CONC", "8"))
STUB_DELAY = float(os.environ.get("SHADOW_BENCH_STUB_DELAY", "0.5"))
QUEUE = int(os.environ.get("SHADOW_BENCH_QUEUE", "16"))
WORKERS = int(os.environ.get("SHADOW_BENCH_CONCURRENCY", "4"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(shadow: bool, stub: JangarStub, url: str) -> dict[str, Any]:
    settings = load_settings(
        {},
        database_url=url,
        jangar_base_url=stub.base_url,
        shadow_enabled=shadow,
        shadow_queue_max=QUEUE,
        shadow_max_concurrent=WORKERS,
        rollout_controller_enabled=False,
        controls_refresh_seconds=0.2,
    )
    app = create_app(settings)
    latencies: list[float] = []
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=30) as c:
            if shadow:
                await register_live(
                    app,
                    suffix=uuid.uuid4().hex,
                    path=(ArtifactState.SHADOW,),
                    now=datetime.now(UTC),
                )
                await wait_until(lambda: app.state.pipeline.live.shadow is not None, "shadow")
            sem = asyncio.Semaphore(CONC)

            async def one(i: int) -> None:
                body = base_request(strategy_id=f"b-{uuid.uuid4().hex[:8]}")
                async with sem:
                    t0 = time.perf_counter()
                    r = await c.post(
                        "/review",
                        content=json.dumps(body),
                        headers={"content-type": "application/json"},
                    )
                    latencies.append(time.perf_counter() - t0)
                    assert r.status_code == 200, r.text

            await asyncio.gather(*(one(i) for i in range(REQUESTS)))
            runner = app.state.pipeline.shadow
            counts = {"done": runner.done, "dropped": runner.dropped} if shadow else {}
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        **counts,
    }


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, JangarStub() as stub:
        stub.set_answer(dict(DEFAULT_ANSWER))
        stub.delay_s = STUB_DELAY
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        db.migrate(url)
        off = await run(False, stub, url)
        on = await run(True, stub, url)
    change = (on["p99_ms"] - off["p99_ms"]) / off["p99_ms"] * 100
    print(
        json.dumps(
            {
                "requests": REQUESTS,
                "concurrency": CONC,
                "shadow_off": off,
                "shadow_on_saturated": on,
                "p99_change_pct": round(change, 1),
                "target_pct": 10,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
