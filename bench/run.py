"""Benchmark orchestrator behind ``make bench`` (through ``bench/run.sh``).

Runs every scenario, writes ``bench/results/<scenario>.json`` and ``bench/RESULTS.md``.
Every server it needs (the ceiling app, the service, the Jangar stub, the /healthz sampler, wrk)
is started here on a free loopback port in its own process group and stopped here, also when a
scenario fails or the run is interrupted. Scratch files (databases, logs, wrk reports) go to
``var/bench/`` (git-ignored).

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
  BENCH_STORM_REQUESTS [256]  BENCH_STORM_DEADLINE [1.0]
  BENCH_COLD_STARTS [5]
  BENCH_MEMORY_REVIEWS [10000] reviews per memory phase
  BENCH_MEMORY_PHASES [3]     phase 1 -> RSS after 10,000; phase 2 -> growth (the target);
                              phase 3 -> whether any growth keeps going
  BENCH_RSS_GROWTH_TOLERANCE_MIB [2]  "no growth" = phase-2 growth within this
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
WORK = ROOT / "var" / "bench"
LUA = BENCH_DIR / "review.lua"
PY = sys.executable

ALL_SCENARIOS = (
    "ceiling",
    "deterministic_sqlite",
    "deterministic_postgres",
    "live_overhead",
    "deadline_storm",
    "cold_start",
    "memory",
)
THROUGHPUT = {"deterministic_sqlite", "deterministic_postgres", "live_overhead"}

# Targets from the issue (benchmarks, not tests).
TARGET_RATIO_SQLITE = 0.5
TARGET_RATIO_PG = 0.4
TARGET_P99_C32_MS = 25.0
TARGET_LIVE_OVERHEAD_P50_MS = 1.5
TARGET_LIVE_OVERHEAD_P99_MS = 6.0
TARGET_STORM_MARGIN_MS = 50.0
TARGET_HEALTHZ_P99_MS = 20.0
TARGET_COLD_START_S = 2.0
TARGET_RSS_MIB = 150.0

PUBLISHED_LIVE_REFERENCES = (
    "LiteLLM proxy 2 / 8 / 13 ms p50 / p95 / p99 (4 instances); independent sequential test: "
    "LiteLLM 4.3 ms, Portkey 2.4 ms, Bifrost 0.44 ms"
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Config:
    runs: int
    duration: int
    warmup: int
    connections: int
    wrk_threads: int
    group: int
    scenarios: tuple[str, ...]
    pg_admin_url: str
    pg_database: str
    storm_requests: int
    storm_deadline: float
    cold_starts: int
    memory_reviews: int
    memory_phases: int
    rss_growth_tolerance_mib: float

    @classmethod
    def from_env(cls) -> Config:
        wanted = os.environ.get("BENCH_SCENARIOS", "").strip()
        scenarios = tuple(s.strip() for s in wanted.split(",") if s.strip()) or ALL_SCENARIOS
        unknown = [s for s in scenarios if s not in ALL_SCENARIOS]
        if unknown:
            raise SystemExit(f"BENCH_SCENARIOS: unknown {unknown}; known: {ALL_SCENARIOS}")
        if THROUGHPUT & set(scenarios) and "ceiling" not in scenarios:
            # Ratios are always to a ceiling measured in the same run.
            scenarios = ("ceiling", *scenarios)
        return cls(
            runs=max(1, _env_int("BENCH_RUNS", 3)),
            duration=max(1, _env_int("BENCH_DURATION", 10)),
            warmup=max(0, _env_int("BENCH_WARMUP", 2)),
            connections=max(1, _env_int("BENCH_CONNECTIONS", 32)),
            wrk_threads=max(1, _env_int("BENCH_WRK_THREADS", 1)),
            group=max(1, min(29, _env_int("BENCH_GROUP", 8))),
            scenarios=scenarios,
            pg_admin_url=os.environ.get(
                "BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
            ),
            pg_database=os.environ.get("BENCH_PG_DATABASE", "trade_review_bench"),
            storm_requests=max(1, _env_int("BENCH_STORM_REQUESTS", 256)),
            storm_deadline=_env_float("BENCH_STORM_DEADLINE", 1.0),
            cold_starts=max(1, _env_int("BENCH_COLD_STARTS", 5)),
            memory_reviews=max(100, _env_int("BENCH_MEMORY_REVIEWS", 10_000)),
            memory_phases=max(2, _env_int("BENCH_MEMORY_PHASES", 3)),
            rss_growth_tolerance_mib=_env_float("BENCH_RSS_GROWTH_TOLERANCE_MIB", 2.0),
        )


# ============================================================================ processes


class Processes:
    """Every child we start, each in its own process group; all stopped on exit."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(
        self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if log_path is not None:
            out = log_path.open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if log_path is not None:
                out.close()
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> int | None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._procs = [(n, p) for n, p in self._procs if p is not proc]
        return proc.returncode

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self._procs)):
            with contextlib.suppress(Exception):
                self.stop(proc, grace_s=5.0)


PROCS = Processes()


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def wait_http(
    port: int,
    path: str,
    proc: subprocess.Popen[bytes],
    log_path: Path | None,
    timeout_s: float = 60.0,
    poll_s: float = 0.02,
) -> float:
    """Poll until ``path`` answers 200; returns seconds waited. Fails if the process dies."""
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            tail = log_tail(log_path) if log_path else ""
            raise RuntimeError(
                f"process exited with {proc.returncode} before {path} was 200\n{tail}"
            )
        try:
            status, _, _ = http_request(port, "GET", path, timeout=2.0)
            if status == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        if time.monotonic() - t0 > timeout_s:
            tail = log_tail(log_path) if log_path else ""
            raise RuntimeError(f"{path} on :{port} not 200 after {timeout_s}s\n{tail}")
        time.sleep(poll_s)


def wait_tcp(
    port: int, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 30.0
) -> None:
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}\n{log_tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"nothing listens on :{port}\n{log_tail(log_path)}") from None
            time.sleep(0.05)


# Variables that would change the service's behaviour are never inherited from the caller.
_SERVICE_VARS = (
    "DATABASE_URL",
    "JANGAR_",
    "LLM_",
    "BREAKER_",
    "BULKHEAD_",
    "ADMIN_TOKEN",
    "LIVE_TRADING_ENABLED",
    "POLICY_PATH",
    "DB_",
    "LOG_LEVEL",
    "CONTROLS_REFRESH_SECONDS",
    "MAX_BODY_BYTES",
    "HOST",
    "PORT",
)


def service_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_SERVICE_VARS)}
    env.update(overrides)
    return env


def cli(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [PY, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    if proc.returncode != 0:
        raise RuntimeError(f"python -m app {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        PROCS.stop(self.proc)


def start_service(name: str, db_url: str, **extra_env: str) -> Server:
    port = free_port()
    log_path = WORK / f"{name}.log"
    env = service_env(DATABASE_URL=db_url, **extra_env)
    argv = [PY, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = PROCS.spawn(name, argv, env=env, log_path=log_path)
    wait_http(port, "/readyz", proc, log_path)
    return Server(name, port, proc, log_path)


def start_ceiling() -> Server:
    port = free_port()
    log_path = WORK / "ceiling.log"
    argv = [PY, "-m", "bench.ceiling", "--port", str(port)]
    proc = PROCS.spawn("ceiling", argv, env=dict(os.environ), log_path=log_path)
    wait_http(port, "/healthz", proc, log_path)
    return Server("ceiling", port, proc, log_path)


def start_stub(behaviour: str) -> Server:
    port = free_port()
    log_path = WORK / f"stub-{behaviour}.log"
    argv = [PY, "-m", "jangar_stub", "--port", str(port), "--behaviour", behaviour]
    proc = PROCS.spawn(f"stub-{behaviour}", argv, env=dict(os.environ), log_path=log_path)
    wait_tcp(port, proc, log_path)
    return Server(f"stub-{behaviour}", port, proc, log_path)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


# ============================================================================ databases


class SqliteDB:
    kind = "sqlite"

    def __init__(self, name: str) -> None:
        self.path = WORK / f"{name}.db"
        self.url = f"sqlite+aiosqlite:///{self.path}"

    def prepare(self) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        cli("migrate", env=service_env(DATABASE_URL=self.url))

    def reviews(self, prefix: str) -> tuple[int, set[str]]:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT review_id FROM llm_decision_reviews WHERE strategy_id LIKE ?",
                (prefix + "%",),
            ).fetchall()
        finally:
            conn.close()
        return len(rows), {r[0] for r in rows}

    def count_all(self) -> int:
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute("SELECT count(*) FROM llm_decision_reviews").fetchone()[0])
        finally:
            conn.close()

    def version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"


class PostgresDB:
    kind = "postgresql"

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url
        self.database = database
        base = admin_url.rsplit("/", 1)[0]
        self.dsn = f"{base}/{database}"
        self.url = "postgresql+asyncpg://" + self.dsn.split("://", 1)[1]

    @staticmethod
    def _run(coro: Any) -> Any:
        return asyncio.run(coro)

    def reachable(self) -> str | None:
        import asyncpg

        async def go() -> str:
            conn = await asyncpg.connect(self.admin_url, timeout=3)
            try:
                return str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()

        try:
            return self._run(go())
        except Exception:
            return None

    def ensure_running(self) -> str:
        version = self.reachable()
        if version is None and shutil.which("pg_ctlcluster") and Path("/etc/postgresql").is_dir():
            log("PostgreSQL not answering; trying pg_ctlcluster start")
            cluster = sorted(os.listdir("/etc/postgresql"))[0]
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "start"],
                check=False,
                capture_output=True,
            )
            for _ in range(30):
                version = self.reachable()
                if version:
                    break
                time.sleep(1)
        if version is None:
            raise RuntimeError(f"PostgreSQL not reachable at {self.admin_url}")
        return version

    def prepare(self) -> None:
        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(self.admin_url, timeout=5)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()

        self._run(go())
        cli("migrate", env=service_env(DATABASE_URL=self.url))

    def reviews(self, prefix: str) -> tuple[int, set[str]]:
        import asyncpg

        async def go() -> list[Any]:
            conn = await asyncpg.connect(self.dsn, timeout=5)
            try:
                return list(
                    await conn.fetch(
                        "SELECT review_id FROM llm_decision_reviews WHERE strategy_id LIKE $1",
                        prefix + "%",
                    )
                )
            finally:
                await conn.close()

        rows = self._run(go())
        return len(rows), {r[0] for r in rows}

    def version(self) -> str:
        return f"PostgreSQL {self.reachable() or '?'}"


# ============================================================================ request bodies


def write_template() -> Path:
    """``tests.support.requests.base_request`` with placeholders the wrk script fills in."""
    sys.path.insert(0, str(ROOT))
    from tests.support.requests import base_request

    body = base_request(strategy_id="@@SID@@", qty="@@QTY@@", event_ts="@@EVTS@@")
    body["market"]["as_of"] = "@@ASOF@@"
    path = WORK / "template.json"
    path.write_text(json.dumps(body, separators=(",", ":")))
    return path


def fill_template(template: str, sid: str, qty: int) -> bytes:
    now = datetime.now(UTC)

    def iso(t: datetime) -> str:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")

    return (
        template.replace("@@SID@@", sid)
        .replace("@@QTY@@", str(qty))
        .replace("@@EVTS@@", iso(now - timedelta(seconds=2)))
        .replace("@@ASOF@@", iso(now - timedelta(seconds=1)))
        .encode()
    )


# ============================================================================ statistics


def pct(values: list[float], p: float) -> float | None:
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def med(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def rnd(v: float | None, nd: int = 3) -> float | None:
    return None if v is None else round(v, nd)


# ============================================================================ CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime, all threads
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy_s() -> float:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts[:8]) - idle) / _TICK


def process_cpu_snapshot() -> dict[int, tuple[str, float]]:
    """pid -> (short command line, CPU seconds) of every process on the machine."""
    out: dict[int, tuple[str, float]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            comm = (d / "comm").read_text().strip()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not cmd.strip() or d.name == "1":
                continue  # kernel threads; the init process
            name = comm if comm == "postgres" else cmd.strip()[:80]
            out[int(d.name)] = (name, proc_cpu_s(int(d.name)))
    return out


def cpu_deltas(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[int, tuple[str, float]]:
    return {
        pid: (name, cpu - before.get(pid, (name, 0.0))[1])
        for pid, (name, cpu) in after.items()
        if cpu - before.get(pid, (name, 0.0))[1] > 0
    }


def rss_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


# ============================================================================ wrk


def wrk_version() -> str:
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (
        (proc.stdout + proc.stderr).splitlines()[0].strip() if (proc.stdout + proc.stderr) else "?"
    )


class Wrk:
    def __init__(self, cfg: Config, template: Path) -> None:
        self.cfg = cfg
        self.template = template

    def argv(self, url: str, connections: int, duration: int) -> list[str]:
        threads = min(self.cfg.wrk_threads, connections)
        return [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "30s",
            "--latency",
            "-s",
            str(LUA.relative_to(ROOT)),
            url,
        ]

    def start(
        self,
        url: str,
        *,
        connections: int,
        duration: int,
        nonce: str,
        keep: bool,
        quota: int = 0,
    ) -> tuple[subprocess.Popen[bytes], Path, list[str]]:
        out = WORK / f"wrk-{nonce}.json"
        out.unlink(missing_ok=True)
        env = dict(os.environ)
        env.update(
            BENCH_TEMPLATE=str(self.template),
            BENCH_NONCE=nonce,
            BENCH_GROUP=str(self.cfg.group),
            BENCH_OUT=str(out),
            BENCH_KEEP="1" if keep else "0",
            BENCH_QUOTA=str(quota),
        )
        argv = self.argv(url, connections, duration)
        proc = PROCS.spawn("wrk", argv, env=env, log_path=WORK / f"wrk-{nonce}.log")
        return proc, out, argv

    def finish(
        self, proc: subprocess.Popen[bytes], out: Path, nonce: str, connections: int, timeout: float
    ) -> dict[str, Any]:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            PROCS.stop(proc)
            raise RuntimeError(f"wrk did not finish in {timeout}s") from None
        PROCS.stop(proc)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"wrk failed ({proc.returncode}):\n{log_tail(WORK / f'wrk-{nonce}.log')}"
            )
        return self._aggregate(json.loads(out.read_text()), connections)

    def run(
        self,
        url: str,
        *,
        connections: int,
        duration: int,
        nonce: str,
        keep: bool,
        server_pid: int | None = None,
        aux_pid: int | None = None,
    ) -> dict[str, Any]:
        """One wrk run. ``aux_pid``: a helper of the system under test (the Jangar stub),
        whose CPU is reported on its own instead of as noise."""
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap0 = process_cpu_snapshot()
        busy0, srv0 = machine_busy_s(), proc_cpu_s(server_pid or 0)
        t0 = time.monotonic()
        proc, out, argv = self.start(
            url, connections=connections, duration=duration, nonce=nonce, keep=keep
        )
        result = self.finish(proc, out, nonce, connections, timeout=duration + 120)
        wall = time.monotonic() - t0
        usage1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, srv1 = machine_busy_s(), proc_cpu_s(server_pid or 0)
        deltas = cpu_deltas(snap0, process_cpu_snapshot())
        pg = sum(cpu for name, cpu in deltas.values() if name == "postgres")
        aux = deltas.get(aux_pid or -1, ("", 0.0))[1]
        foreign = sorted(
            (
                (cpu, name)
                for pid, (name, cpu) in deltas.items()
                if pid not in (server_pid, aux_pid, os.getpid())
                and name != "postgres"
                and cpu >= 0.3
            ),
            reverse=True,
        )
        wrk_cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
        answered = max(1, result["ok2xx"])
        result["cpu"] = {
            "server_cpu_s": rnd(srv1 - srv0),
            "server_cpu_ms_per_review": rnd((srv1 - srv0) * 1000 / answered),
            "server_cpu_util": rnd((srv1 - srv0) / wall, 2),
            "wrk_cpu_s": rnd(wrk_cpu),
            "postgres_cpu_s": rnd(pg),
            # Busy CPU of the whole machine not spent by the server, wrk or PostgreSQL: other
            # workloads sharing the machine (noise), kernel soft-IRQ work for the loopback
            # traffic, and this orchestrator's sampling.
            "stub_cpu_s": rnd(aux) if aux_pid else None,
            "other_cpu_s": rnd((busy1 - busy0) - (srv1 - srv0) - wrk_cpu - pg - aux),
            "other_processes": [f"{rnd(cpu, 1)} s {name}" for cpu, name in foreign[:4]],
            "machine_busy_util": rnd((busy1 - busy0) / wall / (os.cpu_count() or 1), 2),
            "loadavg_after": Path("/proc/loadavg").read_text().split()[0],
        }
        result["command"] = " ".join(argv)
        return result

    @staticmethod
    def _aggregate(report: dict[str, Any], connections: int) -> dict[str, Any]:
        threads = report.get("threads") or []

        def total(key: str) -> int:
            return int(sum(int(t.get(key) or 0) for t in threads))

        def merged(key: str) -> dict[str, int]:
            out: dict[str, int] = {}
            for t in threads:
                value = t.get(key) or {}
                if isinstance(value, dict):
                    for k, v in value.items():
                        out[k] = out.get(k, 0) + int(v)
            return out

        def values(key: str) -> list[Any]:
            out: list[Any] = []
            for t in threads:
                v = t.get(key) or []
                if isinstance(v, list):
                    out.extend(v)
            return out

        duration = float(report["duration_s"])
        ok = total("ok2xx")
        result: dict[str, Any] = {
            "duration_s": rnd(duration),
            "sent": total("sent"),
            "answered": total("answered"),
            "ok2xx": ok,
            "non2xx": total("non2xx"),
            "replays": total("replays"),
            "fallbacks": total("fallbacks"),
            "statuses": merged("statuses"),
            "executors": merged("executors"),
            "socket_errors": report.get("errors", {}),
            "rps": rnd(ok / duration if duration else 0.0, 1),
            "latency_ms": {k: rnd(v) for k, v in report["latency_ms"].items()},
        }
        ovh = [float(v) for v in values("overhead_ms") if v is not None and float(v) >= 0]
        llm = [float(v) for v in values("llm_ms") if v is not None and float(v) >= 0]
        result["_ids"] = [i for i in values("ids") if i]
        if ovh:
            result["overhead_header_ms"] = {
                "p50": rnd(pct(ovh, 50)),
                "p90": rnd(pct(ovh, 90)),
                "p99": rnd(pct(ovh, 99)),
                "max": rnd(max(ovh)),
                "n": len(ovh),
            }
        if llm:
            result["llm_step_ms"] = {
                "p50": rnd(pct(llm, 50)),
                "p99": rnd(pct(llm, 99)),
                "n": len(llm),
            }
        lat = values("latency_ms")
        if lat and len(threads) == connections and len(lat) == len(values("llm_ms")):
            # One connection per wrk thread: request()/response() alternate, so the Lua clock
            # gives each request's own end-to-end latency; minus the LLM step it is everything
            # the service (and loopback HTTP) adds around the LLM call.
            pairs = [
                (float(a), float(b))
                for a, b in zip(lat, values("llm_ms"), strict=True)
                if b is not None and float(b) >= 0
            ]
            if pairs:
                outside = [a - b for a, b in pairs]
                result["e2e_minus_llm_ms"] = {
                    "p50": rnd(pct(outside, 50)),
                    "p99": rnd(pct(outside, 99)),
                    "n": len(outside),
                }
        return result


def public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if not k.startswith("_")}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def pick(*path: str) -> list[float | None]:
        out: list[float | None] = []
        for r in runs:
            v: Any = r
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            out.append(v)
        return out

    summary: dict[str, Any] = {
        "rps": rnd(med(pick("rps")), 1),
        "latency_p50_ms": rnd(med(pick("latency_ms", "p50"))),
        "latency_p99_ms": rnd(med(pick("latency_ms", "p99"))),
        "latency_max_ms": rnd(
            max((v for v in pick("latency_ms", "max") if v is not None), default=None)
        ),
        "server_cpu_ms_per_review": rnd(med(pick("cpu", "server_cpu_ms_per_review"))),
        "non2xx": sum(int(v or 0) for v in pick("non2xx")),
        "socket_errors": sum(
            sum(int(x) for x in (r.get("socket_errors") or {}).values()) for r in runs
        ),
    }
    for key in ("overhead_header_ms", "llm_step_ms", "e2e_minus_llm_ms"):
        if any(key in r for r in runs):
            summary[key] = {
                "p50": rnd(med(pick(key, "p50"))),
                "p99": rnd(med(pick(key, "p99"))),
            }
    return summary


