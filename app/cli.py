"""Operator commands: migrate, serve, controls, artifacts."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from app.settings import Settings, SettingsError, load_settings

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="trade-review operator CLI")


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
    from datetime import UTC, datetime

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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
