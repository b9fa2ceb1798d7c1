"""Database leases: one holder at a time, takeover after expiry, fencing epoch, release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from app.db.session import create_session_factory
from app.leases.runner import SingletonLoop
from tests.conftest import truncate


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def test_one_holder_at_a_time_and_takeover_after_expiry(database_url: str) -> None:
    await truncate(database_url)
    engine = create_async_engine(database_url)
    factory = create_session_factory(engine)
    clock = FakeClock()
    runs: list[tuple[str, int]] = []

    def loop(holder: str) -> SingletonLoop:
        async def work(lease: object) -> None:
            runs.append((holder, lease.epoch))  # type: ignore[attr-defined]

        return SingletonLoop(
            factory, "controller", work, period_seconds=1.0, clock=clock, holder=holder
        )

    a, b = loop("a"), loop("b")
    try:
        assert await a.tick() is True
        assert await b.tick() is False  # a holds it (TTL 3 s)
        clock.advance(2.0)
        assert await a.tick() is True  # renewal keeps it
        assert await b.tick() is False
        clock.advance(2.9)  # a's renewal at t=2 lasts until t=5: still a's
        assert await b.tick() is False
        clock.advance(0.2)  # a died: its lease expired at t=5
        assert await b.tick() is True
        assert await a.tick() is False  # a is back but b holds it now
        assert a.is_leader is False and b.is_leader is True
        assert runs == [("a", 1), ("a", 1), ("b", 2)]  # epoch grew on the change of holder
        # A clean shutdown releases at once: a takes over without waiting for the TTL.
        await b._release()
        assert await a.tick() is True
        assert runs[-1] == ("a", 3)
    finally:
        await engine.dispose()


async def test_racing_replicas_never_both_win(database_url: str) -> None:
    import asyncio

    await truncate(database_url)
    engines = [create_async_engine(database_url) for _ in range(4)]
    clock = FakeClock()

    async def noop(_: object) -> None:
        return None

    loops = [
        SingletonLoop(
            create_session_factory(e),
            "drift",
            noop,
            period_seconds=1.0,
            clock=clock,
            holder=f"r{i}",
        )
        for i, e in enumerate(engines)
    ]
    try:
        for _ in range(3):
            results = await asyncio.gather(*(lp.tick() for lp in loops))
            assert sum(results) == 1
            clock.advance(3.5)  # everyone's lease expired: a new race
    finally:
        for e in engines:
            await e.dispose()
