"""Drift monitoring end to end on SQLite and PostgreSQL: serve, shift the request stream, run the
monitor, see the breach (rows, /metrics, the drift.alert event), the automatic rollback, the
promotion block until an operator acknowledges, and the scheduled run under the lease."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.db.session import read_only, unit_of_work
from app.drift import repository as drift_repo
from app.drift.monitor import drift_loop
from app.registry import repository as registry
from app.registry import service
from app.registry.artifact import heuristic_bootstrap
from app.registry.hashing import artifact_hash
from app.registry.states import ArtifactState
from tests.support.cli import invoke
from tests.support.logs import fields_of, logged
from tests.support.registry import add_artifact, make_active
from tests.support.requests import base_request

AUTH = {"Authorization": "Bearer drift-admin-token-0123456789abcdef0123", "X-Operator": "alice"}
N = 40  # reference and window size: small windows, where fixed PSI cut-offs misfire
DRIFT = {
    "admin_token": "drift-admin-token-0123456789abcdef0123",
    "learn_drift_reference_reviews": N,
    "learn_drift_window_reviews": N,
    "learn_drift_enabled": False,  # runs are driven by the test
}


def normal(i: int) -> dict[str, Any]:
    # One strategy per request: the per-strategy order-rate gate must not move the mix itself.
    body = base_request(qty=str(5 + i % 11), strategy_id=f"s-{i}")
    body["market"]["spread"] = f"{0.02 + (i % 7) * 0.005:.3f}"
    return body


def shifted(i: int) -> dict[str, Any]:
    # Orders 20x the usual size in a market three times as wide.
    body = base_request(qty=str(100 + (i % 11) * 20), strategy_id=f"s-{i}")
    body["market"]["spread"] = f"{0.06 + (i % 7) * 0.015:.3f}"
    return body


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(
        "/review", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def run_drift(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.post("/admin/drift/run", json={}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


async def make_active_variant(app: Any) -> tuple[str, str]:
    """A second heuristic artifact made ACTIVE (the bootstrap one becomes last known good)."""
    async with read_only(app.state.pipeline.factory) as s:
        previous = await registry.hash_in_state(s, "trade-review", ArtifactState.ACTIVE)
    assert previous is not None
    digest = await add_artifact(app, 1)
    await make_active(app, digest)
    return digest, previous


async def wait_served(client: httpx.AsyncClient, digest: str, timeout: float = 2.0) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    while loop.time() - start < timeout:
        i += 1
        if (await post(client, normal(1000 + i)))["lineage"]["artifact_hash"] == digest:
            return loop.time() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{digest[:12]} not served within {timeout}s")


async def test_drift_when_stream_unchanged_then_reference_frozen_and_no_breach(
    app_factory: Any,
) -> None:
    async with app_factory(**DRIFT) as (client, _):
        first = await run_drift(client)
        assert first["outcome"] == "reference_pending"
        for i in range(N):
            await post(client, normal(i))
        frozen = await run_drift(client)
        assert frozen["outcome"] == "ok" and frozen["reference_source"] == "served"
        assert frozen["reference_n"] == N and frozen["window_n"] == 0
        for i in range(N):
            await post(client, normal(i))
        run = await run_drift(client)
        assert run["outcome"] == "ok" and run["window_n"] == N
        assert run["checks"], "expected checks over a full window"
        assert not [c for c in run["checks"] if c["breach"]]
        state = (await client.get("/admin/drift", headers=AUTH)).json()
        assert {r["run_id"] for r in state["latest_run"]} == {run["run_id"]}
        assert state["unacknowledged"] == []


async def test_drift_when_stream_shifts_then_breach_metrics_event_and_rollback_within_2s(
    app_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trade_review")
    async with app_factory(
        **DRIFT, learn_drift_auto_rollback=True, learn_drift_rollback_severity="warning"
    ) as (client, app):
        variant, good = await make_active_variant(app)
        await wait_served(client, variant)
        for i in range(N):
            await post(client, normal(i))
        assert (await run_drift(client))["outcome"] == "ok"
        for i in range(N):
            await post(client, shifted(i))
        run = await run_drift(client)

        assert run["outcome"] == "breach" and run["artifact_hash"] == variant
        breached = {c["metric"]: c for c in run["checks"] if c["breach"]}
        assert "notional_to_equity_ks" in breached and "spread_bps_ks" in breached
        ks = breached["notional_to_equity_ks"]
        assert ks["p_value"] < ks["level"] and ks["statistic"] >= ks["threshold"]
        assert ks["n"] == N and ks["m"] == N
        assert run["rolled_back_to"] == good

        waited = await wait_served(client, good)
        assert waited < 2.0

        text = (await client.get("/metrics")).text
        series = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("learn_drift_")
        }
        labels = '{metric="notional_to_equity_ks",model_type="heuristic"}'
        assert series[f"learn_drift_alert_total{labels}"] >= 1
        assert series[f"learn_drift_breach{labels}"] == 1.0
        assert logged(caplog, "drift.alert", metric="notional_to_equity_ks", severity="warning")
        alerts = [fields_of(r) for r in caplog.records if r.getMessage() == "drift.alert"]
        assert alerts
        assert all("threshold" in a and "current_window" in a for a in alerts)

        async with read_only(app.state.pipeline.factory) as s:
            events = await registry.events(s, good)
        assert "E_LEARN_DRIFT_BREACH" in events[-1].reason and events[-1].to_state == "active"


async def test_drift_breach_when_candidate_promoted_then_409_until_acknowledged(
    app_factory: Any,
) -> None:
    async with app_factory(**DRIFT) as (client, app):
        for i in range(N):
            await post(client, normal(i))
        await run_drift(client)
        for i in range(N):
            await post(client, shifted(i))
        run = await run_drift(client)
        assert run["outcome"] == "breach" and run["rolled_back_to"] is None  # auto-rollback off

        digest = await add_artifact(app, 2)  # with a passing scorecard

        denied = await client.post(
            f"/admin/artifacts/{digest}/transition", json={"to": "shadow"}, headers=AUTH
        )
        assert denied.status_code == 409
        assert denied.json()["error"]["code"] == "E_LEARN_DRIFT_BREACH"
        assert any("not acknowledged" in r for r in denied.json()["error"]["details"]["reasons"])

        bad = await client.post("/admin/drift/acknowledge", json={"reason": ""}, headers=AUTH)
        assert bad.status_code == 422
        ack = await client.post(
            "/admin/drift/acknowledge", json={"reason": "desk moved to larger clips"}, headers=AUTH
        )
        assert ack.status_code == 200 and ack.json()["acknowledged"]

        ok = await client.post(
            f"/admin/artifacts/{digest}/transition", json={"to": "shadow"}, headers=AUTH
        )
        assert ok.status_code == 200, ok.text


async def test_drift_when_scheduled_then_one_replica_runs_it_under_the_lease(
    app_factory: Any,
) -> None:
    async with app_factory(**DRIFT) as (client, app):
        for i in range(N):
            await post(client, normal(i))
        settings = app.state.settings
        factory = app.state.pipeline.factory
        t0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        now = [t0]

        def clock() -> datetime:
            return now[0]

        a, b = drift_loop(factory, settings, clock), drift_loop(factory, settings, clock)
        assert await a.tick() is True
        assert await b.tick() is False  # the lease is a's
        now[0] = t0 + timedelta(seconds=settings.learn_drift_period_seconds * 4)
        assert await b.tick() is True  # a stopped renewing: b takes over after the TTL
        async with read_only(factory) as s:
            digest = await registry.hash_in_state(s, "trade-review", ArtifactState.ACTIVE)
            assert digest is not None
            ref = await drift_repo.get_reference(s, digest)
        assert ref is not None and ref.n == N  # frozen once, by whichever ran first


async def test_drift_admin_when_no_token_then_401(app_factory: Any) -> None:
    async with app_factory(**DRIFT) as (client, _):
        r = await client.post("/admin/drift/run", json={})
        assert r.status_code == 401


async def test_drift_breach_when_candidate_data_predates_the_window_then_not_blocked(
    app_factory: Any,
) -> None:
    from app.drift.monitor import promotion_block
    from app.lanes import repository as lane_outputs

    async with app_factory(**DRIFT) as (client, app):
        for i in range(N):
            await post(client, normal(i))
        await run_drift(client)
        for i in range(N):
            await post(client, shifted(i))
        assert (await run_drift(client))["outcome"] == "breach"

        factory = app.state.pipeline.factory
        now = datetime.now(UTC)
        windows = {
            "e" * 64: (now - timedelta(days=10), now - timedelta(days=9)),  # before the drift
            "f" * 64: (now - timedelta(days=1), now + timedelta(hours=1)),  # covers it
        }
        digests: dict[str, str] = {}
        async with unit_of_work(factory) as s:
            for k, (dataset_hash, (start, end)) in enumerate(windows.items()):
                await lane_outputs.add(
                    s,
                    lane="dataset",
                    output_hash=dataset_hash,
                    artifact_hash=None,
                    config={"since": start.isoformat(), "until": end.isoformat()},
                    payload={},
                    actor="test",
                    now=now,
                )
                manifest, state = heuristic_bootstrap("trade-review", "v1")
                state["heuristic"]["params"]["flag_points"] = 0.16 + k / 100
                digest = artifact_hash(manifest, state)
                await service.register(
                    s,
                    manifest,
                    state,
                    actor="test",
                    lineage={"dataset_hash": dataset_hash},
                    now=now,
                )
                digests[dataset_hash] = digest
        async with read_only(factory) as s:
            before = await promotion_block(s, "trade-review", digests["e" * 64])
            covering = await promotion_block(s, "trade-review", digests["f" * 64])
        assert before == []
        assert covering and all("not acknowledged" in r for r in covering)


async def test_lanes_drift_cli_when_breached_then_table_exit_6_and_ack_clears(
    app_factory: Any, database_url: str
) -> None:
    env = {
        "DATABASE_URL": database_url,
        "LEARN_DRIFT_REFERENCE_REVIEWS": str(N),
        "LEARN_DRIFT_WINDOW_REVIEWS": str(N),
        "COLUMNS": "200",
    }
    async with app_factory(**DRIFT) as (client, app):
        for i in range(N):
            await post(client, normal(i))
        first = invoke("lanes", "drift", env=env)
        assert first.exit_code == 0, first.output  # reference frozen, nothing to compare yet
        for i in range(N):
            await post(client, shifted(i))
        run = invoke("lanes", "drift", env=env)
        assert run.exit_code == 6, run.output
        assert "notional_to_equity_ks" in run.output and "warning" in run.output
        as_json = invoke("lanes", "drift", "--json", env=env)
        assert json.loads(as_json.stdout)["outcome"] == "breach"
        ack = invoke("lanes", "drift-ack", "--reason", "reviewed", env=env)
        assert ack.exit_code == 0, ack.output
        async with read_only(app.state.pipeline.factory) as s:
            assert await drift_repo.unacknowledged_breaches(s, "trade-review") == []
