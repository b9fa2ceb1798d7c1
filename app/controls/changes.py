"""What a control change is, and which changes need a reason (pure: no I/O, no clock).

The rule for reasons: tightening a control (toward HALTED, disabling DSPy or routing) never
waits for a reason, because an emergency stop must not be slowed by a form; relaxing one
(lifting a HALT or REDUCING, re-enabling DSPy or routing) requires a non-blank reason, so the
audit trail says why risk was let back in. Actor and time are recorded either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.gates.context import TradingState

# Higher is safer: moving down this order relaxes the trading state.
_SAFETY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True, slots=True)
class ControlValues:
    trading_state: TradingState
    dspy_disabled: bool
    routing_disabled: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "trading_state": self.trading_state.value,
            "dspy_disabled": self.dspy_disabled,
            "routing_disabled": self.routing_disabled,
        }

    def with_changes(
        self,
        trading_state: TradingState | None,
        dspy_disabled: bool | None,
        routing_disabled: bool | None,
    ) -> ControlValues:
        return ControlValues(
            trading_state=self.trading_state if trading_state is None else trading_state,
            dspy_disabled=self.dspy_disabled if dspy_disabled is None else dspy_disabled,
            routing_disabled=self.routing_disabled
            if routing_disabled is None
            else routing_disabled,
        )


def changed_fields(before: ControlValues, after: ControlValues) -> list[str]:
    return [k for k, v in after.as_json().items() if before.as_json()[k] != v]


def relaxations(before: ControlValues, after: ControlValues) -> list[str]:
    """Each way ``after`` lets more risk in than ``before`` (empty: nothing is relaxed)."""
    out: list[str] = []
    if _SAFETY[after.trading_state] < _SAFETY[before.trading_state]:
        out.append(f"trading_state {before.trading_state} -> {after.trading_state}")
    if before.dspy_disabled and not after.dspy_disabled:
        out.append("dspy re-enabled")
    if before.routing_disabled and not after.routing_disabled:
        out.append("routing re-enabled")
    return out


class ReasonRequired(ValueError):
    """A change that relaxes a control came without a reason."""


def check_reason(before: ControlValues, after: ControlValues, reason: str) -> None:
    relaxed = relaxations(before, after)
    if relaxed and not reason.strip():
        raise ReasonRequired(f"a reason is required to relax controls ({'; '.join(relaxed)})")
