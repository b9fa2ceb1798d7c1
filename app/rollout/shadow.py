"""The shadow runner: the SHADOW artifact reviews a sample of live requests off the request path.

``offer`` never waits: a full queue drops the job and counts it. Workers (a fixed number, and a
Jangar executor of their own: breaker and bulkhead apart from the served arm's) review the
request with the shadow artifact, run the same plan and gates on its verdict, and store what
would have been decided beside the served review. Nothing here can change a served answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ShadowReviewRow
from app.db.session import SessionFactory, unit_of_work
from app.gates.checks import evaluate
from app.gates.context import GateContext
from app.gates.limits import LoadedPolicy
from app.gates.plan import plan_order
from app.observability import metrics
from app.observability.logging import event
from app.registry.artifact import Artifact
from app.review.runtime import ReviewRuntime
from app.rollout.analysis import p95
from app.rollout.splitter import bucket, routing_key

if TYPE_CHECKING:
    from app.registry.cache import LiveState


@dataclass(frozen=True, slots=True)
class ShadowJob:
    served_review_id: str
    served_artifact_hash: str
    served_decision: str
    served_llm_latency_ms: float | None
    ctx: GateContext  # the served review's gate inputs (request, now, controls, counts)


class ShadowRunner:
    def __init__(
        self,
        factory: SessionFactory,
        live: LiveState,
        runtime: ReviewRuntime,
        policy: LoadedPolicy,
        *,
        sample_rate: float,
        queue_max: int,
        concurrency: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._factory = factory
        self._live = live
        self._runtime = runtime
        self._policy = policy
        self._threshold = round(sample_rate * 10_000)
        self._queue: asyncio.Queue[tuple[Artifact, ShadowJob]] = asyncio.Queue(queue_max)
        self._concurrency = concurrency
        self._clock = clock
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.done = 0

    def offer(self, job: ShadowJob) -> None:
        """Queue a served review for the shadow artifact, if any; never blocks, never raises."""
        artifact = self._live.shadow
        if artifact is None or artifact.artifact_hash == job.served_artifact_hash:
            return
        d = job.ctx.request.decision
        if bucket(routing_key(d.strategy_id, d.symbol), "shadow-sample") >= self._threshold:
            return
        try:
            self._queue.put_nowait((artifact, job))
        except asyncio.QueueFull:
            self.dropped += 1
            metrics.SHADOW_DROPPED.inc()
        metrics.SHADOW_QUEUE_DEPTH.set(self._queue.qsize())

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    async def drain(self) -> None:
        """Wait until every queued job is done (tests and shutdown)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            artifact, job = await self._queue.get()
            try:
                await self._one(artifact, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a shadow failure is counted, never propagated
                metrics.SHADOW_REVIEWS.labels("error").inc()
                event("shadow.failed", logging.WARNING, error=type(exc).__name__)
            finally:
                self._queue.task_done()
                metrics.SHADOW_QUEUE_DEPTH.set(self._queue.qsize())

    async def _one(self, artifact: Artifact, job: ShadowJob) -> None:
        from app.decision import final_decision  # the served path's rule, not a copy

        ctx = job.ctx
        outcome = await self._runtime.review(
            ctx.request, artifact, dspy_disabled=self._live.controls.dspy_disabled
        )
        limits = self._policy.limits
        plan = plan_order(ctx.request, outcome.verdict, ctx.reference, limits)
        gates = evaluate(dataclasses.replace(ctx, verdict=outcome.verdict, plan=plan), limits)
        decision, reasons = final_decision(
            outcome.verdict.verdict, gates, limits.review.abstain_action
        )
        agrees = decision.value == job.served_decision
        async with unit_of_work(self._factory) as session:
            session.add(
                ShadowReviewRow(
                    served_review_id=job.served_review_id,
                    artifact_hash=artifact.artifact_hash,
                    served_artifact_hash=job.served_artifact_hash,
                    verdict=outcome.verdict.verdict.value,
                    decision=decision.value,
                    served_decision=job.served_decision,
                    agrees=agrees,
                    reasons=reasons,
                    executor=outcome.executor.value,
                    fallback_reason=outcome.fallback.value if outcome.fallback else None,
                    llm_latency_ms=outcome.llm_latency_ms,
                    served_llm_latency_ms=job.served_llm_latency_ms,
                    prompt_tokens=outcome.prompt_tokens,
                    completion_tokens=outcome.completion_tokens,
                    created_at=self._clock(),
                )
            )
        self.done += 1
        metrics.SHADOW_REVIEWS.labels("agree" if agrees else "disagree").inc()


@dataclass(frozen=True, slots=True)
class ShadowStats:
    """Agreement of a shadow artifact with the served arm over a window."""

    n: int
    disagreement: float
    schema_valid_rate: float
    fallback_rate: float
    p95_llm_ms: float | None
    served_p95_llm_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def stats(
    session: AsyncSession,
    artifact_hash: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ShadowStats:
    stmt = select(
        ShadowReviewRow.agrees,
        ShadowReviewRow.fallback_reason,
        ShadowReviewRow.llm_latency_ms,
        ShadowReviewRow.served_llm_latency_ms,
    ).where(ShadowReviewRow.artifact_hash == artifact_hash)
    if start is not None:
        stmt = stmt.where(ShadowReviewRow.created_at >= start)
    if end is not None:
        stmt = stmt.where(ShadowReviewRow.created_at < end)
    rows = (await session.execute(stmt)).all()
    n = len(rows)
    if n == 0:
        return ShadowStats(0, 0.0, 0.0, 0.0, None, None)
    mine: list[float] = []
    served: list[float] = []
    disagree = schema_invalid = fallback = 0
    for agrees, reason, llm_ms, served_ms in rows:
        disagree += not agrees
        schema_invalid += reason == "schema_invalid"
        fallback += reason is not None
        if llm_ms is not None:
            mine.append(float(llm_ms))
        if served_ms is not None:
            served.append(float(served_ms))
    return ShadowStats(
        n=n,
        disagreement=disagree / n,
        schema_valid_rate=1 - schema_invalid / n,
        fallback_rate=fallback / n,
        p95_llm_ms=p95(mine) if mine else None,
        served_p95_llm_ms=p95(served) if served else None,
    )
