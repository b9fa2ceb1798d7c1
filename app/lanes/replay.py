"""Replay lane: the recorded requests of a window re-decided by an artifact -> decision diff.

Each stored review's request (``request_json``) goes through ``evaluate.judge``, the serving
path minus the database write (``ReviewRuntime`` with the serving ``LiveExecutor`` for a
``dspy_live`` artifact, ``plan_order``, every gate, ``final_decision``), and the new decision is
compared with the one the service actually answered (the row's ``decision``). The gates judge
each request as of its own recorded time and desk state, never today's:

- ``now`` is the row's ``created_at``: the clock the served path judged freshness and age by,
  so last week's requests are not all rejected as stale today;
- the trading state is the operator control in force then (the ``control_events`` timeline;
  replicas follow a change within 2 s, so a request served in those 2 s may be judged under
  the state it was about to get);
- live trading counts as enabled for a ``live`` request exactly when its served
  ``trading_mode`` gate passed (the setting is not recorded otherwise);
- the strategy's recent orders are the submits recorded for it in the rate window before the
  row, which is what the served precheck counted (orders in flight at commit are not
  re-created); the position is the one the request reported.

Counterfactuals do not compound: an order the artifact would have submitted does not count
against the strategy's later orders. The policy is today's ``config/policy.yaml``; rows judged
under another one are counted (``policy_changed``) so a flip a policy change caused shows as
such.

The report is evidence like a scorecard (kind ``replay``): counts (same, submit -> reject,
reject -> submit), the reject -> submit share of the re-decided orders, and every flipped order,
reject -> submit first (review id, symbol, strategy, stored reasons, new decision and reasons).
A window with no recorded review raises ``EmptyWindow`` and records nothing: no traffic is no
evidence of safety.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from app.controls import repository as controls
from app.db.models import ReviewRow
from app.db.session import SessionFactory, read_only, unit_of_work
from app.gates.checks import GateCode
from app.gates.context import TradingState
from app.gates.limits import PolicyLimits, load_policy
from app.lanes import repository
from app.lanes.evaluate import AsOf, judge, load_artifact, serving_runtime
from app.observability.logging import event
from app.registry import evidence
from app.registry.artifact import Artifact
from app.registry.evidence import EvidenceKind
from app.registry.promotion import PromotionPolicy, ReplayReport, check_replay
from app.review.runtime import ReviewRuntime
from app.review.schemas import Decision, ReviewRequest, TradingMode
from app.reviews import repository as reviews
from app.settings import Settings

LANE = "replay"
DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
DEFAULT_CONCURRENCY = 4


class Change(StrEnum):
    SAME = "same"
    SUBMIT_TO_REJECT = "submit_to_reject"
    REJECT_TO_SUBMIT = "reject_to_submit"


class EmptyWindow(ValueError):
    """No review was recorded in the window: nothing to replay, nothing recorded."""


def _aware(ts: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One stored review as the replay needs it."""

    review_id: str
    row_id: int
    created_at: datetime
    strategy_id: str
    symbol: str
    decision: Decision
    reasons: list[str]
    request_json: dict[str, Any]
    artifact_hash: str
    policy_hash: str
    served_live_gate: bool | None  # the served trading_mode gate passed (None: not recorded)

    @classmethod
    def of(cls, row: ReviewRow) -> Recorded:
        gates = {str(g.get("code")): bool(g.get("passed")) for g in row.gates_json or []}
        stored: Any = (row.response_json or {}).get("reasons")
        reasons = (
            [str(r) for r in cast(list[Any], stored)]
            if isinstance(stored, list)
            else [c for c in row.failed_gates.split(",") if c]
        )
        return cls(
            review_id=row.review_id,
            row_id=row.id,
            created_at=_aware(row.created_at),
            strategy_id=row.strategy_id,
            symbol=row.symbol,
            decision=Decision(row.decision),
            reasons=reasons,
            request_json=row.request_json,
            artifact_hash=row.artifact_hash,
            policy_hash=row.policy_hash,
            served_live_gate=gates.get(GateCode.TRADING_MODE.value),
        )


@dataclass(frozen=True, slots=True)
class Replayed:
    recorded: Recorded
    decision: Decision | None
    reasons: list[str]
    verdict: str | None
    executor: str | None
    fallback: str | None
    error: str | None = None

    @property
    def change(self) -> Change | None:
        return None if self.decision is None else change_of(self.recorded.decision, self.decision)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    report: ReplayReport
    evidence_hash: str
    passes: bool
    reasons: list[str]
    duration_s: float


# ------------------------------------------------------------------------------ pure parts


