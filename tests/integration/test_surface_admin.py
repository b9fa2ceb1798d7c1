"""Documented admin surface that no other test exercised, and the error codes only these
provoke (``tests/README.md``, "Documented surface"): ``GET /admin/lanes/outputs``, a successful
``GET /admin/controls``, 405 ``method_not_allowed``, a deterministic 409
``transition_conflict``, 503 ``not_ready`` and the catch-all 500 ``internal_error``.
SQLite and PostgreSQL (``app_factory``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.conftest import AppFactory
from tests.support.registry import add_artifact

TOKEN = "surface-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}", "X-Operator": "surface"}
# The replica polls controls every 0.2 s in tests; README promises 2 s; margin for load.
SEEN_WITHIN_S = 2.0 + 3.0


async def test_lane_outputs_when_lanes_ran_then_listed_newest_first_without_payloads(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, _):
        empty = await client.get("/admin/lanes/outputs", headers=AUTH)
        assert empty.status_code == 200
        assert empty.json() == {"outputs": []}
        made = []
        for seed in (1, 2):
            r = await client.post(
                "/admin/lanes/synthetic", json={"n": 8, "seed": seed}, headers=AUTH
            )
            assert r.status_code == 200, r.text
            made.append(r.json()["dataset_hash"])
        assert made[0] != made[1]

        listed = (await client.get("/admin/lanes/outputs", headers=AUTH)).json()["outputs"]
        assert [o["output_hash"] for o in listed] == made[::-1]  # newest first
        assert {o["lane"] for o in listed} == {"dataset"}
        assert {o["actor"] for o in listed} == {"operator:surface"}
        assert all(
            set(o) == {"lane", "output_hash", "artifact_hash", "config", "actor", "at"}
            for o in listed
        )

        one = (await client.get("/admin/lanes/outputs?limit=1", headers=AUTH)).json()["outputs"]
        assert [o["output_hash"] for o in one] == [made[1]]
        other = (await client.get("/admin/lanes/outputs?lane=compile", headers=AUTH)).json()
        assert other == {"outputs": []}
        bad = await client.get("/admin/lanes/outputs?limit=0", headers=AUTH)
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "validation_error"


async def test_controls_get_when_authorised_then_answers_the_state_every_replica_serves(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, _):
        r = await client.get("/admin/controls", headers=AUTH)
        assert r.status_code == 200, r.text
        before = r.json()
        assert before == {
            "trading_state": "ACTIVE",
            "dspy_disabled": False,
            "routing_disabled": False,
            "version": before["version"],
        }
        changed = await client.post(
            "/admin/controls",
            json={"trading_state": "REDUCING", "dspy_disabled": True},
            headers=AUTH,
        )
        assert changed.status_code == 200, changed.text
        # GET answers what this replica serves (its polled snapshot), so it follows the change.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEEN_WITHIN_S
        while True:
            after = (await client.get("/admin/controls", headers=AUTH)).json()
            if after["version"] != before["version"]:
                break
            assert loop.time() < deadline, "GET /admin/controls never showed the change"
            await asyncio.sleep(0.05)
        assert after == {
            "trading_state": "REDUCING",
            "dspy_disabled": True,
            "routing_disabled": False,
            "version": before["version"] + 1,
        }


async def test_route_when_called_with_another_method_then_405_method_not_allowed(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, _):
        review = await client.get("/review")
        assert review.status_code == 405
        assert review.json()["error"]["code"] == "method_not_allowed"
        admin = await client.delete("/admin/controls", headers=AUTH)
        assert admin.status_code == 405
        assert admin.json()["error"]["code"] == "method_not_allowed"


async def test_second_shadow_when_one_is_already_shadow_then_409_transition_conflict(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, app):
        first, second = await add_artifact(app, 501), await add_artifact(app, 502)
        url = "/admin/artifacts/{}/transition"
        ok = await client.post(url.format(first), json={"to": "shadow"}, headers=AUTH)
        assert ok.status_code == 200, ok.text
        # candidate -> shadow is a valid edge: the database's one-shadow-per-program index
        # refuses it, not the table.
        r = await client.post(url.format(second), json={"to": "shadow"}, headers=AUTH)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "transition_conflict"
        shown = (await client.get(f"/admin/artifacts/{second}", headers=AUTH)).json()
        assert shown["state"] == "candidate"
        assert [e["to"] for e in shown["events"]] == ["candidate"]


async def test_compile_when_jangar_not_configured_then_503_not_ready(
    app_factory: AppFactory,
) -> None:
    async with app_factory(admin_token=TOKEN) as (client, _):  # no JANGAR_BASE_URL
        made = await client.post("/admin/lanes/synthetic", json={"n": 8, "seed": 3}, headers=AUTH)
        dataset = made.json()["dataset_hash"]
        r = await client.post(
            "/admin/lanes/compile",
            json={"dataset_hash": dataset, "optimizer": "bootstrap"},
            headers=AUTH,
        )
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "not_ready"
        assert "JANGAR_BASE_URL" in r.json()["error"]["message"]
        outputs = (await client.get("/admin/lanes/outputs", headers=AUTH)).json()["outputs"]
        assert [o["lane"] for o in outputs] == ["dataset"]  # no candidate was produced


async def test_unexpected_exception_when_a_route_raises_then_500_internal_error_and_reject(
    app_factory: AppFactory,
) -> None:
    async with app_factory() as (_, app):

        async def broken() -> dict[str, Any]:
            raise RuntimeError("a bug nobody anticipated")

        # A route of the test's own on the real app: nothing of app/ is replaced; the answer
        # comes from the service's catch-all handler (app/main.py).
        app.add_api_route("/surface-broken", broken, methods=["GET"])
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.get("/surface-broken")
    assert r.status_code == 500
    assert r.json() == {
        "error": {"code": "internal_error", "message": "internal error", "details": None},
        "decision": "reject",
    }
    assert "nobody anticipated" not in r.text  # the exception's text is logged, not answered
