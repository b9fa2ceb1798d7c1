"""Each configuration variable of the artifact lifecycle has an observable effect, shown here
where no other test showed it (tests/README.md maps every variable to its test): the promotion
policy (LLM_DSPY_COMPILE_METRICS_POLICY_REF, LEARN_GATE_DELTA_SHARPE, LEARN_GATE_MAXDD_TOL,
LEARN_SHADOW_DURATION_DAYS), the shadow runner (SHADOW_ENABLED, SHADOW_SAMPLE_RATE), canary
evidence and defaults (LEARN_SHADOW_MAX_DISAGREEMENT, LEARN_SHADOW_MAX_LATENCY_RATIO,
ROLLOUT_DEFAULT_*, ROLLOUT_LATENCY_FLOOR_MS), the post-promotion watch (POST_PROMOTION_*),
the background loops (ROLLOUT_CONTROLLER_ENABLED/PERIOD, LEARN_DRIFT_ENABLED/PERIOD) and the
drift thresholds (LEARN_DRIFT_PSI_THRESH, LEARN_DRIFT_ALPHA)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.models import ShadowReviewRow
from app.db.session import unit_of_work
from app.registry import evidence
from app.registry.evidence import EvidenceKind
from app.registry.states import ArtifactState
from jangar_stub import DEFAULT_ANSWER, Behaviour, JangarStub
from tests.conftest import AppFactory, truncate
from tests.integration.test_drift import normal, shifted
from tests.integration.test_rollout import rollout_app
from tests.support.live import AppFactory as LiveAppFactory
from tests.support.live import running_app
from tests.support.registry import add_artifact, promote_in, scorecard, states
from tests.support.requests import base_request
from tests.support.rollout import FakeClock, passing_scorecard, register_live, review, wait_until

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "surface-lifecycle-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Operator": "surface"}
# The rollout harness (tests/integration/test_rollout.py: rollout_app) has its own token.
AUTH_R = {"authorization": "Bearer rollout-admin-token-0123456789abcdef", "x-operator": "surface"}
# Background work is waited for with a margin (tests/README.md, "Timing margins").
WITHIN_S = 5.0


async def with_card(app: Any, n: float, **card: Any) -> str:
    """A heuristic candidate whose only scorecard is ``scorecard(...)`` with ``card`` over it."""
    digest = await add_artifact(app, n, card=False)
    async with unit_of_work(app.state.pipeline.factory) as s:
        await evidence.add(
            s,
            digest,
            EvidenceKind.SCORECARD,
            scorecard(digest, **card),
            actor="test",
            now=datetime.now(UTC),
        )
    return digest


async def to(client: httpx.AsyncClient, digest: str, target: str, **body: Any) -> httpx.Response:
    return await client.post(
        f"/admin/artifacts/{digest}/transition", json={"to": target, **body}, headers=AUTH
    )


# ------------------------------------------------------------------------------ promotion policy


@pytest.mark.parametrize(
    ("card", "setting", "denied_by_default"),
    [
        pytest.param(
            {"delta_sharpe": 0.05},
            {"learn_gate_delta_sharpe": 0.0},
            "delta Sharpe +0.050 < +0.100",
            id="LEARN_GATE_DELTA_SHARPE",
        ),
        pytest.param(
            {"maxdd_delta": 0.03},
            {"learn_gate_maxdd_tol": 0.05},
            "max drawdown worse by 0.030 > 0.02",
            id="LEARN_GATE_MAXDD_TOL",
        ),
    ],
)
async def test_learn_gate_override_when_set_then_replaces_the_promotion_yaml_bar(
    app_factory: AppFactory, card: dict[str, Any], setting: dict[str, Any], denied_by_default: str
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, app):
        digest = await with_card(app, 701, **card)
        denied = await to(client, digest, "shadow")
    assert denied.status_code == 409
    assert denied.json()["error"]["code"] == "E_LEARN_GATE_FAILED"
    assert denied.json()["error"]["details"]["reasons"] == [denied_by_default]
    async with app_factory(admin_token=TOKEN, **setting) as (client, app):
        digest = await with_card(app, 702, **card)
        allowed = await to(client, digest, "shadow")
    assert allowed.status_code == 200, allowed.text


async def test_metrics_policy_ref_when_pointed_elsewhere_then_that_file_sets_the_bars(
    app_factory: AppFactory, tmp_path: Path
) -> None:
    shipped = (ROOT / "config" / "promotion.yaml").read_text()
    assert "min_schema_valid_rate: 0.995" in shipped
    loose = tmp_path / "promotion-loose.yaml"
    loose.write_text(shipped.replace("min_schema_valid_rate: 0.995", "min_schema_valid_rate: 0.5"))
    async with app_factory(admin_token=TOKEN) as (client, app):
        digest = await with_card(app, 703, schema_valid_rate=0.9)
        denied = await to(client, digest, "shadow")
    assert denied.status_code == 409
    assert denied.json()["error"]["details"]["reasons"] == ["schema-valid rate 0.9000 < 0.995"]
    async with app_factory(admin_token=TOKEN, llm_dspy_compile_metrics_policy_ref=str(loose)) as (
        client,
        app,
    ):
        digest = await with_card(app, 704, schema_valid_rate=0.9)
        allowed = await to(client, digest, "shadow")
    assert allowed.status_code == 200, allowed.text


@pytest.mark.parametrize(("days", "status"), [(7.0, 409), (0.0, 200)])
async def test_shadow_duration_when_not_served_in_shadow_then_active_refused(
    app_factory: AppFactory, days: float, status: int
) -> None:
    approval = {"approver": "risk", "ticket": "CHG-9"}
    async with app_factory(admin_token=TOKEN, learn_shadow_duration_days=days) as (client, app):
        digest = await with_card(app, 705)
        assert (await to(client, digest, "shadow")).status_code == 200
        r = await to(client, digest, "active", approval=approval)
    assert r.status_code == status, r.text
    if status == 409:
        assert r.json()["error"]["code"] == "E_LEARN_GATE_FAILED"
        [reason] = r.json()["error"]["details"]["reasons"]
        assert reason.endswith("days in shadow < required 7.0"), reason


# ------------------------------------------------------------------------------ shadow runner


@pytest.mark.parametrize(
    ("overrides", "mirrored"),
    [
        pytest.param({}, 4, id="default"),
        pytest.param({"shadow_enabled": False}, 0, id="SHADOW_ENABLED=false"),
        pytest.param({"shadow_sample_rate": 0.0}, 0, id="SHADOW_SAMPLE_RATE=0"),
    ],
)
async def test_shadow_settings_when_changed_then_mirroring_follows(
    live_app: LiveAppFactory, sqlite_url: str, overrides: dict[str, Any], mirrored: int
) -> None:
    async with live_app(**overrides) as (client, app):
        live = app.state.pipeline.live
        digest = await add_artifact(app, 706)
        async with unit_of_work(app.state.pipeline.factory) as s:
            await promote_in(s, digest, ArtifactState.SHADOW)
        await wait_until(lambda: live.shadow is not None, "shadow loaded", WITHIN_S)
        for i in range(4):
            r = await client.post("/review", json=base_request(strategy_id=f"mirror-{i}"))
            assert r.status_code == 200, r.text
        runner = app.state.pipeline.shadow
        assert (runner is None) is (overrides.get("shadow_enabled") is False)
        if runner is not None:
            await asyncio.wait_for(runner.drain(), 30)
    engine = create_async_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT artifact_hash FROM shadow_reviews"))).all()
    finally:
        await engine.dispose()
    assert [r[0] for r in rows] == [digest] * mirrored


# ------------------------------------------------------------------------------ canary start


async def _shadow_candidate(app: Any, clock: FakeClock) -> str:
    digest = await add_artifact(app, 707, card=False)
    async with unit_of_work(app.state.pipeline.factory) as s:
        await evidence.add(
            s, digest, EvidenceKind.SCORECARD, passing_scorecard(digest), actor="t", now=clock()
        )
        await promote_in(s, digest, ArtifactState.SHADOW)
    return digest


async def _add_shadow_rows(
    app: Any, digest: str, clock: FakeClock, *, disagree: int, llm_ms: float, served_ms: float
) -> None:
    """Ten shadow reviews as the runner records them; ``disagree`` of them disagree."""
    async with unit_of_work(app.state.pipeline.factory) as s:
        for i in range(10):
            agrees = i >= disagree
            s.add(
                ShadowReviewRow(
                    served_review_id=str(uuid.uuid4()),
                    artifact_hash=digest,
                    served_artifact_hash=app.state.pipeline.live.artifact.artifact_hash,
                    verdict="approve" if agrees else "veto",
                    decision="submit" if agrees else "reject",
                    served_decision="submit",
                    agrees=agrees,
                    reasons=[],
                    executor="dspy_live",
                    fallback_reason=None,
                    llm_latency_ms=llm_ms,
                    served_llm_latency_ms=served_ms,
                    created_at=clock(),
                )
            )


@pytest.mark.parametrize(
    ("rows", "overrides", "denied"),
    [
        pytest.param(
            {"disagree": 1, "llm_ms": 100.0, "served_ms": 100.0},
            {},
            "shadow disagreement 0.1000 > 0.01",
            id="disagreement_default",
        ),
        pytest.param(
            {"disagree": 1, "llm_ms": 100.0, "served_ms": 100.0},
            {"learn_shadow_max_disagreement": 0.2},
            None,
            id="LEARN_SHADOW_MAX_DISAGREEMENT",
        ),
        pytest.param(
            {"disagree": 0, "llm_ms": 300.0, "served_ms": 100.0},
            {},
            "shadow p95 LLM latency 300.0 ms > 1.15x served 100.0 ms",
            id="latency_default",
        ),
        pytest.param(
            {"disagree": 0, "llm_ms": 300.0, "served_ms": 100.0},
            {"learn_shadow_max_latency_ratio": 4.0},
            None,
            id="LEARN_SHADOW_MAX_LATENCY_RATIO",
        ),
    ],
)
async def test_shadow_evidence_bars_when_set_then_canary_start_follows_them(
    sqlite_url: str,
    jangar_stub: JangarStub,
    rows: dict[str, Any],
    overrides: dict[str, Any],
    denied: str | None,
) -> None:
    await truncate(sqlite_url)
    clock = FakeClock()
    settings = {"learn_shadow_min_samples": 10, **overrides}
    async with rollout_app(sqlite_url, clock, jangar_stub, **settings) as (client, app):
        digest = await _shadow_candidate(app, clock)
        await _add_shadow_rows(app, digest, clock, **rows)
        r = await client.post("/admin/rollouts", json={"artifact_hash": digest}, headers=AUTH_R)
    if denied is None:
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "running"
    else:
        assert r.status_code == 409, r.text
        assert r.json()["error"]["details"]["reasons"] == [denied]


async def test_rollout_defaults_when_start_names_none_then_settings_fill_them(
    sqlite_url: str, jangar_stub: JangarStub
) -> None:
    await truncate(sqlite_url)
    clock = FakeClock()
    defaults = {
        "rollout_default_window_seconds": 123.0,
        "rollout_default_min_samples": 7,
        "rollout_latency_floor_ms": 42.0,
    }
    async with rollout_app(sqlite_url, clock, jangar_stub, **defaults) as (client, app):
        digest = await _shadow_candidate(app, clock)
        r = await client.post("/admin/rollouts", json={"artifact_hash": digest}, headers=AUTH_R)
        assert r.status_code == 200, r.text
        current = (await client.get("/admin/rollouts/current", headers=AUTH_R)).json()
    assert (current["window_seconds"], current["min_samples"]) == (123.0, 7)
    assert current["thresholds"]["latency_floor_ms"] == 42.0


# ------------------------------------------------------------------------------ watch


@pytest.mark.parametrize(
    ("overrides", "behaviour", "later_s", "judged", "rolled_back"),
    [
        pytest.param(
            {"post_promotion_watch_enabled": False},
            Behaviour.HTTP_500,
            0.0,
            False,
            False,
            id="POST_PROMOTION_WATCH_ENABLED=false",
        ),
        pytest.param(
            {"post_promotion_watch_seconds": 60.0},
            Behaviour.HTTP_500,
            120.0,
            False,
            False,
            id="POST_PROMOTION_WATCH_SECONDS_elapsed",
        ),
        pytest.param(
            {"post_promotion_max_fallback_rate": 1.0},
            Behaviour.SCHEMA_INVALID,
            0.0,
            True,
            False,
            id="POST_PROMOTION_MAX_FALLBACK_RATE",
        ),
        pytest.param(
            {"post_promotion_max_fallback_rate": 1.0},
            Behaviour.HTTP_500,
            0.0,
            True,
            True,
            id="errors_still_bounded",
        ),
        pytest.param(
            {"post_promotion_max_fallback_rate": 1.0, "post_promotion_max_error_rate": 1.0},
            Behaviour.HTTP_500,
            0.0,
            True,
            False,
            id="POST_PROMOTION_MAX_ERROR_RATE",
        ),
    ],
)
async def test_post_promotion_watch_settings_when_changed_then_rollback_follows(
    sqlite_url: str,
    jangar_stub: JangarStub,
    overrides: dict[str, Any],
    behaviour: Behaviour,
    later_s: float,
    judged: bool,
    rolled_back: bool,
) -> None:
    # schema_invalid is a fallback but not an error; http_error is both (app/rollout/analysis).
    await truncate(sqlite_url)
    jangar_stub.set_answer(dict(DEFAULT_ANSWER))
    clock = FakeClock()
    settings = {"post_promotion_min_samples": 5, **overrides}
    async with rollout_app(sqlite_url, clock, jangar_stub, **settings) as (client, app):
        live = app.state.pipeline.live
        heuristic = live.artifact.artifact_hash
        clock.advance(1)
        promoted = await register_live(
            app, suffix=None, path=(ArtifactState.SHADOW, ArtifactState.ACTIVE), now=clock()
        )
        await wait_until(lambda: live.artifact.artifact_hash == promoted, "promoted serving")
        jangar_stub.set_behaviour(behaviour)
        clock.advance(1)
        for i in range(5):
            body = await review(client, f"watch-{i}", clock())
            assert body["lineage"]["fallback"]["used"] is True
        clock.advance(1 + later_s)
        controller = app.state.rollout_controller
        await controller.turn()
        watch = controller.last_watch
    assert (watch is not None) is judged
    if watch is not None:
        assert watch.rolled_back is rolled_back, watch.reasons
    expected = {promoted: "retired", heuristic: "active"} if rolled_back else {promoted: "active"}
    current = await states(sqlite_url)
    assert {h: current[h] for h in expected} == expected


# ------------------------------------------------------------------------------ background loops


async def _lease(url: str, name: str) -> tuple[str, str] | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT holder, renewed_at FROM service_leases WHERE name = :n"),
                    {"n": name},
                )
            ).first()
    finally:
        await engine.dispose()
    return None if row is None else (str(row[0]), str(row[1]))


@pytest.mark.parametrize(
    ("setting", "lease"),
    [
        pytest.param(
            {"rollout_controller_enabled": True, "rollout_controller_period_seconds": 0.2},
            "rollout-controller",
            id="ROLLOUT_CONTROLLER_ENABLED",
        ),
        pytest.param(
            {"learn_drift_enabled": True, "learn_drift_period_seconds": 1.0},
            "drift-monitor",
            id="LEARN_DRIFT_ENABLED",
        ),
    ],
)
async def test_background_loop_when_enabled_then_runs_by_itself_under_its_lease(
    live_app: LiveAppFactory, sqlite_url: str, setting: dict[str, Any], lease: str
) -> None:
    async with live_app():  # the harness default: loops off
        await asyncio.sleep(1.5)  # several periods of either loop: a lower bound, not a bound
        assert await _lease(sqlite_url, lease) is None
    async with live_app(**setting):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WITHIN_S
        while (first := await _lease(sqlite_url, lease)) is None:
            assert loop.time() < deadline, f"{lease} lease never taken"
            await asyncio.sleep(0.1)
        # Each period renews it: the renewal time moves while the service runs.
        while (again := await _lease(sqlite_url, lease)) == first:
            assert loop.time() < deadline + WITHIN_S, f"{lease} lease never renewed"
            await asyncio.sleep(0.1)
    assert again is not None and again[0] == first[0]  # the same replica holds it


# ------------------------------------------------------------------------------ drift thresholds

DRIFT_N = 40


async def _shifted_run(client: httpx.AsyncClient) -> dict[str, Any]:
    """A frozen reference of ordinary orders, then a window of 20x orders; the run's answer."""

    async def send(body: dict[str, Any]) -> None:
        r = await client.post(
            "/review", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert r.status_code == 200, r.text

    for i in range(DRIFT_N):
        await send(normal(i))
    frozen = await client.post("/admin/drift/run", json={}, headers=AUTH)
    assert frozen.json()["outcome"] == "ok", frozen.text
    for i in range(DRIFT_N):
        await send(shifted(i))
    r = await client.post("/admin/drift/run", json={}, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize(
    "setting",
    [
        pytest.param({}, id="default"),
        pytest.param({"learn_drift_psi_thresh": 50.0}, id="LEARN_DRIFT_PSI_THRESH"),
    ],
)
async def test_drift_thresholds_when_set_then_breaches_follow_them(
    live_app: LiveAppFactory, setting: dict[str, Any]
) -> None:
    async with live_app(
        admin_token=TOKEN,
        learn_drift_reference_reviews=DRIFT_N,
        learn_drift_window_reviews=DRIFT_N,
        **setting,
    ) as (client, _):
        run = await _shifted_run(client)
    checks = {c["metric"]: c for c in run["checks"]}
    psi = [c for name, c in checks.items() if name.endswith("_psi")]
    assert psi, sorted(checks)
    breached = {name for name, c in checks.items() if c["breach"]}
    if not setting:
        assert {"notional_to_equity_ks", "spread_bps_ks"} <= breached
        assert run["outcome"] == "breach"
    if "learn_drift_psi_thresh" in setting:
        # The floor is the recorded threshold of every PSI check, and none reaches it.
        assert all(c["threshold"] >= 50.0 for c in psi)
        assert not [c for c in psi if c["breach"]]
        assert "notional_to_equity_ks" in breached  # KS is judged as before


async def test_drift_alpha_when_tightened_then_levels_shrink_and_fewer_checks_breach(
    sqlite_url: str,
) -> None:
    """The same two windows judged at the default alpha and at 1e-12: every check's level is
    within the run's budget, and the breaches at 1e-12 are a strict subset of the default's
    (a shift this large keeps some p-values below even 1e-12)."""
    runs: dict[float, dict[str, Any]] = {}
    for alpha in (0.005, 1e-12):
        await truncate(sqlite_url)
        async with running_app(
            sqlite_url,
            admin_token=TOKEN,
            learn_drift_reference_reviews=DRIFT_N,
            learn_drift_window_reviews=DRIFT_N,
            learn_drift_alpha=alpha,
        ) as (client, _):
            runs[alpha] = await _shifted_run(client)
    loose, tight = ({c["metric"]: c for c in runs[a]["checks"]} for a in (0.005, 1e-12))
    assert set(loose) == set(tight)
    assert all(c["level"] <= 0.005 for c in loose.values())
    assert all(c["level"] <= 1e-12 for c in tight.values())
    breached_loose = {m for m, c in loose.items() if c["breach"]}
    breached_tight = {m for m, c in tight.items() if c["breach"]}
    assert breached_tight < breached_loose, (breached_tight, breached_loose)
    assert all(tight[m]["p_value"] < tight[m]["level"] for m in breached_tight)
