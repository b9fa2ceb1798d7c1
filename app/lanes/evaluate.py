"""Eval lane: the candidate through the serving path on the held-out test split -> scorecard.

Each test example goes through exactly what ``POST /review`` runs, minus the database write:
``ReviewRuntime`` with a ``LiveExecutor`` (one deadline, circuit breaker, bulkhead, heuristic
fallback), then ``plan_order``, every gate (``gates.evaluate``) and the pipeline's decision rule.
The gates judge each request at its original time (``as_of``), with trading ACTIVE, no recent
orders counted against the strategy and live trading as configured: the eval measures the
reviewer, not today's operator controls. The ACTIVE artifact runs the same examples so the
scorecard can compare the two.

Scorecard (``app.registry.promotion.Scorecard``):

- ``schema_valid_rate``: answers that validate / answers that came back (ok + schema_invalid);
  0 when no live answer came back at all (fail closed). 1.0 for a heuristic artifact.
- ``timeout_rate``, ``fallback_rate``: share of examples answered by the fallback (for a timeout).
- ``verdict_accuracy``: final verdict (fallbacks included: that is what would have served) equal
  to the label. ``decision_agreement``: same submit/reject decision as the active artifact.
- ``latency_p50_ms`` / ``latency_p95_ms``: the LLM step's latency (nearest rank).
- ``gate_compatibility``: every example produced the full gate list without an exception.
- ``gate_bypass_count``: examples decided ``submit`` although a gate failed or the verdict forbids
  sending. Must be 0; it checks the decision rule end to end.
- ``hash_reproducible``: the stored row re-hashes to its address and its DSPy state loads and
  dumps back to the same bytes.
- ``determinism_ok``: the first ``determinism_sample`` examples run again; wherever the same
  executor answered both times the verdict and decision must match (the stub and the heuristic
  are deterministic; a live model at temperature > 0 may legitimately fail this).
- ``delta_sharpe`` / ``maxdd_delta`` (only when examples carry realized outcomes): each artifact's
  per-example return on equity is ``submitted qty x pnl_per_unit / equity`` (0 when it did not
  submit or the outcome is unknown), in time order. Sharpe = mean / stdev of that series (not
  annualised, 0 for a flat series); max drawdown of its cumulative sum. Deltas are candidate
  minus active (``maxdd_delta`` positive = the candidate draws down more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.session import SessionFactory, read_only, unit_of_work
from app.decision import final_decision
from app.gates.checks import GateCode, GateResult, evaluate
from app.gates.context import (
    GateContext,
    OrderPlan,
    TradingState,
    current_position_qty,
    resolve_reference_price,
)
from app.gates.limits import PolicyLimits, load_policy
from app.gates.plan import plan_order
from app.lanes import dataset as datasets
from app.lanes import repository
from app.lanes.dataset import LaneExample, Split
from app.observability.logging import event
from app.registry import evidence
from app.registry import repository as registry
from app.registry.artifact import Artifact, ArtifactRefused
from app.registry.evidence import EvidenceKind
from app.registry.hashing import artifact_hash, canonical_json
from app.registry.promotion import PromotionPolicy, Scorecard, check_scorecard
from app.registry.states import ArtifactState, ExecutorKind
from app.review.jangar_http import deadline_client
from app.review.program import new_program, program_state
from app.review.runtime import FallbackReason, ReviewOutcome, ReviewRuntime
from app.review.schemas import Decision, ReviewRequest, Verdict
from app.settings import Settings

if TYPE_CHECKING:
    from app.review.live import LiveExecutor

LANE = "eval"
DEFAULT_CONCURRENCY = 4
DEFAULT_DETERMINISM_SAMPLE = 5
_FORBIDDING = frozenset({Verdict.VETO, Verdict.ESCALATE})


@dataclass(frozen=True, slots=True)
class ExampleRun:
    example_id: str
    verdict: Verdict | None
    decision: Decision | None
    executor: ExecutorKind | None
    fallback: FallbackReason | None
    latency_ms: float | None
    gates_complete: bool
    bypass: bool
    ret: float  # return on equity of what was submitted (0 when nothing was)
    priced: bool  # the example carries a realized outcome
    error: str | None = None

    def brief(self) -> dict[str, Any]:
        return {
            "id": self.example_id,
            "verdict": self.verdict.value if self.verdict else None,
            "decision": self.decision.value if self.decision else None,
            "executor": self.executor.value if self.executor else None,
            "fallback": self.fallback.value if self.fallback else None,
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class EvalResult:
    scorecard: Scorecard
    evidence_hash: str
    passes: bool
    reasons: list[str]
    duration_s: float


# ------------------------------------------------------------------------------ pure parts


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def sharpe(returns: Sequence[float]) -> float:
    """mean / stdev of a return series (not annualised); 0 for fewer than 2 points or no spread."""
    if len(returns) < 2:
        return 0.0
    spread = statistics.pstdev(returns)
    return statistics.fmean(returns) / spread if spread > 0 else 0.0


def max_drawdown(returns: Sequence[float]) -> float:
    """Largest fall of the cumulative sum from its running peak (the peak starts at 0)."""
    peak = total = worst = 0.0
    for r in returns:
        total += r
        peak = max(peak, total)
        worst = max(worst, peak - total)
    return worst


def is_bypass(decision: Decision, verdict: Verdict, failed_gates: int, abstain_action: str) -> bool:
    """A submit the rules forbid: a failed gate, a forbidding verdict, or a rejecting abstain."""
    if decision is not Decision.SUBMIT:
        return False
    if failed_gates or verdict in _FORBIDDING:
        return True
    return verdict is Verdict.ABSTAIN and abstain_action != "submit"


def reproducible(stored_hash: str, manifest: dict[str, Any], state: dict[str, Any]) -> bool:
    """The row re-hashes to its address and its DSPy state survives a load/dump round trip."""
    if artifact_hash(manifest, state) != stored_hash:
        return False
    dspy_state = state.get("dspy")
    if dspy_state is None:
        return True
    if not isinstance(dspy_state, dict):
        return False
    try:
        again = program_state(new_program(dspy_state))  # pyright: ignore[reportUnknownArgumentType]
    except Exception:  # a state the program refuses is, by definition, not reproducible
        return False
    return canonical_json(again) == canonical_json(dspy_state)


# ------------------------------------------------------------------------------ running


@dataclass(frozen=True, slots=True)
class AsOf:
    """What the gates know about a request besides the request itself: the time it is judged
    at and the desk's state then. The eval uses the example's time with trading ACTIVE and no
    recent orders; the replay lane reconstructs each recorded request's own."""

    now: datetime
    live_trading_enabled: bool
    trading_state: TradingState = TradingState.ACTIVE
    recent_orders_for_strategy: int = 0


