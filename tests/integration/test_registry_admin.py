"""Registry through the admin API: auth, evidence-gated promotion, races, rollback, retention,
outcome feedback. Heuristic artifacts with distinct parameters stand in for compiled ones."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import unit_of_work
from app.registry import evidence, service
from app.registry.artifact import heuristic_bootstrap
from app.registry.evidence import EvidenceKind
from tests.support.registry import add_artifact, make_active, scorecard
from tests.support.requests import base_request

TOKEN = "s3cret-admin-token-0123456789abcdef"  # >= 32 characters (settings refuse shorter)
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Operator": "alice"}
SERVE_WITHIN_S = 2.0 + 3.0


async def make_artifact(app: Any, n: int, *, card: dict[str, Any] | None = None) -> str:
    """Register a heuristic artifact with distinct params and (by default) a passing scorecard."""
    digest = await add_artifact(app, n, card=card is None)
    if card is not None:
        async with unit_of_work(app.state.pipeline.factory) as s:
            await evidence.add(
                s, digest, EvidenceKind.SCORECARD, card, actor="test", now=datetime.now(UTC)
            )
    return digest


async def transition(
    client: httpx.AsyncClient, digest: str, to: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/admin/artifacts/{digest}/transition", json={"to": to, **body}, headers=AUTH
    )


async def served_hash(client: httpx.AsyncClient, qty: int) -> str:
    r = await client.post(
        "/review",
        content=json.dumps(base_request(qty=str(qty))),
        headers={"content-type": "application/json"},
    )
    return r.json()["lineage"]["artifact_hash"]


async def wait_served(
    client: httpx.AsyncClient, digest: str, timeout: float = SERVE_WITHIN_S
) -> None:
    """Distinct reviews until one is served by ``digest`` (the replica polls every 0.2 s here;
    README's 2 s plus a margin for a loaded runner, see tests/README.md)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    qty = 100
    while loop.time() - start < timeout:
        qty += 1
        if await served_hash(client, qty) == digest:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{digest[:12]} not served within {timeout}s")


async def test_admin_when_no_token_configured_then_503_admin_disabled(app_factory: Any) -> None:
    async with app_factory() as (client, _):
        r = await client.get("/admin/artifacts", headers=AUTH)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "admin_disabled"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
async def test_admin_when_token_missing_or_wrong_then_401(
    app_factory: Any, headers: dict[str, str]
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, _):
        for path in ("/admin/artifacts", "/admin/controls"):
            r = await client.get(path, headers=headers)
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "unauthorized"


async def test_promotion_when_evidence_complete_then_serves_and_rollback_restores(
    app_factory: Any,
) -> None:
    async with app_factory(admin_token=TOKEN, learn_shadow_duration_days=0) as (client, app):
        listing = (await client.get("/admin/artifacts", headers=AUTH)).json()
        original = listing["served_hash"]
        assert listing["pinned_hash"] is None
        new = await make_artifact(app, 1)
        assert (await transition(client, new, "shadow")).status_code == 200
        denied = await transition(client, new, "active")
        assert denied.status_code == 409
        assert denied.json()["error"]["code"] == "E_LEARN_APPROVAL_MISSING"
        ok = await transition(client, new, "active", approval={"approver": "bob", "ticket": "T-1"})
        assert ok.status_code == 200, ok.text
        await wait_served(client, new)
        rb = await client.post("/admin/artifacts/rollback", json={"reason": "drill"}, headers=AUTH)
        assert rb.status_code == 200
        assert rb.json() == {"restored": original, "replaced": new}
        await wait_served(client, original)
        shown = (await client.get(f"/admin/artifacts/{new}", headers=AUTH)).json()
        moves = [(e["from"], e["to"], e["actor"]) for e in shown["events"]]
        assert moves == [
            (None, "candidate", "test"),
            ("candidate", "shadow", "operator:alice"),
            ("shadow", "active", "operator:alice"),
            ("active", "retired", "operator:alice"),
        ]
        assert {e["kind"] for e in shown["evidence"]} == {
            "scorecard",
            "approval",
            "promotion_denied",
        }


@pytest.mark.parametrize(
    ("card", "needle"),
    [
        ({"schema_valid_rate": 0.9}, "schema-valid rate"),
        ({"fallback_rate": 0.2}, "fallback rate"),
        ({"gate_bypass_count": 1}, "bypass"),
        ({"hash_reproducible": False}, "reproducible"),
        ({"delta_sharpe": -0.5}, "Sharpe"),
    ],
)
async def test_promotion_when_scorecard_fails_then_gate_failed_and_recorded(
    app_factory: Any, card: dict[str, Any], needle: str
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, app):
        digest = await make_artifact(app, 2)
        async with unit_of_work(app.state.pipeline.factory) as s:
            await evidence.add(
                s,
                digest,
                EvidenceKind.SCORECARD,
                scorecard(digest, **card),
                actor="t",
                now=datetime.now(UTC),
            )
        r = await transition(client, digest, "shadow")
        assert r.status_code == 409
        err = r.json()["error"]
        assert err["code"] == "E_LEARN_GATE_FAILED"
        assert any(needle in reason for reason in err["details"]["reasons"])
        shown = (await client.get(f"/admin/artifacts/{digest}", headers=AUTH)).json()
        assert shown["state"] == "candidate"
        denied = [e for e in shown["evidence"] if e["kind"] == "promotion_denied"]
        assert denied and denied[-1]["payload"]["code"] == "E_LEARN_GATE_FAILED"


async def test_promotion_when_no_scorecard_then_gate_failed(app_factory: Any) -> None:
    async with app_factory(admin_token=TOKEN) as (client, app):
        manifest, state = heuristic_bootstrap("trade-review", "v1")
        state["heuristic"]["params"]["flag_points"] = 0.42
        async with unit_of_work(app.state.pipeline.factory) as s:
            digest = await service.register(
                s, manifest, state, actor="t", lineage={}, now=datetime.now(UTC)
            )
        r = await transition(client, digest, "shadow")
        assert r.json()["error"]["code"] == "E_LEARN_GATE_FAILED"
        assert "no eval scorecard" in r.json()["error"]["details"]["reasons"][0]


async def test_invalid_transition_when_requested_then_409_invalid_transition(
    app_factory: Any,
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, app):
        digest = await make_artifact(app, 3)
        r = await transition(client, digest, "canary")
        assert r.status_code == 409  # candidate -> canary is not in the table
        assert r.json()["error"]["code"] == "invalid_transition"
        assert r.json()["error"]["message"] == "cannot move an artifact from candidate to canary"
        shown = (await client.get(f"/admin/artifacts/{digest}", headers=AUTH)).json()
        assert shown["state"] == "candidate"
        assert [(e["from"], e["to"]) for e in shown["events"]] == [(None, "candidate")]
        r = await transition(client, "f" * 64, "shadow")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


async def test_20_concurrent_shadow_promotions_then_one_wins_and_19_get_409(
    app_factory: Any, database_url: str
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, app):
        hashes = [await make_artifact(app, 100 + i) for i in range(20)]
        results = await asyncio.gather(*(transition(client, h, "shadow") for h in hashes))
        codes = sorted(r.status_code for r in results)
        assert codes == [200] + [409] * 19, [
            r.text for r in results if r.status_code not in (200, 409)
        ]
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            shadows = (
                await conn.execute(
                    text("SELECT count(*) FROM llm_dspy_workflow_artifacts WHERE state='shadow'")
                )
            ).scalar_one()
            events = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM artifact_events WHERE to_state='shadow' "
                        "AND actor <> 'system:bootstrap'"
                    )
                )
            ).scalar_one()
        await engine.dispose()
        assert shadows == 1
        assert events == 1


