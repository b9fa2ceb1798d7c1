"""The artifact transition table, entry by entry (pure).

``EXPECTED`` below is the table written out by hand for every (from, to) pair of the state enum,
every route and every history the rules read. Each case asserts the exact outcome: the target
state, or ``InvalidTransition`` with its states and its reason. Changing any single entry of
``app.registry.states.TRANSITIONS`` (or either history rule) fails at least one case here.
At the API every ``InvalidTransition`` is a 409 ``invalid_transition``
(tests/integration/test_registry_admin.py, test_registry_trust.py).
"""

from __future__ import annotations

import dataclasses
from enum import Enum

import pytest

from app.errors import ErrorCode
from app.registry.states import (
    SERVING_STATES,
    SINGLETON_STATES,
    TRANSITIONS,
    ArtifactState,
    ExecutorKind,
    History,
    InvalidTransition,
    Route,
    next_state,
)

S, R = ArtifactState, Route


class Needs(Enum):
    """What the history must say for an allowed route to go through."""

    NOTHING = "nothing"
    ARTIFACT_WAS_ACTIVE = "artifact_was_active"  # the rollback exemption into ACTIVE
    PROGRAM_NEVER_ACTIVE = "program_never_active"  # the bootstrap exemption


ANY, WAS, FIRST = Needs.NOTHING, Needs.ARTIFACT_WAS_ACTIVE, Needs.PROGRAM_NEVER_ACTIVE

# Every pair of the enum: (allowed routes -> what they need, the "only by" text), or None when
# the pair is not an edge at all. Written out literally, not derived from the module.
EXPECTED: dict[tuple[ArtifactState, ArtifactState], tuple[dict[Route, Needs], str] | None] = {
    (S.CANDIDATE, S.CANDIDATE): None,
    (S.CANDIDATE, S.SHADOW): ({R.PROMOTE: ANY, R.BOOTSTRAP: FIRST}, "bootstrap or promote"),
    (S.CANDIDATE, S.CANARY): None,
    (S.CANDIDATE, S.ACTIVE): None,
    (S.CANDIDATE, S.RETIRED): ({R.RETIRE: ANY}, "retire"),
    (S.SHADOW, S.CANDIDATE): None,
    (S.SHADOW, S.SHADOW): None,
    (S.SHADOW, S.CANARY): ({R.PROMOTE: ANY}, "promote"),
    (S.SHADOW, S.ACTIVE): ({R.PROMOTE: ANY, R.BOOTSTRAP: FIRST}, "bootstrap or promote"),
    (S.SHADOW, S.RETIRED): ({R.RETIRE: ANY}, "retire"),
    (S.CANARY, S.CANDIDATE): None,
    (S.CANARY, S.SHADOW): ({R.PROMOTE: ANY, R.ABORT: ANY}, "abort or promote"),
    (S.CANARY, S.CANARY): None,
    (S.CANARY, S.ACTIVE): ({R.PROMOTE: ANY}, "promote"),
    (S.CANARY, S.RETIRED): ({R.RETIRE: ANY}, "retire"),
    (S.ACTIVE, S.CANDIDATE): None,
    (S.ACTIVE, S.SHADOW): None,
    (S.ACTIVE, S.CANARY): None,
    (S.ACTIVE, S.ACTIVE): None,
    (S.ACTIVE, S.RETIRED): (
        {R.RETIRE: ANY, R.SUPERSEDE: ANY, R.ROLLBACK: ANY},
        "retire or rollback or supersede",
    ),
    (S.RETIRED, S.CANDIDATE): None,
    (S.RETIRED, S.SHADOW): None,
    (S.RETIRED, S.CANARY): None,
    (S.RETIRED, S.ACTIVE): ({R.ROLLBACK: WAS}, "rollback"),
    (S.RETIRED, S.RETIRED): None,
}

HISTORIES = {
    "never": History(),
    "program_had_active": History(program_had_active=True),
    "artifact_was_active": History(artifact_was_active=True),
    "both": History(artifact_was_active=True, program_had_active=True),
}

ROLLBACK_WHY = "rollback restores only an artifact that was active before"
BOOTSTRAP_WHY = "bootstrap only activates a registry that never had an active"


