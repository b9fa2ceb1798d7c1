"""Seeded synthetic review scenarios with simulated outcomes (bootstrapping and tests).

Each scenario is a realistic ``ReviewRequest`` (the scheduler's shape: order with strategy
params and regime, portfolio with positions, quote, market-context bundle, recent orders,
policy) at a fixed point in time, plus what the order would have earned if sent as proposed.

The simulated return on notional is ``N(mu, sigma)`` with

    mu    = +0.6% edge - spread cost - 0.15% / 0.4% (medium / high regime entropy)
            - 0.3% (high volatility) - 3% (an event-risk flag: earnings window, pending news)
    sigma = 0.2% + volatility / 40 (+1% under an event-risk flag)

so most clean orders make money, defensive signals cost a little, and event risk is the one
thing a reviewer must catch. The label follows the dataset lane's rule for a submitted fill:
``approve`` when the simulated P&L is positive, ``veto`` otherwise.

Scenario ``i`` draws from its own ``Random(f"{seed}:{i}")``: the same seed gives the same
scenarios, and a larger ``n`` extends a smaller one instead of reshuffling it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.lanes.dataset import (
    SPLIT_RATIOS,
    Dataset,
    LabelSource,
    LaneExample,
    save,
    split_of,
)
from app.review.schemas import ReviewRequest, Verdict

GENERATOR_VERSION = 1
MAX_SCENARIOS = 5000
# Fixed, so scenarios (and their hash) never depend on when they are generated.
BASE_TIME = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)

EVENT_RISK_FLAGS: tuple[str, ...] = ("earnings_window", "news_pending")
BENIGN_FLAGS: tuple[str, ...] = ("index_rebalance", "options_expiry")
HALT_FLAGS: tuple[str, ...] = ("halted",)

_SYMBOLS: tuple[tuple[str, float], ...] = (
    ("AAPL", 200.0),
    ("MSFT", 420.0),
    ("NVDA", 120.0),
    ("SPY", 560.0),
    ("AMD", 150.0),
    ("JPM", 210.0),
    ("XOM", 115.0),
    ("TSLA", 250.0),
)
_STRATEGIES = ("intraday-tsmom-v3", "meanrev-1m-v2", "breakout-5m-v1")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _money(value: float) -> str:
    return str(Decimal(str(round(value, 2))))


def scenario(seed: int, index: int) -> LaneExample:
    """One scenario (deterministic in ``seed`` and ``index``)."""
    rng = random.Random(f"{seed}:{index}")
    event_ts = BASE_TIME + timedelta(minutes=7 * index)
    symbol, base_price = rng.choice(_SYMBOLS)
    price = round(base_price * (1 + rng.uniform(-0.05, 0.05)), 2)
    equity = rng.choice((100_000.0, 125_000.0, 250_000.0))
    strategy = rng.choice(_STRATEGIES)

    # Size: mostly well inside the 10%-of-equity notional limit, sometimes over it.
    pct = rng.uniform(0.11, 0.15) if rng.random() < 0.08 else rng.uniform(0.01, 0.06)
    qty = max(1, int(equity * pct / price))

    held = rng.random() < 0.3
    held_qty = max(qty, int(equity * rng.uniform(0.02, 0.08) / price)) if held else 0
    sell = held and rng.random() < 0.5
    action = "sell" if sell else "buy"

    roll = rng.random()
    spread_bps = (
        250.0 if roll < 0.01 else rng.uniform(30, 80) if roll < 0.13 else rng.uniform(0.5, 4)
    )
    roll = rng.random()
    entropy = (
        rng.uniform(0.86, 0.97)
        if roll < 0.15
        else rng.uniform(0.6, 0.84)
        if roll < 0.35
        else rng.uniform(0.1, 0.5)
    )
    band = "high" if entropy >= 0.85 else "medium" if entropy >= 0.6 else "low"
    vol = rng.uniform(0.045, 0.08) if rng.random() < 0.2 else rng.uniform(0.008, 0.03)

    has_context = rng.random() < 0.85
    flags: list[str] = []
    if has_context:
        roll = rng.random()
        if roll < 0.2:
            flags.append(rng.choice(EVENT_RISK_FLAGS))
        elif roll < 0.28:
            flags.append(rng.choice(BENIGN_FLAGS))
        elif roll < 0.3:
            flags.append(rng.choice(HALT_FLAGS))
    event = any(f in EVENT_RISK_FLAGS for f in flags)
    freshness = rng.uniform(5, 120)

    limit = rng.random() < 0.2
    order_type = "limit" if limit else "market"

    mu = 0.006 - spread_bps / 10_000
    mu -= {"high": 0.004, "medium": 0.0015}.get(band, 0.0)
    mu -= 0.003 if vol >= 0.04 else 0.0
    mu -= 0.03 if event else 0.0
    sigma = 0.002 + vol / 40 + (0.01 if event else 0.0)
    ret = rng.gauss(mu, sigma)
    # A sell closes part of a long: it earns what the position would have lost.
    per_unit = round(price * ret * (-1 if sell else 1), 6)
    pnl = round(per_unit * qty, 4)

    positions: list[dict[str, Any]] = []
    exposure: dict[str, str] = {}
    if held:
        positions.append(
            {
                "symbol": symbol,
                "qty": str(held_qty),
                "side": "long",
                "market_value": _money(held_qty * price),
                "avg_entry_price": _money(price * (1 - rng.uniform(-0.03, 0.03))),
            }
        )
        exposure[symbol] = _money(held_qty * price)
    other, other_price = rng.choice([s for s in _SYMBOLS if s[0] != symbol])
    other_qty = int(equity * rng.uniform(0.05, 0.2) / other_price)
    positions.append(
        {
            "symbol": other,
            "qty": str(other_qty),
            "side": "long",
            "market_value": _money(other_qty * other_price),
            "avg_entry_price": _money(other_price),
        }
    )
    exposure[other] = _money(other_qty * other_price)
    total_exposure = sum(float(v) for v in exposure.values())

    recent: list[dict[str, Any]] = []
    for k in range(rng.randint(0, 3)):
        recent.append(
            {
                "decision_id": f"d-{seed}-{index}-{k}",
                "strategy_id": strategy,
                "symbol": symbol,
                "action": rng.choice(("buy", "sell")),
                "qty": str(max(1, qty // 2)),
                "status": rng.choices(("filled", "rejected", "canceled"), (0.8, 0.15, 0.05))[0],
                "created_at": _iso(event_ts - timedelta(minutes=20 * (k + 1))),
            }
        )

    decision: dict[str, Any] = {
        "strategy_id": strategy,
        "symbol": symbol,
        "action": action,
        "qty": str(qty),
        "order_type": order_type,
        "time_in_force": "day",
        "event_ts": _iso(event_ts),
        "timeframe": rng.choice(("1Min", "5Min")),
        "rationale": rng.choice(
            (
                "12/26 EMA cross with rising volume",
                "mean reversion after 2-sigma drop",
                "breakout above the opening range high",
                "trim position into strength",
            )
        ),
        "regime_hmm": {
            "regime_id": f"R{rng.randint(1, 4)}",
            "entropy": str(round(entropy, 3)),
            "entropy_band": band,
            "artifact_version": "hmm-2026.01",
        },
        "params": {"price_snapshot": _money(price), "volatility": round(vol, 4)},
    }
    if limit:
        offset = 0.001 if action == "buy" else -0.001
        decision["limit_price"] = _money(price * (1 + offset))

    request: dict[str, Any] = {
        "decision": decision,
        "portfolio": {
            "equity": _money(equity),
            "cash": _money(equity - total_exposure),
            "buying_power": _money(2 * (equity - total_exposure)),
            "total_exposure": _money(total_exposure),
            "exposure_by_symbol": exposure,
            "positions": positions,
        },
        "market": {
            "symbol": symbol,
            "as_of": _iso(event_ts + timedelta(seconds=1)),
            "price": _money(price),
            "spread": _money(max(0.01, price * spread_bps / 10_000)),
            "source": "synthetic_quotes",
        },
        "recent_decisions": recent,
        "account": {"account_id": "paper-synthetic", "status": "ACTIVE", "currency": "USD"},
        "positions": [],
        "policy": {
            "adjustment_allowed": True,
            "min_qty_multiplier": "0.25",
            "max_qty_multiplier": "1.0",
            "allowed_order_types": ["market", "limit"],
        },
        "trading_mode": "paper",
        "prompt_version": "dspy:v1",
    }
    if has_context:
        request["market_context"] = {
            "contextVersion": "mc-v2",
            "symbol": symbol,
            "asOfUtc": _iso(event_ts - timedelta(seconds=freshness)),
            "freshnessSeconds": str(round(freshness, 1)),
            "qualityScore": str(round(rng.uniform(0.7, 0.98), 3)),
            "sourceCount": rng.randint(2, 6),
            "riskFlags": flags,
            "domains": {"technicals": {"payload": {"realized_vol": round(vol, 4)}}},
        }
    # Normalised through the schema (aliases, decimals) exactly as a stored request would be.
    inputs = ReviewRequest.model_validate(request).model_dump(mode="json", by_alias=True)
    example_id = f"syn-{seed}-{index:05d}"
    return LaneExample(
        example_id=example_id,
        inputs=inputs,
        label=Verdict.APPROVE if pnl > 0 else Verdict.VETO,
        label_source=LabelSource.SIMULATED_OUTCOME,
        as_of=event_ts + timedelta(seconds=2),
        split=split_of(example_id, seed),
        realized_pnl=pnl,
        pnl_per_unit=per_unit,
    )


def scenarios(n: int, seed: int) -> list[LaneExample]:
    if not 1 <= n <= MAX_SCENARIOS:
        raise ValueError(f"n must be in [1, {MAX_SCENARIOS}]")
    return [scenario(seed, i) for i in range(n)]


async def build(session: AsyncSession, *, n: int, seed: int, actor: str, now: datetime) -> Dataset:
    """Generate ``n`` scenarios and record them as a dataset (same n + seed -> same hash)."""
    config: dict[str, Any] = {
        "source": "synthetic",
        "n": n,
        "seed": seed,
        "generator": GENERATOR_VERSION,
        "ratios": list(SPLIT_RATIOS),
    }
    return await save(session, scenarios(n, seed), config, actor=actor, now=now)