def change_of(served: Decision, replayed: Decision) -> Change:
    if served is replayed:
        return Change.SAME
    return Change.REJECT_TO_SUBMIT if replayed is Decision.SUBMIT else Change.SUBMIT_TO_REJECT


class Timeline:
    """The trading state over time, from control events (ACTIVE before the first one)."""

    def __init__(self, events: Sequence[tuple[datetime, int, str]]) -> None:
        ordered = sorted((_aware(at), i, state) for at, i, state in events)
        self._keys = [(at, i) for at, i, _ in ordered]
        self._states = [TradingState(state) for _, _, state in ordered]

    def at(self, ts: datetime) -> TradingState:
        # The last change at or before ``ts`` (a change stamped in the same instant already
        # applied: the served path read the controls it had when it started).
        i = bisect.bisect_right(self._keys, (_aware(ts), 2**63))
        return self._states[i - 1] if i else TradingState.ACTIVE


class RecentSubmits:
    """Submits per strategy, to count the ones a recorded review's precheck saw."""

    def __init__(self, submits: Sequence[tuple[str, datetime, int]], window_s: float) -> None:
        self._window = timedelta(seconds=window_s)
        self._by: dict[str, list[tuple[datetime, int]]] = {}
        for strategy, at, row_id in submits:
            self._by.setdefault(strategy, []).append((_aware(at), row_id))
        for keys in self._by.values():
            keys.sort()

    def before(self, rec: Recorded) -> int:
        """Submits of the strategy in ``[created_at - window, created_at)``, plus those stamped
        in the same instant but written before it (a fixed clock stamps many alike)."""
        keys = self._by.get(rec.strategy_id, [])
        lo = bisect.bisect_left(keys, (rec.created_at - self._window, -1))
        hi = bisect.bisect_left(keys, (rec.created_at, rec.row_id))
        return max(0, hi - lo)


def as_of(rec: Recorded, timeline: Timeline, recent: RecentSubmits, live_default: bool) -> AsOf:
    """The gates' view of a recorded request at its own time (module docstring)."""
    live = rec.request_json.get("trading_mode") == TradingMode.LIVE.value
    return AsOf(
        now=rec.created_at,
        live_trading_enabled=(
            rec.served_live_gate if live and rec.served_live_gate is not None else live_default
        ),
        trading_state=timeline.at(rec.created_at),
        recent_orders_for_strategy=recent.before(rec),
    )


def flip_row(r: Replayed) -> dict[str, Any]:
    rec = r.recorded
    return {
        "review_id": rec.review_id,
        "at": rec.created_at.isoformat(),
        "symbol": rec.symbol,
        "strategy_id": rec.strategy_id,
        "change": r.change.value if r.change else None,
        "served_decision": rec.decision.value,
        "served_reasons": rec.reasons,
        "served_artifact": rec.artifact_hash,
        "new_decision": r.decision.value if r.decision else None,
        "new_reasons": r.reasons,
        "new_verdict": r.verdict,
        "new_executor": r.executor,
        "new_fallback": r.fallback,
    }


def report(
    artifact_hash: str,
    since: datetime,
    until: datetime,
    window_reviews: int,
    runs: Sequence[Replayed],
    *,
    policy_hash: str,
    extra: dict[str, Any],
) -> ReplayReport:
    """Aggregate the re-decided rows (pure). Flips: reject -> submit first, each in time order."""
    done = [r for r in runs if r.error is None]
    by: dict[Change, list[Replayed]] = {c: [] for c in Change}
    for r in done:
        assert r.change is not None
        by[r.change].append(r)
    n = len(done)
    flips = by[Change.REJECT_TO_SUBMIT] + by[Change.SUBMIT_TO_REJECT]
    return ReplayReport.model_validate(
        {
            **extra,
            "artifact_hash": artifact_hash,
            "since": _aware(since).isoformat(),
            "until": _aware(until).isoformat(),
            "window_reviews": window_reviews,
            "replayed": len(runs),
            "n": n,
            "same": len(by[Change.SAME]),
            "submit_to_reject": len(by[Change.SUBMIT_TO_REJECT]),
            "reject_to_submit": len(by[Change.REJECT_TO_SUBMIT]),
            "errors": len(runs) - n,
            "reject_to_submit_share": round(len(by[Change.REJECT_TO_SUBMIT]) / n, 6) if n else 0.0,
            "served_submit": sum(1 for r in done if r.recorded.decision is Decision.SUBMIT),
            "served_reject": sum(1 for r in done if r.recorded.decision is Decision.REJECT),
            "fallbacks": sum(1 for r in done if r.fallback is not None),
            "policy_changed": sum(1 for r in runs if r.recorded.policy_hash != policy_hash),
            "flips": [flip_row(r) for r in flips],
            "error_rows": [
                {"review_id": r.recorded.review_id, "error": r.error}
                for r in runs
                if r.error is not None
            ],
        }
    )


