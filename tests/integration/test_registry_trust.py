"""Nothing reaches ACTIVE without evidence and approval (issue 8, items 12-16).

Every path that can set ACTIVE is tried as an adversary would: the admin transition, the CLI,
rollback, bootstrap and the pin; a row altered or pruned in the database is refused at every
move into a serving state and at load, each refusal with its own code. On SQLite and
PostgreSQL, through the real admin API, CLI, registry service and loader.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event as sa_event
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.models import ArtifactRow
from app.db.session import create_engine, create_session_factory, unit_of_work
from app.lanes import service as lanes
from app.main import create_app
from app.registry import evidence
from app.registry.artifact import Refusal
from app.registry.cache import LiveState, PinRefused
from app.registry.evidence import EvidenceKind
from app.registry.states import ArtifactState
from tests.conftest import AppFactory, make_settings
from tests.support.cli import invoke
from tests.support.registry import (
    PROGRAM,
    SIGNATURE,
    add_artifact,
    make_active,
    pruned,
    scalar,
    states,
    tamper,
)
from tests.support.requests import base_request

AUTH = {"Authorization": "Bearer s3cret", "X-Operator": "alice"}
ADMIN = {"admin_token": "s3cret", "learn_shadow_duration_days": 0}
APPROVAL = {"approver": "bob", "ticket": "CHG-1"}


async def move(client: httpx.AsyncClient, digest: str, to: str, **body: Any) -> httpx.Response:
    return await client.post(
        f"/admin/artifacts/{digest}/transition", json={"to": to, **body}, headers=AUTH
    )


async def rollback(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/admin/artifacts/rollback", json={"reason": "drill"}, headers=AUTH)


async def active_hash(client: httpx.AsyncClient) -> str:
    listing = (await client.get("/admin/artifacts", headers=AUTH)).json()
    (active,) = [a["artifact_hash"] for a in listing["artifacts"] if a["state"] == "active"]
    return active


async def served(client: httpx.AsyncClient) -> str:
    r = await client.post(
        "/review",
        content=json.dumps(base_request()),
        headers={"content-type": "application/json", "Idempotency-Key": str(datetime.now(UTC))},
    )
    assert r.status_code == 200, r.text
    return r.json()["lineage"]["artifact_hash"]


async def wait_ready(client: httpx.AsyncClient, expect: dict[str, Any]) -> dict[str, Any]:
    """Poll /readyz until its checks include ``expect`` (replicas poll every 0.2 s here)."""
    body: dict[str, Any] = {}
    for _ in range(40):
        body = (await client.get("/readyz")).json()
        if all(body["checks"].get(k) == v for k, v in expect.items()):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"/readyz never showed {expect}: {body}")


def load_failures(reason: str) -> float:
    return (
        REGISTRY.get_sample_value("trade_review_artifact_load_failures_total", {"reason": reason})
        or 0.0
    )


async def event_routes(url: str, digest: str) -> list[tuple[str | None, str, str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT from_state, to_state, route FROM artifact_events "
                    "WHERE artifact_hash = :h ORDER BY id"
                ),
                {"h": digest},
            )
            return [(f, t, r) for f, t, r in rows]
    finally:
        await engine.dispose()


# ------------------------------------------------------------- 12: every path to ACTIVE


async def test_candidate_when_retired_then_admin_cannot_activate_it(
    app_factory: AppFactory, database_url: str
) -> None:
    """The reported hole: candidate -> retired -> active skipped shadow and approval."""
    async with app_factory(**ADMIN) as (client, app):
        digest = await add_artifact(app, 1)
        assert (await move(client, digest, "retired")).status_code == 200
        for body in ({}, {"approval": APPROVAL}):
            r = await move(client, digest, "active", **body)
            assert r.status_code == 409, r.text
            assert r.json()["error"]["code"] == "invalid_transition"
            assert "only by rollback" in r.json()["error"]["message"]
    assert (await states(database_url))[digest] == "retired"


async def test_formerly_active_when_retired_then_promote_refused_and_only_rollback_restores(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        boot = await active_hash(client)
        new = await add_artifact(app, 2)
        await make_active(app, new)
        # boot was active: even so, a promotion is not the way back (no approval skipped).
        r = await move(client, boot, "active", approval=APPROVAL)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "invalid_transition"
        rb = await rollback(client)
        assert rb.status_code == 200, rb.text
        assert rb.json() == {"restored": boot, "replaced": new}
    assert await event_routes(database_url, boot) == [
        (None, "candidate", "register"),
        ("candidate", "shadow", "bootstrap"),
        ("shadow", "active", "bootstrap"),
        ("active", "retired", "supersede"),
        ("retired", "active", "rollback"),
    ]
    assert (await event_routes(database_url, new))[-1] == ("active", "retired", "rollback")


async def test_cli_when_retired_candidate_promoted_to_active_then_exit_5_refused(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        digest = await add_artifact(app, 3)
        assert (await move(client, digest, "retired")).status_code == 200
    env = {"DATABASE_URL": database_url}
    done = invoke(
        "lanes", "promote", digest, "--to", "active", "--approver", "bob", env=env
    )  # fmt: skip
    assert done.exit_code == 5, done.output
    assert "only by rollback" in " ".join(done.stderr.split())  # rich wraps long lines
    assert (await states(database_url))[digest] == "retired"


async def test_rollback_when_newer_retired_candidates_exist_then_restores_formerly_active_only(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        boot = await active_hash(client)
        new = await add_artifact(app, 4)
        await make_active(app, new)
        for n in range(5, 8):  # retired after boot, never active: never a rollback target
            digest = await add_artifact(app, n)
            assert (await move(client, digest, "retired")).status_code == 200
        rb = await rollback(client)
        assert rb.json()["restored"] == boot


async def test_bootstrap_when_registry_had_an_active_then_restart_does_not_activate_heuristic(
    app_factory: AppFactory, database_url: str
) -> None:
    """Bootstrap activates only a registry that never had an ACTIVE: an operator who retired
    the ACTIVE artifact gets an empty slot (not ready), not a silent re-activation."""
    async with app_factory(**ADMIN) as (client, _):
        boot = await active_hash(client)
        assert (await move(client, boot, "retired", reason="pulled")).status_code == 200
    async with app_factory(**ADMIN) as (client, _):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["artifact"] == "none"
        assert (await states(database_url))[boot] == "retired"
        rb = await rollback(client)  # the operator's explicit way back
        assert rb.json() == {"restored": boot, "replaced": None}
        await wait_ready(client, {"artifact": boot})


# ------------------------------------------------------------- 13: verified at every move


async def _to_state_before(client: httpx.AsyncClient, app: Any, digest: str, target: str) -> None:
    """Bring ``digest`` to the state from which ``target`` is a promotion."""
    if target in ("canary", "active"):
        assert (await move(client, digest, "shadow")).status_code == 200


@pytest.mark.parametrize("target", ["shadow", "canary", "active"])
async def test_altered_row_when_promoted_then_refused_content_altered_and_recorded(
    app_factory: AppFactory, database_url: str, target: str
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        digest = await add_artifact(app, 10)
        await _to_state_before(client, app, digest, target)
        before = (await states(database_url))[digest]
        await tamper(database_url, digest)
        r = await move(client, digest, target, approval=APPROVAL)
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "artifact_content_altered"
        assert error["details"]["refusal"] == "content_altered"
        assert "altered" in error["details"]["reasons"][0]
        shown = (await client.get(f"/admin/artifacts/{digest}", headers=AUTH)).json()
        denied = [e for e in shown["evidence"] if e["kind"] == "promotion_denied"]
        assert denied[-1]["payload"]["code"] == "content_altered"
    assert (await states(database_url))[digest] == before


async def test_pruned_state_when_promoted_then_refused_state_pruned(
    app_factory: AppFactory, database_url: str
) -> None:
    """A state pruned by an older retention (or by hand) is refused with its own code."""
    async with app_factory(**ADMIN) as (client, app):
        digest = await add_artifact(app, 11)
        assert (await move(client, digest, "shadow")).status_code == 200
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(
                update(ArtifactRow)
                .where(ArtifactRow.artifact_hash == digest)
                .values(program_state={"pruned": True})
            )
        await engine.dispose()
        r = await move(client, digest, "active", approval=APPROVAL)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "artifact_state_pruned"
    assert (await states(database_url))[digest] == "shadow"


async def test_rollback_when_target_altered_then_refused_content_altered(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        boot = await active_hash(client)
        new = await add_artifact(app, 12)
        await make_active(app, new)
        await tamper(database_url, boot)
        rb = await rollback(client)
        assert rb.status_code == 409
        assert rb.json()["error"]["code"] == "artifact_content_altered"
    assert (await states(database_url))[new] == "active"  # nothing moved


async def test_rollback_when_newest_target_pruned_then_restores_next_retained(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        boot = await active_hash(client)
        first = await add_artifact(app, 13)
        await make_active(app, first)
        second = await add_artifact(app, 14)
        await make_active(app, second)
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:  # as an older retention rule would have
            await conn.execute(
                update(ArtifactRow)
                .where(ArtifactRow.artifact_hash == first)
                .values(program_state={"pruned": True})
            )
        await engine.dispose()
        rb = await rollback(client)
        assert rb.json() == {"restored": boot, "replaced": second}
        again = await rollback(client)  # first is pruned, second was rolled back from
        assert again.status_code == 404


# ------------------------------------------------------------- 14: rollback rule, retention


async def test_two_rollbacks_in_a_row_then_two_steps_back_never_ping_pong(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        boot = await active_hash(client)
        a = await add_artifact(app, 20)
        await make_active(app, a)
        b = await add_artifact(app, 21)
        await make_active(app, b)
        assert (await rollback(client)).json() == {"restored": a, "replaced": b}
        assert (await rollback(client)).json() == {"restored": boot, "replaced": a}
        third = await rollback(client)  # b and a were both rolled back from: nothing is left
        assert third.status_code == 404
        assert await active_hash(client) == boot
        await wait_ready(client, {"artifact": boot})


async def test_retention_when_many_candidates_retired_then_last_known_good_keeps_state(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        boot = await active_hash(client)
        new = await add_artifact(app, 30)
        await make_active(app, new)
        routine = [await add_artifact(app, 31 + i) for i in range(12)]
        for digest in routine:
            assert (await move(client, digest, "retired")).status_code == 200
        gone = await pruned(database_url)
        assert boot not in gone  # the last known good is never pushed out by candidates
        assert gone == set(routine[:2])  # routine retirements have their own window of 10
        rb = await rollback(client)
        assert rb.json() == {"restored": boot, "replaced": new}
        await wait_ready(client, {"artifact": boot})


async def test_retention_when_12_were_active_then_newest_10_rollback_targets_keep_state(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(**ADMIN) as (client, app):
        boot = await active_hash(client)
        chain = [boot]
        for i in range(12):
            digest = await add_artifact(app, 40 + i)
            await make_active(app, digest)
            chain.append(digest)
        # 12 retired rollback targets (boot + 11), the newest 10 keep their state.
        assert await pruned(database_url) == set(chain[:2])
        assert (await rollback(client)).json()["restored"] == chain[-2]
    assert (
        await scalar(
            database_url,
            "SELECT count(*) FROM artifact_events WHERE route = 'rollback' AND to_state = 'active'",
        )
        == 1
    )


# ------------------------------------------------------------- 15: the pin


async def test_pin_when_never_active_then_startup_refuses_with_one_line(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(**ADMIN) as (_, app):
        candidate = await add_artifact(app, 50)
    app = create_app(make_settings(database_url, llm_dspy_artifact_hash=candidate))
    with pytest.raises(PinRefused, match="never active") as refused:
        async with app.router.lifespan_context(app):
            pass
    assert "\n" not in str(refused.value)
    assert "never_active" in str(refused.value)
    # The container's entry point says it in one line, before the server starts.
    done = invoke("serve", env={"DATABASE_URL": database_url, "LLM_DSPY_ARTIFACT_HASH": candidate})
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: LLM_DSPY_ARTIFACT_HASH")
    assert "never active" in lines[0]


async def test_pin_when_unknown_hash_then_startup_refuses(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory():
        pass
    app = create_app(make_settings(database_url, llm_dspy_artifact_hash="e" * 64))
    with pytest.raises(PinRefused, match="missing"):
        async with app.router.lifespan_context(app):
            pass


async def test_pin_when_refused_at_runtime_then_not_served_until_it_was_active(
    app_factory: AppFactory, database_url: str
) -> None:
    """The loader applies the pin rule on every load, not only at start-up (a replica that
    started while the database was down never ran the start-up check)."""
    async with app_factory(**ADMIN) as (_, app):
        candidate = await add_artifact(app, 51)
        engine = create_engine(make_settings(database_url))
        live = LiveState(
            create_session_factory(engine),
            program_name=PROGRAM,
            signature_version=SIGNATURE,
            pinned_hash=candidate,
            clock=lambda: datetime.now(UTC),
        )
        try:
            failures = load_failures("never_active")
            await live.refresh()
            assert live.artifact is None
            assert live.last_refusal == "never_active"
            assert live.pin_problem is not None and "never active" in live.pin_problem
            assert load_failures("never_active") == failures + 1
            await make_active(app, candidate)  # now it is (through evidence): it may serve
            await live.refresh()
            assert live.artifact is not None and live.artifact.artifact_hash == candidate
            assert live.last_refusal is None
        finally:
            await engine.dispose()


# ------------------------------------------------------------- 16: refusals say why


async def test_artifact_for_other_signature_when_active_then_refused_at_load_saying_so(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The registry is shared by replicas that may run different signature versions during
    an upgrade, so the serving replica refuses what was built for another one."""
    caplog.set_level(logging.ERROR, logger="trade_review")
    async with app_factory(**ADMIN) as (client, app):
        good = await active_hash(client)
        failures = load_failures("signature_mismatch")
        v2 = await add_artifact(app, 60, signature_version="v2")
        await make_active(app, v2)
        body = await wait_ready(client, {"artifact_refusal": "signature_mismatch"})
        assert body["checks"]["artifact"] == good  # the previous one keeps serving
        assert "signature version v2" in body["checks"]["artifact_error"]
        assert "runs v1" in body["checks"]["artifact_error"]
        assert await served(client) == good
        assert load_failures("signature_mismatch") == failures + 1  # refused once, for good
        assert "artifact.refused reason='signature_mismatch'" in caplog.text


