"""Application factory. Engine, policy, caches and tasks are built in ``lifespan`` and live in
``app.state``; nothing is created at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import admin, drift, health, lanes, metrics_route, outcomes, review, rollout_admin
from app.api.arrival import ArrivalStamp
from app.api.guard import IntakeGuard
from app.api.probes import ProbeProcess, ProbeState
from app.api.responses import OrjsonResponse
from app.db.session import SessionFactory, create_engine, create_session_factory
from app.errors import ErrorCode, ServiceError
from app.gates.limits import LoadedPolicy, load_policy
from app.lanes.figures import FiguresReader
from app.observability import metrics, tracing
from app.observability.logging import configure, event
from app.pipeline import PipelineDeps
from app.registry.cache import LiveState, PinRefused
from app.review.budget import AnswerBudget
from app.review.runtime import ReviewRuntime
from app.review.schemas import ReviewRequest
from app.reviews.reader import PrecheckReader
from app.reviews.store import open_store
from app.reviews.writer import ReviewWriter
from app.rollout.shadow import ShadowRunner
from app.settings import Settings, load_settings

if TYPE_CHECKING:
    import httpx
    from opentelemetry.sdk.trace.export import SpanExporter

    from app.review.live import LiveExecutor


def utc_now() -> datetime:
    return datetime.now(UTC)


def _error(
    status: int, code: ErrorCode, message: str, details: Any = None, **extra: Any
) -> OrjsonResponse:
    metrics.REQUEST_ERRORS.labels(code.value).inc()
    body: dict[str, Any] = {"error": {"code": code.value, "message": message, "details": details}}
    body.update(extra)
    return OrjsonResponse(body, status_code=status)


def _jangar_http(settings: Settings, max_connections: int) -> httpx.AsyncClient | None:
    """The Jangar client, only when Jangar is configured: without it nothing calls out, and
    httpx (with its TLS context) stays out of the start (bench/README.md, cold_start)."""
    if settings.jangar_base_url is None:
        return None  # dspy_live artifacts are refused at load with a clear error
    from app.review.jangar_http import deadline_client

    return deadline_client(max_connections)


def _live_executor(settings: Settings, http: httpx.AsyncClient | None) -> LiveExecutor | None:
    if http is None:
        return None  # no Jangar configured (see _jangar_http)
    from app.review.live import LiveExecutor, publish_breaker_state

    executor = LiveExecutor(settings, http)
    publish_breaker_state(executor.breaker.state)
    return executor


def _shadow_runner(
    settings: Settings,
    factory: SessionFactory,
    live: LiveState,
    policy: LoadedPolicy,
    clock: Callable[[], datetime],
) -> tuple[ShadowRunner | None, httpx.AsyncClient | None]:
    """The shadow runner with a Jangar executor of its own (its breaker, its bulkhead share)."""
    if not settings.shadow_enabled:
        return None, None
    share = settings.model_copy(update={"bulkhead_max_concurrent": settings.shadow_max_concurrent})
    http = _jangar_http(settings, settings.shadow_max_concurrent)
    runner = ShadowRunner(
        factory,
        live,
        ReviewRuntime(_live_executor(share, http)),
        policy,
        sample_rate=settings.shadow_sample_rate,
        queue_max=settings.shadow_queue_max,
        concurrency=settings.shadow_max_concurrent,
        clock=clock,
    )
    return runner, http


def _start_rollout_controller(
    app: FastAPI, settings: Settings, factory: SessionFactory, clock: Callable[[], datetime]
) -> asyncio.Task[None] | None:
    """The canary controller + post-promotion watch, under a database lease (one replica)."""
    from app.rollout.controller import build

    controller, loop = build(factory, settings, clock)
    app.state.rollout_controller = controller
    app.state.rollout_loop = loop
    if not settings.rollout_controller_enabled:
        return None
    return asyncio.create_task(loop.run())


def create_app(
    settings: Settings | None = None,
    clock: Callable[[], datetime] = utc_now,
    span_exporter: SpanExporter | None = None,
    *,
    freeze_gc: bool = False,
) -> FastAPI:
    """``span_exporter`` (tests) turns tracing on without OTEL_EXPORTER_OTLP_ENDPOINT;
    ``freeze_gc`` (``app serve``) moves start-up objects out of the cyclic collector."""
    settings = settings or load_settings()
    configure(settings.log_level, access_log=settings.log_access)
    tracing.setup(settings, span_exporter)
    metrics.BUILD_INFO.clear()
    metrics.BUILD_INFO.labels(settings.build_sha, settings.image_digest).set(1)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[None]:
        policy = load_policy(settings.policy_path)
        engine = create_engine(settings)
        factory = create_session_factory(engine)
        http = _jangar_http(settings, settings.bulkhead_max_concurrent)
        tracing.instrument_clients(http, engine)
        runtime = ReviewRuntime(
            _live_executor(settings, http), min_llm_s=settings.llm_min_budget_ms / 1000
        )
        live = LiveState(
            factory,
            program_name=settings.llm_dspy_program_name,
            signature_version=settings.llm_dspy_signature_version,
            pinned_hash=settings.llm_dspy_artifact_hash,
            clock=clock,
            prepare=runtime.prepare,
        )
        try:
            await live.refresh()
        except Exception as exc:  # the poller keeps trying; /readyz says not ready meanwhile
            event("state.initial_refresh_failed", logging.WARNING, error=type(exc).__name__)
        if (problem := live.pin_problem) is not None:
            event("service.start_refused", logging.ERROR, error=problem)
            if http is not None:
                await http.aclose()
            await engine.dispose()
            raise PinRefused(problem)
        store = open_store(engine)  # the hot path's statements, on the drivers
        writer = ReviewWriter(store)
        writer.start()
        reader = PrecheckReader(store)
        reader.start()
        shadow, shadow_http = _shadow_runner(settings, factory, live, policy, clock)
        app.state.pipeline = PipelineDeps(
            factory=factory,
            live=live,
            runtime=runtime,
            policy=policy,
            live_trading_enabled=settings.live_trading_enabled,
            program_name=settings.llm_dspy_program_name,
            signature_version=settings.llm_dspy_signature_version,
            clock=clock,
            writer=writer,
            reader=reader,
            budget=AnswerBudget(
                settings.llm_dspy_timeout_seconds,
                floor_s=settings.llm_tail_reserve_floor_ms / 1000,
            ),
            shadow=shadow,
            build_sha=settings.build_sha,
        )
        if shadow is not None:
            shadow.start()
        app.state.lane_figures = FiguresReader(
            factory,
            cache_s=settings.metrics_figures_cache_seconds,
            timeout_s=min(2.0, settings.db_statement_timeout_seconds),
        )
        poller = asyncio.create_task(live.run(settings.controls_refresh_seconds))
        controller_task = _start_rollout_controller(app, settings, factory, clock)
        probes: ProbeProcess | None = None
        ticker: asyncio.Task[None] | None = None
        if settings.probe_port is not None:
            probes = ProbeProcess(
                ProbeState(live, db_stale_s=max(3 * settings.controls_refresh_seconds, 3.0)),
                settings.probe_host,
                settings.probe_port,
                stall_s=settings.probe_loop_stall_seconds,
            )
            probes.start()
            ticker = asyncio.create_task(probes.tick())
            event("probes.serving", port=probes.port)
        app.state.probe_server = probes
        # --- drift: the scheduled monitor, one replica at a time (app/drift)
        drift_task: asyncio.Task[None] | None = None
        if settings.learn_drift_enabled:
            from app.drift.monitor import drift_loop

            drift_task = asyncio.create_task(drift_loop(factory, settings, clock).run())
        if freeze_gc:
            # Everything built so far (modules, models, the program) lives as long as the
            # process: out of the collector's reach, a full collection no longer walks ~200k
            # objects (130-170 ms measured, a pause every review in flight waits for). Only
            # for a served process (``app serve``): an in-process test that builds hundreds
            # of apps would keep each one's startup garbage for good.
            gc.freeze()
        event("service.started", policy_hash=policy.policy_hash, db=engine.dialect.name)
        try:
            yield
        finally:
            # The ticker first: it writes the snapshot that stopping the probes unmaps (it ran
            # on while stop() was in its thread, and wrote to a closed map).
            for task in (ticker, poller, drift_task, controller_task):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if probes is not None:
                await asyncio.to_thread(probes.stop)  # joins its thread; not on the loop
            if shadow is not None:
                await shadow.stop()
            if shadow_http is not None:
                await shadow_http.aclose()
            app.state.lane_figures.close()
            await reader.stop()
            await writer.stop()
            await store.close()
            if http is not None:
                await http.aclose()
            await engine.dispose()
            tracing.shutdown()

    app = FastAPI(
        title="trade-review",
        version="0.1.0",
        summary="Pre-trade review: advisory LLM review behind deterministic risk gates",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        docs_url=None,  # served below from packaged assets (works offline, no CDN)
        redoc_url=None,  # ReDoc would load its script from a CDN: /docs is the one API page
    )
    app.state.settings = settings
    _offline_docs(app)
    # Credential, then body size and read deadline, before any route; inside the arrival
    # stamp (added last = outermost), so reading the body counts against the deadline.
    app.add_middleware(IntakeGuard, settings=settings)
    app.add_middleware(ArrivalStamp)
    tracing.instrument_app(app)
    app.include_router(review.router)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    app.include_router(outcomes.router)
    app.include_router(admin.router)
    app.include_router(drift.router)
    app.include_router(rollout_admin.router)
    app.include_router(lanes.router)

    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> OrjsonResponse:
        metrics.REQUEST_ERRORS.labels(exc.code.value).inc()
        return OrjsonResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> OrjsonResponse:
        details = [
            {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        return _error(422, ErrorCode.VALIDATION_ERROR, "request failed validation", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> OrjsonResponse:
        code = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(
            exc.status_code, ErrorCode.INTERNAL_ERROR
        )
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> OrjsonResponse:
        event("request.unexpected_error", logging.ERROR, error=repr(exc))
        return _error(500, ErrorCode.INTERNAL_ERROR, "internal error", decision="reject")

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            body = ReviewRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components["ReviewRequest"] = body
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its JS/CSS from the ``swagger-ui-bundle`` package."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path  # pyright: ignore[reportMissingTypeStubs]

    app.mount("/docs-static", StaticFiles(directory=str(swagger_ui_path)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def _docs() -> HTMLResponse:  # pyright: ignore[reportUnusedFunction]
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )
