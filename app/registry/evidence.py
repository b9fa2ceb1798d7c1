"""Evidence SQL: scorecards, replays, approvals and promotion denials attached to artifacts.

``kind`` is a plain string column: a new kind needs no migration."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ArtifactEvidenceRow
from app.registry.hashing import canonical_json, sha256_hex


class EvidenceKind(StrEnum):
    SCORECARD = "scorecard"
    # ``lanes replay``: recorded requests of a window re-decided by the artifact (app/lanes/replay)
    REPLAY = "replay"
    APPROVAL = "approval"
    PROMOTION_DENIED = "promotion_denied"


async def add(
    session: AsyncSession,
    artifact_hash: str,
    kind: EvidenceKind,
    payload: dict[str, Any],
    *,
    actor: str,
    now: datetime,
) -> str:
    digest = sha256_hex(canonical_json(payload))
    session.add(
        ArtifactEvidenceRow(
            artifact_hash=artifact_hash,
            kind=kind.value,
            evidence_hash=digest,
            payload=payload,
            actor=actor,
            created_at=now,
        )
    )
    await session.flush()
    return digest


async def latest(
    session: AsyncSession, artifact_hash: str, kind: EvidenceKind
) -> ArtifactEvidenceRow | None:
    result = await session.execute(
        select(ArtifactEvidenceRow)
        .where(ArtifactEvidenceRow.artifact_hash == artifact_hash)
        .where(ArtifactEvidenceRow.kind == kind.value)
        .order_by(ArtifactEvidenceRow.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def all_for(session: AsyncSession, artifact_hash: str) -> list[ArtifactEvidenceRow]:
    result = await session.execute(
        select(ArtifactEvidenceRow)
        .where(ArtifactEvidenceRow.artifact_hash == artifact_hash)
        .order_by(ArtifactEvidenceRow.id)
    )
    return list(result.scalars())
