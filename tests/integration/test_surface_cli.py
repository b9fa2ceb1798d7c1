"""Every operator command the README shows, run as an operator runs it (typer's runner, in a
thread, against the same SQLite database a real app serves from): ``migrate``, ``controls``,
``artifacts export-state`` / ``register-live``, ``lanes dataset-build`` / ``list`` /
``promote`` (with an approval) / ``rollback`` / ``retire``, ``rollout start`` / ``show`` /
``pause`` / ``resume`` / ``abort``. Commands covered elsewhere are named in tests/README.md."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from app.db.session import unit_of_work
from app.registry import evidence
from app.registry.evidence import EvidenceKind
from app.review.program import new_program, program_state
from tests.support.cli import invoke
from tests.support.live import AppFactory, wait_serving
from tests.support.registry import add_artifact, states
from tests.support.requests import base_request
from tests.support.rollout import passing_scorecard

HASH = re.compile(r"^[0-9a-f]{64}$")


async def cli(*args: str, env: dict[str, str]) -> Any:
    """The CLI on a worker thread, so the app under test keeps serving meanwhile."""
    return await asyncio.to_thread(invoke, *args, env=env)


def env_for(url: str, **extra: str) -> dict[str, str]:
    # A wide terminal so rich tables print whole hashes.
    return {"DATABASE_URL": url, "COLUMNS": "240", **extra}


# ---------------------------------------------------------------------------------- setup


def test_migrate_when_database_is_new_then_at_head_and_rerun_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    env = env_for(f"sqlite+aiosqlite:///{path}")
    first = invoke("migrate", env=env)
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "migrations: at head"
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        [(head,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert {"llm_decision_reviews", "llm_dspy_workflow_artifacts", "control_events"} <= tables
    again = invoke("migrate", env=env)
    assert again.exit_code == 0, again.output
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


async def test_controls_when_run_without_a_change_then_prints_state_and_records_nothing(
    live_app: AppFactory, sqlite_url: str
) -> None:
    env = env_for(sqlite_url)

    async def history() -> list[dict[str, Any]]:
        listed = await cli("controls-history", "--json", env=env)
        return [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]

    async with live_app():
        before = await history()
        shown = await cli("controls", env=env)
        assert shown.exit_code == 0, shown.output
        # One readable line, not an object's repr.
        assert re.fullmatch(
            r"v\d+ trading_state=ACTIVE dspy_disabled=False routing_disabled=False\n", shown.stdout
        ), shown.stdout
        assert await history() == before  # showing records nothing
        changed = await cli("controls", "--dspy-disabled", "--actor", "dana", env=env)
        assert changed.exit_code == 0, changed.output
        again = await cli("controls", env=env)
        after = await history()
    assert "dspy_disabled=True" in again.stdout
    assert [e["actor"] for e in after] == ["cli:dana"] + [e["actor"] for e in before]


# ---------------------------------------------------------------------------------- artifacts


def test_export_state_when_run_then_writes_the_uncompiled_program_state(tmp_path: Path) -> None:
    out = tmp_path / "state.json"
    done = invoke("artifacts", "export-state", "--out", str(out), env={"COLUMNS": "240"})
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == str(out)
    assert json.loads(out.read_text()) == program_state(new_program())


async def test_register_live_when_state_file_given_then_candidate_built_for_llm_model(
    live_app: AppFactory, sqlite_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(program_state(new_program())))
    env = env_for(sqlite_url, LLM_MODEL="surface-model-1")
    async with live_app():
        done = await cli("artifacts", "register-live", "--state-file", str(state), env=env)
        assert done.exit_code == 0, done.output
        digest = done.stdout.strip()
        assert HASH.match(digest)
        other = await cli(
            "artifacts", "register-live", "--state-file", str(state), "--model", "m-2", env=env
        )
        assert other.exit_code == 0, other.output
        shown = json.loads((await cli("lanes", "show", digest, env=env)).stdout)
        bad = tmp_path / "list.json"
        bad.write_text("[1, 2]")
        refused = await cli("artifacts", "register-live", "--state-file", str(bad), env=env)
    assert shown["state"] == "candidate"
    assert shown["executor"] == "dspy_live"
    assert shown["manifest"]["model"] == "surface-model-1"  # LLM_MODEL, when --model is not given
    assert shown["lineage"] == {"source": str(state)}
    assert other.stdout.strip() != digest  # another model is another artifact
    assert refused.exit_code == 2
    assert "JSON object" in refused.output
    assert len(await states(sqlite_url)) == 3  # the bootstrap heuristic and the two


# ---------------------------------------------------------------------------------- lanes


async def test_dataset_build_when_reviews_have_outcomes_then_prints_the_same_hash_twice(
    live_app: AppFactory, sqlite_url: str
) -> None:
    env = env_for(sqlite_url)
    async with live_app() as (client, _):
        for i, pnl in enumerate((30.0, -10.0)):
            review = (await client.post("/review", json=base_request(rationale=f"ds {i}"))).json()
            outcome = {"filled": True, "fill_price": 200.0, "fill_qty": 10, "realized_pnl": pnl}
            r = await client.post(f"/reviews/{review['review_id']}/outcome", json=outcome)
            assert r.status_code == 200, r.text
        args = ("lanes", "dataset-build", "--until", "now", "--days", "1", "--seed", "3")
        first = await cli(*args, env=env)
        second = await cli(*args, env=env)
    assert first.exit_code == 0, first.output
    digest = first.stdout.strip()
    assert HASH.match(digest)
    assert second.stdout.strip() == digest  # same window and seed: same dataset
    assert "seed=3" in first.stderr
    counts = re.search(r"\{.*\}", first.stderr)
    assert counts is not None and sum(json.loads(counts.group().replace("'", '"')).values()) == 2


async def test_lanes_list_when_artifacts_registered_then_one_row_each_with_state(
    live_app: AppFactory, sqlite_url: str
) -> None:
    async with live_app() as (_, app):
        bootstrap = app.state.pipeline.live.artifact.artifact_hash
        candidate = await add_artifact(app, 601)
        listed = await cli("lanes", "list", env=env_for(sqlite_url))
    assert listed.exit_code == 0, listed.output
    rows = {
        cells[0]: cells[1:]
        for line in listed.stdout.splitlines()
        if (cells := [c.strip() for c in line.strip("│ ").split("│")]) and HASH.match(cells[0])
    }
    assert set(rows) == {bootstrap, candidate}
    assert rows[bootstrap][:2] == ["active", "heuristic"]
    assert rows[candidate][:2] == ["candidate", "heuristic"]


async def _shadow_then_active(app: Any, digest: str, env: dict[str, str]) -> None:
    """``lanes promote`` to shadow, then to active with an approval (0 days in shadow)."""
    shadow = await cli("lanes", "promote", digest, "--to", "shadow", env=env)
    assert shadow.exit_code == 0, shadow.output
    active = await cli(
        "lanes", "promote", digest, "--to", "active", "--approver", "alice", "--ticket", "CHG-7",
        env={**env, "LEARN_SHADOW_DURATION_DAYS": "0"},
    )  # fmt: skip
    assert active.exit_code == 0, active.output
    assert active.stdout.strip() == digest
    await wait_serving(app, digest)


async def test_promote_when_approved_then_active_serves_and_approval_is_evidence(
    live_app: AppFactory, sqlite_url: str
) -> None:
    env = env_for(sqlite_url)
    async with live_app() as (client, app):
        digest = await add_artifact(app, 602)
        shadow = await cli("lanes", "promote", digest, "--to", "shadow", env=env)
        assert shadow.exit_code == 0, shadow.output
        unapproved = await cli(
            "lanes",
            "promote",
            digest,
            "--to",
            "active",
            env={**env, "LEARN_SHADOW_DURATION_DAYS": "0"},
        )
        assert unapproved.exit_code == 3
        assert "E_LEARN_APPROVAL_MISSING" in unapproved.stderr
        approved = await cli(
            "lanes", "promote", digest, "--to", "active", "--approver", "alice",
            "--ticket", "CHG-7", env={**env, "LEARN_SHADOW_DURATION_DAYS": "0"},
        )  # fmt: skip
        assert approved.exit_code == 0, approved.output
        await wait_serving(app, digest)
        served = (await client.post("/review", json=base_request(rationale="after cli"))).json()
        shown = json.loads((await cli("lanes", "show", digest, env=env)).stdout)
    assert served["lineage"]["artifact_hash"] == digest
    assert shown["state"] == "active"
    [approval] = [e for e in shown["evidence"] if e["kind"] == "approval"]
    assert (approval["payload"]["approver"], approval["payload"]["ticket"]) == ("alice", "CHG-7")
    assert [(e["from"], e["to"]) for e in shown["events"]][-2:] == [
        ("candidate", "shadow"),
        ("shadow", "active"),
    ]


async def test_rollback_when_promoted_active_then_last_known_good_restored_and_served(
    live_app: AppFactory, sqlite_url: str
) -> None:
    env = env_for(sqlite_url)
    async with live_app() as (_, app):
        bootstrap = app.state.pipeline.live.artifact.artifact_hash
        digest = await add_artifact(app, 603)
        await _shadow_then_active(app, digest, env)
        rolled = await cli("lanes", "rollback", "--reason", "drill", "--actor", "erin", env=env)
        assert rolled.exit_code == 0, rolled.output
        assert rolled.stdout.strip() == bootstrap
        await wait_serving(app, bootstrap)
        nothing_left = await cli("lanes", "rollback", "--reason", "again", env=env)
    assert f"{digest[:12]} -> {bootstrap[:12]}" in rolled.stderr
    assert (await states(sqlite_url))[digest] == "retired"
    # The bootstrap was rolled back to, the promoted one rolled back from: nothing qualifies.
    assert nothing_left.exit_code == 4, nothing_left.output


async def test_retire_when_candidate_then_retired_and_cannot_be_promoted(
    live_app: AppFactory, sqlite_url: str
) -> None:
    env = env_for(sqlite_url)
    async with live_app() as (_, app):
        digest = await add_artifact(app, 604)
        retired = await cli("lanes", "retire", digest, "--reason", "superseded", env=env)
        assert retired.exit_code == 0, retired.output
        assert retired.stdout.strip() == digest
        promoted = await cli("lanes", "promote", digest, "--to", "shadow", env=env)
    assert "candidate -> retired" in retired.stderr
    assert (await states(sqlite_url))[digest] == "retired"
    assert promoted.exit_code == 5  # retired -> shadow is not in the table


# ---------------------------------------------------------------------------------- rollout


async def test_rollout_commands_when_run_in_turn_then_start_show_pause_resume_abort(
    live_app: AppFactory, sqlite_url: str
) -> None:
    env = env_for(sqlite_url, LEARN_SHADOW_MIN_SAMPLES="0")
    async with live_app() as (_, app):
        digest = await add_artifact(app, 605, card=False)
        async with unit_of_work(app.state.pipeline.factory) as s:
            await evidence.add(
                s,
                digest,
                EvidenceKind.SCORECARD,
                passing_scorecard(digest),
                actor="test",
                now=app.state.pipeline.clock(),
            )
        denied = await cli("rollout", "start", digest, env=env)  # still a candidate
        assert denied.exit_code == 1, denied.output
        assert (await cli("lanes", "promote", digest, "--to", "shadow", env=env)).exit_code == 0
        started = await cli(
            "rollout", "start", digest, "--steps", "10,100", "--window-seconds", "120",
            "--min-samples", "3", "--actor", "fay", env=env,
        )  # fmt: skip
        assert started.exit_code == 0, started.output
        shown = await cli("rollout", "show", env=env)
        paused = await cli("rollout", "pause", "--reason", "lunch", env=env)
        resumed = await cli("rollout", "resume", env=env)
        aborted = await cli("rollout", "abort", "--reason", "enough", env=env)
        after = await cli("rollout", "show", env=env)
    record = json.loads(started.stdout)
    assert record["candidate_hash"] == digest
    assert (record["state"], record["steps"], record["weight_pct"]) == (
        "running",
        [10.0, 100.0],
        10.0,
    )
    assert (record["window_seconds"], record["min_samples"]) == (120.0, 3)
    assert record["created_by"] == "cli:fay"
    assert json.loads(shown.stdout)["id"] == record["id"]
    assert [json.loads(r.stdout)["state"] for r in (paused, resumed, aborted)] == [
        "paused",
        "running",
        "aborted",
    ]
    final = json.loads(after.stdout)
    decisions = [e["decision"] for e in final["events"]]
    assert decisions[0] == "start" and decisions[-1] == "abort", decisions
    assert (await states(sqlite_url))[digest] == "shadow"  # an abort sends it back
