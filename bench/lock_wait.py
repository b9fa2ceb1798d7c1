"""How late the review writer starts after another writer frees SQLite's write lock (not a test).

    .venv/bin/python -m bench.lock_wait                  # 200 holds per arm
    .venv/bin/python -m bench.lock_wait --holds 500

Another connection (a lease renewal, an admin change through SQLAlchemy: their transactions
span event-loop turns) holds the write lock for a random 2-60 ms; a writer then waits for it.
Two arms, alternating hold by hold so machine noise hits both alike:

- ``busy_handler``: a sqlite3 connection with ``busy_timeout=5000`` (what the review writer
  had): SQLite sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between attempts;
- ``worker``: ``app.db.session.SqliteWorker`` (no busy handler; it polls every
  ``LOCK_POLL_S``).

The figure is the lateness: when the writer's ``BEGIN IMMEDIATE`` succeeded minus when the
holder's ``COMMIT`` returned (p50/p99/max per arm). Writes bench/results/lock_wait.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from app.db.session import SqliteWorker
from bench.harness import WORK, log, pct, rnd, write_json


def _hold(path: str, seconds: float, held: threading.Event, released: list[float]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    released.append(time.monotonic())
    conn.close()


async def _one(path: str, arm: str, worker: SqliteWorker, seconds: float) -> float:
    held = threading.Event()
    released: list[float] = []
    holder = threading.Thread(target=_hold, args=(path, seconds, held, released))
    holder.start()
    held.wait()
    if arm == "worker":
        began = await worker.transaction(lambda conn: time.monotonic())
    else:

        def begin() -> float:
            conn = sqlite3.connect(path, isolation_level=None, timeout=5.0)
            conn.execute("BEGIN IMMEDIATE")
            at = time.monotonic()
            conn.execute("COMMIT")
            conn.close()
            return at

        began = await asyncio.to_thread(begin)
    holder.join()
    return (began - released[0]) * 1000


def fresh_database() -> str:
    path = str(WORK / "lock_wait.db")
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.close()
    return path


async def run(path: str, holds: int, seed: int) -> dict[str, Any]:
    worker = SqliteWorker(path, "bench-lock-wait")
    rng = random.Random(seed)
    late: dict[str, list[float]] = {"busy_handler": [], "worker": []}
    try:
        for _ in range(holds):
            seconds = rng.uniform(0.002, 0.060)
            for arm in late:
                late[arm].append(await _one(path, arm, worker, seconds))
    finally:
        await worker.close()
    return {
        "holds": holds,
        "hold_ms": [2, 60],
        "poll_ms": SqliteWorker.LOCK_POLL_S * 1000,
        "lateness_ms": {
            arm: {
                "p50": rnd(pct(values, 50)),
                "p99": rnd(pct(values, 99)),
                "max": rnd(max(values)),
            }
            for arm, values in late.items()
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lock_wait")
    parser.add_argument("--holds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(fresh_database(), args.holds, args.seed))
    write_json("lock_wait", result)
    log(f"lock wait after release, {args.holds} holds of 2-60 ms per arm (ms):")
    for arm, figures in result["lateness_ms"].items():
        log(f"  {arm:13s} p50 {figures['p50']}  p99 {figures['p99']}  max {figures['max']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