def _expected_why(
    current: ArtifactState, target: ArtifactState, route: Route, history: History
) -> str | None:
    """None when the move goes through, else the exact refusal message."""
    head = f"cannot move an artifact from {current.value} to {target.value}"
    entry = EXPECTED[(current, target)]
    if entry is None:
        return head
    routes, only_by = entry
    if route not in routes:
        return f"{head}: only by {only_by}, not {route.value}"
    needs = routes[route]
    if needs is WAS and not history.artifact_was_active:
        return f"{head}: {ROLLBACK_WHY}"
    if needs is FIRST and history.program_had_active:
        return f"{head}: {BOOTSTRAP_WHY}"
    return None


def test_expected_table_when_listed_then_covers_every_pair_of_the_enum_once() -> None:
    assert len(EXPECTED) == len(S) ** 2 == 25
    assert {(c, t) for c in S for t in S} == set(EXPECTED)


@pytest.mark.parametrize(
    ("current", "target", "route"),
    [(c, t, r) for (c, t) in EXPECTED for r in R],
    ids=[f"{c.value}->{t.value}-by-{r.value}" for (c, t) in EXPECTED for r in R],
)
def test_move_when_checked_against_the_written_table_then_exact_outcome(
    current: ArtifactState, target: ArtifactState, route: Route
) -> None:
    for name, history in HISTORIES.items():
        want = _expected_why(current, target, route, history)
        if want is None:
            assert next_state(current, target, route, history) is target, name
            continue
        with pytest.raises(InvalidTransition) as info:
            next_state(current, target, route, history)
        assert str(info.value) == want, name
        assert (info.value.current, info.value.target) == (current, target), name


def test_table_when_compared_then_exactly_the_expected_edges_and_routes() -> None:
    edges = {pair: frozenset(e[0]) for pair, e in EXPECTED.items() if e is not None}
    assert edges == TRANSITIONS
    assert len(TRANSITIONS) == 10


def test_vocabularies_when_listed_then_exact_values() -> None:
    assert [s.value for s in S] == ["candidate", "shadow", "canary", "active", "retired"]
    assert [r.value for r in R] == [
        "register",
        "promote",
        "abort",
        "retire",
        "supersede",
        "rollback",
        "bootstrap",
    ]
    assert [k.value for k in ExecutorKind] == ["heuristic", "dspy_live"]


def test_singleton_and_serving_states_when_listed_then_shadow_canary_active() -> None:
    assert frozenset({S.SHADOW, S.CANARY, S.ACTIVE}) == SINGLETON_STATES
    assert frozenset({S.SHADOW, S.CANARY, S.ACTIVE}) == SERVING_STATES


