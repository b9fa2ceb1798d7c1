"""Drift SQL: frozen references, ``model_drift`` rows, acknowledgements, and the windows streamed
from ``llm_decision_reviews`` in chunks (memory bounded by the window's numbers, not its rows).
Only ``execute``/``flush``: the caller's unit of work commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import (
    DriftAcknowledgementRow,
    DriftReferenceRow,
    ModelDriftRow,
    ReviewOutcomeRow,
    ReviewRow,
)
from app.drift.features import FIELD_PATHS, Window

CHUNK = 2000

# The request's fields are read in SQL (JSON paths, as text): the request document, often
# kilobytes of positions, never leaves the database.
_FIELD_NAMES = tuple(FIELD_PATHS)
_BASE_COLUMNS = (
    ReviewRow.id,
    ReviewRow.symbol,
    ReviewRow.action,
    ReviewRow.verdict,
    ReviewRow.decision,
    ReviewRow.review_json["confidence"].as_float(),
    ReviewRow.failed_gates,
    ReviewRow.fallback_reason,
    ReviewRow.llm_latency_ms,
    ReviewRow.created_at,
)
_PER_PATH = (*(ReviewRow.request_json[path].as_string() for path in FIELD_PATHS.values()),)


def _sqlite_path(path: tuple[str | int, ...]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


# SQLite: one json_extract with every path parses each document once (one call per path would
# parse it fourteen times) and answers a small JSON array.
_SQLITE_FIELDS = func.json_extract(
    literal_column("llm_decision_reviews.request_json"),
    *(literal(_sqlite_path(p)) for p in FIELD_PATHS.values()),
)


def _fields(row: Any, sqlite: bool) -> dict[str, Any]:
    if sqlite:
        raw = row[10]
        values: list[Any] = orjson.loads(raw) if raw is not None else [None] * len(_FIELD_NAMES)
        return dict(zip(_FIELD_NAMES, values, strict=True))
    return dict(zip(_FIELD_NAMES, row[10:], strict=True))


@dataclass
class Span:
    first_id: int | None = None
    last_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None


async def get_reference(session: AsyncSession, artifact_hash: str) -> DriftReferenceRow | None:
    result = await session.execute(
        select(DriftReferenceRow).where(DriftReferenceRow.artifact_hash == artifact_hash)
    )
    return result.scalar_one_or_none()


async def add_reference(session: AsyncSession, row: DriftReferenceRow) -> DriftReferenceRow:
    session.add(row)
    await session.flush()
    return row


async def count_reviews(session: AsyncSession, artifact_hash: str, after_id: int = 0) -> int:
    result = await session.execute(
        select(func.count()).where(
            ReviewRow.artifact_hash == artifact_hash, ReviewRow.id > after_id
        )
    )
    return int(result.scalar_one())


async def window_floor_id(
    session: AsyncSession, artifact_hash: str, after_id: int, size: int
) -> int | None:
    """The smallest id of the latest ``size`` reviews of the artifact after ``after_id``."""
    result = await session.execute(
        select(ReviewRow.id)
        .where(ReviewRow.artifact_hash == artifact_hash, ReviewRow.id > after_id)
        .order_by(ReviewRow.id.desc())
        .offset(size - 1)
        .limit(1)
    )
    found = result.scalar_one_or_none()
    if found is not None:
        return int(found)
    result = await session.execute(
        select(func.min(ReviewRow.id)).where(
            ReviewRow.artifact_hash == artifact_hash, ReviewRow.id > after_id
        )
    )
    low = result.scalar_one_or_none()
    return None if low is None else int(low)


async def stream_window(
    session: AsyncSession,
    artifact_hash: str,
    *,
    from_id: int,
    limit: int | None,
    window: Window,
) -> Span:
    """Feed reviews ``id >= from_id`` of the artifact (oldest first, at most ``limit``) into
    ``window``, ``CHUNK`` rows at a time (keyset pagination: no server-side cursor needed)."""
    span = Span()
    sqlite = session.get_bind().dialect.name == "sqlite"
    columns = (*_BASE_COLUMNS, _SQLITE_FIELDS) if sqlite else (*_BASE_COLUMNS, *_PER_PATH)
    cursor = from_id - 1
    taken = 0
    while limit is None or taken < limit:
        size = CHUNK if limit is None else min(CHUNK, limit - taken)
        result = await session.execute(
            select(*columns)
            .where(ReviewRow.artifact_hash == artifact_hash, ReviewRow.id > cursor)
            .order_by(ReviewRow.id)
            .limit(size)
        )
        rows: list[Any] = list(result.all())
        if not rows:
            break
        for row in rows:
            head: tuple[Any, ...] = tuple(row[:10])
            rid, symbol, action, verdict, decision, conf, failed, fallback, llm_ms, created = head
            window.add_review(
                fields=_fields(row, sqlite),
                symbol=symbol,
                action=action,
                verdict=verdict,
                decision=decision,
                confidence=conf,
                failed_gates=failed or "",
                fallback_reason=fallback,
                llm_latency_ms=llm_ms,
            )
            if span.first_id is None:
                span.first_id, span.start = int(rid), created
            span.last_id, span.end = int(rid), created
        cursor = int(rows[-1][0])
        taken += len(rows)
        if len(rows) < size:
            break
    return span


async def realized_returns(
    session: AsyncSession, artifact_hash: str, first_id: int, last_id: int
) -> list[float]:
    """Realized P&L of the submitted orders in ``[first_id, last_id]``: per review, the outcome
    at the longest horizon that carries one (the dataset lane's rule), in review order."""
    result = await session.execute(
        select(ReviewRow.id, ReviewOutcomeRow.horizon_seconds, ReviewOutcomeRow.realized_pnl)
        .join(ReviewOutcomeRow, ReviewOutcomeRow.review_id == ReviewRow.review_id)
        .where(
            ReviewRow.artifact_hash == artifact_hash,
            ReviewRow.id >= first_id,
            ReviewRow.id <= last_id,
            ReviewRow.decision == "submit",
            ReviewOutcomeRow.realized_pnl.is_not(None),
        )
        .order_by(ReviewRow.id, ReviewOutcomeRow.horizon_seconds)
    )
    best: dict[int, float] = {}
    for rid, _horizon, pnl in result.all():
        if pnl is not None:  # ordered by horizon: the last one is the longest
            best[int(rid)] = float(pnl)
    return [best[k] for k in sorted(best)]


async def add_checks(session: AsyncSession, rows: Sequence[ModelDriftRow]) -> None:
    session.add_all(list(rows))
    await session.flush()


async def latest_run(session: AsyncSession, program: str) -> list[ModelDriftRow]:
    last = await session.execute(
        select(ModelDriftRow.run_id)
        .where(ModelDriftRow.program_name == program)
        .order_by(ModelDriftRow.id.desc())
        .limit(1)
    )
    run_id = last.scalar_one_or_none()
    if run_id is None:
        return []
    result = await session.execute(
        select(ModelDriftRow).where(ModelDriftRow.run_id == run_id).order_by(ModelDriftRow.id)
    )
    return list(result.scalars())


async def acknowledged_through(session: AsyncSession, program: str) -> int:
    result = await session.execute(
        select(func.max(DriftAcknowledgementRow.through_id)).where(
            DriftAcknowledgementRow.program_name == program
        )
    )
    return int(result.scalar_one_or_none() or 0)


async def unacknowledged_breaches(session: AsyncSession, program: str) -> list[ModelDriftRow]:
    through = await acknowledged_through(session, program)
    result = await session.execute(
        select(ModelDriftRow)
        .where(
            ModelDriftRow.program_name == program,
            ModelDriftRow.breach.is_(True),
            ModelDriftRow.id > through,
        )
        .order_by(ModelDriftRow.id)
    )
    return list(result.scalars())


async def acknowledge(
    session: AsyncSession, program: str, *, actor: str, reason: str, now: datetime
) -> dict[str, Any]:
    """Acknowledge every breach of ``program`` recorded so far; returns what was acknowledged."""
    open_rows = await unacknowledged_breaches(session, program)
    last = await session.execute(
        select(func.max(ModelDriftRow.id)).where(ModelDriftRow.program_name == program)
    )
    through = int(last.scalar_one_or_none() or 0)
    session.add(
        DriftAcknowledgementRow(
            program_name=program, through_id=through, actor=actor, reason=reason, created_at=now
        )
    )
    await session.flush()
    return {
        "program": program,
        "through_id": through,
        "acknowledged": [{"id": r.id, "metric": r.metric, "run_id": r.run_id} for r in open_rows],
    }
