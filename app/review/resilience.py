"""Circuit breaker and bulkhead around Jangar (time is injected, so both are testable)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens when the failure rate over a rolling window exceeds a threshold (with a minimum
    number of calls); after a cooldown it lets exactly one probe through (half-open). The
    probe's success closes it, its failure re-opens it for another cooldown.

    Every failure kind counts: timeouts, transport errors, 5xx and 429.
    """

    def __init__(
        self,
        *,
        window_seconds: float,
        min_calls: int,
        failure_rate: float,
        cooldown_seconds: float,
        clock: Callable[[], float],
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._window = window_seconds
        self._min_calls = min_calls
        self._rate = failure_rate
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._on_change = on_change
        self._calls: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._cooldown:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In half-open only one probe at a time."""
        return self.acquire() is not None

    def acquire(self) -> bool | None:
        """None: refused. False: an ordinary call. True: this call is the half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        return None

    def record(self, success: bool, *, probe: bool = True) -> None:
        """Count a finished call. ``probe=False`` marks a call that left before the breaker
        opened: in half-open only the probe's result decides."""
        now = self._clock()
        if self._state is BreakerState.HALF_OPEN:
            if not probe:
                return
            self._probe_out = False
            if success:
                self._calls.clear()
                self._failures = 0
                self._set(BreakerState.CLOSED)
            else:
                self._trip(now)
            return
        if self._state is BreakerState.OPEN:
            return  # a straggler from before the trip; the window restarts after the probe
        self._calls.append((now, success))
        self._failures += not success
        cutoff = now - self._window
        while self._calls and self._calls[0][0] < cutoff:
            _, ok = self._calls.popleft()
            self._failures -= not ok
        total = len(self._calls)  # a running failure count: O(1) per call, even in a storm
        if total >= self._min_calls and self._failures / total >= self._rate:
            self._trip(now)

    def release_probe(self) -> None:
        """A probe that never reached Jangar (e.g. bulkhead full) gives its slot back."""
        self._probe_out = False

    def _trip(self, now: float) -> None:
        self._opened_at = now
        self._calls.clear()
        self._failures = 0
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)


class Bulkhead:
    """A cap on concurrent Jangar calls; beyond it callers are refused at once, not queued.

    Only touched from the event-loop thread (cooperative scheduling), so it needs no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    def try_acquire(self) -> bool:
        if self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
