"""The rollout controller inside the service: one replica at a time (database lease), one turn
per period: judge the open canary's window, then the post-promotion watch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from app.db.session import SessionFactory, unit_of_work
from app.leases.repository import Lease
from app.leases.runner import SingletonLoop
from app.observability import metrics
from app.rollout import service
from app.rollout.analysis import Verdict
from app.rollout.watch import WatchPolicy, WatchResult, watch
from app.settings import Settings

LEASE_NAME = "rollout-controller"


class RolloutController:
    def __init__(
        self,
        factory: SessionFactory,
        program: str,
        *,
        clock: Callable[[], datetime],
        watch_policy: WatchPolicy | None,
    ) -> None:
        self._factory = factory
        self._program = program
        self._clock = clock
        self._watch = watch_policy
        self.last_verdict: Verdict | None = None
        self.last_watch: WatchResult | None = None

    async def turn(self, _: Lease | None = None) -> None:
        async with unit_of_work(self._factory) as session:
            self.last_verdict = await service.evaluate(session, self._program, self._clock())
        if self._watch is not None:
            async with unit_of_work(self._factory) as session:
                self.last_watch = await watch(session, self._program, self._watch, self._clock())


def build(
    factory: SessionFactory,
    settings: Settings,
    clock: Callable[[], datetime],
    *,
    holder: str | None = None,
) -> tuple[RolloutController, SingletonLoop]:
    watch_policy = (
        WatchPolicy(
            window_seconds=settings.post_promotion_watch_seconds,
            min_samples=settings.post_promotion_min_samples,
            max_fallback_rate=settings.post_promotion_max_fallback_rate,
            max_error_rate=settings.post_promotion_max_error_rate,
        )
        if settings.post_promotion_watch_enabled
        else None
    )
    controller = RolloutController(
        factory, settings.llm_dspy_program_name, clock=clock, watch_policy=watch_policy
    )

    async def work(lease: Lease) -> None:
        metrics.ROLLOUT_CONTROLLER_LEADER.set(1)
        await controller.turn(lease)

    loop = SingletonLoop(
        factory,
        LEASE_NAME,
        work,
        period_seconds=settings.rollout_controller_period_seconds,
        clock=clock,
        holder=holder,
    )
    return controller, loop
