# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
# (dspy ships no type information; its loose typing is contained in this module.)
"""The ``dspy_live`` executor: the artifact's DSPy program over Jangar, under one deadline.

Order of checks per call: breaker (``circuit_open``) -> bulkhead (``bulkhead_full``) -> the
program call inside ``asyncio.timeout(LLM_DSPY_TIMEOUT_SECONDS)``. At the deadline the task is
cancelled, which closes the HTTP stream (the gateway sees the disconnect), and the caller's
heuristic answers. Every outcome is one of a closed set, so metric labels stay bounded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import dspy  # pyright: ignore[reportMissingTypeStubs]
import httpx
from dspy import lm15  # pyright: ignore[reportMissingTypeStubs]
from dspy.clients.errors import error_boundary  # pyright: ignore[reportMissingTypeStubs]
from dspy.utils.exceptions import (  # pyright: ignore[reportMissingTypeStubs]
    AdapterParseError,
    LMAuthError,
    LMProviderError,
    LMRateLimitError,
    LMServerError,
    LMTimeoutError,
    LMTransportError,
)
from pydantic import ValidationError

from app.observability import metrics
from app.observability.logging import event
from app.observability.tracing import outgoing_headers, span
from app.registry.artifact import Artifact
from app.review.jangar import JangarEngine, build_lm, call_headers
from app.review.jangar_url import normalize_base_url
from app.review.program import (
    ReviewAdapter,
    ReviewCall,
    TradeReviewProgram,
    install_type_adapter_cache,
    new_program,
    prediction_fields,
    program_inputs,
    review_call,
)
from app.review.resilience import BreakerState, Bulkhead, CircuitBreaker
from app.review.schemas import ReviewRequest, ReviewVerdict
from app.settings import Settings


class CallOutcome(StrEnum):
    """How one Jangar attempt ended (the ``outcome`` label of the call metrics)."""

    OK = "ok"
    TIMEOUT = "timeout"
    TRANSPORT_ERROR = "transport_error"
    HTTP_ERROR = "http_error"
    AUTH = "auth"  # Jangar answered 401/403: our key or binding, not Jangar's health
    RATE_LIMITED = "rate_limited"
    SCHEMA_INVALID = "schema_invalid"
    CIRCUIT_OPEN = "circuit_open"
    BULKHEAD_FULL = "bulkhead_full"


# Outcomes that say the gateway is unusable (they feed the breaker). A schema-invalid answer
# came back fine over the wire: it is the model's fault, not the gateway's. Auth failures do
# count: a refused key fails every call the same way until an operator fixes the binding, so
# the breaker stops paying a round trip per review; the half-open probes keep counting
# ``outcome="auth"``, which is what the alert watches.
_GATEWAY_FAILURES = frozenset(
    {
        CallOutcome.TIMEOUT,
        CallOutcome.TRANSPORT_ERROR,
        CallOutcome.HTTP_ERROR,
        CallOutcome.AUTH,
        CallOutcome.RATE_LIMITED,
    }
)


@dataclass(frozen=True, slots=True)
class LiveResult:
    outcome: CallOutcome
    verdict: ReviewVerdict | None
    latency_ms: float | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class JangarNotConfigured(Exception):
    """A dspy_live artifact cannot serve without JANGAR_BASE_URL."""


def classify(exc: BaseException) -> CallOutcome:
    """Map a failure of the program call to the closed outcome set."""
    if isinstance(exc, TimeoutError | LMTimeoutError):
        return CallOutcome.TIMEOUT
    if isinstance(exc, AdapterParseError | ValidationError | ValueError | TypeError):
        return CallOutcome.SCHEMA_INVALID
    if isinstance(exc, LMAuthError):
        return CallOutcome.AUTH
    if isinstance(exc, LMRateLimitError):
        return CallOutcome.RATE_LIMITED
    if isinstance(exc, LMServerError):
        return CallOutcome.HTTP_ERROR
    if isinstance(exc, LMTransportError):
        return CallOutcome.TRANSPORT_ERROR
    if isinstance(exc, LMProviderError):
        # An error frame (provider_code set) or an HTTP status is the gateway answering with
        # an error; anything else (malformed body) is a broken exchange.
        status = getattr(exc, "status", None)
        if status is not None or getattr(exc, "provider_code", None):
            return CallOutcome.HTTP_ERROR
        return CallOutcome.TRANSPORT_ERROR
    return CallOutcome.TRANSPORT_ERROR


def to_verdict(fields: Mapping[str, Any]) -> ReviewVerdict:
    """Re-validate the program's output against our schema (raises ``ValidationError``)."""
    data = dict(fields)
    rationale = data.get("rationale")
    if isinstance(rationale, str):
        # Advisory prose: an over-long rationale is cut, not treated as a broken answer.
        data["rationale"] = rationale.strip()[:280]
    for name in ("risk_flags", "required_checks"):
        if data.get(name) is None:
            data[name] = []
        elif isinstance(data[name], list):
            data[name] = [str(x)[:64] for x in data[name]][:32]  # pyright: ignore[reportUnknownVariableType]
    for name in ("adjusted_qty", "adjusted_limit_price"):
        value = data.get(name)
        if isinstance(value, float | int) and not isinstance(value, bool):
            data[name] = Decimal(str(value))
    return ReviewVerdict.model_validate(data)


