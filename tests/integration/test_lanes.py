"""The learning lanes end to end: real database, real app, real loopback Jangar, real optimizers.

The stub plays a model that follows its instructions: it vetoes orders whose market context
carries event risk, but only when its instructions mention event risk (the default instructions
do not). MIPROv2's proposals do, so a compiled program is measurably better than the uncompiled
one, and the eval lane can show it beating the heuristic on the held-out split.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import cli
from app.db.models import LaneOutputRow
from app.db.session import read_only
from app.lanes import service as lanes
from app.lanes.compile import CompileConfig, Optimizer
from app.lanes.synthetic import EVENT_RISK_FLAGS
from app.main import create_app
from app.registry import repository as registry
from app.review.program import TradeReviewSignature
from jangar_stub import AnswerRule, Behaviour, JangarStub
from tests.conftest import AppFactory, Clock, make_settings, truncate
from tests.support.requests import base_request

TOKEN = "lanes-admin-token-0123456789abcdef"  # >= 32 characters (settings refuse shorter)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Scenario seed and size where the test split holds event-risk orders (checked, deterministic).
SEED = 9
N = 100
SERVE_WITHIN_S = 2.0

App = tuple[httpx.AsyncClient, Any]


def instructed_model(stub: JangarStub) -> None:
    stub.set_rules(
        [
            AnswerRule(
                flag,
                {"verdict": "veto", "confidence": 0.86, "risk_flags": [flag]},
                instructions_contain="event risk",
            )
            for flag in EVENT_RISK_FLAGS
        ]
    )


def squash(text: str) -> str:
    return " ".join(text.split())


async def admin(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(path, json=body, headers=AUTH, timeout=120.0)


async def wait_serving(app: Any, digest: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < SERVE_WITHIN_S + 1.0:
        artifact = app.state.pipeline.live.artifact
        if artifact is not None and artifact.artifact_hash == digest:
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    pytest.fail(f"{digest[:12]} not served within {SERVE_WITHIN_S + 1.0} s")


async def review(client: httpx.AsyncClient) -> dict[str, Any]:
    body = base_request(strategy_id=f"lanes-{uuid.uuid4().hex[:8]}")
    r = await client.post("/review", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def instructions_of(app: Any, digest: str) -> str:
    async with read_only(app.state.pipeline.factory) as session:
        row = await registry.get_by_hash(session, digest)
    assert row is not None
    return str(row.program_state["dspy"]["review"]["signature"]["instructions"])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextlib.asynccontextmanager
async def sqlite_app(url: str, **overrides: Any) -> AsyncIterator[App]:
    """The real app on a freshly truncated SQLite database (single-database cases)."""
    await truncate(url)
    app = create_app(make_settings(url, **overrides), clock=Clock())
    async with LifespanManager(app, startup_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app


# ------------------------------------------------------------------------------ full cycle


async def test_full_cycle_when_candidate_passes_then_promoted_served_and_rolled_back(
    app_factory: AppFactory, jangar_stub: JangarStub
) -> None:
    instructed_model(jangar_stub)
    async with app_factory(
        admin_token=TOKEN, jangar_base_url=jangar_stub.base_url, learn_shadow_duration_days=0
    ) as (client, app):
        old = app.state.pipeline.live.artifact.artifact_hash  # the bootstrap heuristic

        r = await admin(client, "/admin/lanes/synthetic", {"n": N, "seed": SEED})
        assert r.status_code == 200, r.text
        dataset = r.json()["dataset_hash"]
        assert r.json()["counts"]["test"] >= 10

        t0 = time.perf_counter()
        r = await admin(
            client,
            "/admin/lanes/compile",
            {
                "dataset_hash": dataset,
                "optimizer": "mipro",
                "seed": SEED,
                "max_train": 20,
                "max_val": 10,
            },
        )
        compile_s = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        compiled = r.json()
        candidate = compiled["artifact_hash"]
        assert compiled["optimizer"] == "mipro" and compiled["lm_calls"] > 50
        instructions = await instructions_of(app, candidate)
        assert squash(instructions) != squash(TradeReviewSignature.instructions)

        t0 = time.perf_counter()
        r = await admin(
            client, "/admin/lanes/eval", {"artifact_hash": candidate, "dataset_hash": dataset}
        )
        eval_s = time.perf_counter() - t0
        assert r.status_code == 200, r.text
        result = r.json()
        card = result["scorecard"]
        assert result["passes"], result["reasons"]
        assert card["schema_valid_rate"] == 1.0 and card["fallback_rate"] == 0.0
        assert card["gate_compatibility"] and card["gate_bypass_count"] == 0
        assert card["hash_reproducible"] and card["determinism_ok"]
        assert card["active_hash"] == old
        assert card["delta_sharpe"] >= 0.1
        assert card["verdict_accuracy"] > card["active_verdict_accuracy"]
        print(f"\ncompile {compile_s:.2f} s, eval {eval_s:.2f} s, card {card}")

        transition = f"/admin/artifacts/{candidate}/transition"
        r = await admin(client, transition, {"to": "shadow"})
        assert r.status_code == 200, r.text
        r = await admin(client, transition, {"to": "active"})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "E_LEARN_APPROVAL_MISSING"

        approval = {"approver": "risk-officer", "ticket": "CHG-1042"}
        r = await admin(client, transition, {"to": "active", "approval": approval})
        assert r.status_code == 200, r.text
        assert await wait_serving(app, candidate) <= SERVE_WITHIN_S

        jangar_stub.reset()
        served = await review(client)
        assert served["lineage"]["artifact_hash"] == candidate
        assert served["lineage"]["executor"] == "dspy_live"
        assert len(jangar_stub.requests) == 1
        system = jangar_stub.requests[0].body["messages"][0]["content"]
        assert squash(instructions) in squash(system)

        r = await admin(client, "/admin/artifacts/rollback", {"reason": "lanes test"})
        assert r.status_code == 200, r.text
        assert r.json() == {"restored": old, "replaced": candidate}
        assert await wait_serving(app, old) <= SERVE_WITHIN_S
        served = await review(client)
        assert served["lineage"]["artifact_hash"] == old
        assert served["lineage"]["executor"] == "heuristic"
        assert len(jangar_stub.requests) == 1  # the heuristic serves: no new Jangar call

        # The lane figures come from the database (read when /metrics is scraped).
        assert (await client.get("/metrics")).status_code == 200
        assert sample("trade_review_lane_runs_total", lane="compile", outcome="ok") == 1
        assert sample("learn_model_state_total", model_type="dspy_live", state="candidate") == 1
        assert sample("learn_model_state_total", model_type="dspy_live", state="active") == 1


# ------------------------------------------------------------------------------ reproducibility


async def test_compile_when_same_inputs_and_seed_then_same_artifact_hash(
    sqlite_url: str, jangar_stub: JangarStub
) -> None:
    instructed_model(jangar_stub)
    async with sqlite_app(sqlite_url, jangar_base_url=jangar_stub.base_url) as (_, app):
        deps = app.state.pipeline
        settings = app.state.settings
        data = await lanes.build_synthetic(deps.factory, n=60, seed=4, actor="t", clock=deps.clock)
        again = await lanes.build_synthetic(deps.factory, n=60, seed=4, actor="t", clock=deps.clock)
        assert again.dataset_hash == data.dataset_hash
        config = CompileConfig(optimizer=Optimizer.MIPRO, seed=4, max_train=20, max_val=10)

        async def compile_once() -> str:
            result = await lanes.compile_candidate(
                deps.factory,
                settings,
                dataset_hash=data.dataset_hash,
                config=config,
                actor="t",
                clock=deps.clock,
            )
            return result.artifact_hash

        first = await compile_once()
        second = await compile_once()
        assert first == second
        async with read_only(deps.factory) as session:
            rows = list(
                (
                    await session.execute(
                        select(LaneOutputRow.lane, LaneOutputRow.output_hash).order_by(
                            LaneOutputRow.id
                        )
                    )
                ).all()
            )
            artifact = await registry.get_by_hash(session, first)
        assert [tuple(r) for r in rows] == [
            ("dataset", data.dataset_hash),
            ("compile", first),
            ("compile", first),
        ]
        assert artifact is not None and artifact.state == "candidate"
        assert artifact.manifest["optimizer"] == "mipro"
        assert artifact.manifest["dataset_hash"] == data.dataset_hash
        assert artifact.lineage["compile_config"]["auto"] == "light"


@pytest.mark.parametrize(
    ("optimizer", "extra"),
    [("gepa", {"auto": None, "max_metric_calls": 40}), ("bootstrap", {})],
)
async def test_compile_when_other_optimizer_selected_then_candidate_records_it(
    sqlite_url: str, jangar_stub: JangarStub, optimizer: str, extra: dict[str, Any]
) -> None:
    instructed_model(jangar_stub)
    running = sqlite_app(sqlite_url, admin_token=TOKEN, jangar_base_url=jangar_stub.base_url)
    async with running as (client, _):
        r = await admin(client, "/admin/lanes/synthetic", {"n": 40, "seed": 2})
        dataset = r.json()["dataset_hash"]
        body = {"dataset_hash": dataset, "optimizer": optimizer, "seed": 2, **extra}
        r = await admin(client, "/admin/lanes/compile", body)
        assert r.status_code == 200, r.text
        r = await client.get(f"/admin/artifacts/{r.json()['artifact_hash']}", headers=AUTH)
        assert r.json()["state"] == "candidate"
        assert r.json()["manifest"]["optimizer"] == optimizer


# ------------------------------------------------------------------------------ denial


async def test_eval_when_gateway_fails_then_promotion_denied_with_reasons_recorded(
    sqlite_url: str, jangar_stub: JangarStub
) -> None:
    async with sqlite_app(sqlite_url, admin_token=TOKEN, jangar_base_url=jangar_stub.base_url) as (
        client,
        _,
    ):
        r = await admin(client, "/admin/lanes/synthetic", {"n": 40, "seed": 5})
        dataset = r.json()["dataset_hash"]
        r = await admin(
            client,
            "/admin/lanes/compile",
            {"dataset_hash": dataset, "optimizer": "bootstrap", "seed": 5},
        )
        candidate = r.json()["artifact_hash"]

        jangar_stub.set_behaviour(Behaviour.HTTP_500)
        r = await admin(
            client, "/admin/lanes/eval", {"artifact_hash": candidate, "dataset_hash": dataset}
        )
        assert r.status_code == 200, r.text
        assert r.json()["passes"] is False
        card = r.json()["scorecard"]
        assert card["fallback_rate"] == 1.0 and card["schema_valid_rate"] == 0.0
        assert card["gate_bypass_count"] == 0  # fallbacks still go through every gate

        r = await admin(client, f"/admin/artifacts/{candidate}/transition", {"to": "shadow"})
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "E_LEARN_GATE_FAILED"
        reasons = error["details"]["reasons"]
        assert any(x.startswith("schema-valid rate") for x in reasons)
        assert any(x.startswith("fallback rate") for x in reasons)

        shown = (await client.get(f"/admin/artifacts/{candidate}", headers=AUTH)).json()
        assert shown["state"] == "candidate"
        denied = [e for e in shown["evidence"] if e["kind"] == "promotion_denied"]
        assert len(denied) == 1
        assert denied[0]["payload"]["code"] == "E_LEARN_GATE_FAILED"
        assert denied[0]["payload"]["reasons"] == reasons


# ------------------------------------------------------------------------------ dataset-build


async def test_dataset_build_when_reviews_have_outcomes_then_labelled_by_pnl_and_reproducible(
    sqlite_url: str,
) -> None:
    async with sqlite_app(sqlite_url, admin_token=TOKEN) as (client, app):
        r = await client.post("/admin/lanes/synthetic", json={"n": 5})
        assert r.status_code == 401
        ids = [(await review(client))["review_id"] for _ in range(3)]
        for review_id, pnl in zip(ids, (25.0, -12.0), strict=False):
            outcome = {"filled": True, "fill_price": 200.0, "fill_qty": 10, "realized_pnl": pnl}
            r = await client.post(f"/reviews/{review_id}/outcome", json=outcome)
            assert r.status_code == 200, r.text
        now = datetime.now(UTC)
        window = {
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": (now + timedelta(hours=1)).isoformat(),
            "seed": 1,
        }
        first = await admin(client, "/admin/lanes/dataset-build", window)
        second = await admin(client, "/admin/lanes/dataset-build", window)
        assert first.status_code == 200, first.text
        assert first.json()["dataset_hash"] == second.json()["dataset_hash"]
        assert first.json()["n"] == 3

        async with read_only(app.state.pipeline.factory) as session:
            rows = list(
                (
                    await session.execute(
                        select(LaneOutputRow).where(LaneOutputRow.lane == "dataset")
                    )
                ).scalars()
            )
        assert len(rows) == 1  # idempotent on the hash
        labels = {e["example_id"]: e for e in rows[0].payload["examples"]}
        assert labels[ids[0]]["label"] == "approve"
        assert labels[ids[0]]["label_source"] == "realized_pnl"
        assert labels[ids[0]]["pnl_per_unit"] == pytest.approx(2.5)
        assert labels[ids[1]]["label"] == "veto"
        assert labels[ids[2]]["label_source"] == "stored_verdict"
        assert rows[0].config["label_rule"] == "v1"


# ------------------------------------------------------------------------------ CLI


def invoke(*args: str, env: dict[str, str]) -> Any:
    """Run the CLI in a thread: its asyncio.run must not touch the test session's loop."""
    out: list[Any] = []
    thread = threading.Thread(
        target=lambda: out.append(CliRunner().invoke(cli, list(args), env=env))
    )
    thread.start()
    thread.join(120)
    return out[0]


