"""What the benchmark scenarios share: configuration, child processes, databases, request
bodies, statistics, CPU accounting, wrk, and the ``Context`` each scenario receives.

Every server a scenario needs is started through ``PROCS`` on a free loopback port in its own
process group and stopped by it, also when a scenario fails or the run is interrupted. Scratch
files (databases, logs, wrk reports) go to ``var/bench/`` (git-ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
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
    storm_runs: int
    storm_bulkhead: int
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
            storm_runs=max(1, _env_int("BENCH_STORM_RUNS", 3)),
            # 512: every review of the storm calls Jangar (the worst case); the shipped
            # default (64) sends the rest straight to the heuristic (`bulkhead_full`).
            storm_bulkhead=max(1, _env_int("BENCH_STORM_BULKHEAD", 512)),
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
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        log_path: Path | None = None,
        cwd: Path = ROOT,
    ) -> subprocess.Popen[bytes]:
        out: Any = subprocess.DEVNULL
        if log_path is not None:
            out = log_path.open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
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


# ============================================================================ shared context


@dataclass
class Context:
    """What every scenario shares: the configuration, wrk, the request template, the
    ceiling's figures (for ratios) and the helpers that start and load servers."""

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

    def activate_live(
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


# ============================================================================ machine and results


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