async def test_20_concurrent_rollbacks_then_exactly_one_active_at_every_moment(
    app_factory: Any, database_url: str
) -> None:
    async with app_factory(admin_token=TOKEN, learn_shadow_duration_days=0) as (client, app):
        # Five artifacts activated in turn (with evidence): five rollback targets behind them.
        for i in range(5):
            digest = await make_artifact(app, 200 + i)
            await make_active(app, digest)
        engine = create_async_engine(database_url)
        samples: list[int] = []
        stop = asyncio.Event()

        async def sample() -> None:
            while not stop.is_set():
                async with engine.connect() as conn:
                    samples.append(
                        (
                            await conn.execute(
                                text(
                                    "SELECT count(*) FROM llm_dspy_workflow_artifacts "
                                    "WHERE state='active'"
                                )
                            )
                        ).scalar_one()
                    )
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        results = await asyncio.gather(
            *(
                client.post("/admin/artifacts/rollback", json={"reason": "race"}, headers=AUTH)
                for _ in range(20)
            )
        )
        stop.set()
        await sampler
        async with engine.connect() as conn:
            activations = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM artifact_events WHERE to_state='active' "
                        "AND from_state='retired' AND route='rollback'"
                    )
                )
            ).scalar_one()
            final = (
                await conn.execute(
                    text("SELECT count(*) FROM llm_dspy_workflow_artifacts WHERE state='active'")
                )
            ).scalar_one()
        await engine.dispose()
        statuses = [r.status_code for r in results]
        assert set(statuses) <= {200, 404, 409}, [r.text for r in results]
        assert statuses.count(200) >= 1
        assert statuses.count(200) == activations  # the event log tells the same story
        assert all(
            r.json()["error"]["code"] == "transition_conflict"
            for r in results
            if r.status_code == 409
        )
        assert samples and set(samples) == {1}
        assert final == 1


