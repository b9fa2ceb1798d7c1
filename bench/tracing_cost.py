"""What tracing costs a review: the same service with OpenTelemetry off and on (not a test).

    .venv/bin/python -m bench.tracing_cost                 # 400 reviews x 3 rounds per arm
    .venv/bin/python -m bench.tracing_cost --reviews 1000 --rounds 5

Two servers on two SQLite files, the deterministic artifact, no Jangar: ``off`` (no
``OTEL_EXPORTER_OTLP_ENDPOINT``: no SDK object, no instrumentation) and ``on`` (the endpoint
set to a local OTLP/HTTP sink in this process that answers 200 and counts what it receives, so
the batch exporter really serialises and posts). Rounds alternate off/on so machine noise hits
both arms alike; each round sends ``--reviews`` sequential reviews (one connection) and records
the client-side latency. Reports per-arm median p50/p99 over the rounds, their ratio on/off,
and the spans the sink received. Writes bench/results/tracing_cost.json.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import threading
import time
from typing import Any

from bench.harness import (
    PROCS,
    WORK,
    SqliteDB,
    fill_template,
    http_request,
    log,
    med,
    pct,
    rnd,
    running,
    start_service,
    write_json,
    write_template,
)


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that accepts everything (counts posts and bytes)."""

    posts = 0
    bytes_in = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(size)
        with _Sink.lock:
            _Sink.posts += 1
            _Sink.bytes_in += size
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def _round(port: int, template: str, tag: str, n: int) -> list[float]:
    out: list[float] = []
    for i in range(n):
        # One strategy per request: the order-rate gate never refuses a bench request.
        body = fill_template(template, f"{tag}-{i}", 10)
        t0 = time.perf_counter()
        status, _, _ = http_request(port, "POST", "/review", body)
        out.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise RuntimeError(f"review answered {status}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Tracing off vs on: latency per review.")
    ap.add_argument("--reviews", type=int, default=400, help="sequential reviews per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per arm")
    args = ap.parse_args(argv)

    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}"
    WORK.mkdir(parents=True, exist_ok=True)
    template = write_template().read_text()
    dbs = {"off": SqliteDB("tracing-off"), "on": SqliteDB("tracing-on")}
    for db in dbs.values():
        db.prepare()
    env = {"off": {}, "on": {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}}
    lat: dict[str, list[list[float]]] = {"off": [], "on": []}
    try:
        with (
            running(start_service("tracing-off", dbs["off"].url, **env["off"])) as off,
            running(start_service("tracing-on", dbs["on"].url, **env["on"])) as on,
        ):
            servers = {"off": off, "on": on}
            for arm, srv in servers.items():  # warm-up, unrecorded
                _round(srv.port, template, f"warm-{arm}", 50)
            for r in range(args.rounds):
                for arm in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    lat[arm].append(
                        _round(servers[arm].port, template, f"r{r}-{arm}", args.reviews)
                    )
                    log(f"round {r + 1} {arm}: p50 {pct(lat[arm][-1], 50):.2f} ms")
            time.sleep(6)  # the batch exporter flushes every 5 s
    finally:
        PROCS.stop_all()
        sink.shutdown()

    def figures(arm: str) -> dict[str, Any]:
        return {
            "p50_ms": rnd(med([pct(x, 50) for x in lat[arm]])),
            "p99_ms": rnd(med([pct(x, 99) for x in lat[arm]])),
            "per_round_p50_ms": [rnd(pct(x, 50)) for x in lat[arm]],
        }

    off_f, on_f = figures("off"), figures("on")
    result = {
        "machine": {"cpus": os.cpu_count(), "loadavg_1_5_15": os.getloadavg()},
        "reviews_per_round": args.reviews,
        "rounds": args.rounds,
        "off": off_f,
        "on": on_f,
        "ratio_p50_on_off": rnd((on_f["p50_ms"] or 0) / (off_f["p50_ms"] or 1)),
        "ratio_p99_on_off": rnd((on_f["p99_ms"] or 0) / (off_f["p99_ms"] or 1)),
        "added_p50_ms": rnd((on_f["p50_ms"] or 0) - (off_f["p50_ms"] or 0)),
        "otlp_posts": _Sink.posts,
        "otlp_bytes": _Sink.bytes_in,
    }
    write_json("tracing_cost", result)
    log(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    return 0 if _Sink.posts > 0 else 1  # on must really export, or the figure is meaningless


if __name__ == "__main__":
    raise SystemExit(main())
