"""Where a deterministic review's time goes: py-spy over the service under wrk load.

    .venv/bin/python -m bench.profile [--db sqlite|postgres] [--connections 32] [--duration 10]

Not part of ``make bench`` and not a project dependency: py-spy is installed with
``uv pip install --target var/bench/tools py-spy`` (outside .venv and the lock files) on first
use. The service is started as ``make bench`` starts it, warmed up, then loaded with the same
wrk script while py-spy samples it (``--gil --nonblocking``: only the thread holding the GIL,
without pausing the process). Each sample is put in one bucket by its innermost recognisable
frame (SQLAlchemy, aiosqlite, pydantic validate/construct/dump, stdlib json, orjson, hashing,
uvicorn, Starlette/FastAPI, ...), and buckets are turned into milliseconds per review with
the number of reviews answered while sampling. CPU the process spent without holding the GIL
(kernel time for sockets, futexes and fsync; SQLite's C code; thread start-up) is reported
from /proc beside it. A second pass sends sequential requests and reads the service's own
``timings_ms`` (read / review / gates / write) for the wall-clock view.

Writes ``bench/results/profile-<db>-c<N>.json`` and prints a markdown report.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    PROCS,
    RESULTS_DIR,
    ROOT,
    WORK,
    Config,
    PostgresDB,
    SqliteDB,
    Wrk,
    fill_template,
    pct,
    proc_cpu_s,
    rnd,
    start_service,
    write_template,
)

TOOLS = WORK / "tools"
PY_SPY = TOOLS / "bin" / "py-spy"


def ensure_py_spy() -> Path:
    if not PY_SPY.exists():
        uv = Path(sys.executable).parent / "uv"
        subprocess.run(
            [str(uv), "pip", "install", "--quiet", "--target", str(TOOLS), "py-spy"], check=True
        )
    return PY_SPY


# ----------------------------------------------------------------------------- buckets

_SOURCE: dict[str, list[str]] = {}


def _source_line(path: str, line: int) -> str:
    if path not in _SOURCE:
        try:
            _SOURCE[path] = (ROOT / path).read_text().splitlines()
        except OSError:
            _SOURCE[path] = []
    lines = _SOURCE[path]
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _parse(frame: str) -> tuple[str, str, int]:
    """'func (path/to/file.py:123)' -> (func, path, line)."""
    func, _, rest = frame.rpartition(" (")
    path, _, line = rest.rstrip(")").rpartition(":")
    try:
        return func, path, int(line)
    except ValueError:
        return frame, "", 0


PYDANTIC = {
    "model_validate": "pydantic: validation (model_validate)",
    "model_validate_json": "pydantic: validation (model_validate)",
    "__init__": "pydantic: model construction (validating __init__)",
    "model_dump": "pydantic: serialisation (model_dump)",
    "model_dump_json": "pydantic: serialisation (model_dump)",
    "model_copy": "pydantic: model_copy",
    "__copy__": "pydantic: model_copy",
}


def bucket(frames: list[str]) -> str:
    """The bucket of one stack (outermost first) = its innermost recognisable frame."""
    for frame in reversed(frames):
        func, path, line = _parse(frame)
        short = func.rsplit(".", 1)[-1]
        if "sqlalchemy/" in path:
            if "sqlalchemy/pool/" in path:
                return "SQLAlchemy: connection pool"
            if "sqlalchemy/util/concurrency" in path or "greenlet" in path:
                return "SQLAlchemy: greenlet bridge"
            if "sqlalchemy/orm/" in path:
                return "SQLAlchemy: ORM session / ORM-enabled DML"
            if "sqlalchemy/engine/" in path:
                return "SQLAlchemy: engine execute / results"
            if "sqlalchemy/dialects/" in path or "sqlalchemy/connectors/" in path:
                return "SQLAlchemy: async DBAPI adaptor"
            if "sqlalchemy/ext/asyncio" in path:
                return "SQLAlchemy: AsyncSession wrapper"
            return "SQLAlchemy: statement build / cache key / compile"
        if "aiosqlite/" in path:
            return "aiosqlite (thread hop per call) + sqlite3"
        if "dspy/" in path:
            return "DSPy (adapter format / parse, callbacks, settings)"
        if "httpx/" in path or "httpcore/" in path or "h11/" in path:
            return "httpx / httpcore / h11 (the Jangar client)"
        if "asyncpg/" in path:
            return "asyncpg"
        if "pydantic/" in path or "pydantic_core" in path:
            return PYDANTIC.get(short, "pydantic: other")
        if path.startswith("json/") or "/json/" in path:
            return "stdlib json (SQLAlchemy JSON columns)"
        if "prometheus_client/" in path:
            return "prometheus metrics"
        if path.startswith("logging/") or "/logging/" in path:
            return "logging"
        if path.endswith("uuid.py"):
            return "uuid4"
        if "uvicorn/" in path or "httptools" in path:
            return "uvicorn + httptools (HTTP)"
        if "starlette/" in path or "fastapi/" in path:
            return "Starlette / FastAPI (routing, middleware, dependencies, response)"
        if "anyio/" in path or path.startswith(("threading.py", "queue.py", "concurrent/")):
            return "threads (anyio threadpool for sync deps, queues)"
        if path.startswith("app/"):
            src = _source_line(path, line)
            if "orjson" in src:
                return "orjson (called from app)"
            if "hashing.py" in path or "sha256" in src:
                return "request hash (canonical JSON + sha256)"
            if path.startswith("app/gates/"):
                return "app: gates + order plan"
            if path.startswith("app/review/heuristic"):
                return "app: heuristic reviewer"
            return f"app: {path.removeprefix('app/').removesuffix('.py')}"
        if path.startswith("asyncio/"):
            if func == "Runner.run":
                return "event loop (uvloop callbacks, no Python frame)"
            return "asyncio (tasks, timeouts, futures)"
        if path.startswith(("typing.py", "enum.py")):
            return "stdlib typing / enum"
        if path.startswith(("decimal", "_pydecimal")):
            return "decimal"
    return "other"


def innermost_app(frames: list[str]) -> str | None:
    for frame in reversed(frames):
        _, path, _ = _parse(frame)
        if path.startswith("app/"):
            return frame
    return None


def analyse(raw: Path) -> dict[str, Any]:
    buckets: collections.Counter[str] = collections.Counter()
    app_frames: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        buckets[bucket(frames)] += count
        app = innermost_app(frames)
        if app is not None:
            app_frames[app] += count
    return {"samples": total, "buckets": buckets, "app_frames": app_frames}


# ----------------------------------------------------------------------------- runs


def pg_xacts(db: SqliteDB | PostgresDB) -> dict[str, int] | None:
    """Committed and rolled-back transactions of the benchmark database so far."""
    if not isinstance(db, PostgresDB):
        return None
    import asyncio

    import asyncpg

    async def go() -> dict[str, int]:
        conn = await asyncpg.connect(db.admin_url, timeout=5)
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            row = await conn.fetchrow(
                "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1",
                db.database,
            )
            return {"commits": int(row["xact_commit"]), "rollbacks": int(row["xact_rollback"])}
        finally:
            await conn.close()

    return asyncio.run(go())


def git_head() -> str:
    out = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip()


def sequential_timings(port: int, template: str, n: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rows: list[dict[str, float]] = []
    nonce = f"prof{int(time.time())}"
    for i in range(n):
        body = fill_template(template, f"{nonce}-seq-{i // 8}", 1 + i % 8)
        t0 = time.perf_counter()
        conn.request("POST", "/review", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        e2e = (time.perf_counter() - t0) * 1000
        t = json.loads(data)["timings_ms"]
        t["e2e_client"] = e2e
        t["outside_pipeline"] = e2e - t["total"]
        rows.append(t)
    conn.close()
    keys = ("read", "review", "gates", "write", "total", "outside_pipeline", "e2e_client")
    return {
        k: {"p50": rnd(pct([r[k] for r in rows], 50)), "p99": rnd(pct([r[k] for r in rows], 99))}
        for k in keys
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--sequential", type=int, default=400, help="requests for timings_ms")
    args = parser.parse_args()

    py_spy = ensure_py_spy()
    cfg = Config.from_env()
    WORK.mkdir(parents=True, exist_ok=True)
    template = write_template()
    wrk = Wrk(cfg, template)
    if args.db == "sqlite":
        db: SqliteDB | PostgresDB = SqliteDB("profile")
    else:
        db = PostgresDB(cfg.pg_admin_url, cfg.pg_database)
        db.ensure_running()
    db.prepare()
    raw = WORK / f"py-spy-{args.db}-c{args.connections}.txt"
    try:
        srv = start_service(f"service-profile-{args.db}", db.url)
        wrk.run(srv.url, connections=args.connections, duration=3, nonce="profwarm", keep=False)
        nonce = f"prof{int(time.time())}"
        proc, out, _ = wrk.start(
            srv.url,
            connections=args.connections,
            duration=args.duration + 4,
            nonce=nonce,
            keep=True,
        )
        time.sleep(2)
        count0 = db.reviews(nonce + "-")[0]
        xact0 = pg_xacts(db)
        cpu0 = proc_cpu_s(srv.proc.pid)
        t0 = time.monotonic()
        subprocess.run(
            [str(py_spy), "record", "--pid", str(srv.proc.pid), "--rate", str(args.rate),
             "--duration", str(args.duration), "--gil", "--nonblocking", "--format", "raw",
             "--output", str(raw)],
            check=True, capture_output=True,
        )  # fmt: skip
        wall = time.monotonic() - t0
        cpu1 = proc_cpu_s(srv.proc.pid)
        count1 = db.reviews(nonce + "-")[0]
        xact1 = pg_xacts(db)
        wrk.finish(proc, out, nonce, args.connections, timeout=args.duration + 60)
        seq = sequential_timings(srv.port, template.read_text(), args.sequential)
        srv.stop()
    finally:
        PROCS.stop_all()

    reviews = max(1, count1 - count0)
    result = analyse(raw)
    samples = result["samples"]
    gil_s = samples / args.rate
    cpu_s = cpu1 - cpu0
    per = 1000.0 / reviews
    report: dict[str, Any] = {
        "db": args.db,
        "connections": args.connections,
        "window_s": rnd(wall),
        "reviews_in_window": reviews,
        "reviews_per_s": rnd(reviews / wall, 1),
        "process_cpu_ms_per_review": rnd(cpu_s * per),
        "gil_held_ms_per_review": rnd(gil_s * per),
        "cpu_without_gil_ms_per_review": rnd((cpu_s - gil_s) * per),
        "buckets_ms_per_review": {
            k: rnd(v / args.rate * per) for k, v in result["buckets"].most_common()
        },
        "buckets_share": {k: rnd(v / samples, 3) for k, v in result["buckets"].most_common()},
        "top_app_frames_ms_per_review": {
            k: rnd(v / args.rate * per) for k, v in result["app_frames"].most_common(25)
        },
        "sequential_timings_ms": seq,
        "git_head": git_head(),
        "raw_profile": str(raw.relative_to(ROOT)),
    }
    if xact0 and xact1:
        report["postgres_transactions_per_review"] = {
            k: rnd((xact1[k] - xact0[k]) / reviews, 2) for k in xact0
        }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"profile-{args.db}-c{args.connections}.json").write_text(
        json.dumps(report, indent=2) + "\n"
    )
    print(f"## Profile: deterministic path, {args.db}, {args.connections} connections\n")
    print(
        f"{reviews} reviews in {wall:.1f} s ({reviews / wall:.0f}/s) while sampling. Process CPU "
        f"{report['process_cpu_ms_per_review']} ms/review, of which GIL held "
        f"{report['gil_held_ms_per_review']} ms and without the GIL "
        f"{report['cpu_without_gil_ms_per_review']} ms.\n"
    )
    print("| bucket (innermost recognisable frame) | ms / review | share of GIL time |")
    print("|---|---:|---:|")
    for k, v in result["buckets"].most_common():
        print(f"| {k} | {v / args.rate * per:.3f} | {v / samples:.1%} |")
    print("\n| innermost app frame | ms / review |")
    print("|---|---:|")
    for k, v in result["app_frames"].most_common(20):
        print(f"| `{k}` | {v / args.rate * per:.3f} |")
    print("\nSequential wall clock (service's timings_ms, client e2e), p50 / p99 ms:\n")
    for k, v in seq.items():
        print(f"- {k}: {v['p50']} / {v['p99']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
