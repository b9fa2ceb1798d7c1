"""``decide()``: the only place that orders the steps of a review.

    controls + artifact snapshot -> runtime.review (executor, fallback) -> plan order
    -> gates.evaluate (every gate) -> decision -> one INSERT + commit -> metrics -> response

The review row is committed before the answer leaves; if it cannot be written the answer is
503 ``audit_unavailable`` with ``decision: reject``. A request is identified by its
``Idempotency-Key`` (or, without one, its canonical hash): a repeat gets the stored answer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from opentelemetry import trace
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from app.db.session import SessionFactory, read_only
from app.decision import final_decision
from app.errors import Conflict, ErrorCode, ServiceUnavailable
from app.gates.checks import GateResult, evaluate
from app.gates.context import (
    GateContext,
    current_position_qty,
    resolve_reference_price,
    signed_delta,
)
from app.gates.limits import LoadedPolicy
from app.gates.plan import plan_order
from app.observability import metrics
from app.observability.logging import add_fields, bind, event, trace_id_from
from app.observability.tracing import current_trace_id, span
from app.registry.cache import LiveState
from app.registry.hashing import canonical_json, sha256_hex
from app.review.budget import AnswerBudget
from app.review.runtime import ReviewOutcome, ReviewRuntime
from app.review.schemas import (
    Decision,
    FallbackOut,
    GateOut,
    LineageOut,
    OrderOut,
    ReviewOut,
    ReviewRequest,
    ReviewResponse,
    confidence_band,
)
from app.reviews import repository as reviews
from app.reviews.reader import PrecheckReader
from app.reviews.reservations import Reservation
from app.reviews.writer import ReviewWriter
from app.rollout import routing
from app.rollout.shadow import ShadowJob, ShadowRunner

# Failures that mean "the audit store cannot be reached", as opposed to a bug.
_DB_DOWN: tuple[type[BaseException], ...] = (
    DBAPIError,
    SQLAlchemyError,
    OSError,
    ConnectionError,
    TimeoutError,
)


class Arm(StrEnum):
    ACTIVE = "active"
    PINNED = "pinned"
    CANARY = "canary"


@dataclass(frozen=True, slots=True)
class Reviewed:
    """The answer, JSON-ready (the stored row's response plus the final timings)."""

    body: dict[str, Any]
    replay: bool

    @property
    def request_hash(self) -> str:
        return str(self.body["request_hash"])


@dataclass
class PipelineDeps:
    factory: SessionFactory
    live: LiveState
    runtime: ReviewRuntime
    policy: LoadedPolicy
    live_trading_enabled: bool
    program_name: str
    signature_version: str
    clock: Callable[[], datetime]
    writer: ReviewWriter
    reader: PrecheckReader
    budget: AnswerBudget
    shadow: ShadowRunner | None = None  # mirrors served reviews to the SHADOW artifact
    build_sha: str = "dev"
    inflight: dict[str, asyncio.Future[Reviewed]] = field(
        default_factory=dict[str, "asyncio.Future[Reviewed]"]
    )


def request_hash(request_json: dict[str, Any]) -> str:
    """Canonical hash of the validated request (``model_dump(mode="json", by_alias=True)``):
    the same order in the same context always hashes the same."""
    return sha256_hex(canonical_json(request_json))


def stored_key(idempotency_key: str | None, req_hash: str) -> str:
    """The stored idempotency key, in one of two namespaces: ``k:`` for an explicit
    ``Idempotency-Key``, ``h:`` for the default (the request hash). An explicit key equal to
    another request's hash can then never answer (or block) that request."""
    return f"k:{idempotency_key}" if idempotency_key is not None else f"h:{req_hash}"


_CREDENTIALS = re.compile(r"://[^/@\s]*@")


def _why(exc: BaseException) -> str:
    """A one-line cause for the log: the driver's message, credentials in URLs removed."""
    cause = exc.__cause__ or getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    text = _CREDENTIALS.sub("://***@", text)[:240]
    if isinstance(exc, TimeoutError) or isinstance(cause, TimeoutError):
        return f"timed out: {text}" if text else "timed out"
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def audit_unavailable(exc: BaseException) -> ServiceUnavailable:
    metrics.AUDIT_UNAVAILABLE.inc()
    event("review.audit_unavailable", logging.ERROR, error=type(exc).__name__, reason=_why(exc))
    return ServiceUnavailable(
        "the review could not be recorded; the order must not be sent",
        code=ErrorCode.AUDIT_UNAVAILABLE,
        extra={"decision": Decision.REJECT.value},
    )


async def decide(
    deps: PipelineDeps,
    request: ReviewRequest,
    idempotency_key: str | None,
    trace_headers: Mapping[str, str] | None = None,
    arrived_at: float | None = None,
) -> Reviewed:
    """Review one order; ``replay`` says whether the answer is a stored one.

    ``arrived_at`` (event-loop time the server parsed the request's first bytes) anchors the
    answer's deadline; None: now."""
    request_json = request.model_dump(mode="json", by_alias=True)  # once: hash and audit row
    req_hash = request_hash(request_json)
    key = stored_key(idempotency_key, req_hash)
    # Single flight: concurrent copies in this replica wait for the first one's answer.
    pending = deps.inflight.get(key)
    if pending is not None:
        first = await asyncio.shield(pending)
        if first.request_hash != req_hash:
            raise _key_conflict()
        return Reviewed(first.body, replay=True)
    future: asyncio.Future[Reviewed] = asyncio.get_running_loop().create_future()
    deps.inflight[key] = future
    try:
        result = await _decide_once(
            deps, request, request_json, req_hash, key, trace_headers or {}, arrived_at
        )
        future.set_result(result)
        return result
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: waiters re-raise it, nobody logs it as lost
        raise
    finally:
        deps.inflight.pop(key, None)


def _key_conflict() -> Conflict:
    return Conflict(
        "this Idempotency-Key was used for a different request",
        code=ErrorCode.IDEMPOTENCY_CONFLICT,
    )


def _replayed(stored: tuple[str, dict[str, Any]], req_hash: str) -> Reviewed:
    stored_hash, body = stored
    if stored_hash != req_hash:
        raise _key_conflict()
    metrics.IDEMPOTENT_REPLAYS.inc()
    return Reviewed(body, replay=True)


async def _decide_once(
    deps: PipelineDeps,
    request: ReviewRequest,
    request_json: dict[str, Any],
    req_hash: str,
    key: str,
    trace_headers: Mapping[str, str],
    arrived_at: float | None,
) -> Reviewed:
    """One review under its span, its log fields bound (review_id, trace_id, ...)."""
    review_id = str(uuid.uuid4())
    with span("review") as current:
        trace_id = current_trace_id() or trace_id_from(trace_headers.get("traceparent"))
        current.set_attribute("review.id", review_id)
        with bind(review_id=review_id, trace_id=trace_id):
            return await _review(
                deps, request, request_json, req_hash, key, trace_headers, arrived_at, review_id
            )


async def _review(
    deps: PipelineDeps,
    request: ReviewRequest,
    request_json: dict[str, Any],
    req_hash: str,
    key: str,
    trace_headers: Mapping[str, str],
    arrived_at: float | None,
    review_id: str,
) -> Reviewed:
    t0 = time.perf_counter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    arrived = started if arrived_at is None else min(arrived_at, started)
    now = deps.clock()
    limits = deps.policy.limits
    since = now - timedelta(seconds=limits.order_rate.window_seconds)
    try:
        seen, recent = await deps.reader.check(key, request.decision.strategy_id, since)
        stored = None
        if seen:
            async with read_only(deps.factory) as session:
                stored = await reviews.find_by_key(session, key)
    except _DB_DOWN as exc:
        raise audit_unavailable(exc) from exc
    if stored is not None:
        return _replayed(stored, req_hash)
    t_read = time.perf_counter()

    controls = deps.live.controls
    artifact, on_canary = routing.choose(deps.live, request)
    arm = Arm.PINNED if deps.live.pinned_hash else Arm.CANARY if on_canary else Arm.ACTIVE
    add_fields(artifact_hash=artifact.artifact_hash if artifact else None, arm=arm.value)
    outcome = await deps.runtime.review(
        request,
        artifact,
        dspy_disabled=controls.dspy_disabled,
        trace_headers=trace_headers,
        # What the deadline leaves once the tail (gates, audit commit) is reserved.
        llm_deadline=deps.budget.llm_deadline(arrived),
    )
    t_review = time.perf_counter()

    reference = resolve_reference_price(request)
    plan = plan_order(request, outcome.verdict, reference, limits)
    ctx = GateContext(
        request=request,
        verdict=outcome.verdict,
        plan=plan,
        reference=reference,
        now=now,
        trading_state=controls.trading_state,
        live_trading_enabled=deps.live_trading_enabled,
        recent_orders_for_strategy=recent,
        current_position_qty=current_position_qty(request),
    )
    with span("gates") as gate_span:
        gates = evaluate(ctx, limits)
        gate_span.set_attribute("gates.failed", [g.code.value for g in gates if not g.passed])
    t_gates = time.perf_counter()
    artifact_hash = artifact.artifact_hash if artifact else "none"
    timings = {
        # Arrival -> decide(): body read, validation, and waiting for the event loop.
        "queued": _ms(started - arrived),
        "read": _ms(t_read - t0),
        "review": _ms(t_review - t_read),
        "gates": _ms(t_gates - t_review),
    }
    if outcome.llm_latency_ms is not None:
        timings["llm"] = outcome.llm_latency_ms
    v = outcome.verdict
    review_out = ReviewOut(
        verdict=v.verdict,
        confidence=v.confidence,
        confidence_band=confidence_band(v.confidence),
        uncertainty=v.uncertainty,
        rationale=v.rationale,
        risk_flags=list(v.risk_flags),
        required_checks=list(v.required_checks),
        adjusted_qty=v.adjusted_qty,
        adjusted_order_type=v.adjusted_order_type,
        adjusted_limit_price=v.adjusted_limit_price,
    )
    order_out = OrderOut(
        symbol=request.decision.symbol,
        action=request.decision.action,
        qty=plan.qty,
        order_type=plan.order_type,
        time_in_force=request.decision.time_in_force,
        limit_price=plan.limit_price,
        limit_price_assumed=plan.limit_price_assumed,
        resized=plan.resized,
    )
    lineage = LineageOut(
        artifact_hash=artifact_hash,
        program=artifact.program_name if artifact else deps.program_name,
        signature_version=artifact.signature_version if artifact else deps.signature_version,
        executor=outcome.executor.value,
        model=outcome.model,
        arm=arm.value,
        fallback=FallbackOut(
            used=outcome.fallback is not None,
            reason=outcome.fallback.value if outcome.fallback else None,
        ),
        build_sha=deps.build_sha,
    )
    reserved = signed_delta(request.decision.action, plan.qty)

    def render(results: list[GateResult]) -> dict[str, Any]:
        """The audit row (and, inside it, the answer) for one set of gate results: the
        decision is derived here and only here, from ``final_decision``."""
        decision, reasons = final_decision(
            outcome.verdict.verdict, results, limits.review.abstain_action
        )
        response = ReviewResponse(
            review_id=review_id,
            decision=decision,
            reasons=reasons,
            order=order_out,
            review=review_out,
            gates=[GateOut(code=g.code.value, passed=g.passed, reason=g.reason) for g in results],
            lineage=lineage,
            policy_hash=deps.policy.policy_hash,
            request_hash=req_hash,
            trading_mode=request.trading_mode,
            timings_ms=timings,
        )
        body = response.model_dump(mode="json")  # once: the audit row and the answer
        submit = decision is Decision.SUBMIT
        return _row(
            request, request_json, response, body, outcome, key, now, reserved if submit else None
        )

    row = render(gates)
    reservation: Reservation | None = None
    if row["decision"] == Decision.SUBMIT.value:

        def recheck(recent: int, pending: Decimal) -> dict[str, Any] | None:
            """At commit, under the strategy's lock: the same gates with every submit of the
            window counted and the position moved by the quantity still in flight. The
            position as reported was judged above; an order must pass both (the pending
            orders may or may not have filled by the time the scheduler's snapshot was
            taken)."""
            if recent == ctx.recent_orders_for_strategy and pending == 0:
                return None
            at_commit = evaluate(
                replace(
                    ctx,
                    recent_orders_for_strategy=recent,
                    current_position_qty=ctx.current_position_qty + pending,
                ),
                limits,
            )
            if all(g.passed for g in at_commit):
                return None
            merged = [
                g
                if again.passed
                else GateResult(
                    again.code,
                    False,
                    f"at commit, with {recent} submits in the window and {pending} "
                    f"in flight for {request.decision.symbol}: {again.reason}",
                )
                for g, again in zip(gates, at_commit, strict=True)
            ]
            return render(merged)

        reservation = Reservation(
            strategy_id=request.decision.strategy_id,
            symbol=request.decision.symbol,
            signed_qty=reserved,
            rate_since=since,
            pending_since=now - timedelta(seconds=limits.reservations.ttl_seconds),
            recheck=recheck,
        )

    t_pre_write = time.perf_counter()
    try:
        with span("audit.write"):
            row = await deps.writer.write(row, reservation)
    except IntegrityError:
        # Another replica (or an earlier attempt) recorded this key first: answer with that.
        try:
            async with read_only(deps.factory) as session:
                stored = await reviews.find_by_key(session, key)
        except _DB_DOWN as exc:
            raise audit_unavailable(exc) from exc
        if stored is None:
            raise audit_unavailable(RuntimeError("duplicate key but no row")) from None
        return _replayed(stored, req_hash)
    except _DB_DOWN as exc:
        raise audit_unavailable(exc) from exc
    body: dict[str, Any] = row["response_json"]
    decision = Decision(row["decision"])
    failed = [g["code"] for g in body["gates"] if not g["passed"]]
    trace.get_current_span().set_attributes(
        {
            "review.decision": decision.value,
            "review.executor": outcome.executor.value,
            "review.arm": arm.value,
            "review.artifact_hash": artifact_hash,
            "review.fallback_reason": outcome.fallback.value if outcome.fallback else "",
        }
    )
    if reservation is not None and decision is Decision.REJECT:
        for code in failed:
            metrics.RESERVATION_REJECTS.labels(code).inc()
        event(
            "review.reservation_reject",
            strategy_id=request.decision.strategy_id,
            symbol=request.decision.symbol,
            gates=",".join(failed),
        )
    t_end = time.perf_counter()
    deps.budget.observe_tail(t_end - t_review)
    if loop.time() > deps.budget.answer_deadline(arrived):
        metrics.DEADLINE_MISSES.labels(outcome.executor.value).inc()
    body = {
        **body,
        "timings_ms": {**timings, "write": _ms(t_end - t_pre_write), "total": _ms(t_end - t0)},
    }

    metrics.REVIEWS.labels(decision.value, outcome.executor.value, arm.value).inc()
    metrics.REVIEW_LATENCY.labels(outcome.executor.value).observe(t_end - t0)
    if outcome.fallback is not None:
        metrics.FALLBACKS.labels(outcome.fallback.value).inc()
    for code in failed:
        metrics.GATE_FAILURES.labels(code).inc()
    if deps.shadow is not None:  # after the answer is final: queued, never awaited
        deps.shadow.offer(
            ShadowJob(
                review_id,
                lineage.artifact_hash,
                decision.value,
                outcome.llm_latency_ms,
                ctx,
            )
        )
    return Reviewed(body, replay=False)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _row(
    request: ReviewRequest,
    request_json: dict[str, Any],
    response: ReviewResponse,
    body: dict[str, Any],
    outcome: ReviewOutcome,
    key: str,
    now: datetime,
    reserved_qty: Decimal | None,
) -> dict[str, Any]:
    llm_ms = outcome.llm_latency_ms
    t = response.timings_ms
    total_ms = round(t["read"] + t["review"] + t["gates"], 3)
    return {
        "review_id": response.review_id,
        "idempotency_key": key,
        "request_hash": response.request_hash,
        "request_json": request_json,
        "strategy_id": request.decision.strategy_id,
        "symbol": request.decision.symbol,
        "action": request.decision.action.value,
        "verdict": response.review.verdict.value,
        "decision": response.decision.value,
        "review_json": body["review"],
        "gates_json": body["gates"],
        "failed_gates": ",".join(g.code for g in response.gates if not g.passed)[:1000],
        "response_json": body,
        "artifact_hash": response.lineage.artifact_hash,
        "executor": response.lineage.executor,
        "model": response.lineage.model,
        "arm": response.lineage.arm,
        "fallback_reason": response.lineage.fallback.reason,
        "policy_hash": response.policy_hash,
        "trading_mode": response.trading_mode.value,
        "llm_latency_ms": llm_ms,
        "overhead_ms": round(total_ms - (llm_ms or 0.0), 3),
        "total_latency_ms": total_ms,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "created_at": now,
        "reserved_qty": None if reserved_qty is None else f"{reserved_qty:f}",
    }
