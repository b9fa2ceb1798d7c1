"""Scenarios ``deterministic_sqlite`` / ``deterministic_postgres``: the service with the
heuristic artifact under wrk; every 2xx answer must have its committed row."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.harness import (
    Context,
    PostgresDB,
    SqliteDB,
    running,
    start_service,
)


def _verifier(
    ctx: Context, db: SqliteDB | PostgresDB
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


def run(ctx: Context, db: SqliteDB | PostgresDB) -> dict[str, Any]:
    db.prepare()
    name = f"service-{db.kind}"
    with running(start_service(name, db.url)) as srv:
        ctx.warm(srv)
        figures = ctx.measure(srv, f"deterministic/{db.kind}", keep=True, verify=_verifier(ctx, db))
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
