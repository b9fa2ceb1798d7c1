"""``lanes replay``: reviews served through the real app, re-decided by a candidate, diffed.

The served arm is the bootstrap heuristic. The window holds, in this time order:

    clean, risky, clean, live, risky, clean

- clean: a small liquid paper buy (1 bps spread); the heuristic approves -> submit.
- risky: high volatility, uncertain regime, 3 recent rejects, no quoted spread (risk 0.70);
  the heuristic vetoes -> reject (``verdict_veto``).
- live: a clean order in ``live`` mode; live trading is off -> reject (``trading_mode``), whatever
  the reviewer says.

Candidates (heuristic artifacts with other parameters, so every decision is deterministic):

- MIXED vetoes any quoted spread (so the clean orders flip submit -> reject) and approves risk
  up to 0.99 (so the risky ones flip reject -> submit); the live one stays rejected.
- STRICT vetoes everything: submits flip to reject, nothing flips to submit.

The reviews are served two days ago (the app's clock is pinned there) with request times
relative to it, and replayed today: only gates that judge each request as of its recorded time
keep the decisions of the served artifact itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from app.db.models import ArtifactEventRow
from app.db.session import read_only, unit_of_work
from app.lanes import service as lanes
from app.lanes.replay import EmptyWindow
from app.main import create_app
from app.registry import evidence
from app.registry import repository as registry
from app.registry.artifact import heuristic_bootstrap, live_manifest
from app.registry.evidence import EvidenceKind
from app.registry.service import PromotionCode, register
from app.registry.states import ArtifactState
from jangar_stub import DEFAULT_ANSWER, JangarStub
from tests.conftest import AppFactory, Clock, make_settings, truncate
from tests.support.cli import invoke
from tests.support.live import live_state
from tests.support.registry import scorecard
from tests.support.requests import base_request

TOKEN = "replay-admin-token-0123456789abcdef"  # >= 32 characters
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Operator": "alice"}
MIXED = {
    "veto_threshold": 0.99,
    "adjust_threshold": 0.99,
    "wide_spread_bps": 0.5,
    "wide_spread_points": 1.0,
}
STRICT = {"veto_threshold": 0.0, "adjust_threshold": 0.0}
PLAN = ("clean", "risky", "clean", "live", "risky", "clean")
App = tuple[httpx.AsyncClient, Any]


def request_for(kind: str, at: datetime, i: int) -> dict[str, Any]:
    body = base_request(now=at, strategy_id=f"replay-{kind}", qty=str(10 + i))
    if kind == "risky":
        body["decision"]["regime_hmm"] = {"regime_id": "r2", "entropy_band": "high"}
        body["decision"]["params"] = {"price_snapshot": "200.00", "volatility": "0.1"}
        body["recent_decisions"] = [{"status": "rejected"}] * 3
        del body["market"]["spread"]
    if kind == "live":
        body["trading_mode"] = "live"
    return body


async def serve_window(
    client: httpx.AsyncClient, clock: Clock, start: datetime
) -> dict[str, dict[str, Any]]:
    """Serve ``PLAN`` one second apart from ``start``; review_id -> (kind, answer)."""
    served: dict[str, dict[str, Any]] = {}
    for i, kind in enumerate(PLAN):
        at = start + timedelta(seconds=i)
        clock.fixed = at
        r = await client.post("/review", json=request_for(kind, at, i))
        assert r.status_code == 200, r.text
        served[r.json()["review_id"]] = {"kind": kind, **r.json()}
    clock.fixed = None
    return served


def ids_of(served: dict[str, dict[str, Any]], kind: str) -> list[str]:
    return [rid for rid, s in served.items() if s["kind"] == kind]


async def add_heuristic(app: Any, params: dict[str, float]) -> str:
    """Register a heuristic artifact with ``params`` and a passing scorecard (a candidate)."""
    manifest, state = heuristic_bootstrap("trade-review", "v1")
    state = copy.deepcopy(state)
    state["heuristic"]["params"].update(params)
    now = datetime.now(UTC)
    async with unit_of_work(app.state.pipeline.factory) as s:
        digest = await register(s, manifest, state, actor="test", lineage={}, now=now)
        await evidence.add(
            s, digest, EvidenceKind.SCORECARD, scorecard(digest), actor="test", now=now
        )
    return digest


async def replay(app: Any, digest: str, since: datetime, until: datetime) -> Any:
    deps = app.state.pipeline
    return await lanes.replay_candidate(
        deps.factory,
        app.state.settings,
        artifact=digest,
        since=since,
        until=until,
        actor="test",
        clock=lambda: datetime.now(UTC),
    )


async def promote(
    app: Any,
    digest: str,
    target: ArtifactState,
    approval: dict[str, Any] | None = None,
    waivers: frozenset[str] = frozenset(),
) -> Any:
    return await lanes.promote(
        app.state.pipeline.factory,
        app.state.settings,
        digest=digest,
        target=target,
        actor="test",
        approval=approval,
        reason="replay test",
        clock=lambda: datetime.now(UTC),
        waivers=waivers,
    )


def two_days_ago() -> datetime:
    return (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)


# ------------------------------------------------------------------------------ the diff


async def test_replay_when_candidate_flips_both_ways_then_exact_counts_and_reject_to_submit_first(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory() as (client, app):
        served = await serve_window(client, clock, start)
        assert [s["decision"] for s in served.values()] == [
            "submit", "reject", "submit", "reject", "reject", "submit",
        ]  # fmt: skip
        mixed = await add_heuristic(app, MIXED)

        result = await replay(app, mixed, start - timedelta(hours=1), datetime.now(UTC))

    rep = result.report
    assert (rep.window_reviews, rep.n, rep.errors) == (6, 6, 0)
    assert (rep.same, rep.submit_to_reject, rep.reject_to_submit) == (1, 3, 2)
    assert rep.reject_to_submit_share == pytest.approx(2 / 6, abs=1e-6)
    assert [f["change"] for f in rep.flips] == ["reject_to_submit"] * 2 + ["submit_to_reject"] * 3
    risky, clean = ids_of(served, "risky"), ids_of(served, "clean")
    assert [f["review_id"] for f in rep.flips] == risky + clean  # each group in time order
    first = rep.flips[0]
    assert first["symbol"] == "AAPL" and first["strategy_id"] == "replay-risky"
    assert first["served_decision"] == "reject" and first["served_reasons"] == ["verdict_veto"]
    assert first["new_decision"] == "submit" and first["new_reasons"] == []
    assert rep.flips[-1]["new_reasons"] == ["verdict_veto"]
    # the live order stays rejected by its gate: not a flip, whatever the candidate says
    assert ids_of(served, "live")[0] not in {f["review_id"] for f in rep.flips}
    assert not result.passes
    assert any("2 of 6" in r and "replay_max_reject_to_submit" in r for r in result.reasons)

    async with read_only(app.state.pipeline.factory) as s:
        stored = await evidence.latest(s, mixed, EvidenceKind.REPLAY)
    assert stored is not None and stored.evidence_hash == result.evidence_hash
    assert stored.payload["reject_to_submit"] == 2


async def test_replay_when_served_artifact_replays_days_old_requests_then_every_decision_same(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory() as (client, app):
        served = await serve_window(client, clock, start)
        active = app.state.pipeline.live.artifact.artifact_hash

        result = await replay(app, active, start - timedelta(hours=1), datetime.now(UTC))

        # A request of the window (another size: a new review) judged today is stale; the
        # replay judged the recorded ones at their own time.
        today = (await client.post("/review", json=request_for("clean", start, 9))).json()
    assert len(served) == 6
    assert today["decision"] == "reject" and "decision_age" in today["reasons"]
    rep = result.report
    assert (rep.n, rep.same, rep.submit_to_reject, rep.reject_to_submit) == (6, 6, 0, 0)
    assert rep.flips == [] and result.passes


async def test_replay_when_trading_was_halted_then_order_judged_halted_and_not_flipped(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory(admin_token=TOKEN) as (client, app):
        clock.fixed = start
        r = await client.post("/admin/controls", json={"trading_state": "HALTED"}, headers=AUTH)
        assert r.status_code == 200, r.text
        await app.state.pipeline.live.refresh()
        clock.fixed = start + timedelta(seconds=1)
        halted = await client.post("/review", json=request_for("risky", clock.fixed, 0))
        clock.fixed = start + timedelta(seconds=2)
        r = await client.post(
            "/admin/controls", json={"trading_state": "ACTIVE", "reason": "resumed"}, headers=AUTH
        )
        assert r.status_code == 200, r.text
        await app.state.pipeline.live.refresh()
        clock.fixed = start + timedelta(seconds=3)
        open_ = await client.post("/review", json=request_for("risky", clock.fixed, 1))
        clock.fixed = None
        assert halted.json()["reasons"] == ["verdict_veto", "trading_state"]
        assert open_.json()["reasons"] == ["verdict_veto"]
        mixed = await add_heuristic(app, MIXED)

        result = await replay(app, mixed, start, datetime.now(UTC))

    rep = result.report
    assert (rep.n, rep.same, rep.reject_to_submit) == (2, 1, 1)
    assert [f["review_id"] for f in rep.flips] == [open_.json()["review_id"]]


async def test_replay_when_window_is_empty_then_raises_and_records_nothing(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory() as (client, app):
        await serve_window(client, clock, start)
        mixed = await add_heuristic(app, MIXED)
        with pytest.raises(EmptyWindow, match="no evidence of safety"):
            await replay(app, mixed, start - timedelta(days=3), start - timedelta(days=1))
        async with read_only(app.state.pipeline.factory) as s:
            assert await evidence.latest(s, mixed, EvidenceKind.REPLAY) is None


async def test_replay_when_dspy_live_candidate_approves_through_stub_then_vetoes_flip_to_submit(
    sqlite_url: str, jangar_stub: JangarStub
) -> None:
    clock = Clock()
    start = two_days_ago()
    async with sqlite_app(sqlite_url, clock, jangar_base_url=jangar_stub.base_url) as (c, app):
        served = await serve_window(c, clock, start)
        manifest = live_manifest(
            program_name="trade-review",
            signature_version="v1",
            model="gpt-5.3-codex-spark",
            optimizer=None,
            dataset_hash=None,
        )
        async with unit_of_work(app.state.pipeline.factory) as s:
            live = await register(
                s, manifest, live_state(), actor="test", lineage={}, now=datetime.now(UTC)
            )
        jangar_stub.reset()
        jangar_stub.set_answer(dict(DEFAULT_ANSWER))  # approve, confidence 0.82, low uncertainty

        result = await replay(app, live, start - timedelta(hours=1), datetime.now(UTC))

    rep = result.report
    assert len(jangar_stub.requests) == 6  # every recorded request went to the model
    assert (rep.n, rep.same, rep.submit_to_reject, rep.reject_to_submit) == (6, 4, 0, 2)
    assert [f["review_id"] for f in rep.flips] == ids_of(served, "risky")
    assert {f["new_executor"] for f in rep.flips} == {"dspy_live"}
    assert (rep.model_extra or {})["fallbacks"] == 0


# ------------------------------------------------------------------------------ promotion


async def test_promote_to_canary_when_replay_flips_reject_to_submit_then_denied_with_reason(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory() as (client, app):
        await serve_window(client, clock, start)
        mixed = await add_heuristic(app, MIXED)
        assert (await promote(app, mixed, ArtifactState.SHADOW)).promoted  # no replay needed
        await replay(app, mixed, start - timedelta(hours=1), datetime.now(UTC))

        denied = await promote(app, mixed, ArtifactState.CANARY)

        async with read_only(app.state.pipeline.factory) as s:
            row = await registry.get_by_hash(s, mixed)
            record = await evidence.latest(s, mixed, EvidenceKind.PROMOTION_DENIED)
    assert not denied.promoted and denied.code is PromotionCode.GATE_FAILED
    assert len(denied.reasons) == 1
    assert denied.reasons[0].startswith("replay: 2 of 6 recorded orders the served arm rejected")
    assert "waive 'replay'" in denied.reasons[0]
    assert row is not None and row.state == "shadow"
    assert record is not None and record.payload["reasons"] == denied.reasons


async def test_promote_to_active_when_replay_flips_only_submit_to_reject_then_promoted(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory(learn_shadow_duration_days=0) as (client, app):
        await serve_window(client, clock, start)
        strict = await add_heuristic(app, STRICT)
        assert (await promote(app, strict, ArtifactState.SHADOW)).promoted
        result = await replay(app, strict, start - timedelta(hours=1), datetime.now(UTC))
        assert (result.report.submit_to_reject, result.report.reject_to_submit) == (3, 0)

        done = await promote(app, strict, ArtifactState.ACTIVE, {"approver": "risk", "ticket": "1"})

    assert done.promoted, done.reasons


async def test_promote_to_active_when_reviews_served_and_no_replay_then_denied_even_if_waived(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory(learn_shadow_duration_days=0) as (client, app):
        await serve_window(client, clock, start)
        mixed = await add_heuristic(app, MIXED)
        assert (await promote(app, mixed, ArtifactState.SHADOW)).promoted
        approval = {"approver": "risk", "ticket": "2", "waive": ["replay"]}

        denied = await promote(app, mixed, ArtifactState.ACTIVE, approval)

    assert not denied.promoted and denied.code is PromotionCode.GATE_FAILED
    assert denied.reasons == [
        "no replay of the reviews served in the last 7 days (run lanes replay --artifact ...)"
    ]


async def test_promote_to_active_when_reviews_only_before_lookback_then_no_replay_required(
    app_factory: AppFactory, clock: Clock
) -> None:
    async with app_factory(learn_shadow_duration_days=0) as (client, app):
        await serve_window(client, clock, datetime.now(UTC) - timedelta(days=8))
        mixed = await add_heuristic(app, MIXED)
        assert (await promote(app, mixed, ArtifactState.SHADOW)).promoted

        done = await promote(app, mixed, ArtifactState.ACTIVE, {"approver": "risk", "ticket": "3"})

    assert done.promoted, done.reasons


async def test_promote_to_active_when_approval_waives_replay_then_promoted_and_waiver_on_event(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory(learn_shadow_duration_days=0) as (client, app):
        await serve_window(client, clock, start)
        mixed = await add_heuristic(app, MIXED)
        assert (await promote(app, mixed, ArtifactState.SHADOW)).promoted
        await replay(app, mixed, start - timedelta(hours=1), datetime.now(UTC))
        plain = await promote(app, mixed, ArtifactState.ACTIVE, {"approver": "risk", "ticket": "4"})
        assert not plain.promoted and plain.reasons[0].startswith("replay: 2 of 6")

        approval = {"approver": "risk", "ticket": "4", "waive": ["replay"]}
        done = await promote(app, mixed, ArtifactState.ACTIVE, approval)

        async with read_only(app.state.pipeline.factory) as s:
            events = list(
                (
                    await s.execute(
                        select(ArtifactEventRow.to_state, ArtifactEventRow.reason)
                        .where(ArtifactEventRow.artifact_hash == mixed)
                        .order_by(ArtifactEventRow.id)
                    )
                ).all()
            )
    assert done.promoted, done.reasons
    to_state, reason = events[-1]
    assert to_state == "active"
    assert reason.startswith("replay test [waived: replay: 2 of 6 recorded orders")


async def test_promote_to_active_when_replay_window_ended_before_lookback_then_denied(
    app_factory: AppFactory, clock: Clock
) -> None:
    old = datetime.now(UTC) - timedelta(days=10)
    async with app_factory(learn_shadow_duration_days=0) as (client, app):
        await serve_window(client, clock, old)
        await serve_window(client, clock, two_days_ago())
        strict = await add_heuristic(app, STRICT)
        assert (await promote(app, strict, ArtifactState.SHADOW)).promoted
        stale = await replay(app, strict, old - timedelta(hours=1), old + timedelta(hours=1))
        assert stale.report.n == 6 and stale.passes

        denied = await promote(app, strict, ArtifactState.ACTIVE, {"approver": "r", "ticket": "5"})

    assert not denied.promoted and denied.code is PromotionCode.GATE_FAILED
    assert len(denied.reasons) == 1 and denied.reasons[0].startswith("replay window ended ")
    assert "before the last 7 days in which reviews were served" in denied.reasons[0]


async def test_admin_transition_to_canary_when_flips_then_409_and_with_waive_replay_then_200(
    app_factory: AppFactory, clock: Clock
) -> None:
    start = two_days_ago()
    async with app_factory(admin_token=TOKEN) as (client, app):
        await serve_window(client, clock, start)
        mixed = await add_heuristic(app, MIXED)
        path = f"/admin/artifacts/{mixed}/transition"
        assert (await client.post(path, json={"to": "shadow"}, headers=AUTH)).status_code == 200
        await replay(app, mixed, start - timedelta(hours=1), datetime.now(UTC))

        denied = await client.post(path, json={"to": "canary"}, headers=AUTH)
        waived = await client.post(
            path, json={"to": "canary", "waive": ["replay"], "reason": "seen"}, headers=AUTH
        )
        shown = (await client.get(f"/admin/artifacts/{mixed}", headers=AUTH)).json()

    assert denied.status_code == 409
    error = denied.json()["error"]
    assert error["code"] == "E_LEARN_GATE_FAILED"
    assert error["details"]["reasons"][0].startswith("replay: 2 of 6 recorded orders")
    assert waived.status_code == 200, waived.text
    last = shown["events"][-1]
    assert (last["to"], last["actor"]) == ("canary", "operator:alice")
    assert last["reason"].startswith("seen [waived: replay: 2 of 6")


# ------------------------------------------------------------------------------ CLI


@contextlib.asynccontextmanager
async def sqlite_app(url: str, clock: Clock, **overrides: Any) -> AsyncIterator[App]:
    """The real app on a freshly truncated SQLite database with a clock the test pins."""
    await truncate(url)
    app = create_app(make_settings(url, **overrides), clock=clock)
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app


def served_sqlite(url: str) -> tuple[dict[str, dict[str, Any]], str, str, datetime]:
    """Serve the window on SQLite (own loop, own thread); (served, active, mixed, start)."""
    out: list[Any] = []

    async def go() -> None:
        clock = Clock()
        start = two_days_ago()
        async with sqlite_app(url, clock) as (client, app):
            served = await serve_window(client, clock, start)
            mixed = await add_heuristic(app, MIXED)
            out.append((served, app.state.pipeline.live.artifact.artifact_hash, mixed, start))

    thread = threading.Thread(target=lambda: asyncio.run(go()))
    thread.start()
    thread.join(120)
    return out[0]


def test_cli_replay_json_when_flips_then_reject_to_submit_first_and_exits_7(
    sqlite_url: str,
) -> None:
    served, _, mixed, start = served_sqlite(sqlite_url)
    since = (start - timedelta(hours=1)).isoformat()
    env = {"DATABASE_URL": sqlite_url}

    ran = invoke("lanes", "replay", "--artifact", mixed, "--since", since, "--json", env=env)

    assert ran.exit_code == 7, ran.output
    out = json.loads(ran.stdout)
    assert (out["n"], out["same"], out["submit_to_reject"], out["reject_to_submit"]) == (6, 1, 3, 2)
    assert [f["review_id"] for f in out["flips"][:2]] == ids_of(served, "risky")
    assert out["flips"][0]["served_reasons"] == ["verdict_veto"]
    assert out["flips"][0]["new_decision"] == "submit"
    assert out["passes"] is False and len(out["evidence_hash"]) == 64

    shown = json.loads(invoke("lanes", "show", mixed, env=env).stdout)
    replays = [e for e in shown["evidence"] if e["kind"] == "replay"]
    assert [e["hash"] for e in replays] == [out["evidence_hash"]]
    assert [o["lane"] for o in shown["lane_outputs"]] == ["replay"]


def test_cli_replay_table_when_flips_then_counts_and_flips_on_stderr_hash_on_stdout(
    sqlite_url: str,
) -> None:
    served, _, mixed, _ = served_sqlite(sqlite_url)
    env = {"DATABASE_URL": sqlite_url}

    ran = invoke("lanes", "replay", "--artifact", mixed, "--days", "3", env=env)

    assert ran.exit_code == 7, ran.output
    assert len(ran.stdout.strip()) == 64  # the evidence hash, nothing else
    err = ran.stderr
    assert "6 of 6 recorded reviews" in err
    for label, count in (("same", 1), ("reject -> submit", 2), ("submit -> reject", 3)):
        assert any(
            line.strip("│┃ ").startswith(label) and line.rstrip(" │┃").endswith(str(count))
            for line in err.splitlines()
        ), (label, err)
    flips = [line.split() for line in err.splitlines() if " -> " in line and "stored:" in line]
    risky, clean = ids_of(served, "risky"), ids_of(served, "clean")
    assert [tuple(f[:3]) for f in flips] == [("reject", "->", "submit")] * 2 + [
        ("submit", "->", "reject")
    ] * 3
    assert [f[3] for f in flips] == risky + clean  # whole review ids, reject -> submit first
    assert flips[0][5:] == ["AAPL", "replay-risky", "stored:", "verdict_veto", "new:", "submit"]
    assert "promotion bar: fails" in err


def test_cli_replay_when_served_artifact_then_no_flips_and_exits_0(sqlite_url: str) -> None:
    _, active, _, _ = served_sqlite(sqlite_url)

    ran = invoke(
        "lanes", "replay", "--artifact", active, "--json", env={"DATABASE_URL": sqlite_url}
    )

    assert ran.exit_code == 0, ran.output
    out = json.loads(ran.stdout)
    assert (out["n"], out["same"], out["flips"], out["passes"]) == (6, 6, [], True)


def test_cli_replay_when_window_empty_then_exits_1_explains_and_records_nothing(
    sqlite_url: str,
) -> None:
    _, _, mixed, start = served_sqlite(sqlite_url)
    env = {"DATABASE_URL": sqlite_url}
    until = (start - timedelta(days=1)).isoformat()

    ran = invoke("lanes", "replay", "--artifact", mixed, "--until", until, "--json", env=env)
    table = invoke("lanes", "replay", "--artifact", mixed, "--until", until, env=env)

    assert ran.exit_code == 1 and table.exit_code == 1
    out = json.loads(ran.stdout)
    assert out["window_reviews"] == 0 and out["recorded"] is False
    assert "no evidence of safety" in out["message"]
    assert "no evidence of safety" in " ".join(table.stderr.split())
    assert table.stdout == ""
    shown = json.loads(invoke("lanes", "show", mixed, env=env).stdout)
    assert [e["kind"] for e in shown["evidence"]] == ["scorecard"]


def test_cli_promote_when_replay_flips_then_exit_3_and_waiver_for_active_needs_approver(
    sqlite_url: str,
) -> None:
    _, _, mixed, _ = served_sqlite(sqlite_url)
    env = {"DATABASE_URL": sqlite_url}
    assert invoke("lanes", "promote", mixed, "--to", "shadow", env=env).exit_code == 0
    ran = invoke("lanes", "replay", "--artifact", mixed, "--days", "3", env=env)
    assert ran.exit_code == 7, ran.output

    denied = invoke("lanes", "promote", mixed, "--to", "canary", env=env)
    unapproved = invoke("lanes", "promote", mixed, "--to", "active", "--waive", "replay", env=env)
    waived = invoke("lanes", "promote", mixed, "--to", "canary", "--waive", "replay", env=env)

    assert denied.exit_code == 3, denied.output
    assert "E_LEARN_GATE_FAILED" in denied.stderr and "replay: 2 of 6" in denied.stderr
    assert unapproved.exit_code == 2
    assert waived.exit_code == 0, waived.output
