"""The transition table and its one mutator (pure), and the control-change rules (pure)."""

from __future__ import annotations

import itertools

import pytest

from app.api.admin import REFUSAL_CODES
from app.controls.changes import ControlValues, ReasonRequired, check_reason, relaxations
from app.gates.context import TradingState
from app.registry.artifact import Refusal
from app.registry.states import (
    TRANSITIONS,
    ArtifactState,
    History,
    InvalidTransition,
    Route,
    next_state,
)

S, R = ArtifactState, Route
NEVER = History()
WAS_ACTIVE = History(artifact_was_active=True, program_had_active=True)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_move_when_not_in_table_then_refused_by_every_route(
    current: ArtifactState, target: ArtifactState
) -> None:
    routes = TRANSITIONS.get((current, target), frozenset())
    for route in Route:
        if route in routes:
            continue
        with pytest.raises(InvalidTransition):
            next_state(current, target, route, WAS_ACTIVE)


def test_active_when_reached_then_only_by_promote_rollback_or_bootstrap() -> None:
    into_active = set().union(*(r for (_, t), r in TRANSITIONS.items() if t is S.ACTIVE))
    assert into_active == {R.PROMOTE, R.ROLLBACK, R.BOOTSTRAP}
    assert TRANSITIONS[(S.RETIRED, S.ACTIVE)] == {R.ROLLBACK}


def test_retired_to_active_when_never_active_then_refused_even_as_rollback() -> None:
    with pytest.raises(InvalidTransition, match="active before"):
        next_state(S.RETIRED, S.ACTIVE, R.ROLLBACK, NEVER)
    with pytest.raises(InvalidTransition, match="only by rollback"):
        next_state(S.RETIRED, S.ACTIVE, R.PROMOTE, WAS_ACTIVE)
    assert next_state(S.RETIRED, S.ACTIVE, R.ROLLBACK, WAS_ACTIVE) is S.ACTIVE


def test_bootstrap_when_program_had_an_active_then_refused() -> None:
    assert next_state(S.SHADOW, S.ACTIVE, R.BOOTSTRAP, NEVER) is S.ACTIVE
    for current, target in ((S.CANDIDATE, S.SHADOW), (S.SHADOW, S.ACTIVE)):
        with pytest.raises(InvalidTransition, match="never had an active"):
            next_state(current, target, R.BOOTSTRAP, History(program_had_active=True))


def test_every_refusal_when_answered_then_has_its_own_error_code() -> None:
    assert set(REFUSAL_CODES) == set(Refusal)
    assert len(set(REFUSAL_CODES.values())) == len(Refusal)


def _c(state: str, dspy: bool = False, routing: bool = False) -> ControlValues:
    return ControlValues(TradingState(state), dspy_disabled=dspy, routing_disabled=routing)


@pytest.mark.parametrize(
    ("before", "after", "relaxed"),
    [
        (_c("ACTIVE"), _c("HALTED"), False),
        (_c("ACTIVE"), _c("REDUCING"), False),
        (_c("REDUCING"), _c("HALTED"), False),
        (_c("ACTIVE"), _c("ACTIVE", dspy=True, routing=True), False),
        (_c("HALTED"), _c("ACTIVE"), True),
        (_c("HALTED"), _c("REDUCING"), True),
        (_c("REDUCING"), _c("ACTIVE"), True),
        (_c("ACTIVE", dspy=True), _c("ACTIVE"), True),
        (_c("ACTIVE", routing=True), _c("ACTIVE"), True),
        (_c("ACTIVE", dspy=True), _c("HALTED"), True),  # tightening one, relaxing another
    ],
)
def test_control_change_when_relaxing_then_reason_required(
    before: ControlValues, after: ControlValues, relaxed: bool
) -> None:
    assert bool(relaxations(before, after)) is relaxed
    check_reason(before, after, "because")
    if relaxed:
        with pytest.raises(ReasonRequired):
            check_reason(before, after, "  ")
    else:
        check_reason(before, after, "")
