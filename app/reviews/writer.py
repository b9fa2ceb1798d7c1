"""Group commit: concurrent reviews share one INSERT + COMMIT, and each still waits for it.

A review's answer leaves only after its row is committed; batching changes how many commits
(and fsyncs) that takes, not that guarantee. One writer task drains the queue: while a batch is
being committed the next one accumulates, so a lone request pays no batching delay.

Inside the batch's transaction, ``submit`` rows are re-checked against the orders committed
and in flight for their strategy (``app/reviews/reservations.py``): a submit that would take
its strategy past a limit together with the others is written (and answered) as a reject.

One bad row never fails its neighbours: if the database refuses the batch because of a row
(a constraint, a value it cannot store, a trigger), the batch is rolled back and written again
row by row, each row in its own SAVEPOINT, so every other row commits and only the refused
one gets its error (the pipeline answers it 503 ``audit_unavailable``, or replays the stored
answer when the refusal was a replica winning the same idempotency key). Failures that are
not about a row (database unreachable, timed out, busy) fail the batch at once: retrying 128
rows one by one against a dead database would only multiply the wait.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from app.observability import metrics
from app.reviews.batching import Batcher, fail, resolve
from app.reviews.reservations import Reservation
from app.reviews.store import ReviewStore, row_refused

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Item:
    row: Row
    reservation: Reservation | None
    future: asyncio.Future[Row]


class ReviewWriter:
    def __init__(self, store: ReviewStore, max_batch: int = 128) -> None:
        self._store = store
        self._batcher = Batcher[_Item](self._commit, max_batch=max_batch, name="review-writer")

    def start(self) -> None:
        self._batcher.start()

    async def stop(self) -> None:
        """Commit whatever is queued, then stop."""
        queued = [item.future for item in self._batcher.pending]
        if queued:
            await asyncio.gather(*queued, return_exceptions=True)
        await self._batcher.stop()

    async def write(self, row: Row, reservation: Reservation | None = None) -> Row:
        """Return the row as committed (a submit may have become a reject at commit); raise
        what its commit raised."""
        future: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        item = _Item(row, reservation, future)
        if not self._batcher.running:
            await self._commit([item])  # no writer running (CLI, tests): commit inline
            return future.result()
        self._batcher.submit(item)
        return await asyncio.shield(future)  # a cancelled caller must not cancel the commit

    async def _commit(self, batch: list[_Item]) -> None:
        pending = [(item.row, item.reservation) for item in batch]
        try:
            written = await self._store.write(pending)
        except Exception as exc:
            if len(batch) > 1 and row_refused(exc):
                metrics.WRITE_ROWS_ISOLATED.inc()
                await self._write_each(batch, pending)
                return
            for item in batch:
                fail(item.future, exc)
            return
        for item, row in zip(batch, written, strict=True):
            resolve(item.future, row)

    async def _write_each(self, batch: list[_Item], pending: list[Any]) -> None:
        """The batch again, one SAVEPOINT per row: refused rows fail alone, the rest commit."""
        try:
            results = await self._store.write_each(pending)
        except Exception as exc:
            for item in batch:
                fail(item.future, exc)
            return
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                fail(item.future, result)
            else:
                resolve(item.future, result)
