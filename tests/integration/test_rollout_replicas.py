"""Two replicas on one database (SQLite and PostgreSQL): one rollout controller at a time, a
takeover within one lease TTL when the holder dies, and ``routing_disabled`` set through one
replica acting on the other within one poll (<= 2 s)."""

from __future__ import annotations

import time

from app.registry.states import ArtifactState
from jangar_stub import DEFAULT_ANSWER, JangarStub
from tests.conftest import truncate
from tests.integration.test_rollout import rollout_app, start
from tests.support.rollout import ADMIN, FakeClock, add_scorecard, register_live, review, wait_until


async def test_one_controller_at_a_time_and_takeover(
    database_url: str, jangar_stub: JangarStub
) -> None:
    await truncate(database_url)
    clock = FakeClock()
    opts = {"rollout_controller_period_seconds": 1.0}
    async with rollout_app(database_url, clock, jangar_stub, **opts) as (_, b):
        loop_b = b.state.rollout_loop
        async with rollout_app(database_url, clock, jangar_stub, **opts) as (_, a):
            loop_a = a.state.rollout_loop
            assert await loop_a.tick() is True
            assert await loop_b.tick() is False
            clock.advance(1.0)
            assert await loop_a.tick() is True
            assert await loop_b.tick() is False
        # Replica a is gone without releasing (a crash): b waits out the TTL, not longer.
        clock.advance(loop_b.ttl.total_seconds() - 0.5)
        assert await loop_b.tick() is False
        clock.advance(0.6)
        assert await loop_b.tick() is True
        assert loop_b.is_leader


async def test_routing_disabled_through_one_replica_acts_on_the_other(
    database_url: str, jangar_stub: JangarStub
) -> None:
    await truncate(database_url)
    jangar_stub.set_answer(dict(DEFAULT_ANSWER))
    clock = FakeClock()
    async with (
        rollout_app(database_url, clock, jangar_stub) as (client_a, a),
        rollout_app(database_url, clock, jangar_stub) as (client_b, b),
    ):
        cand = await register_live(a, suffix=None, path=(ArtifactState.SHADOW,), now=clock())
        await add_scorecard(a, cand, clock())
        await start(client_a, cand, steps=[100.0])
        live_b = b.state.pipeline.live
        await wait_until(lambda: live_b.canary is not None, "canary on replica b")
        assert (await review(client_b, "s-1", clock()))["lineage"]["arm"] == "canary"
        r = await client_a.post(
            "/admin/controls", json={"routing_disabled": True, "reason": "t"}, headers=ADMIN
        )
        assert r.status_code == 200
        t0 = time.monotonic()
        await wait_until(lambda: live_b.controls.routing_disabled, "b sees the control", 2.0)
        assert time.monotonic() - t0 <= 2.0
        body = await review(client_b, "s-2", clock())
        assert body["lineage"]["arm"] == "active"
        assert body["lineage"]["artifact_hash"] != cand
