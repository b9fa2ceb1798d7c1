"""What this replica serves: the verified artifact and the operator controls, kept fresh.

A background task polls two cheap version checks (the ACTIVE hash of the program and the
controls version) every ``controls_refresh_seconds`` (<= 2 s), so a promotion, rollback or
control change reaches every replica without restart. A row whose content no longer hashes
to its address is refused and the previous artifact keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.controls import repository as controls_repo
from app.controls.repository import Controls
from app.db.session import SessionFactory, read_only, unit_of_work
from app.gates.context import TradingState
from app.observability import metrics
from app.observability.logging import event
from app.registry import repository, service
from app.registry.artifact import Artifact, ArtifactIntegrityError
from app.registry.states import ArtifactState
from app.rollout import repository as rollout_repo
from app.rollout.repository import Route


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
        self._refused: dict[str, str] = {}
        # Progressive delivery: the open rollout's split and its verified CANARY artifact.
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
            problem: str | None = None
            if wanted is not None and wanted != current:
                problem = self._refused.get(wanted) or await self._load(session, wanted)
            await self._refresh_route(session)
        # What /readyz reports: why the wanted artifact is not the one serving (None: it is).
        self.last_error = problem

    async def _load(self, session: AsyncSession, wanted: str) -> str | None:
        """Verify, prepare and swap in ``wanted``; the reason it was refused otherwise."""
        loaded = await self._verified(session, wanted)
        if isinstance(loaded, str):
            return loaded
        self._set_artifact(loaded)
        return None

    async def _refresh_route(self, session: AsyncSession) -> None:
        """Load the open rollout's split (the canary serves only once verified and prepared)
        and the SHADOW artifact the shadow runner mirrors requests to."""
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

    async def _verified(self, session: AsyncSession, wanted: str) -> Artifact | str:
        """The verified, prepared artifact, or why it was refused."""
        row = await repository.get_by_hash(session, wanted)
        if row is None:  # not refused for good: it may be committed by the next poll
            metrics.ARTIFACT_LOAD_FAILURES.labels("missing").inc()
            event("artifact.missing", logging.ERROR, artifact_hash=wanted)
            return f"artifact {wanted} not found"
        try:
            loaded = Artifact.verified(row.artifact_hash, row.manifest, row.program_state)
            if self._prepare is not None:
                self._prepare(loaded)
        except ArtifactIntegrityError as exc:
            reason, label = str(exc), "integrity"
        except Exception as exc:  # unreadable manifest or program state: refuse, keep serving
            reason, label = f"artifact {wanted} unreadable: {exc}", "invalid"
        else:
            return loaded
        self._refused[wanted] = reason
        metrics.ARTIFACT_LOAD_FAILURES.labels(label).inc()
        event("artifact.refused", logging.ERROR, error=reason)
        return reason

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
                self.last_error = f"refresh failed: {type(exc).__name__}"
                event("state.refresh_failed", logging.WARNING, error=type(exc).__name__)
            await asyncio.sleep(interval)
