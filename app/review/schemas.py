"""Request and response schemas of ``POST /review``.

The request mirrors, field for field, the review request of the system this service replaces
so its scheduler can call us unchanged. Unknown top-level fields are refused; nested free-form
maps (``params``, ``account``, ``domains``) stay open because the scheduler owns them.
Decimals are accepted as strings or numbers and bounded (``app.numbers``: at most 15 digits
before the point and 18 after; NaN and infinities never pass); they are written back in plain
notation. The whole document is bounded first (``app.review.bounds``: depth, sizes, control
characters), so every free-form map obeys the same caps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.numbers import decimal_problem, plain, precision_step
from app.review.bounds import document_problem

# ----------------------------------------------------------------------------- vocabularies


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class Verdict(StrEnum):
    APPROVE = "approve"
    VETO = "veto"
    ADJUST = "adjust"
    ABSTAIN = "abstain"
    ESCALATE = "escalate"


class Uncertainty(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Decision(StrEnum):
    SUBMIT = "submit"
    REJECT = "reject"


def _aware(value: datetime) -> datetime:
    # Naive timestamps are read as UTC: the scheduler emits UTC without an offset at times.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _bounded(value: Decimal) -> Decimal:
    problem = decimal_problem(value)
    if problem is not None:
        raise PydanticCustomError(
            "decimal_out_of_bounds", "decimal {problem}", {"problem": problem}
        )
    return value


# Written as a plain string (never "1E+18") in JSON: answers and stored rows alike.
PlainDecimal = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]
FiniteDecimal = Annotated[PlainDecimal, Field(allow_inf_nan=False), AfterValidator(_bounded)]
PositiveDecimal = Annotated[
    PlainDecimal, Field(allow_inf_nan=False, gt=0), AfterValidator(_bounded)
]
NonNegDecimal = Annotated[PlainDecimal, Field(allow_inf_nan=False, ge=0), AfterValidator(_bounded)]
# Identifiers stored in their own columns: no control character at all (not even a newline).
Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
UtcDatetime = Annotated[datetime, AfterValidator(_aware)]
Symbol = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9./:_-]+$")]


class _Open(BaseModel):
    """Nested objects owned by the scheduler: extra keys are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ----------------------------------------------------------------------------- request


class RegimeHMM(_Open):
    regime_id: str | None = None
    entropy: FiniteDecimal | None = None
    entropy_band: str | None = None
    predicted_next: str | None = None
    artifact_version: str | None = None
    guardrail: dict[str, Any] | None = None


class DecisionIn(_Open):
    strategy_id: Ident
    symbol: Symbol
    action: Action
    qty: PositiveDecimal
    order_type: OrderType
    time_in_force: TimeInForce
    event_ts: UtcDatetime
    timeframe: Annotated[Ident, Field(max_length=32)]
    rationale: str | None = Field(default=None, max_length=4000)
    regime_hmm: RegimeHMM | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    # Extension: requests without it stay valid (limit price then comes from params).
    limit_price: PositiveDecimal | None = None


class PortfolioIn(_Open):
    # Optional as in the source system: gates that need a figure fail closed without it.
    equity: NonNegDecimal | None = None
    cash: FiniteDecimal | None = None
    buying_power: FiniteDecimal | None = None
    total_exposure: NonNegDecimal | None = None
    exposure_by_symbol: dict[str, FiniteDecimal] = Field(default_factory=dict)
    # Broker position dicts, passed through as the scheduler sends them.
    positions: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]], max_length=5000)


class MarketIn(_Open):
    symbol: Symbol
    as_of: UtcDatetime
    price: PositiveDecimal | None = None
    spread: NonNegDecimal | None = None
    source: str | None = None


class MarketContextIn(_Open):
    context_version: str | None = Field(default=None, alias="contextVersion")
    symbol: Symbol | None = None
    as_of_utc: UtcDatetime | None = Field(default=None, alias="asOfUtc")
    freshness_seconds: NonNegDecimal | None = Field(default=None, alias="freshnessSeconds")
    quality_score: FiniteDecimal | None = Field(default=None, alias="qualityScore")
    source_count: int | None = Field(default=None, alias="sourceCount", ge=0)
    risk_flags: list[str] = Field(default_factory=list, alias="riskFlags", max_length=200)
    domains: dict[str, Any] = Field(default_factory=dict)


