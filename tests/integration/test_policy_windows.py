"""The two time windows of config/policy.yaml at the edge, through POST /review (pinned clock).

``order_rate.window_seconds`` (60) and ``reservations.ttl_seconds`` (60) are applied by the
pipeline and the writer against stored rows, not by a pure gate: a submit made exactly 60 s ago
still counts; one made 60.001 s ago no longer does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from app.gates.limits import load_policy
from tests.conftest import Clock
from tests.support.requests import base_request

SHIPPED = load_policy(Path(__file__).resolve().parents[2] / "config" / "policy.yaml").limits
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


async def review_at(
    client: httpx.AsyncClient, clock: Clock, at: datetime, held: str = "0", **decision: Any
) -> dict[str, Any]:
    """POST /review at ``at`` (clock and request times), the scheduler reporting ``held`` AAPL."""
    clock.fixed = at
    body = base_request(now=at, **decision)
    if held != "0":
        body["portfolio"]["positions"].append({"symbol": "AAPL", "qty": held, "side": "long"})
    r = await client.post(
        "/review", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert r.status_code == 200, r.text
    return r.json()


async def test_order_rate_when_submits_are_exactly_window_old_then_they_still_count(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    cap = SHIPPED.order_rate.max_orders_per_strategy
    window = timedelta(seconds=SHIPPED.order_rate.window_seconds)
    assert (cap, window) == (30, timedelta(seconds=60))
    for i in range(cap):
        out = await review_at(client, clock, T0, strategy_id="rate", qty="1", rationale=f"o{i}")
        assert out["decision"] == "submit", out["reasons"]

    at_edge = await review_at(client, clock, T0 + window, strategy_id="rate", qty="1")
    past_edge = await review_at(
        client, clock, T0 + window + timedelta(milliseconds=1), strategy_id="rate", qty="1"
    )

    assert (at_edge["decision"], at_edge["reasons"]) == ("reject", ["order_rate"])
    assert (past_edge["decision"], past_edge["reasons"]) == ("submit", [])


async def test_reservation_when_exactly_ttl_old_then_still_counts_toward_the_position(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    # The scheduler reports 100 AAPL (20% of equity at 200) and goes on reporting 100: the
    # first buy of 20 is in flight. A second buy of 10 makes 130 (26%, max 25%) while the first
    # is reserved, and 110 (22%) once its reservation has expired.
    ttl = timedelta(seconds=SHIPPED.reservations.ttl_seconds)
    assert ttl == timedelta(seconds=60)
    assert SHIPPED.max_position_pct_equity == Decimal("0.25")
    first = await review_at(client, clock, T0, "100", strategy_id="ttl", qty="20", rationale="a")
    assert first["decision"] == "submit", first["reasons"]

    at_edge = await review_at(client, clock, T0 + ttl, "100", strategy_id="ttl", qty="10")
    past_edge = await review_at(
        client, clock, T0 + ttl + timedelta(milliseconds=1), "100", strategy_id="ttl", qty="10"
    )

    assert at_edge["decision"] == "reject"
    assert "position_limit" in at_edge["reasons"]
    assert (past_edge["decision"], past_edge["reasons"]) == ("submit", [])
