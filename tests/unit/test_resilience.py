"""CircuitBreaker and Bulkhead on an injected fake clock (no I/O, no sleeping)."""

from __future__ import annotations

import pytest

from app.review.resilience import BreakerState, Bulkhead, CircuitBreaker

WINDOW_S = 30.0
COOLDOWN_S = 10.0


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[BreakerState]:
    return []


def make_breaker(
    clock: FakeClock,
    changes: list[BreakerState] | None = None,
    *,
    min_calls: int = 4,
    failure_rate: float = 0.5,
) -> CircuitBreaker:
    return CircuitBreaker(
        window_seconds=WINDOW_S,
        min_calls=min_calls,
        failure_rate=failure_rate,
        cooldown_seconds=COOLDOWN_S,
        clock=clock,
        on_change=changes.append if changes is not None else None,
    )


def call(breaker: CircuitBreaker, success: bool) -> bool:
    """One guarded call as the live executor makes it: ask, then record if allowed."""
    if not breaker.allow():
        return False
    breaker.record(success)
    return True


def trip(breaker: CircuitBreaker, n: int = 4) -> None:
    for _ in range(n):
        assert call(breaker, False)
    assert breaker.state is BreakerState.OPEN


def test_new_breaker_when_created_then_closed_and_allows(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failures_when_under_min_calls_then_stays_closed(
    clock: FakeClock, changes: list[BreakerState]
) -> None:
    breaker = make_breaker(clock, changes, min_calls=4)
    for _ in range(3):  # 100 % failures, but only 3 calls
        assert call(breaker, False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert changes == []


def test_failure_rate_when_reached_at_min_calls_then_opens(
    clock: FakeClock, changes: list[BreakerState]
) -> None:
    breaker = make_breaker(clock, changes, min_calls=4, failure_rate=0.5)
    assert call(breaker, True)
    assert call(breaker, True)
    assert call(breaker, False)
    assert breaker.state is BreakerState.CLOSED  # 3 calls < min_calls
    assert call(breaker, False)  # 2 of 4 failed = 0.5 >= 0.5
    assert breaker.state is BreakerState.OPEN
    assert changes == [BreakerState.OPEN]


def test_failure_rate_when_below_threshold_then_stays_closed(clock: FakeClock) -> None:
    breaker = make_breaker(clock, min_calls=4, failure_rate=0.5)
    for success in (True, True, True, False, True, True, False):  # 2 / 7 failed
        assert call(breaker, success)
    assert breaker.state is BreakerState.CLOSED


def test_open_breaker_when_asked_then_refuses_until_cooldown(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    trip(breaker)
    for _ in range(5):
        assert not breaker.allow()
    clock.advance(COOLDOWN_S - 0.01)
    assert not breaker.allow()
    assert breaker.state is BreakerState.OPEN


def test_cooldown_when_elapsed_then_half_open_lets_exactly_one_probe(
    clock: FakeClock, changes: list[BreakerState]
) -> None:
    breaker = make_breaker(clock, changes)
    trip(breaker)
    clock.advance(COOLDOWN_S)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the probe
    assert not breaker.allow()
    assert not breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN]


def test_probe_when_succeeds_then_closes_with_a_fresh_window(
    clock: FakeClock, changes: list[BreakerState]
) -> None:
    breaker = make_breaker(clock, changes, min_calls=4)
    trip(breaker)
    clock.advance(COOLDOWN_S)
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    # The window restarted: three failures are again under min_calls.
    for _ in range(3):
        assert call(breaker, False)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_probe_when_fails_then_reopens_for_another_cooldown(
    clock: FakeClock, changes: list[BreakerState]
) -> None:
    breaker = make_breaker(clock, changes)
    trip(breaker)
    clock.advance(COOLDOWN_S)
    assert breaker.allow()
    breaker.record(False)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(COOLDOWN_S / 2)
    assert not breaker.allow()  # the cooldown restarted at the probe's failure
    clock.advance(COOLDOWN_S / 2)
    assert breaker.allow()
    assert changes == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
    ]


def test_old_calls_when_outside_window_then_age_out(clock: FakeClock) -> None:
    breaker = make_breaker(clock, min_calls=4, failure_rate=0.5)
    for _ in range(3):
        assert call(breaker, False)
    clock.advance(WINDOW_S + 1)
    # The three old failures aged out: one new failure is 1 call < min_calls.
    assert call(breaker, False)
    assert breaker.state is BreakerState.CLOSED
    # Successes inside the window dilute the rate below the threshold.
    for _ in range(4):
        assert call(breaker, True)
    assert call(breaker, False)  # 2 failures of 6
    assert breaker.state is BreakerState.CLOSED


def test_old_successes_when_outside_window_then_no_longer_dilute(clock: FakeClock) -> None:
    breaker = make_breaker(clock, min_calls=4, failure_rate=0.5)
    for _ in range(10):
        assert call(breaker, True)
    clock.advance(WINDOW_S + 1)
    for _ in range(4):
        assert call(breaker, False)
    assert breaker.state is BreakerState.OPEN


def test_straggler_when_recorded_while_open_then_ignored(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    trip(breaker)
    breaker.record(True)  # a call that left before the trip finishes late
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_release_probe_when_probe_never_sent_then_next_caller_may_probe(
    clock: FakeClock,
) -> None:
    breaker = make_breaker(clock)
    trip(breaker)
    clock.advance(COOLDOWN_S)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release_probe()  # e.g. the bulkhead refused it
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED


def test_release_probe_when_closed_then_harmless(clock: FakeClock) -> None:
    breaker = make_breaker(clock)
    breaker.release_probe()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_on_change_when_absent_then_transitions_still_work(clock: FakeClock) -> None:
    breaker = make_breaker(clock, None)
    trip(breaker)
    clock.advance(COOLDOWN_S)
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state is BreakerState.CLOSED


def test_bulkhead_when_at_limit_then_refuses_until_released() -> None:
    bulkhead = Bulkhead(2)
    assert bulkhead.try_acquire()
    assert bulkhead.try_acquire()
    assert bulkhead.in_flight == 2
    assert not bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    assert bulkhead.in_flight == 2  # refusals take no slot
    bulkhead.release()
    assert bulkhead.in_flight == 1
    assert bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    bulkhead.release()
    bulkhead.release()
    assert bulkhead.in_flight == 0
    assert bulkhead.try_acquire()


def test_bulkhead_when_limit_one_then_single_slot() -> None:
    bulkhead = Bulkhead(1)
    assert bulkhead.limit == 1
    assert bulkhead.try_acquire()
    assert not bulkhead.try_acquire()
    bulkhead.release()
    assert bulkhead.try_acquire()
