"""Runs the serving artifact's executor and always comes back with a verdict.

Fallback is not an error: when the LLM path cannot answer (or is switched off) the
deterministic heuristic answers and the closed ``FallbackReason`` says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from app.observability.logging import event
from app.registry.artifact import Artifact
from app.registry.states import ExecutorKind
from app.review import heuristic
from app.review.schemas import ReviewRequest, ReviewVerdict, Uncertainty, Verdict

if TYPE_CHECKING:
    from app.review.live import LiveExecutor


class FallbackReason(StrEnum):
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport_error"
    HTTP_ERROR = "http_error"
    RATE_LIMITED = "rate_limited"
    SCHEMA_INVALID = "schema_invalid"
    CIRCUIT_OPEN = "circuit_open"
    BULKHEAD_FULL = "bulkhead_full"
    DSPY_DISABLED = "dspy_disabled"
    ARTIFACT_UNAVAILABLE = "artifact_unavailable"
    # The request's queueing and pre-read left less than LLM_MIN_BUDGET_MS for the LLM step.
    BUDGET_EXHAUSTED = "budget_exhausted"


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    verdict: ReviewVerdict
    executor: ExecutorKind  # what actually answered
    model: str | None
    fallback: FallbackReason | None
    llm_latency_ms: float | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def heuristic_params(artifact: Artifact | None) -> dict[str, float] | None:
    if artifact is None:
        return None
    block = artifact.program_state.get("heuristic")
    if isinstance(block, dict):
        params = block.get("params")  # pyright: ignore[reportUnknownMemberType,reportUnknownVariableType]
        if isinstance(params, dict):
            return {str(k): float(v) for k, v in params.items()}  # pyright: ignore[reportUnknownArgumentType,reportUnknownVariableType]
    return None


def safe_heuristic(request: ReviewRequest, params: dict[str, float] | None) -> ReviewVerdict:
    """The heuristic, failing closed: a scorer crash on odd input is a veto, never a 500."""
    try:
        return heuristic.review(request, params)
    except Exception as exc:
        event("review.heuristic_failed", logging.ERROR, error=repr(exc))
        return ReviewVerdict(
            verdict=Verdict.VETO,
            confidence=1.0,
            uncertainty=Uncertainty.HIGH,
            rationale="Reviewer could not score this request; failing closed.",
            risk_flags=["reviewer_error"],
        )


class ReviewRuntime:
    """Chooses the executor for an artifact and turns every LLM failure into a fallback."""

    def __init__(self, live: LiveExecutor | None = None, *, min_llm_s: float = 0.0) -> None:
        self.live = live
        # A window shorter than this cannot hold a model's answer: the heuristic answers at
        # once instead of spending a call (and a breaker failure) on a sure timeout.
        self.min_llm_s = min_llm_s

    def prepare(self, artifact: Artifact) -> None:
        """Refuse (raise) an artifact this replica cannot serve, before it is swapped in."""
        if artifact.executor is ExecutorKind.DSPY_LIVE:
            if self.live is None:
                raise ValueError(
                    "a dspy_live artifact needs JANGAR_BASE_URL, which is not set on this service"
                )
            self.live.prepare(artifact)

    async def review(
        self,
        request: ReviewRequest,
        artifact: Artifact | None,
        *,
        dspy_disabled: bool,
        trace_headers: Mapping[str, str] | None = None,
        llm_deadline: float | None = None,
    ) -> ReviewOutcome:
        """``llm_deadline`` (event-loop time) is when the LLM step must have ended; None: the
        full ``LLM_DSPY_TIMEOUT_SECONDS`` from now (offline evaluation)."""
        if artifact is None:
            return self._fallback(request, None, FallbackReason.ARTIFACT_UNAVAILABLE)
        if artifact.executor is ExecutorKind.HEURISTIC:
            verdict = safe_heuristic(request, heuristic_params(artifact))
            return ReviewOutcome(verdict, ExecutorKind.HEURISTIC, None, None, None)
        if dspy_disabled:
            return self._fallback(request, artifact, FallbackReason.DSPY_DISABLED)
        if self.live is None:
            return self._fallback(request, artifact, FallbackReason.ARTIFACT_UNAVAILABLE)
        left = None if llm_deadline is None else llm_deadline - asyncio.get_running_loop().time()
        if left is not None and left < self.min_llm_s:
            return self._fallback(request, artifact, FallbackReason.BUDGET_EXHAUSTED)
        try:
            result = await self.live.review(request, artifact, trace_headers or {}, llm_deadline)
        except Exception as exc:  # the artifact's program could not be built
            event("review.artifact_unusable", logging.ERROR, error=repr(exc))
            return self._fallback(request, artifact, FallbackReason.ARTIFACT_UNAVAILABLE)
        if result.verdict is None:
            outcome = self._fallback(request, artifact, FallbackReason(result.outcome.value))
            return ReviewOutcome(
                outcome.verdict,
                outcome.executor,
                outcome.model,
                outcome.fallback,
                result.latency_ms,
            )
        return ReviewOutcome(
            result.verdict,
            ExecutorKind.DSPY_LIVE,
            self.live.model,
            None,
            result.latency_ms,
            result.prompt_tokens,
            result.completion_tokens,
        )

    def _fallback(
        self, request: ReviewRequest, artifact: Artifact | None, reason: FallbackReason
    ) -> ReviewOutcome:
        # The bootstrap heuristic's defaults answer: an LLM artifact carries no heuristic params.
        verdict = safe_heuristic(request, heuristic_params(artifact))
        model = self.live.model if self.live is not None else None
        return ReviewOutcome(verdict, ExecutorKind.HEURISTIC, model, reason, None)
