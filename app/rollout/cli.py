"""``trade-review rollout ...``: start, pause, resume, abort and show a canary rollout.

The same operations as ``/admin/rollouts`` (one unit of work each, events recorded); every
replica follows within one poll and the in-service controller judges the windows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import Settings, load_settings

rollout = typer.Typer(no_args_is_help=True, help="canary rollouts (progressive delivery)")


def _run(fn: Callable[[AsyncSession, Settings], Awaitable[Any]]) -> Any:
    from app.db.session import create_engine, create_session_factory, unit_of_work

    settings = load_settings()

    async def run() -> Any:
        engine = create_engine(settings)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                return await fn(session, settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@rollout.command("start")
def start(
    artifact_hash: str,
    steps: Annotated[str, typer.Option(help="comma-separated percentages")] = "5,25,50,100",
    window_seconds: Annotated[float | None, typer.Option()] = None,
    min_samples: Annotated[int | None, typer.Option()] = None,
    accept_disagreement: Annotated[float | None, typer.Option()] = None,
    waive: Annotated[
        list[str] | None, typer.Option(help="delta_sharpe | max_drawdown | replay")
    ] = None,
    actor: Annotated[str, typer.Option()] = "cli",
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Start a canary of a SHADOW artifact (shadow evidence and scorecard checked)."""
    from app.api.rollout_admin import rollout_json
    from app.registry.promotion import policy_for
    from app.rollout import service
    from app.rollout.analysis import Thresholds
    from app.rollout.evidence import WAIVABLE, ShadowPolicy

    waivers = frozenset(waive or [])
    if not waivers <= WAIVABLE:
        raise _fail(ValueError(f"only {sorted(WAIVABLE)} can be waived"))

    async def go(session: AsyncSession, s: Settings) -> Any:
        r = await service.start(
            session,
            s.llm_dspy_program_name,
            artifact_hash,
            actor=f"cli:{actor}",
            policy=policy_for(s),
            shadow_days=s.learn_shadow_duration_days,
            steps=[float(x) for x in steps.split(",") if x.strip()],
            window_seconds=window_seconds or s.rollout_default_window_seconds,
            min_samples=min_samples or s.rollout_default_min_samples,
            thresholds=Thresholds(latency_floor_ms=s.rollout_latency_floor_ms),
            reason=reason,
            now=datetime.now(UTC),
            shadow_policy=ShadowPolicy(
                s.learn_shadow_min_samples,
                s.learn_shadow_max_disagreement,
                s.learn_shadow_max_latency_ratio,
            ),
            accepted_disagreement=accept_disagreement,
            waivers=waivers,
        )
        return r if isinstance(r, service.RolloutDenied) else rollout_json(r)

    try:
        out = _run(go)
    except Exception as exc:
        raise _fail(exc) from None
    if not isinstance(out, dict):
        typer.echo(json.dumps({"denied": out.code, "reasons": out.reasons}, indent=2))
        raise typer.Exit(3)
    typer.echo(json.dumps(out, indent=2))


def _action(name: str, actor: str, reason: str) -> None:
    from app.api.rollout_admin import rollout_json
    from app.rollout import service

    async def go(session: AsyncSession, s: Settings) -> Any:
        program, now, who = s.llm_dspy_program_name, datetime.now(UTC), f"cli:{actor}"
        if name == "pause":
            r = await service.pause(session, program, actor=who, reason=reason, now=now)
        elif name == "resume":
            r = await service.resume(session, program, actor=who, reason=reason, now=now)
        else:
            reasons = [f"operator abort: {reason}" if reason else "operator abort"]
            r = await service.abort(
                session, program, actor=who, reasons=reasons, figures={}, now=now
            )
        return rollout_json(r)

    try:
        typer.echo(json.dumps(_run(go), indent=2))
    except Exception as exc:
        raise _fail(exc) from None


@rollout.command("pause")
def pause(actor: str = "cli", reason: str = "") -> None:
    """Hold the current step (the split stays, no decisions)."""
    _action("pause", actor, reason)


@rollout.command("resume")
def resume(actor: str = "cli", reason: str = "") -> None:
    _action("resume", actor, reason)


@rollout.command("abort")
def abort(actor: str = "cli", reason: str = "") -> None:
    """0% canary at once; the candidate goes back to SHADOW."""
    _action("abort", actor, reason)


@rollout.command("show")
def show() -> None:
    """The open (or latest) rollout and every decision with its figures."""
    from app.api.rollout_admin import rollout_json
    from app.rollout import repository

    async def go(session: AsyncSession, s: Settings) -> Any:
        r = await repository.latest(session, s.llm_dspy_program_name)
        if r is None:
            return None
        evs = await repository.events(session, r.id)
        return {
            **rollout_json(r),
            "events": [
                {
                    "decision": e.decision,
                    "actor": e.actor,
                    "reasons": e.reasons,
                    "weight_pct": e.weight_pct,
                    "figures": e.figures,
                }
                for e in evs
            ],
        }

    out = _run(go)
    if out is None:
        raise _fail(LookupError("no rollout"))
    typer.echo(json.dumps(out, indent=2, default=str))
