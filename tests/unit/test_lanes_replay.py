"""The replay lane's pure parts: the promotion check, the as-of reconstruction, the diff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.gates.context import TradingState
from app.lanes.replay import (
    Change,
    RecentSubmits,
    Recorded,
    Replayed,
    Timeline,
    as_of,
    change_of,
    report,
)
from app.registry.promotion import PromotionPolicy, ReplayReport, check_replay
from app.review.schemas import Decision

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def rep(**over: Any) -> ReplayReport:
    body: dict[str, Any] = {
        "artifact_hash": "a" * 64,
        "since": NOW - timedelta(days=1),
        "until": NOW,
        "window_reviews": 100,
        "n": 100,
        "same": 100,
        "submit_to_reject": 0,
        "reject_to_submit": 0,
        "errors": 0,
        "reject_to_submit_share": 0.0,
    }
    body.update(over)
    return ReplayReport.model_validate(body)


def recorded(
    row_id: int,
    at: datetime,
    decision: Decision = Decision.REJECT,
    *,
    strategy: str = "s1",
    mode: str = "paper",
    live_gate: bool | None = True,
) -> Recorded:
    return Recorded(
        review_id=f"r{row_id}",
        row_id=row_id,
        created_at=at,
        strategy_id=strategy,
        symbol="AAPL",
        decision=decision,
        reasons=["verdict_veto"] if decision is Decision.REJECT else [],
        request_json={"trading_mode": mode},
        artifact_hash="b" * 64,
        policy_hash="p1",
        served_live_gate=live_gate,
    )


def test_check_replay_when_share_at_the_bar_then_passes_and_above_then_denies() -> None:
    policy = PromotionPolicy(replay_max_reject_to_submit=0.02)
    at_bar = rep(reject_to_submit=2, reject_to_submit_share=0.02)
    above = rep(reject_to_submit=3, reject_to_submit_share=0.03)
    inside = rep(reject_to_submit=1, reject_to_submit_share=0.01)

    assert check_replay(inside, policy, required=True, waived=False, now=NOW) == []
    assert check_replay(at_bar, policy, required=True, waived=False, now=NOW) == []
    reasons = check_replay(above, policy, required=True, waived=False, now=NOW)

    assert len(reasons) == 1 and reasons[0].startswith("replay: 3 of 100 recorded orders")
    assert "share 0.0300 > replay_max_reject_to_submit 0.02" in reasons[0]


def test_check_replay_when_default_bar_and_one_flip_then_denies() -> None:
    one = rep(reject_to_submit=1, reject_to_submit_share=0.01)

    assert check_replay(one, PromotionPolicy(), required=False, waived=False, now=NOW)


def test_check_replay_when_rows_could_not_be_re_decided_then_denies_unless_waived() -> None:
    broken = rep(errors=2, n=98)

    denied = check_replay(broken, PromotionPolicy(), required=False, waived=False, now=NOW)
    waived = check_replay(broken, PromotionPolicy(), required=False, waived=True, now=NOW)

    assert denied == ["replay could not re-decide 2 recorded request(s)"]
    assert waived == []


def test_check_replay_when_absent_then_denies_only_if_required_even_when_waived() -> None:
    policy = PromotionPolicy()

    assert check_replay(None, policy, required=False, waived=False, now=NOW) == []
    assert check_replay(None, policy, required=True, waived=True, now=NOW) == [
        "no replay of the reviews served in the last 7 days (run lanes replay --artifact ...)"
    ]


def test_check_replay_when_window_ends_at_lookback_start_then_stale_if_required() -> None:
    policy = PromotionPolicy(replay_lookback_days=7)
    edge = rep(until=NOW - timedelta(days=7))
    inside = rep(until=NOW - timedelta(days=7) + timedelta(seconds=1))

    stale = check_replay(edge, policy, required=True, waived=True, now=NOW)

    assert len(stale) == 1 and stale[0].startswith("replay window ended 2026-11-13T12:00:00")
    assert check_replay(inside, policy, required=True, waived=False, now=NOW) == []
    assert check_replay(edge, policy, required=False, waived=False, now=NOW) == []


def test_change_of_when_decisions_differ_then_named_by_direction() -> None:
    assert change_of(Decision.REJECT, Decision.SUBMIT) is Change.REJECT_TO_SUBMIT
    assert change_of(Decision.SUBMIT, Decision.REJECT) is Change.SUBMIT_TO_REJECT
    assert change_of(Decision.SUBMIT, Decision.SUBMIT) is Change.SAME
    assert change_of(Decision.REJECT, Decision.REJECT) is Change.SAME


def test_timeline_when_state_changed_then_each_instant_sees_the_last_change_at_or_before() -> None:
    events = [
        (NOW + timedelta(seconds=10), 2, "HALTED"),
        (NOW, 1, "REDUCING"),
        (NOW + timedelta(seconds=20), 3, "ACTIVE"),
    ]
    line = Timeline(events)

    assert line.at(NOW - timedelta(seconds=1)) is TradingState.ACTIVE
    assert line.at(NOW) is TradingState.REDUCING
    assert line.at(NOW + timedelta(seconds=10)) is TradingState.HALTED
    assert line.at(NOW + timedelta(seconds=19)) is TradingState.HALTED
    assert line.at((NOW + timedelta(seconds=20)).replace(tzinfo=None)) is TradingState.ACTIVE


def test_recent_submits_when_counted_then_window_start_inclusive_and_later_rows_excluded() -> None:
    window = 60.0
    submits = [
        ("s1", NOW - timedelta(seconds=61), 1),  # before the window
        ("s1", NOW - timedelta(seconds=60), 2),  # at its start: counted
        ("s1", NOW - timedelta(seconds=5), 3),
        ("s1", NOW, 4),  # same instant, written before: counted
        ("s1", NOW, 9),  # same instant, written after: not
        ("s2", NOW - timedelta(seconds=1), 5),  # another strategy
    ]
    recent = RecentSubmits(submits, window)

    assert recent.before(recorded(6, NOW)) == 3
    assert recent.before(recorded(7, NOW, strategy="s3")) == 0


def test_as_of_when_live_request_then_live_trading_follows_the_served_gate() -> None:
    line, recent = Timeline([]), RecentSubmits([], 60)

    blocked = as_of(recorded(1, NOW, mode="live", live_gate=False), line, recent, True)
    allowed = as_of(recorded(2, NOW, mode="live", live_gate=True), line, recent, False)
    paper = as_of(recorded(3, NOW, mode="paper", live_gate=True), line, recent, False)

    assert (blocked.live_trading_enabled, allowed.live_trading_enabled) == (False, True)
    assert paper.live_trading_enabled is False  # not live: the setting, irrelevant to the gate
    assert blocked.now == NOW and blocked.trading_state is TradingState.ACTIVE


def test_report_when_errors_and_flips_then_share_over_re_decided_and_flip_order() -> None:
    t = [NOW + timedelta(seconds=i) for i in range(5)]
    runs = [
        Replayed(recorded(1, t[0], Decision.SUBMIT), Decision.REJECT, ["verdict_veto"], "veto",
                 "heuristic", None),
        Replayed(recorded(2, t[1]), Decision.SUBMIT, [], "approve", "heuristic", None),
        Replayed(recorded(3, t[2]), None, [], None, None, None, error="ValidationError"),
        Replayed(recorded(4, t[3]), Decision.REJECT, ["verdict_veto"], "veto", "heuristic", None),
        Replayed(recorded(5, t[4]), Decision.SUBMIT, [], "approve", "dspy_live", None),
    ]  # fmt: skip

    out = report("a" * 64, NOW, NOW + timedelta(hours=1), 9, runs, policy_hash="p2", extra={})

    assert (out.window_reviews, out.n, out.errors) == (9, 4, 1)
    assert (out.same, out.submit_to_reject, out.reject_to_submit) == (1, 1, 2)
    assert out.reject_to_submit_share == pytest.approx(0.5)
    assert [f["review_id"] for f in out.flips] == ["r2", "r5", "r1"]
    extra = out.model_extra or {}
    assert extra["error_rows"] == [{"review_id": "r3", "error": "ValidationError"}]
    assert extra["policy_changed"] == 5
    assert (extra["served_submit"], extra["served_reject"]) == (1, 3)


def test_check_replay_when_window_end_stored_naive_or_in_another_zone_then_same_instant() -> None:
    """A replay window read back from a database without time zones is UTC; an aware end in
    another zone is compared as the instant it names, never re-labelled as UTC."""
    policy = PromotionPolicy(replay_lookback_days=7)
    edge = NOW - timedelta(days=7)
    naive_edge = rep(until=edge.replace(tzinfo=None))
    naive_inside = rep(until=(edge + timedelta(seconds=1)).replace(tzinfo=None))
    # 1 s inside the span, written in UTC-2: re-labelled as UTC it would look 2 h stale
    zoned_inside = rep(
        until=(edge + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-2)))
    )
    # 1 h before the span, written in UTC+2: re-labelled as UTC it would look 1 h inside
    zoned_stale = rep(until=(edge - timedelta(hours=1)).astimezone(timezone(timedelta(hours=2))))

    stale = check_replay(naive_edge, policy, required=True, waived=True, now=NOW)
    assert stale == [
        "replay window ended 2026-11-13T12:00:00+00:00, before the last 7 days in which "
        "reviews were served"
    ]
    assert check_replay(naive_inside, policy, required=True, waived=True, now=NOW) == []
    assert check_replay(zoned_inside, policy, required=True, waived=True, now=NOW) == []
    late = check_replay(zoned_stale, policy, required=True, waived=True, now=NOW)
    assert late == [
        "replay window ended 2026-11-13T13:00:00+02:00, before the last 7 days in which "
        "reviews were served"
    ]