# ============================================================================ scenarios


@dataclass
class Bench:
    cfg: Config
    wrk: Wrk
    template_text: str
    run_id: str
    ceiling_rps: dict[str, float] = field(default_factory=dict[str, float])

    def nonce(self, tag: str) -> str:
        return f"b{uuid.uuid4().hex[:8]}-{tag}"

    def warm(self, server: Server) -> None:
        if self.cfg.warmup > 0:
            self.wrk.run(
                server.url,
                connections=self.cfg.connections,
                duration=self.cfg.warmup,
                nonce=self.nonce("warm"),
                keep=False,
            )

    def measure(
        self,
        server: Server,
        label: str,
        *,
        keep: bool,
        verify: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
        aux: Server | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for conc in (self.cfg.connections, 1):
            runs: list[dict[str, Any]] = []
            for i in range(self.cfg.runs):
                nonce = self.nonce(f"c{conc}r{i}")
                r = self.wrk.run(
                    server.url,
                    connections=conc,
                    duration=self.cfg.duration,
                    nonce=nonce,
                    keep=keep,
                    server_pid=server.proc.pid,
                    aux_pid=aux.proc.pid if aux else None,
                )
                if verify is not None:
                    r["committed"] = verify(nonce, r)
                log(
                    f"{label} c={conc} run {i + 1}/{self.cfg.runs}: {r['rps']} req/s, "
                    f"p50 {r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms, "
                    f"non-2xx {r['non2xx']}, server CPU {r['cpu']['server_cpu_ms_per_review']} "
                    f"ms/review, other CPU {r['cpu']['other_cpu_s']} s"
                    + (f", committed check {r['committed']['ok']}" if "committed" in r else "")
                )
                runs.append(r)
            summary = summarise(runs)
            ceiling = self.ceiling_rps.get(f"c{conc}")
            if ceiling and summary["rps"] is not None and label != "ceiling":
                summary["ratio_to_ceiling"] = rnd(summary["rps"] / ceiling, 4)
                log(
                    f"{label} c={conc}: median {summary['rps']} req/s = "
                    f"{summary['ratio_to_ceiling']}x the ceiling ({ceiling} req/s)"
                )
            out[f"c{conc}"] = {"summary": summary, "runs": [public(r) for r in runs]}
        return out

    # ------------------------------------------------------------------ ceiling

    def ceiling(self) -> dict[str, Any]:
        with running(start_ceiling()) as srv:
            self.warm(srv)
            figures = self.measure(srv, "ceiling", keep=False)
        return {
            "server": "bench/ceiling.py (FastAPI, ReviewRequest validation, constant answer)",
            **figures,
        }

    # ------------------------------------------------------------------ deterministic

    def _verifier(
        self, db: SqliteDB | PostgresDB
    ) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
        def verify(nonce: str, r: dict[str, Any]) -> dict[str, Any]:
            # Requests wrk had sent when it stopped may still be committed after it stopped
            # reading: wait until the count settles.
            last, rows, ids = -1, 0, set[str]()
            for _ in range(50):
                rows, ids = db.reviews(nonce + "-")
                if rows == last:
                    break
                last = rows
                time.sleep(0.2)
            answered_ids: list[str] = r.get("_ids") or []
            missing = sum(1 for i in answered_ids if i not in ids)
            in_flight = r["sent"] - r["answered"]
            extra = rows - r["ok2xx"]
            ok = (
                missing == 0
                and len(answered_ids) == r["ok2xx"]
                and 0 <= extra <= in_flight
                and r["replays"] == 0
            )
            return {
                "ok": ok,
                "rows": rows,
                "answered_2xx": r["ok2xx"],
                "answered_ids_missing_in_db": missing,
                "rows_beyond_2xx": extra,
                "in_flight_at_wrk_stop": in_flight,
            }

        return verify

    def deterministic(self, db: SqliteDB | PostgresDB) -> dict[str, Any]:
        db.prepare()
        name = f"service-{db.kind}"
        with running(start_service(name, db.url)) as srv:
            self.warm(srv)
            figures = self.measure(
                srv, f"deterministic/{db.kind}", keep=True, verify=self._verifier(db)
            )
        runs = [r for c in figures.values() for r in c["runs"]]
        committed_ok = all(r["committed"]["ok"] for r in runs)
        return {
            "database": db.version(),
            "database_url": db.url,
            "committed_check": {
                "ok": committed_ok,
                "rule": "every 2xx answer's review_id is a row; rows - 2xx <= requests wrk had "
                "in flight when it stopped (committed, answer never read); no idempotent replays",
            },
            **figures,
        }

    # ------------------------------------------------------------------ live path

    def _activate_live(
        self, db: SqliteDB, srv: Server, jangar_url: str, eval_url: str | None = None
    ) -> str:
        # The eval lane runs against ``eval_url`` when the serving stub is scripted to fail
        # (a hanging stub would rightly fail the scorecard).
        env = service_env(DATABASE_URL=db.url, JANGAR_BASE_URL=eval_url or jangar_url)
        state = WORK / "dspy-state.json"
        cli("artifacts", "export-state", "--out", str(state), env=env)
        digest = cli("artifacts", "register-live", "--state-file", str(state), env=env)
        digest = digest.strip().splitlines()[-1].strip()
        # The real promotion path: a scorecard from the eval lane, shadow, then active with an
        # approval. For the bench database only: no shadow time, and no risk-adjusted-return
        # bar (an uncompiled program need not beat the heuristic to measure its latency).
        env = {**env, "LEARN_SHADOW_DURATION_DAYS": "0", "LEARN_GATE_DELTA_SHARPE": "-100"}
        dataset = cli("lanes", "synthetic", "--n", "20", "--seed", "7", env=env)
        dataset = dataset.strip().splitlines()[-1].strip()
        cli("lanes", "eval", "--artifact", digest, "--dataset", dataset, env=env)
        cli("lanes", "promote", digest, "--to", "shadow", env=env)
        cli(
            "lanes",
            "promote",
            digest,
            "--to",
            "active",
            "--approver",
            "bench",
            "--ticket",
            "BENCH",
            env={**env, "LEARN_SHADOW_DURATION_DAYS": "0"},
        )
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15:
            _, _, body = http_request(srv.port, "GET", "/readyz")
            if json.loads(body).get("checks", {}).get("artifact") == digest:
                return digest
            time.sleep(0.1)
        raise RuntimeError(f"the service did not pick up artifact {digest} within 15 s")

    def live_overhead(self) -> dict[str, Any]:
        db = SqliteDB("live")
        db.prepare()
        with (
            running(start_stub("valid")) as stub,
            running(start_service("service-live", db.url, JANGAR_BASE_URL=stub.url)) as srv,
        ):
            digest = self._activate_live(db, srv, stub.url)
            body = fill_template(self.template_text, self.nonce("probe"), 3)
            status, headers, raw = http_request(srv.port, "POST", "/review", body)
            answer = json.loads(raw)
            lineage = answer.get("lineage", {})
            if status != 200 or lineage.get("executor") != "dspy_live":
                raise RuntimeError(f"live path not serving: {status} {lineage}")
            log(f"live artifact {digest[:12]} serving: lineage.executor == dspy_live")
            self.warm(srv)
            figures = self.measure(srv, "live", keep=True, aux=stub)
        return {
            "artifact_hash": digest,
            "probe": {
                "status": status,
                "lineage": lineage,
                "x_review_overhead_ms": headers.get("x-review-overhead-ms"),
                "timings_ms": answer.get("timings_ms"),
            },
            "stub": "python -m jangar_stub --behaviour valid (answers at once)",
            "published_references": PUBLISHED_LIVE_REFERENCES,
            **figures,
        }

    # ------------------------------------------------------------------ deadline storm

    def deadline_storm(self) -> dict[str, Any]:
        from bench.storm import burst

        cfg = self.cfg
        db = SqliteDB("storm")
        db.prepare()
        extra = {
            "LLM_DSPY_TIMEOUT_SECONDS": str(cfg.storm_deadline),
            "BULKHEAD_MAX_CONCURRENT": "512",
            "BREAKER_MIN_CALLS": "100000",
        }
        with (
            running(start_stub("hang")) as stub,
            running(start_stub("valid")) as eval_stub,
            running(
                start_service("service-storm", db.url, JANGAR_BASE_URL=stub.url, **extra)
            ) as srv,
        ):
            digest = self._activate_live(db, srv, stub.url, eval_url=eval_stub.url)
            # One review first (it times out and falls back): the artifact answers, and
            # first-call work (lazy imports, program build) is not counted in the storm.
            probe = fill_template(self.template_text, self.nonce("probe"), 3)
            status, _, raw = http_request(srv.port, "POST", "/review", probe)
            lineage = json.loads(raw).get("lineage", {})
            if status != 200 or lineage.get("artifact_hash") != digest:
                raise RuntimeError(f"storm probe: {status} {lineage}")
            log(f"storm probe answered, fallback {lineage.get('fallback')}")
            nonce = self.nonce("storm")
            bodies = [
                fill_template(self.template_text, f"{nonce}-s{i // cfg.group}", 1 + i % cfg.group)
                for i in range(cfg.storm_requests)
            ]
            sample_out = WORK / "storm-healthz.json"
            sample_out.unlink(missing_ok=True)
            sampler_log = WORK / "storm-sampler.log"
            sampler = PROCS.spawn(
                "healthz-sampler",
                [PY, "-m", "bench.storm", "sample", "--port", str(srv.port),
                 "--interval", "0.01", "--duration", str(cfg.storm_deadline + 4.0),
                 "--out", str(sample_out)],
                env=dict(os.environ),
                log_path=sampler_log,
            )  # fmt: skip
            time.sleep(0.5)  # the sampler's baseline before the storm
            t_start = time.monotonic()
            answers = burst(srv.port, bodies)
            t_end = max(a.done for a in answers)
            try:
                sampler.wait(timeout=cfg.storm_deadline + 30)
            finally:
                PROCS.stop(sampler)
            if not sample_out.exists():
                raise RuntimeError(f"healthz sampler failed:\n{log_tail(sampler_log)}")
            samples = json.loads(sample_out.read_text())
        deadline_ms = cfg.storm_deadline * 1000
        lat = [a.latency_s * 1000 for a in answers]
        over = [v - deadline_ms for v in lat]
        reasons: dict[str, int] = {}
        executors: dict[str, int] = {}
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
                    outside = a.latency_s * 1000 - float(timings["total"])
                    steps.setdefault("client_minus_total", []).append(outside)
                lineage = answer.get("lineage", {})
                reason = str(lineage.get("fallback", {}).get("reason"))
                reasons[reason] = reasons.get(reason, 0) + 1
                ex = str(lineage.get("executor"))
                executors[ex] = executors.get(ex, 0) + 1
        during = [s["latency_ms"] for s in samples if t_start <= s["t"] <= t_end]
        before = [s["latency_ms"] for s in samples if s["t"] < t_start]
        within = sum(1 for v in over if v <= TARGET_STORM_MARGIN_MS)
        return {
            "artifact_hash": digest,
            "driver": "asyncio (uvloop) raw HTTP/1.1 client, one pre-opened connection per "
            "request, all sent at once; /healthz sampled every 10 ms by a separate process",
            "requests": cfg.storm_requests,
            "deadline_s": cfg.storm_deadline,
            "env": extra,
            "statuses": statuses,
            "fallback_reasons": reasons,
            "executors": executors,
            "storm_duration_s": rnd(t_end - t_start),
            "latency_ms": {
                "min": rnd(min(lat)),
                "p50": rnd(pct(lat, 50)),
                "p99": rnd(pct(lat, 99)),
                "max": rnd(max(lat)),
            },
            "latency_minus_deadline_ms": {
                "p50": rnd(pct(over, 50)),
                "p99": rnd(pct(over, 99)),
                "max": rnd(max(over)),
            },
            "within_deadline_plus_50ms": within,
            # The service's own timings_ms per answer; client_minus_total is what the client
            # waited outside decide(): queueing for the loop, body parse/validation, response.
            "timings_ms": {
                k: {"p50": rnd(pct(v, 50)), "max": rnd(max(v))} for k, v in steps.items()
            },
            "healthz_during_storm_ms": {
                "n": len(during),
                "p50": rnd(pct(during, 50)),
                "p99": rnd(pct(during, 99)),
                "max": rnd(max(during) if during else None),
            },
            "healthz_before_storm_ms": {"n": len(before), "p50": rnd(pct(before, 50))},
        }

    # ------------------------------------------------------------------ cold start

    def _starts(
        self, db: SqliteDB, n: int, env_extra: dict[str, str], unset: tuple[str, ...]
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

    def cold_start(self) -> dict[str, Any]:
        db = SqliteDB("cold")
        db.prepare()
        n = self.cfg.cold_starts
        as_deployed = self._starts(db, n, {}, ())
        log(f"cold start (as deployed, no bytecode cache): {[round(t, 3) for t in as_deployed]}")
        # The same with a bytecode cache outside the tree (one discarded start fills it).
        cache = WORK / "pycache"
        shutil.rmtree(cache, ignore_errors=True)
        env = {"PYTHONPYCACHEPREFIX": str(cache)}
        self._starts(db, 1, env, ("PYTHONDONTWRITEBYTECODE",))
        cached = self._starts(db, n, env, ("PYTHONDONTWRITEBYTECODE",))
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

    # ------------------------------------------------------------------ memory

    def _drive_reviews(self, srv: Server, db: SqliteDB, target: int) -> dict[str, Any]:
        """Exactly-ish ``target`` reviews at the benchmark concurrency: each wrk thread stops
        at its quota, then wrk is interrupted; the database count is the exact figure."""
        conns = self.cfg.connections
        threads = min(self.cfg.wrk_threads, conns)
        quota = math.ceil(target / threads)
        before = db.count_all()
        nonce = self.nonce("mem")
        proc, out, _argv = self.wrk.start(
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
        r = self.wrk.finish(proc, out, nonce, conns, timeout=60)
        time.sleep(1.0)
        return {
            "reviews": db.count_all() - before,
            "seconds": rnd(elapsed),
            "non2xx": r["non2xx"],
        }

    def memory(self) -> dict[str, Any]:
        db = SqliteDB("memory")
        db.prepare()
        n = self.cfg.memory_reviews
        phases: list[dict[str, Any]] = []
        with running(start_service("service-memory", db.url)) as srv:
            pid = srv.proc.pid
            start = rss_kib(pid)
            for i in range(self.cfg.memory_phases):
                phase = self._drive_reviews(srv, db, n)
                rss = rss_kib(pid)
                phase["vmrss_mib_after"] = rnd(rss["VmRSS"] / 1024, 1)
                phase["vmhwm_mib_after"] = rnd(rss["VmHWM"] / 1024, 1)
                phases.append(phase)
                log(
                    f"memory: phase {i + 1}: +{phase['reviews']} reviews, "
                    f"VmRSS {phase['vmrss_mib_after']} MiB"
                )
        growth = [
            rnd(b["vmrss_mib_after"] - a["vmrss_mib_after"], 1)
            for a, b in itertools.pairwise(phases)
        ]
        return {
            "database": "sqlite",
            "measure": "VmRSS of the service process (/proc/<pid>/status) after each phase of "
            f"~{n} distinct reviews at {self.cfg.connections} connections (wrk, same script)",
            "rss_mib_at_start": rnd(start["VmRSS"] / 1024, 1),
            "phases": phases,
            "rss_mib_after_phase1": phases[0]["vmrss_mib_after"],
            "growth_mib_per_further_phase": growth,
            "growth_mib_phase2": growth[0] if growth else None,
            "growth_tolerance_mib": self.cfg.rss_growth_tolerance_mib,
        }


# ============================================================================ report


def machine_info(cfg: Config) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError):
        mem_kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
    packages = {}
    for name in (
        "fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic", "pydantic-core",
        "sqlalchemy", "aiosqlite", "asyncpg", "orjson", "httpx", "dspy", "prometheus-client",
    ):  # fmt: skip
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "-"
    pg = PostgresDB(cfg.pg_admin_url, cfg.pg_database).reachable()
    git: dict[str, Any] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "migrations", "config"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        git = {"head": head, "uncommitted_files_app_migrations_config": len(dirty)}
    return {
        "git": git,
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg or "unreachable",
        "wrk": wrk_version(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def write_json(name: str, data: dict[str, Any]) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS_DIR / f"{name}.json.tmp"
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(RESULTS_DIR / f"{name}.json")


def main() -> int:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(PROCS.stop_all)
    if shutil.which("wrk") is None:
        print(
            "bench: wrk is not installed (bench/run.sh installs it with apt-get)", file=sys.stderr
        )
        return 2
    cfg = Config.from_env()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    run_id = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t_all = time.monotonic()
    template = write_template()
    bench = Bench(cfg, Wrk(cfg, template), template.read_text(), run_id)
    machine = machine_info(cfg)
    log(
        f"run {run_id}: scenarios {', '.join(cfg.scenarios)}; "
        f"runs={cfg.runs} duration={cfg.duration}s"
    )
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
        "machine": machine,
    }
    failures: dict[str, str] = {}
    for name in cfg.scenarios:
        t0 = time.monotonic()
        log(f"--- {name}")
        try:
            if name == "ceiling":
                data = bench.ceiling()
                for c in ("c1", f"c{cfg.connections}"):
                    bench.ceiling_rps[c] = data[c]["summary"]["rps"]
            elif name == "deterministic_sqlite":
                data = bench.deterministic(SqliteDB("deterministic"))
            elif name == "deterministic_postgres":
                pg = PostgresDB(cfg.pg_admin_url, cfg.pg_database)
                pg.ensure_running()
                data = bench.deterministic(pg)
            elif name == "live_overhead":
                data = bench.live_overhead()
            elif name == "deadline_storm":
                data = bench.deadline_storm()
            elif name == "cold_start":
                data = bench.cold_start()
            elif name == "memory":
                data = bench.memory()
            else:  # pragma: no cover - guarded by Config
                raise AssertionError(name)
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
    if failures:
        for name, err in failures.items():
            log(f"FAILED {name}: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
