"""Group read: the hot-path precheck of concurrent reviews shares one statement.

(PostgreSQL. On SQLite the precheck is a read on the event loop's own thread, microseconds
long: each review asks it directly, because waiting for a batch costs a turn of the loop,
which in a burst of hundreds of reviews was hundreds of milliseconds.)

Every review asks two things before it is decided: was its idempotency key already answered,
and how many orders has its strategy submitted within the rate window. Under load these
arrive together, so one reader task answers all pending ones with a single query (keys
``IN (...)`` plus per-strategy counts); a lone request pays no batching delay. The window
start of a batch is the earliest of its requests', so a count can only err on the strict side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from app.reviews.batching import Batcher, fail, resolve
from app.reviews.store import ReviewStore


@dataclass(frozen=True, slots=True)
class _Ask:
    key: str
    strategy_id: str
    since: datetime
    answer: asyncio.Future[tuple[bool, int]]


class PrecheckReader:
    def __init__(self, store: ReviewStore, max_batch: int = 256) -> None:
        self._store = store
        self._batcher = Batcher[_Ask](self._answer, max_batch=max_batch, name="review-precheck")

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        pending = self._batcher.pending
        await self._batcher.stop()
        for ask in pending:
            fail(ask.answer, RuntimeError("precheck reader stopped"))

    async def check(self, key: str, strategy_id: str, since: datetime) -> tuple[bool, int]:
        """(key already reviewed, submits of the strategy since ``since``)."""
        if self._store.inline_reads or not self._batcher.running:
            found, counts = await self._store.precheck([key], [strategy_id], since)
            return key in found, counts.get(strategy_id, 0)
        answer: asyncio.Future[tuple[bool, int]] = asyncio.get_running_loop().create_future()
        self._batcher.submit(_Ask(key, strategy_id, since, answer))
        return await asyncio.shield(answer)

    async def _answer(self, batch: list[_Ask]) -> None:
        try:
            found, counts = await self._store.precheck(
                sorted({a.key for a in batch}),
                sorted({a.strategy_id for a in batch}),
                min(a.since for a in batch),
            )
        except Exception as exc:
            for ask in batch:
                fail(ask.answer, exc)
            return
        for ask in batch:
            resolve(ask.answer, (ask.key in found, counts.get(ask.strategy_id, 0)))
