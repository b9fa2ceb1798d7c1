"""A drift run over many stored reviews: time and memory (not a test).

    .venv/bin/python -m bench.drift_scale                       # 100k reviews, SQLite
    .venv/bin/python -m bench.drift_scale --rows 100000 --database-url postgresql+asyncpg://...

Seeds ``--rows`` review rows of one artifact (realistic request JSON, in executemany batches),
then runs the monitor once with the window set to all of them (reference: the first 500), and
reports wall time and the peak of Python heap allocations during the run (tracemalloc), plus the
process's peak RSS. Writes bench/results/drift_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from app.db.models import ReviewRow
from app.db.session import create_engine, create_session_factory, unit_of_work
from app.drift.monitor import run_once
from app.registry.service import bootstrap_heuristic
from app.settings import load_settings
from tests.support.db import migrate
from tests.support.requests import base_request

RESULTS = Path(__file__).resolve().parent / "results" / "drift_scale.json"


def _row(i: int, digest: str, now: datetime, rng: random.Random) -> dict[str, Any]:
    req = base_request(now, qty=str(rng.randint(1, 40)), strategy_id=f"s-{i % 50}")
    req["market"]["spread"] = f"{rng.uniform(0.01, 0.08):.3f}"
    req["decision"]["params"]["volatility"] = round(rng.gammavariate(4, 0.008), 5)
    verdict = rng.choices(["approve", "veto", "adjust", "abstain"], [0.75, 0.1, 0.1, 0.05])[0]
    decision = "submit" if verdict in ("approve", "adjust") else "reject"
    return {
        "review_id": str(uuid.uuid4()),
        "idempotency_key": f"bench-{i}-{uuid.uuid4().hex[:8]}",
        "request_hash": "0" * 64,
        "request_json": req,
        "strategy_id": req["decision"]["strategy_id"],
        "symbol": "AAPL",
        "action": "buy",
        "verdict": verdict,
        "decision": decision,
        "review_json": {"verdict": verdict, "confidence": round(rng.betavariate(6, 2), 4)},
        "gates_json": [],
        "failed_gates": "",
        "response_json": {},
        "artifact_hash": digest,
        "executor": "heuristic",
        "model": None,
        "arm": "active",
        "fallback_reason": None,
        "policy_hash": "0" * 64,
        "trading_mode": "paper",
        "llm_latency_ms": None,
        "overhead_ms": 1.0,
        "total_latency_ms": 2.0,
        "prompt_tokens": None,
        "completion_tokens": None,
        "created_at": now + timedelta(milliseconds=i),
    }


async def main_async(rows: int, url: str) -> dict[str, Any]:
    migrate(url)
    settings = load_settings(
        {},
        database_url=url,
        learn_drift_reference_reviews=500,
        learn_drift_window_reviews=rows,
    )
    engine = create_engine(settings)
    factory = create_session_factory(engine)
    now = datetime.now(UTC)
    digest = await bootstrap_heuristic(factory, "trade-review", "v1", now)
    rng = random.Random(11)
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for i in range(rows):
        batch.append(_row(i, digest, now, rng))
        if len(batch) == 5000 or i == rows - 1:
            async with unit_of_work(factory) as s:
                await s.execute(insert(ReviewRow), batch)
            batch = []
    seeded = time.perf_counter() - started
    # First run (timed): freezes the reference (500 rows), compares the remaining rows.
    started = time.perf_counter()
    run = await run_once(factory, settings, clock=lambda: datetime.now(UTC))
    seconds = time.perf_counter() - started
    # Second run, same work, under tracemalloc (which slows it down): the heap's peak.
    tracemalloc.start()
    started = time.perf_counter()
    await run_once(factory, settings, clock=lambda: datetime.now(UTC))
    traced_seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await engine.dispose()
    return {
        "rows": rows,
        "database": engine.dialect.name,
        "seed_seconds": round(seeded, 2),
        "run_seconds": round(seconds, 2),
        "run_seconds_under_tracemalloc": round(traced_seconds, 2),
        "window_n": run.window_n,
        "reference_n": run.reference_n,
        "checks": len(run.checks),
        "outcome": run.outcome.value,
        "peak_python_heap_mb": round(peak / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='drift-scale-')}/bench.db"
    out = asyncio.run(main_async(args.rows, url))
    print(json.dumps(out, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
