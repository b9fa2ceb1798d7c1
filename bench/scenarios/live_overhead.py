"""Scenario ``live_overhead``: a ``dspy_live`` artifact against the stub's ``valid`` behaviour;
the time the service adds around the LLM call."""

from __future__ import annotations

import json
from typing import Any

from bench.harness import (
    Context,
    SqliteDB,
    fill_template,
    http_request,
    log,
    running,
    start_service,
    start_stub,
)
from bench.targets import PUBLISHED_LIVE_REFERENCES


def run(ctx: Context) -> dict[str, Any]:
    db = SqliteDB("live")
    db.prepare()
    with (
        running(start_stub("valid")) as stub,
        running(start_service("service-live", db.url, JANGAR_BASE_URL=stub.url)) as srv,
    ):
        digest = ctx.activate_live(db, srv, stub.url)
        body = fill_template(ctx.template_text, ctx.nonce("probe"), 3)
        status, headers, raw = http_request(srv.port, "POST", "/review", body)
        answer = json.loads(raw)
        lineage = answer.get("lineage", {})
        if status != 200 or lineage.get("executor") != "dspy_live":
            raise RuntimeError(f"live path not serving: {status} {lineage}")
        log(f"live artifact {digest[:12]} serving: lineage.executor == dspy_live")
        ctx.warm(srv)
        figures = ctx.measure(srv, "live", keep=True, aux=stub)
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
