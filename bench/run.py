"""Benchmark orchestrator behind ``make bench`` (through ``bench/run.sh``).

Runs the chosen scenarios (one module each under ``bench/scenarios/``), writes
``bench/results/<scenario>.json`` and renders ``bench/RESULTS.md`` (``bench/report.py``).
Targets live in ``bench/targets.py``; shared machinery in ``bench/harness.py``.

Environment knobs (defaults in brackets):
  BENCH_RUNS [3]              runs per throughput figure; medians are reported
  BENCH_DURATION [10]         seconds per wrk run
  BENCH_WARMUP [2]            seconds of unrecorded wrk load before a server is measured
  BENCH_CONNECTIONS [32]      the concurrent figure's connection count
  BENCH_WRK_THREADS [1]       wrk threads (2 cores: one for wrk, the rest for the server)
  BENCH_GROUP [8]             consecutive requests per strategy_id (< 30: the order_rate gate)
  BENCH_SCENARIOS [all]       comma list: ceiling, deterministic_sqlite,
                              deterministic_postgres, live_overhead, deadline_storm,
                              cold_start, memory
  BENCH_PG_ADMIN_URL [postgresql://postgres@127.0.0.1:5432/postgres]
  BENCH_PG_DATABASE [trade_review_bench]
  BENCH_STORM_REQUESTS [256]  BENCH_STORM_DEADLINE [1.0]  BENCH_STORM_RUNS [3] per variant
  BENCH_COLD_STARTS [5]
  BENCH_MEMORY_REVIEWS [10000] reviews per memory phase
  BENCH_MEMORY_PHASES [3]     phase 1 -> RSS after 10,000; phase 2 -> growth (the target);
                              phase 3 -> whether any growth keeps going
  BENCH_RSS_GROWTH_TOLERANCE_MIB [2]  "no growth" = phase-2 growth within this
"""

from __future__ import annotations

import atexit
import shutil
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.harness import (
    PROCS,
    RESULTS_DIR,
    RESULTS_MD,
    ROOT,
    WORK,
    Config,
    Context,
    PostgresDB,
    SqliteDB,
    Wrk,
    log,
    machine_info,
    rnd,
    write_json,
    write_template,
)
from bench.scenarios import (
    ceiling,
    cold_start,
    deadline_storm,
    deterministic,
    live_overhead,
    memory,
)


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def _postgres(ctx: Context) -> dict[str, Any]:
    pg = PostgresDB(ctx.cfg.pg_admin_url, ctx.cfg.pg_database)
    pg.ensure_running()
    return deterministic.run(ctx, pg)


SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "ceiling": ceiling.run,
    "deterministic_sqlite": lambda ctx: deterministic.run(ctx, SqliteDB("deterministic")),
    "deterministic_postgres": _postgres,
    "live_overhead": live_overhead.run,
    "deadline_storm": deadline_storm.run,
    "cold_start": cold_start.run,
    "memory": memory.run,
}


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(PROCS.stop_all)
    cfg = Config.from_env()
    if shutil.which("wrk") is None and set(cfg.scenarios) - {"deadline_storm", "cold_start"}:
        print(
            "bench: wrk is not installed (bench/run.sh installs it with apt-get)", file=sys.stderr
        )
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    run_id = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t_all = time.monotonic()
    template = write_template()
    ctx = Context(cfg, Wrk(cfg, template), template.read_text(), run_id)
    meta = {
        "run_id": run_id,
        "config": {
            "runs": cfg.runs,
            "duration_s": cfg.duration,
            "warmup_s": cfg.warmup,
            "connections": cfg.connections,
            "wrk_threads": cfg.wrk_threads,
            "strategy_group": cfg.group,
        },
        "machine": machine_info(cfg),
    }
    scenarios = ", ".join(cfg.scenarios)
    log(f"run {run_id}: scenarios {scenarios}; runs={cfg.runs} duration={cfg.duration}s")
    failures: dict[str, str] = {}
    for name in cfg.scenarios:
        t0 = time.monotonic()
        log(f"--- {name}")
        try:
            data = SCENARIOS[name](ctx)
            if name == "ceiling":
                for c in ("c1", f"c{cfg.connections}"):
                    ctx.ceiling_rps[c] = data[c]["summary"]["rps"]
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name} FAILED: {failures[name]}")
            data = {"error": failures[name]}
        PROCS.stop_all()
        data = {"scenario": name, **meta, "elapsed_s": rnd(time.monotonic() - t0, 1), **data}
        write_json(name, data)
    total = time.monotonic() - t_all
    write_json(
        "run",
        {
            "run_id": run_id,
            "total_s": rnd(total, 1),
            "scenarios": cfg.scenarios,
            "failures": failures,
        },
    )
    from bench.report import render

    RESULTS_MD.write_text(render(RESULTS_DIR))
    log(f"wrote {RESULTS_MD.relative_to(ROOT)} and bench/results/*.json in {total:.0f} s")
    for name, err in failures.items():
        log(f"FAILED {name}: {err}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
