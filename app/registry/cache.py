"""What this replica serves: the verified artifact and the operator controls, kept fresh.

A background task polls two cheap version checks (the ACTIVE hash of the program and the
controls version) every ``controls_refresh_seconds`` (<= 2 s), so a promotion, rollback or
control change reaches every replica without restart. An artifact refused at load (content
altered, state pruned, built for another signature version, a pin to an artifact that was
never active: ``registry.artifact.Refusal``) is not served, the previous artifact keeps
serving, and /readyz and ``trade_review_artifact_load_failures_total{reason}`` say why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.controls import repository as controls_repo
from app.controls.repository import Controls
from app.db.session import (
    SessionFactory,
    create_engine,
    create_session_factory,
    read_only,
    unit_of_work,
)
from app.gates.context import TradingState
from app.observability import metrics
from app.observability.logging import event
from app.registry import repository, service
from app.registry.artifact import Artifact, ArtifactRefused, Refusal
from app.registry.states import ArtifactState
from app.rollout import repository as rollout_repo
from app.rollout.repository import Route
from app.settings import Settings

# Refusals that depend only on the content behind the hash: remembered, never retried.
# (A missing row may be committed later; a pin to a never-active artifact may be promoted.)
_REFUSED_FOR_GOOD = frozenset(
    {Refusal.CONTENT_ALTERED, Refusal.STATE_PRUNED, Refusal.SIGNATURE_MISMATCH, Refusal.INVALID}
)


class LiveState:
    def __init__(
        self,
        factory: SessionFactory,
        *,
        program_name: str,
        signature_version: str,
        pinned_hash: str | None,
        clock: Callable[[], datetime],
        prepare: Callable[[Artifact], None] | None = None,
    ) -> None:
        self._factory = factory
        self._program = program_name
        self._signature_version = signature_version
        self._pinned = pinned_hash
        self._clock = clock
        # Builds whatever the artifact needs (its DSPy program); raising refuses the artifact.
        self._prepare = prepare
        self.artifact: Artifact | None = None
        # Fail closed until the first read: unknown controls mean no trading.
        self.controls: Controls = Controls(trading_state=TradingState.HALTED, version=-1)
        self.controls_loaded = False
        self.bootstrapped = False
        self.last_error: str | None = None
        # time.monotonic() of the last poll that reached the database (the probe port's
        # readiness reads it instead of querying the database from its thread).
        self.refreshed_at: float | None = None
        # Why the wanted artifact was refused (closed set), beside ``last_error``'s sentence.
        self.last_refusal: Refusal | None = None
        self._refused: dict[str, tuple[Refusal, str]] = {}
        for refusal in Refusal:  # every label exported from the start (0), so alerts see it
            metrics.ARTIFACT_LOAD_FAILURES.labels(refusal.value)
        # Progressive delivery: the open rollout's split, its verified CANARY artifact, and the
        # SHADOW artifact the shadow runner mirrors requests to.
        self.route: Route | None = None
        self.canary: Artifact | None = None
        self.shadow: Artifact | None = None

    @property
    def pinned_hash(self) -> str | None:
        return self._pinned

    async def refresh(self) -> None:
        """One poll: bootstrap if needed, then reload whatever changed."""
        if not self.bootstrapped:
            async with unit_of_work(self._factory) as session:
                await controls_repo.ensure(session, self._clock())
            await service.bootstrap_heuristic(
                self._factory, self._program, self._signature_version, self._clock()
            )
            self.bootstrapped = True
        async with read_only(self._factory) as session:
            version = await controls_repo.version(session)
            if version is not None and version != self.controls.version:
                loaded = await controls_repo.get(session)
                if loaded is not None:
                    self._set_controls(loaded)
            wanted = self._pinned or await repository.hash_in_state(
                session, self._program, ArtifactState.ACTIVE
            )
            current = self.artifact.artifact_hash if self.artifact else None
            refused: tuple[Refusal, str] | None = None
            if wanted is not None and wanted != current:
                refused = self._refused.get(wanted) or await self._load(session, wanted)
            await self._refresh_route(session)
        # What /readyz reports: why the wanted artifact is not the one serving (None: it is).
        # Both fields are published together, after the last await: a probe never sees the
        # code of one refresh beside the sentence of another.
        self.last_refusal, self.last_error = refused if refused is not None else (None, None)
        self.refreshed_at = time.monotonic()

    @property
    def pin_problem(self) -> str | None:
        """One line saying why the pinned artifact is refused (None: not pinned, or serving,
        or not known yet); start-up refuses on it."""
        if self._pinned is None or self.last_refusal is None or self.last_error is None:
            return None
        return f"LLM_DSPY_ARTIFACT_HASH refused ({self.last_refusal}): {self.last_error}"

    async def _load(self, session: AsyncSession, wanted: str) -> tuple[Refusal, str] | None:
        """Verify, prepare and swap in ``wanted``; the reason it was refused otherwise.

        Database errors propagate (the poll fails and is retried); only the artifact itself
        is refused here."""
        loaded = await self._verified(session, wanted)
        if not isinstance(loaded, Artifact):
            return loaded
        self._set_artifact(loaded)
        return None

    async def _refresh_route(self, session: AsyncSession) -> None:
        """Load the open rollout's split (the canary serves only once verified and prepared)
        and the SHADOW artifact. Their refusals are counted but never reported as the
        active artifact's (``last_refusal`` is what /readyz reads)."""
        route = await rollout_repo.route(session, self._program)
        if route is None or route.weight_pct <= 0:
            self.route, self.canary = route, None
        elif self.canary is None or self.canary.artifact_hash != route.candidate_hash:
            loaded = None
            if route.candidate_hash not in self._refused:
                loaded = await self._verified(session, route.candidate_hash)
            self.canary = loaded if isinstance(loaded, Artifact) else None
            self.route = route if self.canary is not None else None
        else:
            self.route = route
        metrics.CANARY_WEIGHT.labels(self._program).set(self.route.weight_pct if self.route else 0)
        shadow = await repository.hash_in_state(session, self._program, ArtifactState.SHADOW)
        if shadow is None or shadow in self._refused:
            self.shadow = None
        elif self.shadow is None or self.shadow.artifact_hash != shadow:
            loaded = await self._verified(session, shadow)
            self.shadow = loaded if isinstance(loaded, Artifact) else None

    async def _verified(self, session: AsyncSession, wanted: str) -> Artifact | tuple[Refusal, str]:
        """The verified, prepared artifact, or why it was refused."""
        row = await repository.get_by_hash(session, wanted)
        try:
            if wanted == self._pinned:
                await service.check_pin(session, wanted, self._program)
            if row is None:  # not refused for good: it may be committed by the next poll
                raise ArtifactRefused(Refusal.MISSING, f"artifact {wanted} not found")
        except ArtifactRefused as exc:
            return self._refuse(wanted, exc.reason, str(exc))
        try:
            loaded = Artifact.verified(
                row.artifact_hash,
                row.manifest,
                row.program_state,
                signature_version=self._signature_version,
            )
            if self._prepare is not None:
                self._prepare(loaded)
        except ArtifactRefused as exc:
            return self._refuse(wanted, exc.reason, str(exc))
        except Exception as exc:  # unreadable manifest or program state: refuse, keep serving
            return self._refuse(wanted, Refusal.INVALID, f"artifact {wanted} unreadable: {exc}")
        return loaded

    def _refuse(self, wanted: str, refusal: Refusal, message: str) -> tuple[Refusal, str]:
        if refusal in _REFUSED_FOR_GOOD:
            self._refused[wanted] = (refusal, message)
        metrics.ARTIFACT_LOAD_FAILURES.labels(refusal.value).inc()
        event("artifact.refused", logging.ERROR, reason=refusal.value, error=message)
        return refusal, message

    def _set_controls(self, controls: Controls) -> None:
        self.controls = controls
        self.controls_loaded = True
        for state in TradingState:
            metrics.TRADING_STATE.labels(state.value).set(
                1 if state is controls.trading_state else 0
            )
        event("controls.loaded", version=controls.version, state=controls.trading_state.value)

    def _set_artifact(self, artifact: Artifact) -> None:
        old = self.artifact
        if old is not None:
            metrics.ACTIVE_ARTIFACT.remove(old.program_name, old.artifact_hash, old.executor.value)
        self.artifact = artifact
        metrics.ACTIVE_ARTIFACT.labels(
            artifact.program_name, artifact.artifact_hash, artifact.executor.value
        ).set(1)
        event("artifact.serving", artifact_hash=artifact.artifact_hash, executor=artifact.executor)

    async def run(self, interval: float) -> None:
        """Poll forever; a failed poll keeps the last good state and is counted."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.STATE_REFRESH_FAILURES.inc()
                self.last_refusal, self.last_error = None, f"refresh failed: {type(exc).__name__}"
                event("state.refresh_failed", logging.WARNING, error=type(exc).__name__)
            await asyncio.sleep(interval)


class PinRefused(Exception):
    """``LLM_DSPY_ARTIFACT_HASH`` names an artifact this service must not serve: no start."""


async def pin_problem_at_start(settings: Settings, clock: Callable[[], datetime]) -> str | None:
    """What start-up would refuse the pin for, checked before the server starts (so the
    operator reads one line, not a traceback); None when fine or the database is unreachable
    (the loader keeps refusing at runtime then)."""
    if settings.llm_dspy_artifact_hash is None:
        return None
    engine = create_engine(settings)
    try:
        live = LiveState(
            create_session_factory(engine),
            program_name=settings.llm_dspy_program_name,
            signature_version=settings.llm_dspy_signature_version,
            pinned_hash=settings.llm_dspy_artifact_hash,
            clock=clock,
        )
        await live.refresh()
        return live.pin_problem
    except Exception:
        return None
    finally:
        await engine.dispose()