async def test_pruned_active_when_replica_starts_then_readyz_says_state_pruned(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory() as (client, _):
        boot = await active_hash_direct(database_url)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(
            update(ArtifactRow)
            .where(ArtifactRow.artifact_hash == boot)
            .values(program_state={"pruned": True})
        )
    await engine.dispose()
    failures = load_failures("state_pruned")
    async with app_factory() as (client, _):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["artifact_refusal"] == "state_pruned"
        assert "pruned by retention" in ready.json()["checks"]["artifact_error"]
    assert load_failures("state_pruned") == failures + 1


async def active_hash_direct(url: str) -> str:
    (active,) = [h for h, s in (await states(url)).items() if s == "active"]
    return active


async def test_promotion_denial_when_scorecard_missing_then_still_e_learn_gate_failed(
    app_factory: AppFactory,
) -> None:
    """Refusals did not swallow the evidence codes: an intact artifact without a scorecard
    is still E_LEARN_GATE_FAILED."""
    async with app_factory(**ADMIN) as (client, app):
        digest = await add_artifact(app, 70, card=False)
        r = await move(client, digest, "shadow")
        assert r.json()["error"]["code"] == "E_LEARN_GATE_FAILED"
        async with unit_of_work(app.state.pipeline.factory) as s:
            assert await evidence.latest(s, digest, EvidenceKind.PROMOTION_DENIED) is not None
        assert (
            ArtifactState.CANDIDATE.value
            == (await client.get(f"/admin/artifacts/{digest}", headers=AUTH)).json()["state"]
        )


async def test_eval_when_active_is_another_signature_version_then_scored_without_baseline(
    app_factory: AppFactory, database_url: str
) -> None:
    """A signature upgrade starts by evaluating a new-version candidate while the old version
    is ACTIVE: the old one is no baseline for it (skipped), and the candidate is scored."""
    async with app_factory(**ADMIN) as (_, app):
        factory = app.state.pipeline.factory
        v2 = await add_artifact(app, 80, card=False, signature_version="v2")
        data = await lanes.build_synthetic(
            factory, n=30, seed=7, actor="t", clock=lambda: datetime.now(UTC)
        )
        result = await lanes.evaluate_candidate(
            factory,
            make_settings(database_url, llm_dspy_signature_version="v2"),
            artifact=v2,
            dataset_hash=data.dataset_hash,
            actor="t",
            clock=lambda: datetime.now(UTC),
            concurrency=2,
        )
    assert result.scorecard.artifact_hash == v2
    assert result.scorecard.n > 0
    assert (result.scorecard.model_extra or {})["active_hash"] is None
    assert result.scorecard.decision_agreement is None  # no baseline compared


async def test_metrics_when_started_then_load_failure_reasons_are_exactly_the_refusal_set(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as (client, _):
        exported = set(
            re.findall(
                r'^trade_review_artifact_load_failures_total\{reason="([^"]+)"\}',
                (await client.get("/metrics")).text,
                re.M,
            )
        )
    assert exported == {r.value for r in Refusal}


async def test_pin_check_when_database_fails_mid_load_then_poll_retried_not_refused_for_good(
    app_factory: AppFactory, database_url: str
) -> None:
    """A database error while the loader checks an artifact is an outage, not a verdict on
    the artifact: the poll fails and the next one serves it."""
    async with app_factory(**ADMIN) as (client, _):
        pin = await active_hash(client)  # active: a valid pin
    engine = create_engine(make_settings(database_url))
    failed: list[str] = []

    def fail_history_once(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The pin check's history query, once the replica has bootstrapped.
        if live.bootstrapped and not failed and "EXISTS" in statement.upper():
            failed.append(statement)
            raise ConnectionResetError("database went away")  # as a dropped connection does

    sa_event.listen(engine.sync_engine, "before_cursor_execute", fail_history_once)
    live = LiveState(
        create_session_factory(engine),
        program_name=PROGRAM,
        signature_version=SIGNATURE,
        pinned_hash=pin,
        clock=lambda: datetime.now(UTC),
    )
    try:
        with pytest.raises(Exception, match="database went away"):
            await live.refresh()
        assert failed and live.artifact is None and live.last_refusal is None
        await live.refresh()
        assert live.artifact is not None and live.artifact.artifact_hash == pin
        assert live.last_error is None
    finally:
        await engine.dispose()
