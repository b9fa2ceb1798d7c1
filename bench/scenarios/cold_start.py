"""Scenario ``cold_start``: spawn to the first ``/readyz`` 200."""

from __future__ import annotations

import os
import shutil
import statistics
import time
from typing import Any

from bench.harness import (
    PROCS,
    PY,
    WORK,
    Context,
    SqliteDB,
    free_port,
    log,
    rnd,
    service_env,
    wait_http,
)


def _starts(
    ctx: Context, db: SqliteDB, n: int, env_extra: dict[str, str], unset: tuple[str, ...]
) -> list[float]:
    times: list[float] = []
    for i in range(n):
        port = free_port()
        log_path = WORK / f"cold-{i}.log"
        env = service_env(DATABASE_URL=db.url, **env_extra)
        for k in unset:
            env.pop(k, None)
        argv = [PY, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
        t0 = time.monotonic()
        proc = PROCS.spawn("cold-start", argv, env=env, log_path=log_path)
        try:
            wait_http(port, "/readyz", proc, log_path, timeout_s=60, poll_s=0.005)
            times.append(time.monotonic() - t0)
        finally:
            PROCS.stop(proc)
    return times


def run(ctx: Context) -> dict[str, Any]:
    db = SqliteDB("cold")
    db.prepare()
    n = ctx.cfg.cold_starts
    as_deployed = _starts(ctx, db, n, {}, ())
    log(f"cold start (as deployed, no bytecode cache): {[round(t, 3) for t in as_deployed]}")
    # The same with a bytecode cache outside the tree (one discarded start fills it).
    cache = WORK / "pycache"
    shutil.rmtree(cache, ignore_errors=True)
    env = {"PYTHONPYCACHEPREFIX": str(cache)}
    _starts(ctx, db, 1, env, ("PYTHONDONTWRITEBYTECODE",))
    cached = _starts(ctx, db, n, env, ("PYTHONDONTWRITEBYTECODE",))
    log(f"cold start (with bytecode cache): {[round(t, 3) for t in cached]}")
    return {
        "measure": "python -m app serve spawned on a fresh port against a migrated SQLite "
        "database, until the first GET /readyz 200 (polled every 5 ms)",
        "pythondontwritebytecode_in_env": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "as_deployed_s": [rnd(t) for t in as_deployed],
        "median_s": rnd(statistics.median(as_deployed)),
        "with_bytecode_cache_s": [rnd(t) for t in cached],
        "with_bytecode_cache_median_s": rnd(statistics.median(cached)),
        "note": "the first start also registers the bootstrap heuristic artifact",
    }