# ------------------------------------------------------------------------------ running


async def replay_one(
    runtime: ReviewRuntime, artifact: Artifact, rec: Recorded, limits: PolicyLimits, at: AsOf
) -> Replayed:
    try:
        request = ReviewRequest.model_validate(rec.request_json)
        judged = await judge(runtime, artifact, request, limits, at)
    except Exception as exc:  # a row this schema cannot read again: counted, never skipped
        return Replayed(rec, None, [], None, None, None, error=type(exc).__name__)
    outcome = judged.outcome
    return Replayed(
        rec,
        judged.decision,
        judged.reasons,
        outcome.verdict.verdict.value,
        outcome.executor.value,
        outcome.fallback.value if outcome.fallback else None,
    )


async def run(
    factory: SessionFactory,
    settings: Settings,
    *,
    artifact: str,
    since: datetime,
    until: datetime,
    actor: str,
    clock: Callable[[], datetime],
    policy: PromotionPolicy,
    limit: int = DEFAULT_LIMIT,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replay the newest ``limit`` reviews of ``[since, until)`` through ``artifact``; store
    the report as ``replay`` evidence (raises ``EmptyWindow``, ``LookupError``, ``ValueError``)."""
    if until <= since:
        raise ValueError("until must be after since")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}")
    start = time.perf_counter()
    loaded = load_policy(settings.policy_path)
    limits = loaded.limits
    async with read_only(factory) as session:
        candidate, _ = await load_artifact(session, artifact, settings.llm_dspy_signature_version)
        rows, total = await reviews.in_window(session, since, until, limit)
        if not rows:
            raise EmptyWindow(
                f"no review was recorded in [{_aware(since).isoformat()} .. "
                f"{_aware(until).isoformat()}): nothing to replay, nothing recorded. An empty "
                "window is no evidence of safety; widen it (--since, --days) once traffic exists."
            )
        recorded = [Recorded.of(r) for r in rows]
        rate_window = timedelta(seconds=limits.order_rate.window_seconds)
        submits = await reviews.submits_between(
            session,
            sorted({r.strategy_id for r in recorded}),
            min(r.created_at for r in recorded) - rate_window,
            until,
        )
        timeline = Timeline(await controls.trading_states(session, until))
    recent = RecentSubmits(submits, limits.order_rate.window_seconds)
    gate = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async with serving_runtime(settings, concurrency) as runtime:

        async def one(rec: Recorded) -> Replayed:
            nonlocal done
            async with gate:
                out = await replay_one(
                    runtime,
                    candidate,
                    rec,
                    limits,
                    as_of(rec, timeline, recent, settings.live_trading_enabled),
                )
            done += 1
            if on_progress is not None:
                on_progress(done, len(recorded))
            return out

        runs = list(await asyncio.gather(*(one(r) for r in recorded)))

    rep = report(
        candidate.artifact_hash,
        since,
        until,
        total,
        runs,
        policy_hash=loaded.policy_hash,
        extra={
            "executor": candidate.executor.value,
            "limit": limit,
            "truncated": total > len(recorded),
            "policy_hash": loaded.policy_hash,
        },
    )
    now = clock()
    reasons = check_replay(rep, policy, required=False, waived=False, now=now)
    duration = round(time.perf_counter() - start, 3)
    payload = rep.model_dump(mode="json")
    async with unit_of_work(factory) as session:
        digest = await evidence.add(
            session, candidate.artifact_hash, EvidenceKind.REPLAY, payload, actor=actor, now=now
        )
        await repository.add(
            session,
            lane=LANE,
            output_hash=digest,
            artifact_hash=candidate.artifact_hash,
            config={
                "since": payload["since"],
                "until": payload["until"],
                "limit": limit,
                "concurrency": concurrency,
                "policy_path": str(settings.policy_path),
            },
            payload={"passes": not reasons, "reasons": reasons, "duration_s": duration},
            actor=actor,
            now=now,
        )
    event(
        "lanes.replayed",
        logging.INFO,
        artifact_hash=candidate.artifact_hash,
        n=rep.n,
        reject_to_submit=rep.reject_to_submit,
        submit_to_reject=rep.submit_to_reject,
        passes=not reasons,
        duration_s=duration,
    )
    return ReplayResult(rep, digest, not reasons, reasons, duration)
