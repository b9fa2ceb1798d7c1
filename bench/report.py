"""Render ``bench/RESULTS.md`` from ``bench/results/*.json`` (``python -m bench.report``)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from bench import targets
from bench.targets import PUBLISHED_LIVE_REFERENCES

ORDER = (
    "ceiling",
    "deterministic_sqlite",
    "deterministic_postgres",
    "live_overhead",
    "deadline_storm",
    "cold_start",
    "memory",
)


def _load(results: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in ORDER:
        path = results / f"{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    return out


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _f(v: Any, unit: str = "", nd: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}{unit}"
    return f"{v}{unit}"


def _pair(a: Any, b: Any, unit: str = " ms", nd: int = 2) -> str:
    return f"{_f(a, nd=nd)} / {_f(b, nd=nd)}{unit}"


def _verdict(ok: bool | None) -> str:
    if ok is None:
        return "n/a"
    return "**PASS**" if ok else "**MISS**"


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str]] = []

    def add(
        self, scenario: str, figure: str, value: str, target: str = "", result: str = ""
    ) -> None:
        self.rows.append((scenario, figure, value, target, result))

    def render(self) -> str:
        lines = [
            "| scenario | figure | measured | target | result |",
            "|---|---|---:|---|---|",
        ]
        lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in self.rows]
        return "\n".join(lines)


def _ratio(value: float | None, ceiling: float | None) -> float | None:
    if value is None or not ceiling:
        return None
    return value / ceiling


def render(results: Path) -> str:
    data = _load(results)
    run_meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        run_meta = json.loads((results / "run.json").read_text())
    total_s = run_meta.get("total_s")
    run_id = run_meta.get("run_id")
    any_data = next(iter(data.values()), {})
    machine = any_data.get("machine", {})
    config = any_data.get("config", {})
    runs = config.get("runs", "?")
    conc = config.get("connections", 32)
    c32 = f"c{conc}"
    t = Table()

    ceil = data.get("ceiling", {})
    ceil_rps = {c: _get(ceil, c, "summary", "rps") for c in (c32, "c1")}
    if ceil:
        for c in (c32, "c1"):
            s = _get(ceil, c, "summary") or {}
            lat = _pair(s.get("latency_p50_ms"), s.get("latency_p99_ms"), "")
            t.add(
                "ceiling (bare FastAPI + ReviewRequest validation)",
                f"req/s at {c[1:]} conn (p50 / p99 ms)",
                f"{_f(s.get('rps'), nd=0)} ({lat})",
                "reference",
            )

    for name, label, ratio_target in (
        ("deterministic_sqlite", "deterministic, SQLite", targets.RATIO_SQLITE),
        ("deterministic_postgres", "deterministic, PostgreSQL", targets.RATIO_PG),
    ):
        d = data.get(name)
        if not d:
            continue
        if "error" in d:
            t.add(label, "error", d["error"].splitlines()[0][:120], "", "**FAILED**")
            continue
        s32 = _get(d, c32, "summary") or {}
        s1 = _get(d, "c1", "summary") or {}
        r32 = _ratio(s32.get("rps"), ceil_rps[c32])
        r1 = _ratio(s1.get("rps"), ceil_rps["c1"])
        t.add(
            label,
            f"req/s at {conc} conn (x ceiling)",
            f"{_f(s32.get('rps'), nd=0)} ({_f(r32, 'x', 3)})",
            f">= {ratio_target}x ceiling (goal {targets.RATIO_GOAL}x)",
            _verdict(None if r32 is None else r32 >= ratio_target),
        )
        p99 = s32.get("latency_p99_ms")
        t.add(
            label,
            f"latency p50 / p99 at {conc} conn",
            f"{_f(s32.get('latency_p50_ms'))} / {_f(p99)} ms",
            f"p99 <= {targets.P99_C32_MS:g} ms (goal {targets.P99_C32_GOAL_MS:g})",
            _verdict(None if p99 is None else p99 <= targets.P99_C32_MS),
        )
        seq = _get(s1, "overhead_header_ms", "p50")
        t.add(
            label,
            "sequential p50, server total (timings_ms.total)",
            _f(seq, " ms", 3),
            f"<= {targets.SEQUENTIAL_P50_MS:g} ms (goal {targets.SEQUENTIAL_P50_GOAL_MS:g})",
            _verdict(None if seq is None else seq <= targets.SEQUENTIAL_P50_MS),
        )
        t.add(
            label,
            "req/s at 1 conn (x ceiling); p50 / p99",
            f"{_f(s1.get('rps'), nd=0)} ({_f(r1, 'x', 3)}); "
            f"{_f(s1.get('latency_p50_ms'))} / {_f(s1.get('latency_p99_ms'))} ms",
            "",
        )
        t.add(
            label,
            f"server CPU per review at {conc} / 1 conn",
            _pair(s32.get("server_cpu_ms_per_review"), s1.get("server_cpu_ms_per_review")),
            "",
        )
        ok = _get(d, "committed_check", "ok")
        t.add(
            label,
            "rows == 2xx answers (every run)",
            "yes" if ok else "NO",
            "every review committed",
            _verdict(ok),
        )

    live = data.get("live_overhead")
    if live and "error" in live:
        t.add(
            "live path (stub valid)", "error", live["error"].splitlines()[0][:120], "", "**FAILED**"
        )
    elif live:
        s1 = _get(live, "c1", "summary") or {}
        s32 = _get(live, c32, "summary") or {}
        o50 = _get(s1, "overhead_header_ms", "p50")
        o99 = _get(s1, "overhead_header_ms", "p99")
        lbl = "live path (stub `valid`)"
        t.add(
            lbl,
            "X-Review-Overhead-Ms p50, sequential",
            _f(o50, " ms", 3),
            f"<= {targets.LIVE_OVERHEAD_P50_MS:g} ms (goal {targets.LIVE_OVERHEAD_P50_GOAL_MS:g})",
            _verdict(None if o50 is None else o50 <= targets.LIVE_OVERHEAD_P50_MS),
        )
        t.add(
            lbl,
            "X-Review-Overhead-Ms p99, sequential",
            _f(o99, " ms", 3),
            f"<= {targets.LIVE_OVERHEAD_P99_MS:g} ms (goal {targets.LIVE_OVERHEAD_P99_GOAL_MS:g})",
            _verdict(None if o99 is None else o99 <= targets.LIVE_OVERHEAD_P99_MS),
        )
        t.add(
            lbl,
            f"X-Review-Overhead-Ms p50 / p99 at {conc} conn",
            _pair(
                _get(s32, "overhead_header_ms", "p50"), _get(s32, "overhead_header_ms", "p99"), nd=3
            ),
        )
        t.add(
            lbl,
            "end-to-end p50 / p99, sequential",
            f"{_f(s1.get('latency_p50_ms'))} / {_f(s1.get('latency_p99_ms'))} ms",
            "published: " + PUBLISHED_LIVE_REFERENCES,
        )
        t.add(
            lbl,
            f"end-to-end p50 / p99 at {conc} conn",
            f"{_f(s32.get('latency_p50_ms'))} / {_f(s32.get('latency_p99_ms'))} ms",
        )
        t.add(
            lbl,
            "LLM step (DSPy + httpx + stub) p50 / p99, sequential",
            f"{_f(_get(s1, 'llm_step_ms', 'p50'))} / {_f(_get(s1, 'llm_step_ms', 'p99'))} ms",
        )
        t.add(
            lbl,
            "end-to-end minus LLM step p50 / p99, sequential (per request)",
            _pair(_get(s1, "e2e_minus_llm_ms", "p50"), _get(s1, "e2e_minus_llm_ms", "p99")),
        )
        for c in (c32, "c1"):
            s = _get(live, c, "summary") or {}
            t.add(
                lbl,
                f"req/s at {c[1:]} conn (x ceiling)",
                f"{_f(s.get('rps'), nd=0)} ({_f(_ratio(s.get('rps'), ceil_rps[c]), 'x', 3)})",
            )

    storm = data.get("deadline_storm")
    if storm and "error" in storm:
        t.add("deadline storm", "error", storm["error"].splitlines()[0][:120], "", "**FAILED**")
    elif storm:
        n = storm.get("requests")
        dl = storm.get("deadline_s")
        k = storm.get("runs_per_variant")
        for variant, v in (storm.get("variants") or {}).items():
            lbl = f"deadline storm, {variant} ({n} at once, stub `hang`, deadline {dl:g} s)"
            mx = _get(v, "max_overshoot_ms")
            worst = mx.get("max") if mx else None
            t.add(
                lbl,
                f"max overshoot over the deadline: worst / median of {k} runs (each run)",
                f"{_f(worst, ' ms')} / {_f(mx.get('median'), ' ms')} ({mx.get('runs')})",
                f"<= {targets.STORM_MAX_OVERSHOOT_MS:g} ms "
                f"(goal {targets.STORM_MAX_OVERSHOOT_GOAL_MS:g})",
                _verdict(None if worst is None else worst <= targets.STORM_MAX_OVERSHOOT_MS),
            )
            hp = _get(v, "healthz_p99_probe_port_ms") or {}
            hm = _get(v, "healthz_p99_main_port_ms") or {}
            t.add(
                lbl,
                "/healthz p99 on the probe port: worst / median (each run)",
                f"{_f(hp.get('max'))} / {_f(hp.get('median'))} ms ({hp.get('runs')})",
                f"< {targets.HEALTHZ_P99_MS:g} ms (goal {targets.HEALTHZ_P99_GOAL_MS:g})",
                _verdict(None if not hp else hp["max"] < targets.HEALTHZ_P99_MS),
            )
            t.add(
                lbl,
                "/healthz p99 on the main port (before: where probes used to go)",
                f"{_f(hm.get('max'))} / {_f(hm.get('median'))} ms ({hm.get('runs')})",
            )
            reasons: dict[str, int] = {}
            for r in v.get("runs", []):
                for key, count in (r.get("fallback_reasons") or {}).items():
                    reasons[key] = reasons.get(key, 0) + count
            t.add(lbl, "fallback reasons over all runs", str(reasons))

    cold = data.get("cold_start")
    if cold and "error" in cold:
        t.add("cold start", "error", cold["error"].splitlines()[0][:120], "", "**FAILED**")
    elif cold:
        m = cold.get("median_s")
        runs_s = cold.get("as_deployed_s", [])
        t.add(
            "cold start",
            "spawn -> first /readyz 200, as deployed (app compiled as in the image), "
            f"median of {len(runs_s)}",
            f"{_f(m, ' s', 3)} (runs: {', '.join(_f(x, nd=3) for x in runs_s)})",
            f"<= {targets.COLD_START_S:g} s",
            _verdict(None if m is None else m <= targets.COLD_START_S),
        )
        src = cold.get("source_only_s", [])
        t.add(
            "cold start",
            "same from source, no app bytecode (not as deployed; for comparison)",
            f"{_f(cold.get('source_only_median_s'), ' s', 3)} "
            f"(runs: {', '.join(_f(x, nd=3) for x in src)})",
        )

    mem = data.get("memory")
    if mem and "error" in mem:
        t.add("memory", "error", mem["error"].splitlines()[0][:120], "", "**FAILED**")
    elif mem:
        r1 = mem.get("rss_mib_after_phase1")
        g = mem.get("growth_mib_phase2")
        tol = mem.get("growth_tolerance_mib", 2.0)
        phases = mem.get("phases") or [{}]
        lbl = "memory (SQLite)"
        t.add(
            lbl,
            f"VmRSS after {phases[0].get('reviews')} reviews",
            f"{_f(r1, ' MiB', 1)} (at start {_f(mem.get('rss_mib_at_start'), ' MiB', 1)})",
            f"<= {targets.RSS_MIB:g} MiB",
            _verdict(None if r1 is None else r1 <= targets.RSS_MIB),
        )
        t.add(
            lbl,
            f"VmRSS growth over a further {phases[1].get('reviews') if len(phases) > 1 else '?'}",
            _f(g, " MiB", 1),
            f"no growth (<= {tol:g} MiB)",
            _verdict(None if g is None else g <= tol),
        )
        more = (mem.get("growth_mib_per_further_phase") or [])[1:]
        if more:
            t.add(lbl, "growth over each later 10,000 (trend)", ", ".join(f"{x} MiB" for x in more))

    pk = machine.get("packages", {})
    out: list[str] = []
    out.append("# Benchmark results\n")
    out.append(
        "Generated by `make bench` (`bench/run.sh` -> `python -m bench.run`); raw figures per run "
        "in `bench/results/<scenario>.json`. Benchmarks, not tests: targets are reported, never "
        "asserted.\n"
    )
    out.append("## Machine\n")
    out.append(
        f"- CPU: {machine.get('cpu_model')} — {machine.get('cores')} cores; "
        f"{machine.get('memory_gib')} GiB RAM; Linux {machine.get('kernel')}"
    )
    out.append(
        f"- Python {machine.get('python')}; SQLite {machine.get('sqlite')}; "
        f"PostgreSQL {machine.get('postgresql')}; {machine.get('wrk')}"
    )
    out.append("- Packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()))
    out.append(
        f"- Load average when the run started: {' '.join(machine.get('loadavg_at_start', []))}"
    )
    out.append("")
    git = machine.get("git") or {}
    out.append("## Run\n")
    if git:
        out.append(
            f"- Code measured: `{git.get('head')}` with "
            f"{git.get('uncommitted_files_app_migrations_config')} uncommitted file(s) under "
            "app/, migrations/, config/ at run time"
        )
    run_ids = sorted({d.get("run_id", "?") for d in data.values()})
    out.append(
        f"- Run id(s): {', '.join(run_ids)}" + (f"; this invocation: {run_id}" if run_id else "")
    )
    if total_s is not None:
        out.append(
            f"- Wall time of `python -m bench.run`: {total_s:.0f} s "
            "(per scenario: "
            + ", ".join(f"{k} {v.get('elapsed_s')} s" for k, v in data.items())
            + ")"
        )
    out.append(
        f"- Throughput figures: median of {runs} wrk runs of {config.get('duration_s')} s each "
        f"(after {config.get('warmup_s')} s of unrecorded warm-up per server), "
        f"{config.get('wrk_threads')} wrk thread(s); ratios are to the ceiling measured in the "
        "same run"
    )
    out.append(
        "- Command: `make bench` (knobs: `BENCH_RUNS`, `BENCH_DURATION`, `BENCH_SCENARIOS`, "
        "… see `bench/README.md`)"
    )
    cmd = _get(data.get("deterministic_sqlite", {}), c32, "runs")
    if cmd:
        out.append(
            f"- wrk command (one run): `{cmd[0].get('command')}` with `BENCH_TEMPLATE`, "
            "`BENCH_NONCE`, … set by the orchestrator"
        )
    out.append("")
    out.append("## Figures\n")
    out.append(t.render())
    out.append("")
    out.append(METHOD)
    out.extend(_storm_profile(data.get("deadline_storm") or {}))
    out.extend(_profiles(results))
    out.append("## Noise\n")
    out.append(
        "The 2 cores are shared by wrk, the server, PostgreSQL and anything else running on the "
        "machine. For every wrk run the JSON records the server's CPU, wrk's CPU, PostgreSQL's "
        "CPU and the rest of the machine's busy CPU (`cpu.other_cpu_s`): a run with a large "
        "`other_cpu_s` was disturbed. Per-run other-CPU seconds:\n"
    )
    for name in ("ceiling", "deterministic_sqlite", "deterministic_postgres", "live_overhead"):
        d = data.get(name)
        if not d or "error" in d:
            continue
        parts = []
        for c in (c32, "c1"):
            rs = _get(d, c, "runs") or []
            parts.append(f"{c}: " + ", ".join(_f(_get(r, "cpu", "other_cpu_s"), nd=1) for r in rs))
        out.append(f"- {name}: " + "; ".join(parts))
    seen: dict[str, float] = {}
    for name in ("ceiling", "deterministic_sqlite", "deterministic_postgres", "live_overhead"):
        for c in (c32, "c1"):
            for r in _get(data.get(name, {}), c, "runs") or []:
                for entry in _get(r, "cpu", "other_processes") or []:
                    secs, _, proc = entry.partition(" s ")
                    with contextlib.suppress(ValueError):
                        seen[proc] = seen.get(proc, 0.0) + float(secs)
    if seen:
        top = sorted(seen.items(), key=lambda kv: -kv[1])[:4]
        out.append(
            "\nBusiest other processes during the runs (CPU seconds summed over runs): "
            + "; ".join(f"`{p}` {s:.0f} s" for p, s in top)
        )
    out.append("")
    return "\n".join(out) + "\n"


def _storm_profile(storm: dict[str, Any]) -> list[str]:
    prof = storm.get("profile") or {}
    buckets = prof.get("cpu_ms_per_review_by_bucket")
    if not buckets:
        return []
    out = ["## Where the storm's CPU goes\n"]
    out.append(
        f"{prof.get('command')}; that storm: {_get(prof, 'storm', 'latency_minus_deadline_ms')}, "
        f"reasons {_get(prof, 'storm', 'fallback_reasons')}. Sampled CPU per review (ms), by the "
        "innermost recognisable frame:\n"
    )
    out.append("| bucket | ms per review |")
    out.append("|---|---:|")
    out += [f"| {k} | {v:.3f} |" for k, v in list(buckets.items())[:16]]
    out.append("")
    return out


METHOD = """## Method

