"""The shadow runner: a SHADOW artifact reviews live requests off the path, its verdicts and
would-be decisions are stored beside the served review, and it never changes an answer."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import read_only
from app.registry.states import ArtifactState
from app.rollout.shadow import stats
from jangar_stub import DEFAULT_ANSWER, JangarStub
from tests.conftest import truncate
from tests.integration.test_rollout import rollout_app
from tests.support.rollout import FakeClock, register_live, review, wait_until

STRATEGIES = [f"shadow-s{i}" for i in range(8)]


def served(body: dict[str, object]) -> tuple[object, ...]:
    r = body["review"]
    assert isinstance(r, dict)
    return (
        body["decision"],
        body["reasons"],
        r["verdict"],
        body["order"],
        body["lineage"]["arm"],  # type: ignore[index]
        body["lineage"]["artifact_hash"],
    )  # type: ignore[index]


async def test_shadow_never_changes_an_answer(database_url: str, jangar_stub: JangarStub) -> None:
    await truncate(database_url)
    # The shadow's model vetoes everything: maximal disagreement with the heuristic.
    jangar_stub.set_answer({**DEFAULT_ANSWER, "verdict": "veto", "rationale": "shadow says no"})
    clock = FakeClock()
    async with rollout_app(database_url, clock, jangar_stub) as (client, app):
        live = app.state.pipeline.live
        without = [await review(client, s, clock(), key=f"a-{s}") for s in STRATEGIES]
        assert live.shadow is None
        shadow = await register_live(app, suffix=None, path=(ArtifactState.SHADOW,), now=clock())
        await wait_until(lambda: live.shadow is not None, "shadow loaded")
        clock.advance(3600)  # out of the order-rate window: the same context as the first batch
        with_shadow = [await review(client, s, clock(), key=f"b-{s}") for s in STRATEGIES]
        assert [served(b) for b in with_shadow] == [served(b) for b in without]
        runner = app.state.pipeline.shadow
        await asyncio.wait_for(runner.drain(), 30)
        async with read_only(app.state.pipeline.factory) as session:
            st = await stats(session, shadow)
        assert st.n == len(STRATEGIES)
        assert st.disagreement == 1.0  # served submits, the shadow would have rejected
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                rows = (
                    await conn.execute(
                        text(
                            "SELECT served_review_id, verdict, decision, served_decision, "
                            "prompt_tokens "
                            "FROM shadow_reviews ORDER BY id"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        assert {r[0] for r in rows} == {b["review_id"] for b in with_shadow}
        assert all(r[1] == "veto" and r[2] == "reject" and r[3] == "submit" for r in rows)
        assert all(r[4] for r in rows)  # tokens recorded


async def test_a_full_shadow_queue_drops_and_counts(
    sqlite_url: str, jangar_stub: JangarStub
) -> None:
    await truncate(sqlite_url)
    jangar_stub.set_answer(dict(DEFAULT_ANSWER))
    jangar_stub.delay_s = 0.3  # slow shadow model
    clock = FakeClock()
    opts = {"shadow_queue_max": 1, "shadow_max_concurrent": 1}
    async with rollout_app(sqlite_url, clock, jangar_stub, **opts) as (client, app):
        live = app.state.pipeline.live
        await register_live(app, suffix=None, path=(ArtifactState.SHADOW,), now=clock())
        await wait_until(lambda: live.shadow is not None, "shadow loaded")
        bodies = await asyncio.gather(*(review(client, f"q-{i}", clock()) for i in range(10)))
        assert all(b["lineage"]["executor"] == "heuristic" for b in bodies)  # served arm
        runner = app.state.pipeline.shadow
        assert runner.dropped >= 1
        await asyncio.wait_for(runner.drain(), 30)
        assert runner.done + runner.dropped == 10
        jangar_stub.delay_s = 0.0
