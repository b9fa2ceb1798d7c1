"""Runs the serving artifact's executor and always comes back with a verdict.

Fallback is not an error: when the LLM path cannot answer (or is switched off) the
deterministic heuristic answers and the closed ``FallbackReason`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.registry.artifact import Artifact
from app.registry.states import ExecutorKind
from app.review import heuristic
from app.review.schemas import ReviewRequest, ReviewVerdict


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


class ReviewRuntime:
    """Chooses the executor for an artifact; the live LLM executor plugs in here."""

    async def review(
        self,
        request: ReviewRequest,
        artifact: Artifact | None,
        *,
        dspy_disabled: bool,
    ) -> ReviewOutcome:
        if artifact is None:
            return self._fallback(request, None, FallbackReason.ARTIFACT_UNAVAILABLE)
        if artifact.executor is ExecutorKind.HEURISTIC:
            verdict = heuristic.review(request, heuristic_params(artifact))
            return ReviewOutcome(verdict, ExecutorKind.HEURISTIC, None, None, None)
        if dspy_disabled:
            return self._fallback(request, artifact, FallbackReason.DSPY_DISABLED)
        # No live executor is wired in this build: fail over to the heuristic, visibly.
        return self._fallback(request, artifact, FallbackReason.ARTIFACT_UNAVAILABLE)

    @staticmethod
    def _fallback(
        request: ReviewRequest, artifact: Artifact | None, reason: FallbackReason
    ) -> ReviewOutcome:
        verdict = heuristic.review(request, None)
        model = artifact.model if artifact is not None else None
        return ReviewOutcome(verdict, ExecutorKind.HEURISTIC, model, reason, None)
