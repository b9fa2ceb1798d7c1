"""Gate limits, read from ``config/policy.yaml``; the file's sha256 is the policy hash."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from app.review.schemas import OrderType, Uncertainty


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SymbolLimits(_Frozen):
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


class ReferencePriceLimits(_Frozen):
    max_age_seconds: float = Field(default=300, gt=0)
    max_future_skew_seconds: float = Field(default=5, ge=0)


class DecisionAgeLimits(_Frozen):
    max_age_seconds: float = Field(default=300, gt=0)
    max_future_skew_seconds: float = Field(default=5, ge=0)


class PriceIntegrityLimits(_Frozen):
    # Band = max(a, b) / min(a, b) - 1 between the reference and each independent price.
    max_divergence_pct: Decimal = Field(default=Decimal("0.05"), gt=0)
    # Position marks (market_value / qty, current_price) may be the last close: a wider band.
    max_mark_divergence_pct: Decimal = Field(default=Decimal("0.20"), gt=0)
    # Independent prices that must agree with the reference (0: a lone reference may serve).
    min_corroborating_prices: int = Field(default=0, ge=0)


class QuantityLimits(_Frozen):
    lot_size: Decimal = Field(default=Decimal("0.000001"), gt=0)
    max_per_order: Decimal = Field(default=Decimal("100000"), gt=0)
    max_per_order_by_symbol: dict[str, Annotated[Decimal, Field(gt=0)]] = Field(
        default_factory=dict[str, Decimal]
    )

    def cap_for(self, symbol: str) -> Decimal:
        """The symbol's own cap when the policy names one (case-insensitive), else the default."""
        wanted = symbol.upper()
        for name, cap in self.max_per_order_by_symbol.items():
            if name.upper() == wanted:
                return cap
        return self.max_per_order


class OrderRateLimits(_Frozen):
    window_seconds: int = Field(default=60, gt=0)
    max_orders_per_strategy: int = Field(default=30, ge=0)


class ReservationLimits(_Frozen):
    """How long a submitted order counts as in flight against its strategy's position."""

    ttl_seconds: float = Field(default=60, gt=0)


class MarketContextLimits(_Frozen):
    required: bool = False
    max_freshness_seconds: float = Field(default=900, gt=0)
    min_quality_score: float = Field(default=0.5, ge=0, le=1)
    blocking_risk_flags: tuple[str, ...] = ()


class ReviewLimits(_Frozen):
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    blocked_uncertainty: tuple[Uncertainty, ...] = (Uncertainty.HIGH,)
    abstain_action: Literal["reject", "submit"] = "reject"
    required_checks_allowlist: tuple[str, ...] = ()


class AdjustmentLimits(_Frozen):
    max_qty_multiplier: Decimal = Field(default=Decimal("1.0"), ge=0)
    allowed_order_types: tuple[OrderType, ...] = tuple(OrderType)


class PolicyLimits(_Frozen):
    version: int = 1
    symbols: SymbolLimits = SymbolLimits()
    reference_price: ReferencePriceLimits = ReferencePriceLimits()
    decision_age: DecisionAgeLimits = DecisionAgeLimits()
    price_integrity: PriceIntegrityLimits = PriceIntegrityLimits()
    quantity: QuantityLimits = QuantityLimits()
    limit_price_collar_pct: Decimal = Field(default=Decimal("0.05"), gt=0)
    max_notional_per_order: Decimal = Field(default=Decimal("250000"), gt=0)
    max_notional_pct_equity: Decimal = Field(default=Decimal("0.10"), gt=0)
    max_position_pct_equity: Decimal = Field(default=Decimal("0.25"), gt=0)
    max_gross_exposure_pct_equity: Decimal = Field(default=Decimal("2.0"), gt=0)
    shorting_allowed: bool = False
    order_rate: OrderRateLimits = OrderRateLimits()
    reservations: ReservationLimits = ReservationLimits()
    market_context: MarketContextLimits = MarketContextLimits()
    review: ReviewLimits = ReviewLimits()
    adjustment: AdjustmentLimits = AdjustmentLimits()


class LoadedPolicy(_Frozen):
    limits: PolicyLimits
    policy_hash: str
    path: str


def load_policy(path: Path) -> LoadedPolicy:
    """Parse and validate the policy file; raises ``ValueError`` with the file named."""
    raw = path.read_bytes()
    try:
        data: Any = yaml.safe_load(raw) or {}
        limits = PolicyLimits.model_validate(data)
    except Exception as exc:
        raise ValueError(f"policy file {path} is invalid: {exc}") from exc
    return LoadedPolicy(limits=limits, policy_hash=hashlib.sha256(raw).hexdigest(), path=str(path))
