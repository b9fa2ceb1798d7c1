"""One drain loop shared by the group commit (writer) and the group read (reader).

Callers enqueue a request with a future and await it; a single task takes everything queued
(up to ``max_batch``) and answers it in one database round trip. While a batch is in flight
the next accumulates, so a lone request pays no batching delay.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T]):
    def __init__(
        self, handle: Callable[[list[T]], Awaitable[None]], *, max_batch: int, name: str
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._name = name
        self._queue: list[T] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def pending(self) -> list[T]:
        return list(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def submit(self, item: T) -> None:
        self._queue.append(item)
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._handle(batch)


def resolve(future: asyncio.Future[R], value: R) -> None:
    """Answer a waiter unless it is already done (its caller may have been cancelled)."""
    if not future.done():
        future.set_result(value)


def fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
        future.exception()  # retrieved: a gone waiter must not log "never retrieved"
