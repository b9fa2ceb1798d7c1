"""Scenario ``memory``: RSS after 10,000 reviews and its growth over further phases."""

from __future__ import annotations

import itertools
import math
import os
import signal
import time
from typing import Any

from bench.harness import (
    WORK,
    Context,
    Server,
    SqliteDB,
    log,
    log_tail,
    rnd,
    rss_kib,
    running,
    start_service,
)


def _drive_reviews(ctx: Context, srv: Server, db: SqliteDB, target: int) -> dict[str, Any]:
    """Exactly-ish ``target`` reviews at the benchmark concurrency: each wrk thread stops
    at its quota, then wrk is interrupted; the database count is the exact figure."""
    conns = ctx.cfg.connections
    threads = min(ctx.cfg.wrk_threads, conns)
    quota = math.ceil(target / threads)
    before = db.count_all()
    nonce = ctx.nonce("mem")
    proc, out, _argv = ctx.wrk.start(
        srv.url, connections=conns, duration=3600, nonce=nonce, keep=False, quota=quota
    )
    t0 = time.monotonic()
    while db.count_all() - before < target:
        if proc.poll() is not None:
            raise RuntimeError(f"wrk exited early:\n{log_tail(WORK / f'wrk-{nonce}.log')}")
        if time.monotonic() - t0 > 900:
            raise RuntimeError("memory scenario: reviews did not reach the target in 900 s")
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    os.kill(proc.pid, signal.SIGINT)  # wrk prints its report (done()) on SIGINT
    r = ctx.wrk.finish(proc, out, nonce, conns, timeout=60)
    time.sleep(1.0)
    return {
        "reviews": db.count_all() - before,
        "seconds": rnd(elapsed),
        "non2xx": r["non2xx"],
    }


def run(ctx: Context) -> dict[str, Any]:
    db = SqliteDB("memory")
    db.prepare()
    n = ctx.cfg.memory_reviews
    phases: list[dict[str, Any]] = []
    with running(start_service("service-memory", db.url)) as srv:
        pid = srv.proc.pid
        start = rss_kib(pid)
        for i in range(ctx.cfg.memory_phases):
            phase = _drive_reviews(ctx, srv, db, n)
            rss = rss_kib(pid)
            phase["vmrss_mib_after"] = rnd(rss["VmRSS"] / 1024, 1)
            phase["vmhwm_mib_after"] = rnd(rss["VmHWM"] / 1024, 1)
            phases.append(phase)
            log(
                f"memory: phase {i + 1}: +{phase['reviews']} reviews, "
                f"VmRSS {phase['vmrss_mib_after']} MiB"
            )
    growth = [
        rnd(b["vmrss_mib_after"] - a["vmrss_mib_after"], 1) for a, b in itertools.pairwise(phases)
    ]
    return {
        "database": "sqlite",
        "measure": "VmRSS of the service process (/proc/<pid>/status) after each phase of "
        f"~{n} distinct reviews at {ctx.cfg.connections} connections (wrk, same script)",
        "rss_mib_at_start": rnd(start["VmRSS"] / 1024, 1),
        "phases": phases,
        "rss_mib_after_phase1": phases[0]["vmrss_mib_after"],
        "growth_mib_per_further_phase": growth,
        "growth_mib_phase2": growth[0] if growth else None,
        "growth_tolerance_mib": ctx.cfg.rss_growth_tolerance_mib,
    }