@dataclass(frozen=True, slots=True)
class Judged:
    """One request through the serving path: who answered, the order, every gate, the decision."""

    outcome: ReviewOutcome
    plan: OrderPlan
    gates: list[GateResult]
    decision: Decision
    reasons: list[str]


async def judge(
    runtime: ReviewRuntime,
    artifact: Artifact,
    request: ReviewRequest,
    limits: PolicyLimits,
    as_of: AsOf,
) -> Judged:
    """Runtime -> plan -> every gate -> the pipeline's decision rule, as ``POST /review`` runs
    them (minus the database write). The eval and the replay lane both call this."""
    outcome = await runtime.review(request, artifact, dspy_disabled=False)
    reference = resolve_reference_price(request)
    plan = plan_order(request, outcome.verdict, reference, limits)
    ctx = GateContext(
        request=request,
        verdict=outcome.verdict,
        plan=plan,
        reference=reference,
        now=as_of.now,
        trading_state=as_of.trading_state,
        live_trading_enabled=as_of.live_trading_enabled,
        recent_orders_for_strategy=as_of.recent_orders_for_strategy,
        current_position_qty=current_position_qty(request),
    )
    gates = evaluate(ctx, limits)
    decision, reasons = final_decision(outcome.verdict.verdict, gates, limits.review.abstain_action)
    return Judged(outcome, plan, gates, decision, reasons)