class LiveExecutor:
    """Owns the Jangar LM, the compiled programs per artifact, the breaker and the bulkhead."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        if settings.jangar_base_url is None:
            raise JangarNotConfigured("JANGAR_BASE_URL is not set")
        self.model = settings.llm_model
        engine = JangarEngine(
            client,
            normalize_base_url(settings.jangar_base_url),
            settings.llm_model,
            settings.jangar_api_key.get_secret_value() if settings.jangar_api_key else None,
            settings.jangar_extra_headers,
            max_completion_tokens=settings.llm_max_completion_tokens,
        )
        self._engine = engine
        self._lm = build_lm(engine, settings.llm_model)
        # Pinned adapter; its silent second call through JSONAdapter is switched off.
        self._adapter = ReviewAdapter()
        install_type_adapter_cache()
        self._deadline = settings.llm_dspy_timeout_seconds
        self._reserve_per_call = settings.llm_answer_reserve_ms / 1000
        # Per artifact: its program, and the program's call prepared for the direct path (None:
        # the program runs through ``program.acall``, see ``ReviewCall``).
        self._programs: OrderedDict[str, tuple[TradeReviewProgram, ReviewCall | None]] = (
            OrderedDict()
        )
        self.breaker = CircuitBreaker(
            window_seconds=settings.breaker_window_seconds,
            min_calls=settings.breaker_min_calls,
            failure_rate=settings.breaker_failure_rate,
            cooldown_seconds=settings.breaker_cooldown_seconds,
            clock=time.monotonic,
            on_change=_breaker_changed,
        )
        self.bulkhead = Bulkhead(settings.bulkhead_max_concurrent)

    def prepare(self, artifact: Artifact) -> None:
        """Build (and cache) the artifact's program; raises if its state cannot be loaded."""
        if artifact.artifact_hash in self._programs:
            self._programs.move_to_end(artifact.artifact_hash)
            return
        state = artifact.program_state.get("dspy")
        if state is not None and not isinstance(state, dict):
            raise ValueError("program_state.dspy must be an object")
        program = new_program(state)  # pyright: ignore[reportUnknownArgumentType]
        self._programs[artifact.artifact_hash] = (program, review_call(program, self._adapter))
        while len(self._programs) > 4:  # active + canary + shadow + one being replaced
            self._programs.popitem(last=False)

    async def review(
        self,
        request: ReviewRequest,
        artifact: Artifact,
        trace_headers: Mapping[str, str],
        llm_deadline: float | None = None,
    ) -> LiveResult:
        """The call under a ``jangar.call`` span (model, outcome, tokens as attributes)."""
        with span("jangar.call") as current:
            result = await self._call(request, artifact, trace_headers, llm_deadline)
            current.set_attributes(
                {
                    "llm.model": self.model,
                    "jangar.outcome": result.outcome.value,
                    "llm.prompt_tokens": result.prompt_tokens or 0,
                    "llm.completion_tokens": result.completion_tokens or 0,
                }
            )
            if result.outcome is not CallOutcome.OK:
                current.set_attribute("review.fallback_reason", result.outcome.value)
            return result

    async def _call(
        self,
        request: ReviewRequest,
        artifact: Artifact,
        trace_headers: Mapping[str, str],
        llm_deadline: float | None = None,
    ) -> LiveResult:
        """The call ends by ``llm_deadline`` (event-loop time; the pipeline derives it from
        the request's arrival, see ``review/budget.py``), earlier still when many calls are in
        flight. None: ``LLM_DSPY_TIMEOUT_SECONDS`` from now."""
        probe = self.breaker.acquire()
        if probe is None:
            metrics.JANGAR_CALLS.labels(CallOutcome.CIRCUIT_OPEN.value).inc()
            return LiveResult(CallOutcome.CIRCUIT_OPEN, None, None)
        if not self.bulkhead.try_acquire():
            if probe:
                self.breaker.release_probe()
            metrics.JANGAR_CALLS.labels(CallOutcome.BULKHEAD_FULL.value).inc()
            return LiveResult(CallOutcome.BULKHEAD_FULL, None, None)
        try:
            self.prepare(artifact)
        except Exception:
            self.bulkhead.release()
            if probe:
                self.breaker.release_probe()
            raise
        metrics.JANGAR_IN_FLIGHT.inc()
        start = time.perf_counter()
        token = call_headers.set(outgoing_headers(trace_headers))
        finished = False
        try:
            program, call = self._programs[artifact.artifact_hash]
            if llm_deadline is None:
                llm_deadline = asyncio.get_running_loop().time() + self._deadline
            async with asyncio.timeout_at(llm_deadline - self._stagger()):
                inputs = program_inputs(request)
                messages = call.messages(inputs) if call is not None else None
                if call is not None and messages is not None:
                    fields, (prompt, completion) = await self._direct(call, messages)
                else:
                    fields, (prompt, completion) = await self._through_dspy(program, inputs)
            verdict = to_verdict(fields)
        except Exception as exc:  # the LLM path never fails a review: it falls back
            outcome = classify(exc)
            elapsed = time.perf_counter() - start
            finished = True
            self._finish(outcome, elapsed, probe=probe)
            event(
                "jangar.call_failed",
                logging.WARNING,
                outcome=outcome.value,
                error=type(exc).__name__,
                latency_ms=round(elapsed * 1000, 1),
            )
            return LiveResult(outcome, None, round(elapsed * 1000, 3))
        finally:
            call_headers.reset(token)
            self.bulkhead.release()
            metrics.JANGAR_IN_FLIGHT.dec()
            if not finished and probe and self.breaker.state is BreakerState.HALF_OPEN:
                # Cancelled (client gone, shutdown) before an outcome: free the probe slot, or
                # the breaker would stay half-open with no probe allowed.
                self.breaker.release_probe()
        elapsed = time.perf_counter() - start
        self._finish(CallOutcome.OK, elapsed, probe=probe)
        if prompt is not None:
            metrics.JANGAR_TOKENS.labels("prompt").inc(prompt)
        if completion is not None:
            metrics.JANGAR_TOKENS.labels("completion").inc(completion)
        return LiveResult(CallOutcome.OK, verdict, round(elapsed * 1000, 3), prompt, completion)

    async def _direct(
        self, call: ReviewCall, messages: list[dict[str, str]]
    ) -> tuple[dict[str, Any], tuple[int | None, int | None]]:
        """The program's one LM call without DSPy's module/LM machinery (see ``ReviewCall``).

        Engine failures are projected by DSPy's own error boundary, as ``dspy.LM`` does, so
        the caller sees the same exceptions either way."""
        with error_boundary(self._lm.model, unexpected=True):
            reply = await self._engine.complete_messages(messages)
        if reply.truncated:
            event("jangar.truncated", logging.WARNING, completion_chars=len(reply.content))
        return call.parse(reply.content), _reply_usage(reply.usage)

    async def _through_dspy(
        self, program: TradeReviewProgram, inputs: dict[str, Any]
    ) -> tuple[dict[str, Any], tuple[int | None, int | None]]:
        with dspy.context(
            lm=self._lm, adapter=self._adapter, disable_history=True, track_usage=True
        ):
            prediction = await program.acall(**inputs)
        return prediction_fields(prediction), _usage(prediction)

    def _stagger(self) -> float:
        """How much earlier than its deadline this call ends. When many calls are in flight
        they would all time out together and then queue for the CPU to finish their reviews;
        each call gives back ``LLM_ANSWER_RESERVE_MS`` per call in flight (never more than half
        the deadline), which staggers the cut-offs so the answers, not only the LLM calls,
        meet the deadline."""
        reserve = self.bulkhead.in_flight * self._reserve_per_call
        return min(reserve, self._deadline / 2)

    def _finish(self, outcome: CallOutcome, elapsed: float, *, probe: bool) -> None:
        self.breaker.record(outcome not in _GATEWAY_FAILURES, probe=probe)
        metrics.JANGAR_CALLS.labels(outcome.value).inc()
        metrics.JANGAR_LATENCY.labels(outcome.value).observe(elapsed)


