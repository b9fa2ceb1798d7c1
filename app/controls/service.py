"""Control changes as one call (what the admin API and the CLI run): change, record, log."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from app.controls import repository
from app.controls.repository import ControlChange
from app.db.models import ControlEventRow
from app.db.session import SessionFactory, unit_of_work
from app.gates.context import TradingState
from app.observability.logging import event


async def change(
    factory: SessionFactory,
    *,
    actor: str,
    reason: str,
    now: datetime,
    trading_state: TradingState | None = None,
    dspy_disabled: bool | None = None,
    routing_disabled: bool | None = None,
) -> ControlChange:
    """Apply a change and its history event in one transaction, then log it with its actor.

    Raises ``changes.ReasonRequired`` (nothing written) when a relaxing change has no reason.
    """
    async with unit_of_work(factory) as session:
        result = await repository.update(
            session,
            actor=actor,
            reason=reason,
            now=now,
            trading_state=trading_state,
            dspy_disabled=dspy_disabled,
            routing_disabled=routing_disabled,
        )
    if result.changed:
        event(
            "controls.changed",
            logging.WARNING,
            actor=actor,
            reason=reason,
            changed=",".join(result.changed),
            version=result.after.version,
            trading_state=f"{result.before.trading_state} -> {result.after.trading_state}",
            dspy_disabled=f"{result.before.dspy_disabled} -> {result.after.dspy_disabled}",
            routing_disabled=f"{result.before.routing_disabled} -> {result.after.routing_disabled}",
        )
    return result


def event_json(e: ControlEventRow) -> dict[str, Any]:
    """One control event as the admin API and the CLI show it."""
    return {
        "id": e.id,
        "version": e.version,
        "actor": e.actor,
        "reason": e.reason,
        "before": e.before,
        "after": e.after,
        "at": e.created_at.isoformat(),
    }