- **Requests**: `tests.support.requests.base_request()` (a clean paper buy every gate passes)
  as a template; `bench/review.lua` fills in `strategy_id = <run nonce>-t<wrk thread>-g<n/8>`,
  `qty = 1 + n % 8` and fresh timestamps. No two requests of a run (or of two runs) share a
  canonical hash, so nothing is an idempotent replay (the Lua counts `X-Idempotent-Replay`);
  each strategy gets 8 orders, below the order_rate gate's 30/strategy/minute, so every order
  is judged on its merits and the gate's COUNT query scans real rows.
- **Servers**: every process is started by `bench/run.py` on a free loopback port in its own
  process group and stopped by it (also on failure or Ctrl-C). The service runs as
  `python -m app serve` (1 uvicorn worker, uvloop + httptools, access log off) after
  `python -m app migrate` on a fresh database: a SQLite file under `var/bench/`, or the
  PostgreSQL database `trade_review_bench` on 127.0.0.1:5432 (dropped and created).
- **Ceiling**: `bench/ceiling.py`, FastAPI under the same server settings, reading the body,
  `orjson.loads` + `ReviewRequest.model_validate` (as `app/api/review.py` does), answering a
  constant of about a real answer's size.
- **Throughput**: `wrk --latency` with `bench/review.lua`, at 32 connections then 1, each run
  `BENCH_DURATION` s, `BENCH_RUNS` runs, medians reported; 2xx answers / duration = req/s.
  **Committed check**: every 2xx answer's `review_id` is a row, and rows beyond the 2xx count
  are at most the requests wrk had in flight when it stopped.