def publish_breaker_state(state: BreakerState) -> None:
    """Set the breaker gauge (the serving executor calls this at start; an offline eval's
    executor does not, so it never masks the serving breaker's state)."""
    for s in BreakerState:
        metrics.BREAKER_STATE.labels(s.value).set(1 if s is state else 0)


def _breaker_changed(state: BreakerState) -> None:
    for s in BreakerState:
        metrics.BREAKER_STATE.labels(s.value).set(1 if s is state else 0)
    event("jangar.breaker", state=state.value)


def _reply_usage(usage: lm15.Usage | None) -> tuple[int | None, int | None]:
    """Prompt/completion tokens as DSPy's usage tracker reports them for the same reply:
    nothing when no count arrived, a missing count as 0 beside one that did."""
    if usage is None:
        return None, None
    counts = (usage.input_tokens, usage.output_tokens, usage.total_tokens)
    if all(count is None for count in counts):
        return None, None
    return usage.input_tokens or 0, usage.output_tokens or 0


def _usage(prediction: Any) -> tuple[int | None, int | None]:
    try:
        usage = prediction.get_lm_usage() or {}
    except AttributeError:
        return None, None
    prompt = completion = 0
    found = False
    for per_model in usage.values():
        if isinstance(per_model, dict):
            found = True
            prompt += int(per_model.get("prompt_tokens") or 0)  # pyright: ignore[reportUnknownArgumentType,reportUnknownMemberType]
            completion += int(per_model.get("completion_tokens") or 0)  # pyright: ignore[reportUnknownArgumentType,reportUnknownMemberType]
    return (prompt, completion) if found else (None, None)
