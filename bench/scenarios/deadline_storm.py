"""Scenario ``deadline_storm``: 256 reviews at once against a hanging Jangar.

Per run: every answer's latency against the deadline (client clock, from send to the last
byte), and ``/healthz`` sampled every 10 ms by two separate processes, one on the main port
(where a probe queues behind the reviews) and one on the probe port (``PROBE_PORT``). Variants:
request bodies (the tiny bench body; the shipped examples, round robin, re-dated) x machine
load (idle; ``stress-ng --cpu 1`` keeping one of the two cores busy, as on a shared node).
Each variant is repeated ``BENCH_STORM_RUNS`` times against the same server; the spread is
reported, never only the best run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import targets
from bench.harness import (
    PROCS,
    PY,
    ROOT,
    WORK,
    Context,
    Server,
    SqliteDB,
    fill_template,
    free_port,
    http_request,
    log,
    log_tail,
    machine_busy_s,
    pct,
    rnd,
    running,
    start_service,
    start_stub,
)

EXAMPLES = ROOT / "examples"


def _example_bodies(n: int, tag: str) -> list[bytes]:
    import sys

    sys.path.insert(0, str(ROOT))
    from tests.support.requests import with_fresh_times

    shapes = [json.loads(p.read_text()) for p in sorted(EXAMPLES.glob("*.json"))]
    now = datetime.now(UTC)
    out: list[bytes] = []
    for i in range(n):
        body = with_fresh_times(shapes[i % len(shapes)], now)
        body["decision"]["strategy_id"] = f"{tag}-s{i}"  # distinct: no replay, no rate gate
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def _tiny_bodies(ctx: Context, n: int, tag: str) -> list[bytes]:
    group = ctx.cfg.group
    return [
        fill_template(ctx.template_text, f"{tag}-s{i // group}", 1 + i % group) for i in range(n)
    ]


def _sampler(port: int, name: str, duration: float) -> tuple[Any, Path, Path]:
    out = WORK / f"storm-{name}.json"
    out.unlink(missing_ok=True)
    log_path = WORK / f"storm-{name}.log"
    proc = PROCS.spawn(
        f"sampler-{name}",
        [PY, "-m", "bench.storm", "sample", "--port", str(port),
         "--interval", "0.01", "--duration", str(duration), "--out", str(out)],
        env=dict(os.environ),
        log_path=log_path,
    )  # fmt: skip
    return proc, out, log_path


def _probe_figures(samples: list[dict[str, Any]], t0: float, t1: float) -> dict[str, Any]:
    during = [s["latency_ms"] for s in samples if t0 <= s["t"] <= t1]
    failed = sum(1 for s in samples if t0 <= s["t"] <= t1 and s["status"] != 200)
    return {
        "n": len(during),
        "non_200": failed,
        "p50": rnd(pct(during, 50)),
        "p99": rnd(pct(during, 99)),
        "max": rnd(max(during) if during else None),
    }


def _one_storm(ctx: Context, srv: Server, probe_port: int, bodies: list[bytes]) -> dict[str, Any]:
    from bench.storm import burst

    deadline_s = ctx.cfg.storm_deadline
    samplers = [
        ("main_port", *_sampler(srv.port, "main", deadline_s + 4.0)),
        ("probe_port", *_sampler(probe_port, "probe", deadline_s + 4.0)),
    ]
    time.sleep(0.5)  # the samplers' baseline before the storm
    busy0, w0 = machine_busy_s(), time.monotonic()
    t_start = time.monotonic()
    answers = burst(srv.port, bodies)
    t_end = max(a.done for a in answers)
    busy_util = (machine_busy_s() - busy0) / (time.monotonic() - w0) / (os.cpu_count() or 1)
    healthz: dict[str, Any] = {}
    for name, proc, out, log_path in samplers:
        try:
            proc.wait(timeout=deadline_s + 30)
        finally:
            PROCS.stop(proc)
        if not out.exists():
            raise RuntimeError(f"healthz sampler failed:\n{log_tail(log_path)}")
        healthz[name] = _probe_figures(json.loads(out.read_text()), t_start, t_end)
    deadline_ms = deadline_s * 1000
    lat = [a.latency_s * 1000 for a in answers]
    over = [v - deadline_ms for v in lat]
    reasons: dict[str, int] = {}
    statuses: dict[str, int] = {}
    steps: dict[str, list[float]] = {}
    for a in answers:
        statuses[str(a.status)] = statuses.get(str(a.status), 0) + 1
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            answer = json.loads(a.body)
            timings = answer.get("timings_ms") or {}
            for k, v in timings.items():
                steps.setdefault(k, []).append(float(v))
            if "total" in timings:
                # What the client waited outside decide() beyond the queueing the service saw.
                outside = a.latency_s * 1000 - float(timings["total"]) - timings.get("queued", 0)
                steps.setdefault("client_minus_total_minus_queued", []).append(outside)
            reason = str(answer.get("lineage", {}).get("fallback", {}).get("reason"))
            reasons[reason] = reasons.get(reason, 0) + 1
    return {
        "storm_duration_s": rnd(t_end - t_start),
        "statuses": statuses,
        "fallback_reasons": reasons,
        "latency_minus_deadline_ms": {
            "p50": rnd(pct(over, 50)),
            "p99": rnd(pct(over, 99)),
            "max": rnd(max(over)),
        },
        "within_deadline_plus_50ms": sum(1 for v in over if v <= 50.0),
        "timings_ms": {k: {"p50": rnd(pct(v, 50)), "max": rnd(max(v))} for k, v in steps.items()},
        "healthz_ms": healthz,
        "machine_busy_util": rnd(busy_util, 2),
        "loadavg_after": Path("/proc/loadavg").read_text().split()[0],
    }


def _spread(runs: list[dict[str, Any]], *path: str) -> dict[str, Any]:
    values: list[float] = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, int | float):
            values.append(float(v))
    if not values:
        return {}
    return {
        "min": rnd(min(values)),
        "median": rnd(statistics.median(values)),
        "max": rnd(max(values)),
        "runs": [rnd(v) for v in values],
    }


def run(ctx: Context) -> dict[str, Any]:
    cfg = ctx.cfg
    db = SqliteDB("storm")
    db.prepare()
    probe_port = free_port()
    extra = {
        "LLM_DSPY_TIMEOUT_SECONDS": str(cfg.storm_deadline),
        "BULKHEAD_MAX_CONCURRENT": str(cfg.storm_bulkhead),
        "BREAKER_MIN_CALLS": "100000",
        # The post-promotion watch would roll the hanging artifact back after the first storm
        # (its job), and every later storm would then measure the heuristic path.
        "ROLLOUT_CONTROLLER_ENABLED": "false",
        "PROBE_PORT": str(probe_port),
        "PROBE_HOST": "127.0.0.1",
    }
    stress = shutil.which("stress-ng")
    loads = ["idle", "stress-ng --cpu 1"] if stress else ["idle"]
    variants: dict[str, Any] = {}
    with (
        running(start_stub("hang")) as stub,
        running(start_stub("valid")) as eval_stub,
        running(start_service("service-storm", db.url, JANGAR_BASE_URL=stub.url, **extra)) as srv,
    ):
        digest = ctx.activate_live(db, srv, stub.url, eval_url=eval_stub.url)
        # One review first (it times out and falls back): the artifact answers, and first-call
        # work (lazy imports, program build) is not counted in the storm.
        probe = fill_template(ctx.template_text, ctx.nonce("probe"), 3)
        status, _, raw = http_request(srv.port, "POST", "/review", probe)
        lineage = json.loads(raw).get("lineage", {})
        if status != 200 or lineage.get("artifact_hash") != digest:
            raise RuntimeError(f"storm probe: {status} {lineage}")
        for load in loads:
            hog = None
            if load != "idle":
                hog = PROCS.spawn(
                    "stress-ng",
                    [str(stress), "--cpu", "1", "--timeout", "3600s", "--quiet"],
                    env=dict(os.environ),
                    log_path=WORK / "stress-ng.log",
                )
                time.sleep(1.0)
            try:
                for shape in ("tiny", "examples"):
                    runs: list[dict[str, Any]] = []
                    for i in range(cfg.storm_runs):
                        tag = ctx.nonce(f"storm-{shape}-{i}")
                        n = cfg.storm_requests
                        bodies = (
                            _example_bodies(n, tag)
                            if shape == "examples"
                            else _tiny_bodies(ctx, n, tag)
                        )
                        r = _one_storm(ctx, srv, probe_port, bodies)
                        runs.append(r)
                        log(
                            f"storm {shape} / {load} run {i + 1}: max overshoot "
                            f"{r['latency_minus_deadline_ms']['max']} ms, healthz p99 main "
                            f"{r['healthz_ms']['main_port']['p99']} ms / probe port "
                            f"{r['healthz_ms']['probe_port']['p99']} ms, reasons "
                            f"{r['fallback_reasons']}"
                        )
                        time.sleep(1.0)
                    variants[f"{shape} / {load}"] = {
                        "body_bytes": len(bodies[0]) if shape == "tiny" else "826-3,700 (6 shapes)",
                        "max_overshoot_ms": _spread(runs, "latency_minus_deadline_ms", "max"),
                        "p99_overshoot_ms": _spread(runs, "latency_minus_deadline_ms", "p99"),
                        "healthz_p99_main_port_ms": _spread(runs, "healthz_ms", "main_port", "p99"),
                        "healthz_p99_probe_port_ms": _spread(
                            runs, "healthz_ms", "probe_port", "p99"
                        ),
                        "healthz_max_probe_port_ms": _spread(
                            runs, "healthz_ms", "probe_port", "max"
                        ),
                        "runs": runs,
                    }
            finally:
                if hog is not None:
                    PROCS.stop(hog)
        profile = _profiled_storm(ctx, srv, probe_port)
    return {
        "artifact_hash": digest,
        "driver": "asyncio (uvloop) raw HTTP/1.1 client, one pre-opened connection per "
        "request, all sent at once; /healthz sampled every 10 ms by a separate process on the "
        "main port and another on the probe port",
        "requests": cfg.storm_requests,
        "deadline_s": cfg.storm_deadline,
        "runs_per_variant": cfg.storm_runs,
        "env": extra,
        "stress": stress or "stress-ng not installed: loaded variants skipped",
        "target_max_overshoot_ms": targets.STORM_MAX_OVERSHOOT_MS,
        "variants": variants,
        "profile": profile,
    }


def _profiled_storm(ctx: Context, srv: Server, probe_port: int) -> dict[str, Any]:
    """One more storm (example bodies, no stress) under py-spy: where the service's CPU goes
    while 256 reviews are in flight. py-spy runs --nonblocking (it never stops the process)."""
    from bench.profile import analyse, ensure_py_spy

    rate = 250
    n = ctx.cfg.storm_requests
    try:
        py_spy = ensure_py_spy()
    except Exception as exc:  # no network, no uv: the figures stand without the profile
        return {"error": f"py-spy unavailable: {exc}"}
    raw = WORK / "py-spy-storm.txt"
    raw.unlink(missing_ok=True)
    duration = int(ctx.cfg.storm_deadline + 3)
    spy = PROCS.spawn(
        "py-spy",
        [str(py_spy), "record", "--pid", str(srv.proc.pid), "--rate", str(rate),
         "--duration", str(duration), "--nonblocking", "--format", "raw", "--output", str(raw)],
        env=dict(os.environ),
        log_path=WORK / "py-spy-storm.log",
    )  # fmt: skip
    time.sleep(1.0)
    r = _one_storm(ctx, srv, probe_port, _example_bodies(n, ctx.nonce("storm-profile")))
    spy.wait(timeout=duration + 30)
    PROCS.stop(spy)
    if not raw.exists():
        return {"error": f"py-spy wrote nothing:\n{log_tail(WORK / 'py-spy-storm.log')}"}
    result = analyse(raw)
    per_review = {k: rnd(v / rate * 1000 / n, 3) for k, v in result["buckets"].most_common() if v}
    return {
        "command": f"py-spy record --rate {rate} --nonblocking --format raw (whole process, "
        f"{duration} s around one storm of {n} example bodies)",
        "storm": {k: r[k] for k in ("latency_minus_deadline_ms", "fallback_reasons")},
        "samples": result["samples"],
        "cpu_ms_per_review_by_bucket": per_review,
        "top_app_frames": dict(result["app_frames"].most_common(15)),
        "note": "samples include idle stacks (the event loop waiting); buckets are by the "
        "innermost recognisable frame, as in bench/profile.py",
    }
