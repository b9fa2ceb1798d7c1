"""Write-time reservations: concurrent submits cannot exceed together what each passes alone.

The gates judge an order against the orders already committed (order rate) and the position
the scheduler reported. Orders in flight at the same moment, on one replica or several, all
see the same counts, so a burst would pass by the number in flight. The group-commit writer
closes that gap inside the transaction that inserts the rows:

1. it locks every strategy of the batch (``repository.lock_strategies``: a PostgreSQL advisory
   lock per strategy; SQLite's single write lock), so no other writer commits for them
   meanwhile;
2. it reads the strategies' committed submits (``repository.submitted_since``) into a
   ``Ledger``, and adds each submit of the batch to it as the batch is settled, in order;
3. for every ``submit`` row it asks the row's own ``recheck`` (written by the pipeline, which
   owns the decision) for a verdict given the authoritative count and the pending quantity;
   ``recheck`` re-runs the pure gates and returns the reject row to write instead, or None.

A reservation is the submit row itself (``reserved_qty``): it counts toward the order rate for
the policy's window and toward its (strategy, symbol) position for ``reservations.ttl_seconds``.
A reject reserves nothing, so nothing needs releasing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

Recheck = Callable[[int, Decimal], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a ``submit`` row asks the writer to re-check before it commits."""

    strategy_id: str
    symbol: str
    signed_qty: Decimal
    rate_since: datetime  # order-rate window start
    pending_since: datetime  # reservation TTL start
    recheck: Recheck  # (submits in window, pending signed qty) -> reject row, or None


@dataclass(frozen=True, slots=True)
class _Entry:
    strategy_id: str
    symbol: str
    qty: Decimal
    at: datetime


def _utc(ts: datetime) -> datetime:
    # SQLite hands DateTime(timezone=True) back naive; every stored time is UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _qty(text: str | None) -> Decimal:
    if text is None:
        return Decimal(0)  # rows from before reservations existed
    try:
        return Decimal(text)
    except InvalidOperation:
        return Decimal(0)


@dataclass
class Ledger:
    """Committed submits of the locked strategies, plus those settled so far in this batch."""

    entries: list[_Entry] = field(default_factory=list[_Entry])

    @staticmethod
    def earliest(reservations: list[Reservation]) -> datetime:
        return min(min(r.rate_since, r.pending_since) for r in reservations)

    def load(self, rows: list[tuple[str, str, str | None, datetime]]) -> None:
        self.entries.extend(
            _Entry(strategy, symbol.upper(), _qty(qty), _utc(at))
            for strategy, symbol, qty, at in rows
        )

    def settle(self, row: dict[str, Any], reservation: Reservation) -> dict[str, Any]:
        """The row to write: ``row`` itself, or the reject its recheck returns."""
        rate_since = _utc(reservation.rate_since)
        pending_since = _utc(reservation.pending_since)
        symbol = reservation.symbol.upper()
        count = 0
        pending = Decimal(0)
        for e in self.entries:
            if e.strategy_id != reservation.strategy_id:
                continue
            if e.at >= rate_since:
                count += 1
            if e.symbol == symbol and e.at >= pending_since:
                pending += e.qty
        replacement = reservation.recheck(count, pending)
        return row if replacement is None else replacement

    def record(self, row: dict[str, Any], reservation: Reservation) -> None:
        """Count a written row (only a submit reserves)."""
        if row.get("decision") == "submit":
            self.entries.append(
                _Entry(
                    reservation.strategy_id,
                    reservation.symbol.upper(),
                    reservation.signed_qty,
                    _utc(row["created_at"]),
                )
            )
