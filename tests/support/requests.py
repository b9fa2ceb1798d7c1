"""Builders for realistic review requests with fresh timestamps."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def base_request(now: datetime | None = None, **decision: Any) -> dict[str, Any]:
    """A clean, small, liquid paper buy that every gate passes and the heuristic approves."""
    now = now or datetime.now(UTC)
    body: dict[str, Any] = {
        "decision": {
            "strategy_id": "test-strategy",
            "symbol": "AAPL",
            "action": "buy",
            "qty": "10",
            "order_type": "market",
            "time_in_force": "day",
            "event_ts": iso(now - timedelta(seconds=2)),
            "timeframe": "1Min",
            "rationale": "test",
            "params": {"price_snapshot": "200.00"},
        },
        "portfolio": {
            "equity": "100000",
            "cash": "50000",
            "buying_power": "80000",
            "total_exposure": "20000",
            "exposure_by_symbol": {"MSFT": "20000"},
            "positions": [{"symbol": "MSFT", "qty": "50", "side": "long"}],
        },
        "market": {
            "symbol": "AAPL",
            "as_of": iso(now - timedelta(seconds=1)),
            "price": "200.00",
            "spread": "0.02",
            "source": "test",
        },
        "recent_decisions": [],
        "account": {},
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
    body["decision"].update(decision)
    return body


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def with_fresh_times(body: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """An example request re-dated to now so freshness gates judge it on its merits."""
    now = now or datetime.now(UTC)
    out = copy.deepcopy(body)
    out["decision"]["event_ts"] = iso(now - timedelta(seconds=2))
    if out.get("market"):
        out["market"]["as_of"] = iso(now - timedelta(seconds=1))
    if out.get("market_context"):
        out["market_context"]["asOfUtc"] = iso(now - timedelta(seconds=30))
    return out
