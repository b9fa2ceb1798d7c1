# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
# (dspy ships no type information; its loose typing is contained in this module.)
"""The Jangar LM for the offline lanes: the serving engine, callable from optimizer threads.

DSPy optimizers call programs synchronously from worker threads, but the Jangar engine is
async-only (a sync call from the service's event loop would stall every request). Rather than
a second implementation of the wire protocol, the lanes run the SAME ``JangarEngine`` on a
private event loop in a daemon thread and hand DSPy a small sync engine that submits each call
to that loop and waits for it. Each call is bounded by ``asyncio.timeout`` on the loop (the
stream is cancelled at the deadline, as in serving), and a run-wide deadline makes every later
call fail at once so a lane that overran its budget ends instead of grinding on.

The LM itself is ``build_lm``'s (no response cache, no retries) with the sync half swapped in
through ``LM.copy(engine=...)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Self, TypeVar

import dspy  # pyright: ignore[reportMissingTypeStubs]
import httpx
from dspy import lm15  # pyright: ignore[reportMissingTypeStubs]

from app.lanes.errors import JangarNotConfigured
from app.review.jangar import PROVIDER, JangarEngine, build_lm
from app.review.jangar_url import normalize_base_url
from app.settings import Settings

if TYPE_CHECKING:
    from types import TracebackType

    from dspy._vendor.lm15.types import StreamEvent

T = TypeVar("T")


class _LoopThread:
    """An event loop in a daemon thread; coroutines are submitted from any other thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="lanes-jangar-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        # Finish abandoned response streams (async generators) before the loop goes away.
        self.run(self._drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _drain(self) -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.loop.shutdown_asyncgens()


class _BridgeEngine:
    """Sync engine (what ``dspy.LM`` calls from optimizer threads) over the loop thread."""

    def __init__(self, lane_lm: LaneLM) -> None:
        self._lane = lane_lm

    def complete(self, request: lm15.Request) -> lm15.Response:
        return self._lane.call(request)

    def stream(self, request: lm15.Request) -> Iterator[StreamEvent]:
        yield from lm15.response_to_events(self.complete(request))

    def close(self) -> None:
        return None


class _AsyncBridgeEngine:
    """Async half for callers on another loop: awaits the call running on the lane loop."""

    def __init__(self, lane_lm: LaneLM) -> None:
        self._lane = lane_lm

    async def complete(self, request: lm15.Request) -> lm15.Response:
        future = asyncio.run_coroutine_threadsafe(self._lane.bounded(request), self._lane.loop)
        return await asyncio.wrap_future(future)

    async def stream(self, request: lm15.Request) -> AsyncIterator[StreamEvent]:
        response = await self.complete(request)
        for event in lm15.response_to_events(response):
            yield event

    async def aclose(self) -> None:
        return None


class LaneLM:
    """Owns the loop thread, its ``httpx.AsyncClient``, the engine and the ``dspy.LM``.

    Use as a context manager; ``lm`` is valid inside it. ``calls`` counts LM calls.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        call_timeout_s: float,
        run_deadline_s: float | None = None,
    ) -> None:
        if settings.jangar_base_url is None:
            raise JangarNotConfigured("JANGAR_BASE_URL is not set: the compile lane needs Jangar")
        self._settings = settings
        self._call_timeout_s = call_timeout_s
        self._run_deadline = (
            time.monotonic() + run_deadline_s if run_deadline_s is not None else None
        )
        self._calls = 0
        self._count_lock = threading.Lock()
        # Called with the running call count (progress display); must not block.
        self.on_call: Callable[[int], None] | None = None
        self._thread: _LoopThread | None = None
        self._client: httpx.AsyncClient | None = None
        self._lm: dspy.LM | None = None

    @property
    def calls(self) -> int:
        with self._count_lock:
            return self._calls

    @property
    def deadline_passed(self) -> bool:
        return self._run_deadline is not None and time.monotonic() >= self._run_deadline

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._thread is None:
            raise RuntimeError("LaneLM is not open")
        return self._thread.loop

    @property
    def lm(self) -> dspy.LM:
        if self._lm is None:
            raise RuntimeError("LaneLM is not open")
        return self._lm

    def __enter__(self) -> Self:
        self._thread = _LoopThread()
        settings = self._settings
        assert settings.jangar_base_url is not None

        async def make_client() -> httpx.AsyncClient:
            # Created on the lane loop: the client's pool belongs to the loop that uses it.
            return httpx.AsyncClient(
                timeout=httpx.Timeout(connect=5.0, read=None, write=10.0, pool=30.0),
                limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
            )

        self._client = self._thread.run(make_client())
        engine = JangarEngine(
            self._client,
            normalize_base_url(settings.jangar_base_url),
            settings.llm_model,
            settings.jangar_api_key.get_secret_value() if settings.jangar_api_key else None,
            settings.jangar_extra_headers,
        )
        self._engine = engine
        self._lm = build_lm(engine, settings.llm_model).copy(
            engine=_BridgeEngine(self), async_engine=_AsyncBridgeEngine(self)
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        thread, client = self._thread, self._client
        if thread is not None:
            if client is not None:
                thread.run(client.aclose())
            thread.stop()
        self._thread = None
        self._client = None
        self._lm = None

    def call(self, request: lm15.Request) -> lm15.Response:
        """One LM call from a sync caller (an optimizer thread)."""
        return asyncio.run_coroutine_threadsafe(self.bounded(request), self.loop).result()

    async def bounded(self, request: lm15.Request) -> lm15.Response:
        if self.deadline_passed:
            raise lm15.TimeoutError("lane run deadline passed", provider=PROVIDER)
        with self._count_lock:
            self._calls += 1
            count = self._calls
        if self.on_call is not None:
            self.on_call(count)
        try:
            async with asyncio.timeout(self._call_timeout_s):
                return await self._engine.complete(request)
        except TimeoutError as exc:
            raise lm15.TimeoutError(
                f"Jangar call exceeded {self._call_timeout_s} s", provider=PROVIDER
            ) from exc
