"""The answer's deadline: how much of ``LLM_DSPY_TIMEOUT_SECONDS`` the LLM step may use.

``LLM_DSPY_TIMEOUT_SECONDS`` bounds the time from request arrival to the answer leaving. After
the LLM step a review still runs the gates, commits its audit row and serialises the answer
(the *tail*), and the audit commit is never cut short (a row is committed before any answer).
So the LLM step ends at

    arrival + deadline - reserve

where ``reserve`` is a high estimate of the recent tail: ``srtt + 4 * rttvar`` over the measured
tails, the estimator TCP uses for its retransmission timeout (RFC 6298), clamped to
``[floor, deadline / 4]``: a loaded replica's tails must not starve the LLM step (the per-call
stagger in ``review/live.py`` covers bursts, up to another half of the deadline). A commit
that got slower raises the reserve within a few reviews; a single outlier moves it by a
quarter of its deviation. Pure: durations come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_ALPHA = 1 / 8  # RFC 6298's gains
_BETA = 1 / 4
_K = 4


@dataclass(slots=True)
class TailEstimator:
    """Smoothed tail latency and its deviation, in seconds."""

    floor_s: float
    cap_s: float
    srtt: float | None = None
    rttvar: float = 0.0
    samples: int = field(default=0)

    def observe(self, seconds: float) -> None:
        if seconds < 0:
            return
        self.samples += 1
        if self.srtt is None:
            self.srtt = seconds
            self.rttvar = seconds / 2
            return
        self.rttvar = (1 - _BETA) * self.rttvar + _BETA * abs(self.srtt - seconds)
        self.srtt = (1 - _ALPHA) * self.srtt + _ALPHA * seconds

    def reserve(self) -> float:
        """The time to keep for the tail (``floor_s`` until something was measured)."""
        estimate = self.floor_s if self.srtt is None else self.srtt + _K * self.rttvar
        return min(max(estimate, self.floor_s), self.cap_s)


class AnswerBudget:
    """Where the LLM step's deadline lies for a request that arrived at ``arrived_at``.

    ``arrived_at`` and the returned instants are on one monotonic clock (the event loop's).
    """

    def __init__(self, deadline_s: float, *, floor_s: float) -> None:
        self.deadline_s = deadline_s
        cap = deadline_s / 4
        self.tail = TailEstimator(floor_s=min(floor_s, cap), cap_s=cap)

    def answer_deadline(self, arrived_at: float) -> float:
        return arrived_at + self.deadline_s

    def llm_deadline(self, arrived_at: float) -> float:
        """When the LLM step must end so the tail still fits before the answer's deadline."""
        return arrived_at + self.deadline_s - self.tail.reserve()

    def observe_tail(self, seconds: float) -> None:
        self.tail.observe(seconds)
