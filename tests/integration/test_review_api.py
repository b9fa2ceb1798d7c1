"""POST /review end to end on the deterministic path, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import count_rows
from tests.support.requests import EXAMPLES, base_request, example, with_fresh_times

# README: a control change serves within 2 s on every replica (CONTROLS_REFRESH_SECONDS <= 2;
# 0.2 s in tests). Polled with a margin for a loaded runner (tests/README.md, "Timing margins").
CONTROLS_SEEN_WITHIN_S = 2.0 + 3.0


async def post(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return await client.post(
        "/review", content=content, headers={"content-type": "application/json", **headers}
    )


async def test_clean_order_when_reviewed_then_submits_with_every_gate_recorded(
    client: httpx.AsyncClient, database_url: str
) -> None:
    r = await post(client, base_request())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "submit"
    assert body["reasons"] == []
    assert body["review"]["verdict"] == "approve"
    assert body["lineage"]["executor"] == "heuristic"
    assert body["lineage"]["fallback"] == {"used": False, "reason": None}
    assert len(body["lineage"]["artifact_hash"]) == 64
    assert len(body["policy_hash"]) == 64
    codes = [g["code"] for g in body["gates"]]
    assert len(codes) == len(set(codes)) >= 17
    assert all(g["passed"] for g in body["gates"])
    assert await count_rows(database_url) == 1


# What each example is for, and what the shipped policy (config/policy.yaml) and the bootstrap
# heuristic make of it once re-dated to now: (decision, failed gates in gate order, verdict,
# submitted qty). A change of any of these is a change of behaviour, not noise.
FRESH_EXAMPLES: dict[str, tuple[str, list[str], str, str]] = {
    # clean, small, liquid: approved at full size
    "01_buy_market_aapl.json": ("submit", [], "approve", "20"),
    # a reducing sell still pays the notional cap: $13.5k is 13.49% of equity (max 10%)
    "02_sell_limit_msft_reduce.json": ("reject", ["max_notional"], "approve", "40"),
    # volatility 0.046 (+0.15) and high regime entropy (+0.35): risk 0.50 -> 0.50x of 30
    "03_buy_nvda_high_regime_entropy.json": ("submit", [], "adjust", "15"),
    # two context flags (+0.15 each) and volatility 0.051 (+0.15): risk 0.45 -> 0.55x of 25
    "04_buy_tsla_market_context_flags.json": ("submit", [], "adjust", "13"),
    # no equity at all: every equity-relative gate fails closed
    "05_source_system_minimal.json": (
        "reject",
        ["max_notional", "position_limit", "gross_exposure", "buying_power"],
        "approve",
        "5",
    ),
    # live while LIVE_TRADING_ENABLED is false (the default)
    "06_live_mode_request.json": ("reject", ["trading_mode"], "approve", "20"),
}


def test_examples_table_when_examples_listed_then_names_every_file() -> None:
    assert set(FRESH_EXAMPLES) == {p.name for p in EXAMPLES.glob("*.json")}


@pytest.mark.parametrize("path", sorted(FRESH_EXAMPLES))
async def test_each_example_when_posted_as_is_then_rejected_as_stale(
    client: httpx.AsyncClient, path: str
) -> None:
    # The files carry fixed 2026-11 timestamps: both freshness gates fail closed on every one.
    r = await post(client, example(path))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "reject"
    assert {"reference_price", "decision_age"} <= set(body["reasons"])
    gates = {g["code"]: g for g in body["gates"]}
    assert "is stale" in gates["reference_price"]["reason"]
    assert "is stale" in gates["decision_age"]["reason"]


@pytest.mark.parametrize("path", sorted(FRESH_EXAMPLES))
async def test_each_example_when_re_dated_then_answers_its_documented_decision(
    client: httpx.AsyncClient, path: str
) -> None:
    decision, failed, verdict, qty = FRESH_EXAMPLES[path]
    r = await post(client, with_fresh_times(example(path)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["decision"], body["reasons"]) == (decision, failed), body["gates"]
    assert [g["code"] for g in body["gates"] if not g["passed"]] == failed
    assert body["review"]["verdict"] == verdict
    assert body["order"]["qty"] == qty
    assert body["order"]["resized"] is (verdict == "adjust")


async def test_examples_when_re_dated_then_decisions_follow_their_risk(
    client: httpx.AsyncClient,
) -> None:
    clean = (await post(client, with_fresh_times(example("01_buy_market_aapl.json")))).json()
    assert clean["decision"] == "submit", clean
    assert (clean["review"]["verdict"], clean["order"]["qty"]) == ("approve", "20")
    entropy = (
        await post(client, with_fresh_times(example("03_buy_nvda_high_regime_entropy.json")))
    ).json()
    # Shrunk, not vetoed: the two signals sum to 0.50, between adjust (0.25) and veto (0.6).
    assert entropy["review"]["verdict"] == "adjust"
    assert set(entropy["review"]["risk_flags"]) == {"high_volatility", "regime_entropy_high"}
    assert entropy["review"]["adjusted_qty"] == "15"
    assert entropy["decision"] == "submit"
    assert (entropy["order"]["qty"], entropy["order"]["resized"]) == ("15", True)
    adjustment = next(g for g in entropy["gates"] if g["code"] == "adjustment")
    assert adjustment == {"code": "adjustment", "passed": True, "reason": "qty 30 -> 15"}
    live = (await post(client, with_fresh_times(example("06_live_mode_request.json")))).json()
    assert live["decision"] == "reject"
    assert live["reasons"] == ["trading_mode"]


async def test_stale_example_when_posted_as_is_then_rejects_on_reference_price(
    client: httpx.AsyncClient,
) -> None:
    body = (await post(client, example("01_buy_market_aapl.json"))).json()
    assert body["decision"] == "reject"
    gate = next(g for g in body["gates"] if g["code"] == "reference_price")
    assert not gate["passed"] and "stale" in gate["reason"]


async def test_no_reference_price_when_reviewed_then_rejects_and_records(
    client: httpx.AsyncClient, database_url: str
) -> None:
    req = base_request(params={})
    req["market"] = None
    r = await post(client, req)
    assert r.status_code == 200
    body = r.json()
    assert body["decision"] == "reject"
    assert "reference_price" in body["reasons"]
    assert await count_rows(database_url) == 1


async def test_same_request_twice_when_no_key_then_same_review_and_one_row(
    client: httpx.AsyncClient, database_url: str
) -> None:
    req = base_request()
    a, b = await post(client, req), await post(client, req)
    assert a.json()["review_id"] == b.json()["review_id"]
    assert a.json() == {**b.json(), "timings_ms": a.json()["timings_ms"]}
    assert b.headers["x-idempotent-replay"] == "true"
    assert await count_rows(database_url) == 1


async def test_same_key_when_request_differs_then_409_and_no_new_row(
    client: httpx.AsyncClient, database_url: str
) -> None:
    a = await post(client, base_request(), **{"Idempotency-Key": "k-1"})
    assert a.status_code == 200
    b = await post(client, base_request(qty="11"), **{"Idempotency-Key": "k-1"})
    assert b.status_code == 409
    assert b.json()["error"]["code"] == "idempotency_conflict"
    assert await count_rows(database_url) == 1


async def test_50_concurrent_copies_when_posted_then_one_row_and_identical_answers(
    client: httpx.AsyncClient, database_url: str
) -> None:
    req = base_request()
    responses = await asyncio.gather(
        *(post(client, req, **{"Idempotency-Key": "storm-1"}) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {200}
    ids = {r.json()["review_id"] for r in responses}
    decisions = {
        json.dumps({k: v for k, v in r.json().items() if k != "timings_ms"}) for r in responses
    }
    assert len(ids) == 1
    assert len(decisions) == 1
    assert await count_rows(database_url) == 1


def _mutations() -> list[tuple[str, Any, int, str]]:
    req = base_request()

    def mutate(fn: Any) -> dict[str, Any]:
        body = json.loads(json.dumps(req))
        fn(body)
        return body

    return [
        ("invalid_json", b"{not json", 400, "invalid_json"),
        ("array_body", b"[]", 400, "body_not_object"),
        ("nan_literal", json.dumps(req).replace('"10"', "NaN", 1).encode(), 400, "invalid_json"),
        ("nan_string", mutate(lambda b: b["decision"].update(qty="NaN")), 422, "validation_error"),
        (
            "inf_string",
            mutate(lambda b: b["market"].update(price="Infinity")),
            422,
            "validation_error",
        ),
        ("zero_qty", mutate(lambda b: b["decision"].update(qty=0)), 422, "validation_error"),
        ("negative_qty", mutate(lambda b: b["decision"].update(qty="-5")), 422, "validation_error"),
        ("wrong_type", mutate(lambda b: b["decision"].update(qty=[1])), 422, "validation_error"),
        (
            "bad_action",
            mutate(lambda b: b["decision"].update(action="short")),
            422,
            "validation_error",
        ),
        ("unknown_top_field", mutate(lambda b: b.update(surprise=1)), 422, "validation_error"),
        ("missing_decision", mutate(lambda b: b.pop("decision")), 422, "validation_error"),
        ("bad_mode", mutate(lambda b: b.update(trading_mode="yolo")), 422, "validation_error"),
        (
            "bad_timestamp",
            mutate(lambda b: b["decision"].update(event_ts="yesterday")),
            422,
            "validation_error",
        ),
        ("huge_body", b'{"x": "' + b"a" * (1024 * 1024) + b'"}', 413, "payload_too_large"),
    ]


@pytest.mark.parametrize(
    ("name", "body", "status", "code"), _mutations(), ids=lambda v: v if isinstance(v, str) else ""
)
async def test_malformed_input_when_posted_then_4xx_with_stable_code_and_no_row(
    client: httpx.AsyncClient, database_url: str, name: str, body: Any, status: int, code: str
) -> None:
    r = await post(client, body)
    assert r.status_code == status, (name, r.text[:300])
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"]
    if status == 422:
        assert err["details"] and all("path" in d for d in err["details"])
    assert await count_rows(database_url) == 0


async def test_validation_error_when_field_wrong_then_path_names_it(
    client: httpx.AsyncClient,
) -> None:
    req = base_request(qty="-1")
    r = await post(client, req)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "validation_error"
    paths = [d["path"] for d in r.json()["error"]["details"]]
    assert paths == ["decision.qty"]


async def _rejected_by_halt(client: httpx.AsyncClient, tag: str) -> dict[str, Any]:
    """Distinct requests (no idempotent replay) until one is rejected on trading_state; the
    replicas refresh controls every 0.2 s here, the deadline is a margin, not a target."""
    deadline = asyncio.get_running_loop().time() + CONTROLS_SEEN_WITHIN_S
    n = 0
    while True:
        n += 1
        body = (await post(client, base_request(rationale=f"{tag} poll {n}"))).json()
        if "trading_state" in body["reasons"]:
            return body
        assert body["decision"] == "submit", body["reasons"]  # nothing else may stop it
        assert asyncio.get_running_loop().time() < deadline, f"{tag} never saw HALTED"
        await asyncio.sleep(0.05)


async def test_halted_controls_when_changed_then_every_replica_rejects(
    app_factory: Any, database_url: str
) -> None:
    async with app_factory() as (c1, _), app_factory() as (c2, _):
        for c, qty in ((c1, "1"), (c2, "2")):
            before = (await post(c, base_request(qty=qty))).json()
            assert before["decision"] == "submit", before["reasons"]
            gate = next(g for g in before["gates"] if g["code"] == "trading_state")
            assert gate == {"code": "trading_state", "passed": True, "reason": "trading is ACTIVE"}
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE service_controls SET trading_state='HALTED', version=version+1")
            )
        await engine.dispose()
        for c, tag in ((c1, "first"), (c2, "second")):
            body = await _rejected_by_halt(c, tag)
            assert body["decision"] == "reject"
            assert body["reasons"] == ["trading_state"]
            gate = next(g for g in body["gates"] if g["code"] == "trading_state")
            assert gate["reason"] == "trading is HALTED by an operator"


async def test_readyz_and_metrics_when_serving_then_report_state(client: httpx.AsyncClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    await post(client, base_request())
    text_ = (await client.get("/metrics")).text
    assert "trade_review_reviews_total" in text_
    assert "trade_review_review_latency_seconds_bucket" in text_
    assert "trade_review_active_artifact_info" in text_


async def test_unknown_route_when_called_then_json_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_order_rate_when_strategy_exceeds_window_limit_then_rejects(
    client: httpx.AsyncClient,
) -> None:
    # config/policy.yaml: 30 submitted orders per strategy per 60 s, counted from stored rows.
    # One share each (distinct rationales): their reserved quantities (31 x $200) stay far
    # under the position limit, so only the rate can stop them.
    decisions = []
    for i in range(31):
        req = base_request(strategy_id="rate-limited", qty="1", rationale=f"order {i}")
        decisions.append((await post(client, req)).json()["decision"])
    assert decisions[:30] == ["submit"] * 30
    assert decisions[30] == "reject"
    last = (await post(client, base_request(strategy_id="rate-limited", qty="2"))).json()
    assert "order_rate" in last["reasons"]
    other = (await post(client, base_request(strategy_id="another-strategy"))).json()
    assert other["decision"] == "submit"
