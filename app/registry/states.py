"""Artifact states and the one transition table (pure).

    candidate -> shadow -> canary -> active -> retired
    shadow -> active (with approval), canary -> shadow (abort), retired -> active (rollback)

Every edge names the routes that may take it (``Route``: how the move was asked for), and
``next_state`` is the one mutator that checks a move against the table and the artifact's
history. Anything else is refused with ``InvalidTransition`` (a 409 at the API). The rule the
table encodes: nothing reaches ACTIVE without evidence and approval (``PROMOTE``, checked by
the registry service), except

- ``ROLLBACK``: RETIRED -> ACTIVE of an artifact that was ACTIVE before (event history),
- ``BOOTSTRAP``: the service's own heuristic on a registry where nothing was ever ACTIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ArtifactState(StrEnum):
    CANDIDATE = "candidate"
    SHADOW = "shadow"
    CANARY = "canary"
    ACTIVE = "active"
    RETIRED = "retired"


class ExecutorKind(StrEnum):
    HEURISTIC = "heuristic"
    DSPY_LIVE = "dspy_live"


class Route(StrEnum):
    """How a move was asked for; recorded on its event."""

    REGISTER = "register"  # creation as a candidate (not a transition)
    PROMOTE = "promote"  # forward with evidence (scorecard; approval + shadow time for active)
    ABORT = "abort"  # canary back to shadow
    RETIRE = "retire"  # an operator retires an artifact
    SUPERSEDE = "supersede"  # the previous ACTIVE retires because another one became ACTIVE
    ROLLBACK = "rollback"  # re-activate a formerly ACTIVE artifact; the one replaced is
    # recorded with this route too ("rolled back from"), so rollback never returns to it
    BOOTSTRAP = "bootstrap"  # the service's heuristic, only on a registry never ACTIVE before


_S = ArtifactState
_R = Route

TRANSITIONS: dict[tuple[ArtifactState, ArtifactState], frozenset[Route]] = {
    (_S.CANDIDATE, _S.SHADOW): frozenset({_R.PROMOTE, _R.BOOTSTRAP}),
    (_S.CANDIDATE, _S.RETIRED): frozenset({_R.RETIRE}),
    (_S.SHADOW, _S.CANARY): frozenset({_R.PROMOTE}),
    (_S.SHADOW, _S.ACTIVE): frozenset({_R.PROMOTE, _R.BOOTSTRAP}),
    (_S.SHADOW, _S.RETIRED): frozenset({_R.RETIRE}),
    (_S.CANARY, _S.ACTIVE): frozenset({_R.PROMOTE}),
    (_S.CANARY, _S.SHADOW): frozenset({_R.PROMOTE, _R.ABORT}),
    (_S.CANARY, _S.RETIRED): frozenset({_R.RETIRE}),
    (_S.ACTIVE, _S.RETIRED): frozenset({_R.RETIRE, _R.SUPERSEDE, _R.ROLLBACK}),
    (_S.RETIRED, _S.ACTIVE): frozenset({_R.ROLLBACK}),
}

# At most one artifact per program in each of these states (also enforced by the database).
SINGLETON_STATES = frozenset({ArtifactState.ACTIVE, ArtifactState.CANARY, ArtifactState.SHADOW})
# States in which an artifact may serve traffic: its content is verified on every move into one.
SERVING_STATES = SINGLETON_STATES


@dataclass(frozen=True, slots=True)
class History:
    """What the event log says, as far as the transition rules need it."""

    artifact_was_active: bool = False  # this artifact has been ACTIVE before
    program_had_active: bool = False  # some artifact of its program has been ACTIVE before


class InvalidTransition(ValueError):
    def __init__(self, current: ArtifactState, target: ArtifactState, why: str = "") -> None:
        message = f"cannot move an artifact from {current} to {target}"
        super().__init__(f"{message}: {why}" if why else message)
        self.current = current
        self.target = target


def next_state(
    current: ArtifactState, target: ArtifactState, route: Route, history: History
) -> ArtifactState:
    """The one mutator: ``target`` if the table and the history allow the move by ``route``,
    else ``InvalidTransition`` saying why."""
    routes = TRANSITIONS.get((current, target))
    if routes is None:
        raise InvalidTransition(current, target)
    if route not in routes:
        allowed = " or ".join(sorted(r.value for r in routes))
        raise InvalidTransition(current, target, f"only by {allowed}, not {route}")
    if (
        route is Route.ROLLBACK
        and target is ArtifactState.ACTIVE
        and not history.artifact_was_active
    ):
        raise InvalidTransition(
            current, target, "rollback restores only an artifact that was active before"
        )
    if route is Route.BOOTSTRAP and history.program_had_active:
        raise InvalidTransition(
            current, target, "bootstrap only activates a registry that never had an active"
        )
    return target
