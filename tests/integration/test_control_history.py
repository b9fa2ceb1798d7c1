"""Control changes are append-only events (issue 8, item 17): actor, reason, before -> after,
time; written in the transaction that changes the controls row, listed by the admin API and
the CLI, logged with the actor, never edited. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import AppFactory
from tests.support.cli import invoke
from tests.support.registry import scalar
from tests.support.requests import base_request

AUTH = {"Authorization": "Bearer s3cret", "X-Operator": "alice"}


async def set_controls(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/admin/controls", json=body, headers=AUTH)


async def history(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/admin/controls/history", params=params, headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


async def test_halt_and_revert_when_changed_then_both_listed_with_actor_reason_before_after(
    app_factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trade_review")
    async with app_factory(admin_token="s3cret") as (client, _):
        halt = await set_controls(client, trading_state="HALTED")  # no reason: never blocked
        assert halt.status_code == 200, halt.text
        assert halt.json()["changed"] == ["trading_state"]
        resume = await client.post(
            "/admin/controls",
            json={"trading_state": "ACTIVE", "reason": "broker fixed"},
            headers={**AUTH, "X-Operator": "bob"},
        )
        assert resume.status_code == 200
        events = (await history(client))["events"]
    assert [(e["actor"], e["reason"]) for e in events] == [
        ("operator:bob", "broker fixed"),
        ("operator:alice", ""),
        ("system:bootstrap", "initial controls"),
    ]
    assert events[1]["before"]["trading_state"] == "ACTIVE"
    assert events[1]["after"]["trading_state"] == "HALTED"
    assert events[0]["before"]["trading_state"] == "HALTED"
    assert events[0]["after"]["trading_state"] == "ACTIVE"
    assert events[2]["before"] is None
    assert events[0]["version"] == events[1]["version"] + 1
    assert events[0]["at"] >= events[1]["at"]
    assert "controls.changed actor='operator:alice'" in caplog.text
    assert "trading_state='ACTIVE -> HALTED'" in caplog.text
    assert "controls.changed actor='operator:bob' reason='broker fixed'" in caplog.text


@pytest.mark.parametrize(
    ("start", "relax"),
    [
        ({"trading_state": "HALTED"}, {"trading_state": "ACTIVE"}),
        ({"trading_state": "HALTED"}, {"trading_state": "REDUCING"}),
        ({"trading_state": "REDUCING"}, {"trading_state": "ACTIVE"}),
        ({"dspy_disabled": True}, {"dspy_disabled": False}),
        ({"routing_disabled": True}, {"routing_disabled": False}),
    ],
)
async def test_relaxing_change_when_no_reason_then_422_and_nothing_written(
    app_factory: AppFactory, database_url: str, start: dict[str, Any], relax: dict[str, Any]
) -> None:
    async with app_factory(admin_token="s3cret") as (client, _):
        assert (await set_controls(client, **start)).status_code == 200
        count = len((await history(client))["events"])
        for reason in ("", "   "):
            r = await set_controls(client, **relax, reason=reason)
            assert r.status_code == 422
            assert r.json()["error"]["code"] == "validation_error"
            assert "reason is required" in r.json()["error"]["message"]
        assert len((await history(client))["events"]) == count
        ((column, wanted),) = start.items()
        stored = await scalar(database_url, f"SELECT {column} FROM service_controls")
        assert (bool(stored) if isinstance(wanted, bool) else stored) == wanted  # unchanged


async def test_change_when_nothing_differs_then_no_event_and_empty_body_is_422(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token="s3cret") as (client, _):
        same = await set_controls(client, trading_state="ACTIVE", reason="noop")
        assert same.status_code == 200 and same.json()["changed"] == []
        empty = await set_controls(client, reason="nothing")
        assert empty.status_code == 422
        assert len((await history(client))["events"]) == 1  # only the initial row


async def test_20_concurrent_changes_then_history_is_one_unbroken_chain(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(admin_token="s3cret") as (client, _):
        states = ["HALTED", "REDUCING", "ACTIVE", "HALTED"] * 5
        results = await asyncio.gather(
            *(set_controls(client, trading_state=s, reason=f"r{i}") for i, s in enumerate(states))
        )
        assert {r.status_code for r in results} == {200}, [r.text for r in results]
        events = list(reversed((await history(client, limit=500))["events"]))
    for older, newer in itertools.pairwise(events):
        assert newer["before"] == older["after"]  # no lost update, no gap
        assert newer["version"] == older["version"] + 1
    assert events[-1]["version"] == await scalar(
        database_url, "SELECT version FROM service_controls WHERE id = 1"
    )


async def test_history_when_paged_then_every_event_once_newest_first(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token="s3cret") as (client, _):
        for flag in (True, False, True, False, True):
            r = await set_controls(client, dspy_disabled=flag, reason="flip")
            assert r.status_code == 200
        seen: list[int] = []
        page = await history(client, limit=2)
        while True:
            seen += [e["id"] for e in page["events"]]
            if page["next_before"] is None:
                break
            page = await history(client, limit=2, before=page["next_before"])
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 6


@pytest.mark.parametrize("table", ["control_events", "artifact_events"])
async def test_history_rows_when_updated_in_database_then_refused(
    app_factory: AppFactory, database_url: str, table: str
) -> None:
    async with app_factory(admin_token="s3cret") as (client, _):
        assert (await set_controls(client, trading_state="HALTED")).status_code == 200
    engine = create_async_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(f"UPDATE {table} SET actor = 'mallory'"))
    finally:
        await engine.dispose()
    assert await scalar(database_url, f"SELECT count(*) FROM {table} WHERE actor = 'mallory'") == 0


async def test_halt_when_recorded_then_replicas_reject_and_event_matches_row(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory(admin_token="s3cret") as (client, _):
        assert (await set_controls(client, trading_state="HALTED")).status_code == 200
        for _ in range(40):
            body = (
                await client.post(
                    "/review",
                    content=json.dumps(base_request()),
                    headers={"content-type": "application/json"},
                )
            ).json()
            if "trading_state" in body.get("reasons", []):
                break
            await asyncio.sleep(0.1)
        assert body["decision"] == "reject"
    assert await scalar(database_url, "SELECT trading_state FROM service_controls") == "HALTED"
    latest = await scalar(
        database_url, "SELECT version FROM control_events ORDER BY id DESC LIMIT 1"
    )
    assert latest == await scalar(database_url, "SELECT version FROM service_controls")


async def test_cli_when_controls_changed_then_event_names_cli_actor_and_history_lists_it(
    app_factory: AppFactory, database_url: str
) -> None:
    async with app_factory():
        pass
    env = {"DATABASE_URL": database_url}
    halted = invoke("controls", "--trading-state", "halted", "--actor", "carol", env=env)
    assert halted.exit_code == 0, halted.output
    refused = invoke("controls", "--trading-state", "ACTIVE", env=env)
    assert refused.exit_code == 2
    assert "reason is required" in refused.stderr
    resumed = invoke(
        "controls", "--trading-state", "ACTIVE", "--reason", "drill over", "--actor", "carol",
        env=env,
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    listed = invoke("controls-history", "--json", env=env)
    assert listed.exit_code == 0, listed.output
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["actor"], e["after"]["trading_state"], e["reason"]) for e in events] == [
        ("cli:carol", "ACTIVE", "drill over"),
        ("cli:carol", "HALTED", ""),
        ("system:bootstrap", "ACTIVE", "initial controls"),
    ]
    table = invoke("controls-history", "--limit", "1", env=env)
    assert "cli:carol" in table.stdout and "trading_state HALTED -> ACTIVE" in table.stdout


async def test_operator_when_longest_allowed_then_recorded_whole_and_longer_is_422(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token="s3cret") as (client, _):
        longest = "o" * (128 - len("operator:"))
        ok = await client.post(
            "/admin/controls",
            json={"trading_state": "HALTED"},
            headers={**AUTH, "X-Operator": longest},
        )
        assert ok.status_code == 200, ok.text
        assert (await history(client))["events"][0]["actor"] == f"operator:{longest}"
        too_long = await client.post(
            "/admin/controls",
            json={"dspy_disabled": True},  # tightening: needs no reason
            headers={**AUTH, "X-Operator": longest + "o"},
        )
        assert too_long.status_code == 422
        assert too_long.json()["error"]["details"][0]["path"] == "header.x-operator"
        assert len((await history(client))["events"]) == 2