def test_history_when_defaulted_then_nothing_was_active_and_it_is_frozen() -> None:
    h = History()
    assert (h.artifact_was_active, h.program_had_active) == (False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.artifact_was_active = True  # type: ignore[misc]


# ------------------------------------------------------------------ retiring the ACTIVE one


@pytest.mark.parametrize("route", [R.RETIRE, R.SUPERSEDE, R.ROLLBACK])
@pytest.mark.parametrize("history", HISTORIES.values(), ids=HISTORIES.keys())
def test_retire_when_artifact_is_active_then_retired_whatever_the_history(
    route: Route, history: History
) -> None:
    # The service retires the replaced ACTIVE with History() when a rollback replaces it: the
    # rollback exemption's history rule applies to moves INTO active only.
    assert next_state(S.ACTIVE, S.RETIRED, route, history) is S.RETIRED


@pytest.mark.parametrize("route", [R.PROMOTE, R.ABORT, R.BOOTSTRAP, R.REGISTER])
def test_retire_when_active_by_another_route_then_refused_naming_the_three(route: Route) -> None:
    with pytest.raises(InvalidTransition) as info:
        next_state(S.ACTIVE, S.RETIRED, route, HISTORIES["both"])
    assert str(info.value) == (
        "cannot move an artifact from active to retired: "
        f"only by retire or rollback or supersede, not {route.value}"
    )


# ------------------------------------------------------------------ lifecycles (event history)


def _walk(steps: list[tuple[ArtifactState, Route]]) -> ArtifactState:
    """Move a fresh CANDIDATE along ``steps``, keeping the history the event log would give
    (this artifact and its program were active once it reached ACTIVE)."""
    state, was_active = S.CANDIDATE, False
    for target, route in steps:
        history = History(artifact_was_active=was_active, program_had_active=was_active)
        state = next_state(state, target, route, history)
        was_active = was_active or state is S.ACTIVE
    return state


@pytest.mark.parametrize(
    "path",
    [
        [(S.RETIRED, R.RETIRE)],
        [(S.SHADOW, R.PROMOTE), (S.RETIRED, R.RETIRE)],
        [(S.SHADOW, R.PROMOTE), (S.CANARY, R.PROMOTE), (S.RETIRED, R.RETIRE)],
        [(S.SHADOW, R.PROMOTE), (S.CANARY, R.PROMOTE), (S.SHADOW, R.ABORT), (S.RETIRED, R.RETIRE)],
    ],
    ids=["candidate", "shadow", "canary", "aborted-canary"],
)
def test_rollback_when_retired_artifact_was_never_active_then_refused(
    path: list[tuple[ArtifactState, Route]],
) -> None:
    assert _walk(path) is S.RETIRED
    with pytest.raises(InvalidTransition) as info:
        _walk([*path, (S.ACTIVE, R.ROLLBACK)])
    assert str(info.value) == f"cannot move an artifact from retired to active: {ROLLBACK_WHY}"
    assert (info.value.current, info.value.target) == (S.RETIRED, S.ACTIVE)


@pytest.mark.parametrize(
    "path",
    [
        [(S.SHADOW, R.PROMOTE), (S.ACTIVE, R.PROMOTE), (S.RETIRED, R.SUPERSEDE)],
        [
            (S.SHADOW, R.PROMOTE),
            (S.CANARY, R.PROMOTE),
            (S.ACTIVE, R.PROMOTE),
            (S.RETIRED, R.RETIRE),
        ],
        [(S.SHADOW, R.PROMOTE), (S.ACTIVE, R.PROMOTE), (S.RETIRED, R.ROLLBACK)],
    ],
    ids=["superseded", "retired-after-canary", "rolled-back-from"],
)
def test_rollback_when_retired_artifact_was_active_before_then_active_again(
    path: list[tuple[ArtifactState, Route]],
) -> None:
    assert _walk([*path, (S.ACTIVE, R.ROLLBACK)]) is S.ACTIVE


@pytest.mark.parametrize("route", [R.PROMOTE, R.BOOTSTRAP, R.RETIRE, R.SUPERSEDE, R.ABORT])
def test_retired_to_active_when_formerly_active_but_not_by_rollback_then_refused(
    route: Route,
) -> None:
    with pytest.raises(InvalidTransition) as info:
        next_state(S.RETIRED, S.ACTIVE, route, HISTORIES["both"])
    assert str(info.value) == (
        f"cannot move an artifact from retired to active: only by rollback, not {route.value}"
    )


def test_bootstrap_when_program_never_had_an_active_then_candidate_reaches_active() -> None:
    assert _walk([(S.SHADOW, R.BOOTSTRAP), (S.ACTIVE, R.BOOTSTRAP)]) is S.ACTIVE


@pytest.mark.parametrize(("current", "target"), [(S.CANDIDATE, S.SHADOW), (S.SHADOW, S.ACTIVE)])
def test_bootstrap_when_program_had_an_active_then_refused_even_if_artifact_never_was(
    current: ArtifactState, target: ArtifactState
) -> None:
    with pytest.raises(InvalidTransition) as info:
        next_state(current, target, R.BOOTSTRAP, HISTORIES["program_had_active"])
    assert str(info.value) == (
        f"cannot move an artifact from {current.value} to {target.value}: {BOOTSTRAP_WHY}"
    )


def test_invalid_transition_when_built_without_reason_then_bare_message_and_api_code() -> None:
    exc = InvalidTransition(S.ACTIVE, S.SHADOW)
    assert isinstance(exc, ValueError)
    assert str(exc) == "cannot move an artifact from active to shadow"
    assert (exc.current, exc.target) == (S.ACTIVE, S.SHADOW)
    with_why = InvalidTransition(S.ACTIVE, S.SHADOW, "because")
    assert str(with_why) == "cannot move an artifact from active to shadow: because"
    assert ErrorCode.INVALID_TRANSITION.value == "invalid_transition"
