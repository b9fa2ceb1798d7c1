"""The deterministic reviewer: a transparent risk scorer over the request (pure).

It serves when no LLM artifact is active, and it answers whenever the LLM cannot (timeout,
transport failure, open breaker, invalid output). It is deliberately not a fixed veto: a clean,
small, liquid order is approved; risk signals first shrink the order, then veto it. Its
thresholds come from the artifact's program state, so a change of thresholds is a new artifact.

Signals (each adds risk points, capped at 1.0):
  market-context risk flags and staleness/quality, spread in basis points, volatility,
  regime entropy band (high entropy = defensive), exposure after the trade, recent rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any, cast

from app.gates.context import resolve_reference_price
from app.numbers import DECIMAL_CONTEXT
from app.review.schemas import (
    Action,
    ReviewRequest,
    ReviewVerdict,
    Uncertainty,
    Verdict,
    round_down_like,
)

DEFAULT_PARAMS: dict[str, float] = {
    "flag_points": 0.15,
    "stale_context_seconds": 300.0,
    "stale_context_points": 0.2,
    "low_quality_score": 0.5,
    "low_quality_points": 0.2,
    "wide_spread_bps": 25.0,
    "wide_spread_points": 0.2,
    "veto_spread_bps": 200.0,
    "high_volatility": 0.04,
    "high_volatility_points": 0.15,
    "entropy_medium": 0.6,
    "entropy_high": 0.85,
    "entropy_medium_points": 0.1,
    "entropy_high_points": 0.35,
    "exposure_warn_pct": 0.15,
    "exposure_points": 0.2,
    "recent_rejects_warn": 3.0,
    "recent_rejects_points": 0.2,
    "adjust_threshold": 0.25,
    "veto_threshold": 0.6,
}

_VETO_FLAGS = frozenset({"halted", "trading_halt", "luld_pause", "circuit_breaker", "delisting"})


@dataclass(frozen=True, slots=True)
class _Signal:
    flag: str
    points: float
    note: str


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out and abs(out) != float("inf") else None


def _reference_price(request: ReviewRequest) -> float | None:
    # The same resolution the gates use (one rule for "the price the order is judged at").
    price = resolve_reference_price(request).price
    return float(price) if price is not None else None


def _volatility(request: ReviewRequest) -> float | None:
    params = request.decision.params
    for key in ("volatility", "realized_vol", "atr_pct"):
        v = _num(params.get(key))
        if v is not None:
            return abs(v)
    if request.market_context is not None:
        tech: Any = request.market_context.domains.get("technicals")
        if isinstance(tech, dict):
            payload: Any = cast(dict[str, Any], tech).get("payload", tech)
            if isinstance(payload, dict):
                for key in ("realized_vol", "volatility", "atr_pct"):
                    v = _num(payload.get(key))  # pyright: ignore[reportUnknownMemberType,reportUnknownArgumentType]
                    if v is not None:
                        return abs(v)
    return None


def _entropy_band(request: ReviewRequest, p: dict[str, float]) -> str | None:
    regime = request.decision.regime_hmm
    if regime is None:
        return None
    if regime.entropy_band:
        return regime.entropy_band.lower()
    if regime.entropy is not None:
        e = float(regime.entropy)
        if e >= p["entropy_high"]:
            return "high"
        if e >= p["entropy_medium"]:
            return "medium"
        return "low"
    return None


def _signals(request: ReviewRequest, p: dict[str, float]) -> tuple[list[_Signal], str | None]:
    """Risk signals, plus a hard-veto reason if one applies."""
    out: list[_Signal] = []
    mc = request.market_context
    if mc is not None:
        flags = [f.lower() for f in mc.risk_flags]
        hard = sorted(set(flags) & _VETO_FLAGS)
        if hard:
            return out, f"market context flags {', '.join(hard)}"
        for f in flags:
            out.append(_Signal(f"context_{f}"[:64], p["flag_points"], f"risk flag {f}"))
        if (
            mc.freshness_seconds is not None
            and float(mc.freshness_seconds) > p["stale_context_seconds"]
        ):
            out.append(_Signal("stale_context", p["stale_context_points"], "stale market context"))
        if mc.quality_score is not None and float(mc.quality_score) < p["low_quality_score"]:
            out.append(_Signal("low_context_quality", p["low_quality_points"], "low quality"))

    price = _reference_price(request)
    if request.market is not None and request.market.spread is not None and price:
        bps = float(request.market.spread) / price * 10_000
        if bps >= p["veto_spread_bps"]:
            return out, f"spread {bps:.0f} bps"
        if bps >= p["wide_spread_bps"]:
            out.append(_Signal("wide_spread", p["wide_spread_points"], f"spread {bps:.0f} bps"))

    vol = _volatility(request)
    if vol is not None and vol >= p["high_volatility"]:
        out.append(_Signal("high_volatility", p["high_volatility_points"], f"volatility {vol:.3f}"))

    band = _entropy_band(request, p)
    if band == "high":
        out.append(_Signal("regime_entropy_high", p["entropy_high_points"], "regime uncertain"))
    elif band == "medium":
        out.append(_Signal("regime_entropy_medium", p["entropy_medium_points"], "regime mixed"))

    # Decimal arithmetic: a tiny positive equity must not underflow to a float zero.
    equity = request.portfolio.equity
    if price and equity is not None and equity > 0:
        current = request.portfolio.exposure_by_symbol.get(request.decision.symbol, Decimal(0))
        delta = request.decision.qty * Decimal(str(price))
        post = current + delta if request.decision.action is Action.BUY else current - delta
        share = abs(post) / equity
        if abs(post) > abs(current) and share >= Decimal(str(p["exposure_warn_pct"])):
            out.append(
                _Signal(
                    "concentrated_exposure",
                    p["exposure_points"],
                    f"post-trade exposure {float(min(share, Decimal(1_000_000))):.0%} of equity",
                )
            )

    rejects = sum(
        1 for d in request.recent_decisions if (d.status or "").lower() in {"rejected", "reject"}
    )
    if rejects >= p["recent_rejects_warn"]:
        out.append(
            _Signal("recent_rejects", p["recent_rejects_points"], f"{rejects} recent rejects")
        )
    return out, None


def review(request: ReviewRequest, params: dict[str, float] | None = None) -> ReviewVerdict:
    """Score the request and answer approve / adjust (reduce) / veto with a confidence.

    Decimal arithmetic runs under the bounded context; input the scorer cannot compute on is
    a veto (the defensive answer), never an exception."""
    try:
        with localcontext(DECIMAL_CONTEXT):
            return _review(request, {**DEFAULT_PARAMS, **(params or {})})
    except (ArithmeticError, ValueError) as exc:
        return ReviewVerdict(
            verdict=Verdict.VETO,
            confidence=0.9,
            uncertainty=Uncertainty.HIGH,
            rationale=f"Heuristic veto: the request could not be scored ({type(exc).__name__})."[
                :280
            ],
            risk_flags=["unscorable_input"],
        )


def _review(request: ReviewRequest, p: dict[str, float]) -> ReviewVerdict:
    signals, hard_veto = _signals(request, p)
    flags = [s.flag for s in signals]
    if hard_veto is not None:
        return ReviewVerdict(
            verdict=Verdict.VETO,
            confidence=0.9,
            uncertainty=Uncertainty.LOW,
            rationale=f"Heuristic veto: {hard_veto}."[:280],
            risk_flags=[*flags, "hard_veto"][:32],
        )
    risk = min(1.0, sum(s.points for s in signals))
    notes = "; ".join(s.note for s in signals) or "no risk signals"
    reducing = _reduces_position(request)
    if risk >= p["veto_threshold"] and not reducing:
        return ReviewVerdict(
            verdict=Verdict.VETO,
            confidence=round(min(0.95, 0.5 + risk / 2), 4),
            uncertainty=Uncertainty.MEDIUM,
            rationale=f"Heuristic veto (risk {risk:.2f}): {notes}."[:280],
            risk_flags=flags[:32],
        )
    if risk >= p["adjust_threshold"] and not reducing:
        factor = Decimal(str(max(0.25, 1.0 - risk)))
        qty = request.decision.qty * factor
        qty = round_down_like(qty, request.decision.qty)
        if qty <= 0:
            # Too small to shrink: the defensive answer is not to trade.
            return ReviewVerdict(
                verdict=Verdict.VETO,
                confidence=round(0.5 + risk / 2, 4),
                uncertainty=Uncertainty.MEDIUM,
                rationale=f"Heuristic veto (risk {risk:.2f}, too small to reduce): {notes}."[:280],
                risk_flags=flags[:32],
            )
        return ReviewVerdict(
            verdict=Verdict.ADJUST,
            confidence=round(0.55 + (p["veto_threshold"] - risk) / 2, 4),
            uncertainty=Uncertainty.MEDIUM,
            rationale=f"Heuristic reduce to {factor:.2f}x (risk {risk:.2f}): {notes}."[:280],
            risk_flags=flags[:32],
            adjusted_qty=qty,
        )
    return ReviewVerdict(
        verdict=Verdict.APPROVE,
        confidence=round(max(0.55, 0.9 - risk), 4),
        uncertainty=Uncertainty.LOW if risk < 0.1 else Uncertainty.MEDIUM,
        rationale=f"Heuristic approve (risk {risk:.2f}): {notes}."[:280],
        risk_flags=flags[:32],
    )


def _reduces_position(request: ReviewRequest) -> bool:
    # Orders that cut exposure are the defensive move; the scorer does not shrink or veto them.
    exposure = request.portfolio.exposure_by_symbol.get(request.decision.symbol)
    if exposure is None or exposure == 0:
        return False
    return (exposure > 0) == (request.decision.action is Action.SELL)