@pytest.fixture
def cli_env(sqlite_url: str, jangar_stub: JangarStub) -> dict[str, str]:
    thread = threading.Thread(target=lambda: asyncio.run(truncate(sqlite_url)))
    thread.start()
    thread.join()
    return {"DATABASE_URL": sqlite_url, "JANGAR_BASE_URL": jangar_stub.base_url}


def test_cli_when_scorecard_fails_then_promote_exits_3_with_e_learn_gate_failed(
    cli_env: dict[str, str], jangar_stub: JangarStub
) -> None:
    made = invoke("lanes", "synthetic", "--n", "40", "--seed", "3", env=cli_env)
    assert made.exit_code == 0, made.output
    dataset = made.stdout.strip()
    built = invoke(
        "lanes", "compile", "--dataset", dataset, "--optimizer", "bootstrap", "--seed", "3",
        env=cli_env,
    )  # fmt: skip
    assert built.exit_code == 0, built.output
    candidate = built.stdout.strip()
    assert len(candidate) == 64

    jangar_stub.set_behaviour(Behaviour.HTTP_500)
    evaluated = invoke("lanes", "eval", "--artifact", candidate, "--dataset", dataset, env=cli_env)
    assert evaluated.exit_code == 0, evaluated.output
    assert "fails" in evaluated.stderr

    denied = invoke("lanes", "promote", candidate, "--to", "shadow", env=cli_env)
    assert denied.exit_code == 3, denied.output
    assert "E_LEARN_GATE_FAILED" in denied.stderr
    assert "fallback rate" in denied.stderr

    shown = invoke("lanes", "show", candidate, env=cli_env)
    assert shown.exit_code == 0, shown.output
    view = json.loads(shown.stdout)
    assert view["state"] == "candidate"
    assert [e["kind"] for e in view["evidence"]] == ["scorecard", "promotion_denied"]
    assert [o["lane"] for o in view["lane_outputs"]] == ["compile", "eval"]

    missing = invoke("lanes", "promote", "0" * 64, "--to", "shadow", env=cli_env)
    assert missing.exit_code == 4