async def run_example(
    runtime: ReviewRuntime,
    artifact: Artifact,
    example: LaneExample,
    limits: PolicyLimits,
    *,
    live_trading_enabled: bool,
) -> ExampleRun:
    """One example through ``judge`` at its original time."""
    try:
        request = example.request()
        judged = await judge(
            runtime,
            artifact,
            request,
            limits,
            AsOf(example.as_of, live_trading_enabled=live_trading_enabled),
        )
    except Exception as exc:  # recorded: an exception here fails gate compatibility
        return ExampleRun(
            example.example_id, None, None, None, None, None, False, False, 0.0,
            example.pnl_per_unit is not None, error=type(exc).__name__,
        )  # fmt: skip
    outcome, plan, gates, decision = judged.outcome, judged.plan, judged.gates, judged.decision
    failed = sum(1 for g in gates if not g.passed)
    complete = {g.code for g in gates} == set(GateCode) and len(gates) == len(GateCode)
    verdict = outcome.verdict.verdict
    ret = 0.0
    equity = request.portfolio.equity
    if decision is Decision.SUBMIT and example.pnl_per_unit is not None and equity:
        ret = float(plan.qty * Decimal(str(example.pnl_per_unit)) / equity)
    return ExampleRun(
        example_id=example.example_id,
        verdict=verdict,
        decision=decision,
        executor=outcome.executor,
        fallback=outcome.fallback,
        latency_ms=outcome.llm_latency_ms,
        gates_complete=complete,
        bypass=is_bypass(decision, verdict, failed, limits.review.abstain_action),
        ret=ret,
        priced=example.pnl_per_unit is not None,
    )


