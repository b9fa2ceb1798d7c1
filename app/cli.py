"""Operator commands: migrate, serve, controls, artifacts."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from app.lanes.cli import lanes
from app.rollout.cli import rollout
from app.settings import Settings, SettingsError, load_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="trade-review operator CLI")
cli.add_typer(lanes, name="lanes")  # learning lanes + promotion (app/lanes/cli.py)
cli.add_typer(rollout, name="rollout")  # canary rollouts (app/rollout/cli.py)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        for line in exc.problems:
            print(f"configuration error: {line}", file=sys.stderr)
        raise typer.Exit(2) from None


@cli.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head)."""
    settings = _settings()
    from alembic import command
    from alembic.config import Config

    from app.settings import PROJECT_ROOT

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = settings.database_url
    command.upgrade(cfg, "head")
    print("migrations: at head")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HOST")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option(envvar="PORT")] = 8080,
) -> None:
    """Run the HTTP service (one uvicorn worker, uvloop + httptools)."""
    settings = _settings()
    import uvicorn

    from app.main import create_app

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@cli.command("controls")
def controls(
    trading_state: Annotated[str | None, typer.Option(help="ACTIVE | REDUCING | HALTED")] = None,
    dspy_disabled: Annotated[bool | None, typer.Option()] = None,
    routing_disabled: Annotated[bool | None, typer.Option()] = None,
    actor: Annotated[str, typer.Option()] = "cli",
    reason: Annotated[str, typer.Option()] = "",
) -> None:
    """Show or change the shared operator controls (every replica sees it within 2 s)."""
    settings = _settings()
    from app.controls import repository
    from app.db.session import create_engine, create_session_factory, unit_of_work
    from app.gates.context import TradingState

    async def run() -> None:
        engine = create_engine(settings)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                if trading_state is None and dspy_disabled is None and routing_disabled is None:
                    await repository.ensure(session, datetime.now(UTC))
                    print(await repository.get(session))
                    return
                state = TradingState(trading_state.upper()) if trading_state else None
                out = await repository.update(
                    session,
                    actor=actor,
                    reason=reason,
                    now=datetime.now(UTC),
                    trading_state=state,
                    dspy_disabled=dspy_disabled,
                    routing_disabled=routing_disabled,
                )
                print(out)
        finally:
            await engine.dispose()

    asyncio.run(run())


artifacts = typer.Typer(no_args_is_help=True, help="Artifact registry")
cli.add_typer(artifacts, name="artifacts")


def _run_db(settings: Settings, fn: Any) -> Any:
    from app.db.session import create_engine, create_session_factory, unit_of_work

    async def run() -> Any:
        engine = create_engine(settings)
        try:
            async with unit_of_work(create_session_factory(engine)) as session:
                return await fn(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@artifacts.command("register-live")
def register_live(
    state_file: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="program.save() JSON")
    ],
    model: Annotated[str | None, typer.Option(help="defaults to LLM_MODEL")] = None,
    optimizer: Annotated[str | None, typer.Option()] = None,
    dataset_hash: Annotated[str | None, typer.Option()] = None,
    actor: Annotated[str, typer.Option()] = "cli",
) -> None:
    """Register a dspy_live artifact (as a candidate) from a DSPy program state file."""
    settings = _settings()
    import orjson

    from app.registry.artifact import Artifact, live_manifest
    from app.registry.hashing import artifact_hash
    from app.registry.service import register
    from app.review.program import new_program

    loaded: Any = orjson.loads(state_file.read_bytes())
    if not isinstance(loaded, dict):
        raise typer.BadParameter("state file must hold a JSON object")
    state: dict[str, Any] = cast(dict[str, Any], loaded)
    new_program(state)  # refuse a state the program cannot load, before it is registered
    manifest = live_manifest(
        program_name=settings.llm_dspy_program_name,
        signature_version=settings.llm_dspy_signature_version,
        model=model or settings.llm_model,
        optimizer=optimizer,
        dataset_hash=dataset_hash,
    )
    program_state: dict[str, Any] = {"dspy": state}
    Artifact.verified(artifact_hash(manifest, program_state), manifest, program_state)

    async def go(session: Any) -> str:
        return await register(
            session,
            manifest,
            program_state,
            actor=actor,
            lineage={"source": str(state_file)},
            now=datetime.now(UTC),
        )

    print(_run_db(settings, go))


@artifacts.command("export-state")
def export_state(out: Annotated[Path, typer.Option(dir_okay=False)]) -> None:
    """Write the uncompiled program's state (a starting point for register-live)."""
    import orjson

    from app.review.program import new_program, program_state

    out.write_bytes(orjson.dumps(program_state(new_program()), option=orjson.OPT_INDENT_2))
    print(out)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