- **Live path**: `python -m jangar_stub --behaviour valid` and the service with
  `JANGAR_BASE_URL`; `artifacts export-state` / `register-live` / `transition --to shadow` /
  `--to active`; `/readyz` shows the artifact within 2 s and one review shows
  `lineage.executor == "dspy_live"`. `X-Review-Overhead-Ms` (the service's time outside the LLM
  step, from its own clock) and the body's `timings_ms.llm` are collected per answer by the
  Lua `response()` callback; at 1 connection the Lua clock also gives each request's own
  end-to-end latency, so e2e minus the LLM step is exact per request.
- **Deadline storm**: stub `hang`, `LLM_DSPY_TIMEOUT_SECONDS=1.0`,
  `BULKHEAD_MAX_CONCURRENT=512` (`BENCH_STORM_BULKHEAD`; the shipped default is 64),
  `BREAKER_MIN_CALLS=100000`, `ROLLOUT_CONTROLLER_ENABLED=false` (else the post-promotion
  watch rolls the hanging artifact back after the first storm); one warm-up review, then 256
  distinct reviews sent at once by an asyncio (uvloop) raw-HTTP driver (`bench/storm.py`, one
  pre-opened connection each; not wrk: a one-shot burst where each answer's latency counts);
  `/healthz` probed every 10 ms by a separate process.
- **Cold start**: spawn `python -m app serve` on a fresh port against a migrated SQLite file,
  poll `/readyz` every 5 ms until 200; 5 times, median, after one discarded start. As deployed:
  a copy of the files the Dockerfile copies (`app/`, `migrations/`, `config/`, `alembic.ini`)
  compiled with its own `python -m compileall -q app migrations`, the dependencies' bytecode
  from the install (`--compile-bytecode`, as in the image). For comparison, a copy without
  bytecode (source only: every start compiles every `app` module). Both with
  `PYTHONDONTWRITEBYTECODE=1`, started alternately.
- **Memory**: VmRSS from `/proc/<pid>/status` of the service after each phase of 10,000
  reviews driven by wrk at 32 connections (each wrk thread stops at its quota; the database
  count is the exact figure).
"""


AREAS = (
    "DB: SQLAlchemy (statement build, cache keys, ORM session, engine, pool, greenlet)",
    "DB: driver (aiosqlite thread hops + sqlite3 / asyncpg protocol)",
    "DB: stdlib json for the JSON columns",
    "DB: app repository, writer, session helpers",
    "HTTP + framework (uvicorn, Starlette/FastAPI, event loop, asyncio)",
    "sync dependency run in the threadpool (anyio)",
    "pydantic: request validation",
    "pydantic: response construction (validating __init__, model_copy)",
    "pydantic: model_dump",
    "orjson + request hash (canonical JSON, sha256)",
    "app logic (pipeline, gates, heuristic, api)",
    "logging, metrics, uuid, other",
)


def _area(bucket: str) -> str:
    if bucket.startswith("SQLAlchemy"):
        return AREAS[0]
    if bucket.startswith(("aiosqlite", "asyncpg")):
        return AREAS[1]
    if bucket.startswith("stdlib json"):
        return AREAS[2]
    if bucket.startswith(("app: reviews/", "app: db/")):
        return AREAS[3]
    if bucket.startswith(("uvicorn", "Starlette", "event loop", "asyncio")):
        return AREAS[4]
    if bucket.startswith("threads"):
        return AREAS[5]
    if bucket.startswith("pydantic: validation"):
        return AREAS[6]
    if bucket.startswith(("pydantic: model construction", "pydantic: model_copy")):
        return AREAS[7]
    if bucket.startswith("pydantic"):
        return AREAS[8]
    if bucket.startswith(("orjson", "request hash")):
        return AREAS[9]
    if bucket.startswith("app:"):
        return AREAS[10]
    return AREAS[11]


def _profiles(results: Path) -> list[str]:
    files = sorted(results.glob("profile-*.json"))
    if not files:
        return []
    out = [
        "## Where the time goes (deterministic path, `python -m bench.profile`)\n",
        "py-spy (`--gil --nonblocking`, 250 Hz) over the service under the same wrk load; each "
        "sample goes to the bucket of its innermost recognisable frame; ms/review = samples / "
        "rate / reviews answered while sampling. Only Python time holding the GIL is "
        "attributed; the process's CPU without the GIL (kernel: sockets, futexes, fsync; "
        "SQLite's C code) comes from /proc. Not part of `make bench`.\n",
    ]
    profiles = [json.loads(f.read_text()) for f in files]
    out.append(
        "Grouped, ms per review (GIL-held time; on a busy 2-core machine a preempted GIL holder "
        "still counts, which is why GIL time can exceed CPU time):\n"
    )
    header = " | ".join(f"{p['db']} c{p['connections']}" for p in profiles)
    out.append(f"| area | {header} |")
    out.append("|---|" + "---:|" * len(profiles))
    for area in AREAS:
        cells = []
        for p in profiles:
            total = sum(v for k, v in p["buckets_ms_per_review"].items() if _area(k) == area)
            cells.append(f"{total:.3f}")
        out.append(f"| {area} | " + " | ".join(cells) + " |")
    for label, key in (
        ("GIL held, total", "gil_held_ms_per_review"),
        (
            "process CPU without the GIL (kernel, SQLite C, thread switches)",
            "cpu_without_gil_ms_per_review",
        ),
        ("**process CPU, total**", "process_cpu_ms_per_review"),
    ):
        out.append(f"| {label} | " + " | ".join(f"{p[key]:.3f}" for p in profiles) + " |")
    out.append(
        "| reviews/s while sampling | "
        + " | ".join(f"{p['reviews_per_s']:.0f}" for p in profiles)
        + " |"
    )
    out.append("")
    for p in profiles:
        out.append(
            f"### {p['db']}, {p['connections']} connection(s) — {p['reviews_per_s']} reviews/s "
            f"while sampling (code `{p.get('git_head', '?')}`)\n"
        )
        out.append(
            f"Process CPU **{p['process_cpu_ms_per_review']} ms/review**: GIL held "
            f"{p['gil_held_ms_per_review']} ms, without the GIL "
            f"{p['cpu_without_gil_ms_per_review']} ms."
            + (
                f" PostgreSQL transactions per review: {p['postgres_transactions_per_review']}."
                if p.get("postgres_transactions_per_review")
                else ""
            )
            + "\n"
        )
        out.append("| bucket | ms / review | share |")
        out.append("|---|---:|---:|")
        shares = p.get("buckets_share", {})
        for k, v in list(p["buckets_ms_per_review"].items())[:10]:
            out.append(f"| {k} | {v:.3f} | {shares.get(k, 0):.1%} |")
        seq = p.get("sequential_timings_ms") or {}
        if seq:
            out.append(
                "\nSequential wall clock, p50 (p99) ms — "
                + ", ".join(f"{k} {v['p50']} ({v['p99']})" for k, v in seq.items())
                + "\n"
            )
    return out


def main() -> None:
    results = Path(__file__).resolve().parent / "results"
    text = render(results)
    if "--write" in sys.argv[1:]:
        (results.parent / "RESULTS.md").write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