class RecentDecisionIn(_Open):
    decision_id: str | None = None
    strategy_id: str | None = None
    symbol: str | None = None
    action: str | None = None
    qty: FiniteDecimal | None = None
    status: str | None = None
    created_at: UtcDatetime | None = None


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adjustment_allowed: bool = True
    min_qty_multiplier: NonNegDecimal = Decimal("0.0")
    max_qty_multiplier: NonNegDecimal = Decimal("1.0")
    allowed_order_types: list[OrderType] = Field(
        default_factory=lambda: [OrderType.MARKET, OrderType.LIMIT]
    )


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _bounded_document(cls, data: Any) -> Any:
        # Before any field: one depth/size/control-character rule for the whole document.
        problem = document_problem(data)
        if problem is not None:
            path, what = problem
            raise PydanticCustomError(
                "unsafe_input", "{path}: {what}", {"path": path, "what": what}
            )
        return data

    decision: DecisionIn
    portfolio: PortfolioIn
    market: MarketIn | None = None
    market_context: MarketContextIn | None = None
    recent_decisions: list[RecentDecisionIn] = Field(
        default_factory=list[RecentDecisionIn], max_length=1000
    )
    account: dict[str, Any] = Field(default_factory=dict)
    positions: list[dict[str, Any]] = Field(default_factory=list[dict[str, Any]], max_length=5000)
    policy: PolicyIn = Field(default_factory=PolicyIn)
    trading_mode: TradingMode = TradingMode.PAPER
    prompt_version: str | None = Field(default=None, max_length=64)


# ----------------------------------------------------------------------------- review


class ReviewVerdict(BaseModel):
    """What an executor (LLM or heuristic) says about a proposed order. Advisory only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Verdict
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    uncertainty: Uncertainty
    rationale: str = Field(max_length=280)
    risk_flags: list[str] = Field(default_factory=list, max_length=32)
    required_checks: list[str] = Field(default_factory=list, max_length=32)
    adjusted_qty: PositiveDecimal | None = None
    adjusted_order_type: OrderType | None = None
    adjusted_limit_price: PositiveDecimal | None = None


# ----------------------------------------------------------------------------- response


class OrderOut(BaseModel):
    symbol: str
    action: Action
    qty: PlainDecimal
    order_type: OrderType
    time_in_force: TimeInForce
    limit_price: PlainDecimal | None = None
    limit_price_assumed: bool = False
    resized: bool = False


class ReviewOut(BaseModel):
    verdict: Verdict
    confidence: float
    confidence_band: Literal["low", "medium", "high"]
    uncertainty: Uncertainty
    rationale: str
    risk_flags: list[str]
    required_checks: list[str]
    adjusted_qty: PlainDecimal | None = None
    adjusted_order_type: OrderType | None = None
    adjusted_limit_price: PlainDecimal | None = None


class GateOut(BaseModel):
    code: str
    passed: bool
    reason: str


class FallbackOut(BaseModel):
    used: bool
    reason: str | None = None


class LineageOut(BaseModel):
    artifact_hash: str
    program: str
    signature_version: str
    executor: str
    model: str | None = None
    arm: str
    fallback: FallbackOut
    build_sha: str = "dev"  # the service build that answered (image's BUILD_SHA)


class ReviewResponse(BaseModel):
    review_id: str
    decision: Decision
    reasons: list[str]
    order: OrderOut
    review: ReviewOut
    gates: list[GateOut]
    lineage: LineageOut
    policy_hash: str
    request_hash: str
    trading_mode: TradingMode
    timings_ms: dict[str, float]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody
    decision: Decision | None = None


def confidence_band(confidence: float) -> Literal["low", "medium", "high"]:
    if confidence >= 0.75:
        return "high"
    if confidence >= 0.5:
        return "medium"
    return "low"


def round_down_like(qty: Decimal, original: Decimal) -> Decimal:
    """Round ``qty`` down to the decimal places of ``original`` (whole shares stay whole).

    Run it under ``app.numbers.DECIMAL_CONTEXT``: a bounded value has up to 33 digits."""
    return qty.quantize(precision_step(original), rounding=ROUND_DOWN)


def round_up_like(qty: Decimal, original: Decimal) -> Decimal:
    """Round ``qty`` up to the decimal places of ``original``."""
    return qty.quantize(precision_step(original), rounding=ROUND_UP)