async def run_all(
    runtime: ReviewRuntime,
    artifact: Artifact,
    examples: Sequence[LaneExample],
    limits: PolicyLimits,
    *,
    live_trading_enabled: bool,
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> list[ExampleRun]:
    """All examples with at most ``concurrency`` in flight; results in input order."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(example: LaneExample) -> ExampleRun:
        async with gate:
            out = await run_example(
                runtime, artifact, example, limits, live_trading_enabled=live_trading_enabled
            )
        if on_done is not None:
            on_done()
        return out

    return list(await asyncio.gather(*(one(e) for e in examples)))


def scorecard(
    candidate: Artifact,
    dataset_hash: str,
    runs: Sequence[ExampleRun],
    labels: Sequence[Verdict],
    active_runs: Sequence[ExampleRun] | None,
    rerun: Sequence[ExampleRun],
    *,
    hash_ok: bool,
    extra: dict[str, Any],
) -> Scorecard:
    """Aggregate per-example runs into the promotion scorecard (pure)."""
    n = len(runs)
    fallbacks = [r for r in runs if r.fallback is not None]
    timeouts = [r for r in fallbacks if r.fallback is FallbackReason.TIMEOUT]
    if candidate.executor is ExecutorKind.HEURISTIC:
        schema_valid = 1.0
    else:
        valid = sum(1 for r in runs if r.executor is ExecutorKind.DSPY_LIVE and r.error is None)
        invalid = sum(1 for r in runs if r.fallback is FallbackReason.SCHEMA_INVALID)
        schema_valid = valid / (valid + invalid) if valid + invalid else 0.0
    accuracy = (
        sum(1 for r, label in zip(runs, labels, strict=True) if r.verdict is label) / n
        if n
        else None
    )
    agreement = None
    if active_runs is not None and n:
        agreement = (
            sum(1 for a, b in zip(runs, active_runs, strict=True) if a.decision is b.decision) / n
        )
    latencies = [r.latency_ms for r in runs if r.latency_ms is not None]
    compared = [(a, b) for a, b in zip(runs, rerun, strict=False) if a.executor is b.executor]
    determinism = all(a.verdict is b.verdict and a.decision is b.decision for a, b in compared)
    delta_sharpe = maxdd_delta = None
    priced = any(r.priced for r in runs)
    if active_runs is not None and priced:
        cand_ret = [r.ret for r in runs]
        act_ret = [r.ret for r in active_runs]
        delta_sharpe = round(sharpe(cand_ret) - sharpe(act_ret), 6)
        maxdd_delta = round(max_drawdown(cand_ret) - max_drawdown(act_ret), 6)
        extra = {
            **extra,
            "sharpe_candidate": round(sharpe(cand_ret), 6),
            "sharpe_active": round(sharpe(act_ret), 6),
            "maxdd_candidate": round(max_drawdown(cand_ret), 6),
            "maxdd_active": round(max_drawdown(act_ret), 6),
        }
    if active_runs is not None and n:
        extra = {
            **extra,
            "active_verdict_accuracy": sum(
                1 for r, label in zip(active_runs, labels, strict=True) if r.verdict is label
            )
            / n,
        }
    return Scorecard.model_validate(
        {
            **extra,
            "artifact_hash": candidate.artifact_hash,
            "dataset_hash": dataset_hash,
            "split": Split.TEST.value,
            "n": n,
            "schema_valid_rate": round(schema_valid, 6),
            "timeout_rate": round(len(timeouts) / n, 6) if n else 0.0,
            "fallback_rate": round(len(fallbacks) / n, 6) if n else 0.0,
            "verdict_accuracy": round(accuracy, 6) if accuracy is not None else None,
            "decision_agreement": round(agreement, 6) if agreement is not None else None,
            "latency_p50_ms": percentile(latencies, 50),
            "latency_p95_ms": percentile(latencies, 95),
            "gate_compatibility": n > 0 and all(r.gates_complete and r.error is None for r in runs),
            "gate_bypass_count": sum(1 for r in runs if r.bypass),
            "hash_reproducible": hash_ok,
            "determinism_ok": bool(compared) and determinism,
            "determinism_compared": len(compared),
            "delta_sharpe": delta_sharpe,
            "maxdd_delta": maxdd_delta,
        }
    )


async def load_artifact(
    session: AsyncSession, digest: str, signature_version: str
) -> tuple[Artifact, bool]:
    """The stored artifact, verified and built (raises ``LookupError`` / ``ValueError``), and
    whether it re-hashes and round-trips (``reproducible``)."""
    row = await registry.get_by_hash(session, digest)
    if row is None:
        raise LookupError(f"artifact {digest} not found")
    ok = reproducible(row.artifact_hash, row.manifest, row.program_state)
    try:
        loaded = Artifact.verified(
            row.artifact_hash,
            row.manifest,
            row.program_state,
            signature_version=signature_version,
        )
    except (ArtifactRefused, KeyError, ValueError) as exc:
        # Nothing to run: a tampered or pruned artifact cannot even be evaluated.
        raise ValueError(f"artifact {digest[:12]} cannot be evaluated: {exc}") from exc
    return loaded, ok


async def run(
    factory: SessionFactory,
    settings: Settings,
    *,
    artifact: str,
    dataset_hash: str,
    actor: str,
    clock: Callable[[], datetime],
    policy: PromotionPolicy,
    concurrency: int = DEFAULT_CONCURRENCY,
    determinism_sample: int = DEFAULT_DETERMINISM_SAMPLE,
    max_examples: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate ``artifact`` (and the active one) on the dataset's test split; store the card."""
    start = time.perf_counter()
    async with read_only(factory) as session:
        data = await datasets.load(session, dataset_hash)
        candidate, hash_ok = await load_artifact(
            session, artifact, settings.llm_dspy_signature_version
        )
        active_hash = await registry.hash_in_state(
            session, candidate.program_name, ArtifactState.ACTIVE
        )
        active = None
        if active_hash is not None and active_hash != candidate.artifact_hash:
            baseline = await registry.get_by_hash(session, active_hash)
            # An active artifact of another signature version (an upgrade in progress) is no
            # baseline for this one: the comparison is skipped, not the candidate refused.
            if baseline is not None and baseline.signature_version == candidate.signature_version:
                active, _ = await load_artifact(
                    session, active_hash, settings.llm_dspy_signature_version
                )
    examples = sorted(data.split(Split.TEST), key=lambda e: (e.as_of, e.example_id))
    if max_examples is not None:
        examples = examples[:max_examples]
    if not examples:
        raise ValueError(f"dataset {dataset_hash[:12]} has no test examples")
    limits = load_policy(settings.policy_path).limits
    sample = examples[: max(0, determinism_sample)]
    total = len(examples) * (2 if active is not None else 1) + len(sample)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, total)

    async with serving_runtime(settings, concurrency) as runtime:
        kwargs: dict[str, Any] = {
            "live_trading_enabled": settings.live_trading_enabled,
            "concurrency": concurrency,
            "on_done": tick,
        }
        runs = await run_all(runtime, candidate, examples, limits, **kwargs)
        active_runs = (
            await run_all(runtime, active, examples, limits, **kwargs)
            if active is not None
            else None
        )
        rerun = await run_all(runtime, candidate, sample, limits, **kwargs)

    card = scorecard(
        candidate,
        data.dataset_hash,
        runs,
        [e.label for e in examples],
        active_runs,
        rerun,
        hash_ok=hash_ok,
        extra={
            "executor": candidate.executor.value,
            "active_hash": active.artifact_hash if active is not None else None,
            "errors": sum(1 for r in runs if r.error is not None),
        },
    )
    reasons = check_scorecard(card, policy)
    duration = round(time.perf_counter() - start, 3)
    now = clock()
    payload = card.model_dump(mode="json")
    async with unit_of_work(factory) as session:
        digest = await evidence.add(
            session, candidate.artifact_hash, EvidenceKind.SCORECARD, payload, actor=actor, now=now
        )
        await repository.add(
            session,
            lane=LANE,
            output_hash=digest,
            artifact_hash=candidate.artifact_hash,
            config={
                "dataset_hash": data.dataset_hash,
                "split": Split.TEST.value,
                "active_hash": active.artifact_hash if active is not None else None,
                "concurrency": concurrency,
                "determinism_sample": len(sample),
                "policy_path": str(settings.policy_path),
            },
            payload={
                "scorecard": payload,
                "passes": not reasons,
                "reasons": reasons,
                "duration_s": duration,
                "examples": [r.brief() for r in runs],
            },
            actor=actor,
            now=now,
        )
    event(
        "lanes.evaluated",
        logging.INFO,
        artifact_hash=candidate.artifact_hash,
        passes=not reasons,
        n=card.n,
        duration_s=duration,
    )
    return EvalResult(card, digest, not reasons, reasons, duration)


@contextlib.asynccontextmanager
async def serving_runtime(settings: Settings, concurrency: int) -> AsyncGenerator[ReviewRuntime]:
    """The serving ``ReviewRuntime`` (deadline, breaker, bulkhead, fallback) on an HTTP client
    of the lane's own, so an offline run never trips the served arm's breaker."""
    async with deadline_client(max(1, concurrency), pool_timeout_s=5.0) as http:
        yield ReviewRuntime(_live_executor(settings, http))


def _live_executor(settings: Settings, http: httpx.AsyncClient) -> LiveExecutor | None:
    """The serving ``LiveExecutor`` on the eval's own HTTP client (None without Jangar)."""
    if settings.jangar_base_url is None:
        return None  # dspy_live artifacts then fall back (artifact_unavailable): a failing card
    # Deferred like app.main does: importing the executor imports dspy.
    from app.review.live import LiveExecutor

    return LiveExecutor(settings, http)
