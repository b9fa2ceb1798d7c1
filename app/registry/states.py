"""Artifact states and the one transition table (pure).

    candidate -> shadow -> canary -> active -> retired
    shadow -> active (with approval), canary -> shadow (abort), retired -> active (rollback)

Anything not in the table is refused with ``InvalidTransition`` (a 409 at the API).
"""

from __future__ import annotations

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


ALLOWED_TRANSITIONS: dict[ArtifactState, frozenset[ArtifactState]] = {
    ArtifactState.CANDIDATE: frozenset({ArtifactState.SHADOW, ArtifactState.RETIRED}),
    ArtifactState.SHADOW: frozenset(
        {ArtifactState.CANARY, ArtifactState.ACTIVE, ArtifactState.RETIRED}
    ),
    ArtifactState.CANARY: frozenset(
        {ArtifactState.ACTIVE, ArtifactState.SHADOW, ArtifactState.RETIRED}
    ),
    ArtifactState.ACTIVE: frozenset({ArtifactState.RETIRED}),
    ArtifactState.RETIRED: frozenset({ArtifactState.ACTIVE}),
}

# At most one artifact per program in each of these states (also enforced by the database).
SINGLETON_STATES = frozenset({ArtifactState.ACTIVE, ArtifactState.CANARY, ArtifactState.SHADOW})


class InvalidTransition(ValueError):
    def __init__(self, current: ArtifactState, target: ArtifactState) -> None:
        super().__init__(f"cannot move an artifact from {current} to {target}")
        self.current = current
        self.target = target


def check_transition(current: ArtifactState, target: ArtifactState) -> None:
    """Raise ``InvalidTransition`` unless ``current -> target`` is in the table."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise InvalidTransition(current, target)
