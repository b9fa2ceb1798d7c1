"""The singleton loop: every ``period`` try to take or renew the lease; while held, run one
turn of the work. The lease lives ``ttl`` (default three periods), so a dead holder is replaced
within one TTL and a slow turn does not lose the lease to a healthy replica."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from app.db.session import SessionFactory, unit_of_work
from app.leases import repository
from app.leases.repository import Lease
from app.observability.logging import event

Work = Callable[[Lease], Awaitable[None]]


def default_holder() -> str:
    """Unique per process: host, pid and a random suffix (two apps in one test process differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SingletonLoop:
    """Runs ``work`` in at most one replica at a time, under the database lease ``name``."""

    def __init__(
        self,
        factory: SessionFactory,
        name: str,
        work: Work,
        *,
        period_seconds: float,
        clock: Callable[[], datetime],
        ttl_seconds: float | None = None,
        holder: str | None = None,
    ) -> None:
        self._factory = factory
        self.name = name
        self._work = work
        self.period = period_seconds
        self.ttl = timedelta(seconds=ttl_seconds or 3 * period_seconds)
        self._clock = clock
        self.holder = holder or default_holder()
        self.lease: Lease | None = None

    @property
    def is_leader(self) -> bool:
        return self.lease is not None and self.lease.expires_at > self._clock()

    async def tick(self) -> bool:
        """One turn: acquire/renew, then run the work if held. Returns whether it ran."""
        try:
            async with unit_of_work(self._factory) as session:
                lease = await repository.try_acquire(
                    session, self.name, self.holder, self._clock(), self.ttl
                )
        except Exception as exc:  # database down: not the leader until it answers again
            event("lease.error", logging.WARNING, lease=self.name, error=type(exc).__name__)
            self.lease = None
            return False
        if lease is None:
            if self.lease is not None:
                event("lease.lost", logging.WARNING, lease=self.name, holder=self.holder)
            self.lease = None
            return False
        if self.lease is None or self.lease.epoch != lease.epoch:
            event("lease.acquired", lease=self.name, holder=self.holder, epoch=lease.epoch)
        self.lease = lease
        await self._work(lease)
        return True

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except Exception as exc:  # one failed turn must not end the loop
                    event("lease.work_failed", logging.ERROR, lease=self.name, error=repr(exc))
                await asyncio.sleep(self.period)
        finally:
            await self._release()

    async def _release(self) -> None:
        if self.lease is None:
            return
        with contextlib.suppress(Exception):
            async with unit_of_work(self._factory) as session:
                await repository.release(session, self.name, self.holder, self._clock())
        self.lease = None
