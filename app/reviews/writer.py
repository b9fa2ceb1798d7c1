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

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.session import core_transaction
from app.observability import metrics
from app.reviews import repository
from app.reviews.batching import Batcher, fail, resolve
from app.reviews.reservations import Ledger, Reservation

Row = dict[str, Any]

# PostgreSQL SQLSTATE classes that say "not this row": connection exception, insufficient
# resources, operator intervention (incl. statement timeout), system error, internal error,
# transaction rollback (serialization failure, deadlock).
_NOT_A_ROW = frozenset({"08", "53", "57", "58", "XX", "40"})


def row_refused(exc: BaseException) -> bool:
    """The database answered and refused the statement because of what a row holds."""
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    if isinstance(exc, IntegrityError | DataError | ProgrammingError):
        return True  # sqlite3's mapping; also asyncpg's integrity violations
    sqlstate = getattr(exc.orig, "sqlstate", None)  # asyncpg: every server error carries one
    return isinstance(sqlstate, str) and len(sqlstate) == 5 and sqlstate[:2] not in _NOT_A_ROW


@dataclass(frozen=True, slots=True)
class _Item:
    row: Row
    reservation: Reservation | None
    future: asyncio.Future[Row]


class ReviewWriter:
    def __init__(self, engine: AsyncEngine, max_batch: int = 128) -> None:
        self._engine = engine
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
        try:
            written = await self._write_batch(batch)
        except Exception as exc:
            if len(batch) > 1 and row_refused(exc):
                metrics.WRITE_ROWS_ISOLATED.inc()
                await self._write_each(batch)
                return
            for item in batch:
                fail(item.future, exc)
            return
        for item, row in zip(batch, written, strict=True):
            resolve(item.future, row)

    async def _write_batch(self, batch: list[_Item]) -> list[Row]:
        async with core_transaction(self._engine) as conn:
            ledger = await self._ledger(conn, batch)
            rows: list[Row] = []
            for item in batch:
                row = item.row
                if item.reservation is not None:
                    row = ledger.settle(row, item.reservation)
                    ledger.record(row, item.reservation)
                rows.append(row)
            await repository.add_many(conn, rows)
        return rows

    async def _write_each(self, batch: list[_Item]) -> None:
        """The batch again, one SAVEPOINT per row: refused rows fail alone, the rest commit."""
        written: list[tuple[_Item, Row]] = []
        refused: list[tuple[_Item, BaseException]] = []
        try:
            async with core_transaction(self._engine) as conn:
                ledger = await self._ledger(conn, batch)
                for item in batch:
                    row = item.row
                    if item.reservation is not None:
                        row = ledger.settle(row, item.reservation)
                    try:
                        async with conn.begin_nested():
                            await repository.add_many(conn, [row])
                    except Exception as exc:
                        if not row_refused(exc):
                            raise
                        refused.append((item, exc))
                        continue
                    if item.reservation is not None:
                        ledger.record(row, item.reservation)
                    written.append((item, row))
        except Exception as exc:
            for item in batch:
                fail(item.future, exc)
            return
        for item, exc in refused:
            fail(item.future, exc)
        for item, row in written:
            resolve(item.future, row)

    async def _ledger(self, conn: AsyncConnection, batch: list[_Item]) -> Ledger:
        ledger = Ledger()
        reservations = [i.reservation for i in batch if i.reservation is not None]
        if reservations:
            strategies = sorted({r.strategy_id for r in reservations})
            await repository.lock_strategies(conn, strategies)
            ledger.load(
                await repository.submitted_since(conn, strategies, Ledger.earliest(reservations))
            )
        return ledger
