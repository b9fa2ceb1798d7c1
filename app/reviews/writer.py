"""Group commit: concurrent reviews share one INSERT + COMMIT, and each still waits for it.

A review's answer leaves only after its row is committed; batching changes how many commits
(and fsyncs) that takes, not that guarantee. One writer task drains the queue: while a batch is
being committed the next one accumulates, so a lone request pays no batching delay. If a batch
hits a unique-key conflict (a replica raced us on an idempotency key), its rows are retried one
by one so only the offending review sees the ``IntegrityError``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.session import core_transaction
from app.reviews import repository
from app.reviews.batching import Batcher, fail, resolve

_Item = tuple[dict[str, Any], asyncio.Future[None]]


class ReviewWriter:
    def __init__(self, engine: AsyncEngine, max_batch: int = 128) -> None:
        self._engine = engine
        self._batcher = Batcher[_Item](self._commit, max_batch=max_batch, name="review-writer")

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        """Commit whatever is queued, then stop."""
        queued = [future for _, future in self._batcher.pending]
        if queued:
            await asyncio.gather(*queued, return_exceptions=True)
        await self._batcher.stop()

    async def write(self, row: dict[str, Any]) -> None:
        """Return once ``row`` is committed; raise what its commit raised."""
        if not self._batcher.running:
            await self._insert([row])  # no writer running (CLI, tests): commit inline
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._batcher.submit((row, future))
        await asyncio.shield(future)  # a cancelled caller must not cancel the shared commit

    async def _commit(self, batch: list[_Item]) -> None:
        try:
            await self._insert([row for row, _ in batch])
        except IntegrityError:
            for row, future in batch:
                try:
                    await self._insert([row])
                except Exception as exc:
                    fail(future, exc)
                else:
                    resolve(future, None)
            return
        except Exception as exc:
            for _, future in batch:
                fail(future, exc)
            return
        for _, future in batch:
            resolve(future, None)

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        async with core_transaction(self._engine) as conn:
            await repository.add_many(conn, rows)
