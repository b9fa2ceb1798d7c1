"""Which artifact answers a request: the canary for keys in its sticky slice, else the active.

``routing_disabled`` (an operator control, seen by every replica within one poll) and a pinned
replica send everything to the active/pinned artifact."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.registry.artifact import Artifact
from app.review.schemas import ReviewRequest
from app.rollout.splitter import on_canary, routing_key

if TYPE_CHECKING:
    from app.registry.cache import LiveState


def choose(live: LiveState, request: ReviewRequest) -> tuple[Artifact | None, bool]:
    """(artifact, is_canary) for this request."""
    route, canary = live.route, live.canary
    if (
        route is None
        or canary is None
        or live.pinned_hash is not None
        or live.controls.routing_disabled
    ):
        return live.artifact, False
    key = routing_key(request.decision.strategy_id, request.decision.symbol)
    if on_canary(key, route.salt, route.weight_pct):
        return canary, True
    return live.artifact, False
