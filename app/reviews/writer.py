"""Group commit: concurrent reviews share one INSERT + COMMIT, and each still waits for it.

A review's answer leaves only after its row is committed; batching changes how many commits
(and fsyncs) that takes, not that guarantee. One writer task drains the queue: while a batch is
being committed the next one accumulates, so a lone request pays no batching delay. If a batch
hits a unique-key conflict (a replica raced us on an idempotency key), its rows are retried one
by one so only the offending review sees the ``IntegrityError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.session import core_transaction
from app.reviews import repository

_Item = tuple[dict[str, Any], asyncio.Future[None]]


class ReviewWriter:
    def __init__(self, engine: AsyncEngine, max_batch: int = 128) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[_Item] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.rows = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="review-writer")

    async def stop(self) -> None:
        """Commit whatever is queued, then stop."""
        if self._task is None:
            return
        if self._queue:
            await asyncio.gather(*(f for _, f in list(self._queue)), return_exceptions=True)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def write(self, row: dict[str, Any]) -> None:
        """Return once ``row`` is committed; raise what its commit raised."""
        if self._task is None or self._task.done():
            await self._insert([row])  # no writer running (CLI, tests): commit inline
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        self._wakeup.set()
        await asyncio.shield(future)  # a cancelled caller must not cancel the shared commit

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        try:
            await self._insert([row for row, _ in batch])
        except IntegrityError:
            for row, future in batch:
                try:
                    await self._insert([row])
                except Exception as exc:
                    _settle(future, exc)
                else:
                    _settle(future, None)
            return
        except Exception as exc:
            for _, future in batch:
                _settle(future, exc)
            return
        self.batches += 1
        self.rows += len(batch)
        for _, future in batch:
            _settle(future, None)

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        async with core_transaction(self._engine) as conn:
            await repository.add_many(conn, rows)


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)
        future.exception()  # retrieved: the waiter may be gone (cancelled) and must not warn