async def test_retention_when_many_retired_then_only_last_10_keep_state(
    app_factory: Any, database_url: str
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, app):
        hashes = [await make_artifact(app, 300 + i) for i in range(12)]
        for h in hashes:
            assert (await transition(client, h, "retired")).status_code == 200
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT artifact_hash, program_state FROM llm_dspy_workflow_artifacts "
                        "WHERE state='retired'"
                    )
                )
            ).all()
        await engine.dispose()
        pruned = [
            h for h, st in rows if (json.loads(st) if isinstance(st, str) else st).get("pruned")
        ]
        assert len(rows) == 12
        assert len(pruned) == 2


async def test_pinned_hash_when_formerly_active_then_registry_reports_and_serves_it(
    app_factory: Any,
) -> None:
    async with app_factory(admin_token=TOKEN, learn_shadow_duration_days=0) as (client, app):
        digest = await make_artifact(app, 400)
        await make_active(app, digest)
        rb = await client.post("/admin/artifacts/rollback", json={"reason": "bad"}, headers=AUTH)
        assert rb.json()["replaced"] == digest  # retired now, but it was active: may be pinned
    async with app_factory(admin_token=TOKEN, llm_dspy_artifact_hash=digest) as (client, _):
        listing = (await client.get("/admin/artifacts", headers=AUTH)).json()
        assert listing["pinned_hash"] == digest
        assert listing["served_hash"] == digest
        r = await client.post(
            "/review",
            content=json.dumps(base_request()),
            headers={"content-type": "application/json"},
        )
        assert r.json()["lineage"]["arm"] == "pinned"


async def test_controls_when_set_via_admin_then_recorded_and_applied(app_factory: Any) -> None:
    async with app_factory(admin_token=TOKEN) as (client, _):
        before = (await client.get("/admin/controls", headers=AUTH)).json()
        assert before["trading_state"] == "ACTIVE"
        r = await client.post(
            "/admin/controls", json={"trading_state": "HALTED", "reason": "drill"}, headers=AUTH
        )
        assert r.status_code == 200
        assert r.json()["changed"] == ["trading_state"]
        assert r.json()["trading_state"] == "HALTED"
        assert r.json()["version"] == before["version"] + 1
        [latest, *_] = (await client.get("/admin/controls/history", headers=AUTH)).json()["events"]
        assert latest["actor"] == "operator:alice"
        assert latest["reason"] == "drill"
        assert (latest["before"]["trading_state"], latest["after"]["trading_state"]) == (
            "ACTIVE",
            "HALTED",
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVE_WITHIN_S
        n = 0
        while True:  # distinct requests (no idempotent replay) until the replica applies it
            n += 1
            body = (
                await client.post(
                    "/review",
                    content=json.dumps(base_request(rationale=f"after halt {n}")),
                    headers={"content-type": "application/json"},
                )
            ).json()
            if body["decision"] == "reject":
                break
            assert loop.time() < deadline, "HALTED not applied"
            await asyncio.sleep(0.05)
        assert body["reasons"] == ["trading_state"]


async def test_outcome_when_recorded_then_idempotent_and_conflicts_detected(
    app_factory: Any,
) -> None:
    async with app_factory() as (client, _):
        review = (
            await client.post(
                "/review",
                content=json.dumps(base_request()),
                headers={"content-type": "application/json"},
            )
        ).json()
        url = f"/reviews/{review['review_id']}/outcome"
        outcome = {"filled": True, "fill_price": 200.1, "fill_qty": 10, "realized_pnl": 12.5}
        first = await client.post(url, json=outcome)
        assert first.status_code == 200 and first.json()["recorded"] is True
        again = await client.post(url, json=outcome)
        assert again.status_code == 200 and again.json()["recorded"] is False
        other = await client.post(url, json={**outcome, "realized_pnl": -3})
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "outcome_conflict"
        missing = await client.post("/reviews/nope/outcome", json=outcome)
        assert missing.status_code == 404
        bad = await client.post(url, json={"filled": "maybe"})
        assert bad.status_code == 422
