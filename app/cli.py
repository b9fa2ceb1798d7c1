"""Operator commands: migrate, serve, controls, artifacts."""

from __future__ import annotations

import asyncio
import os
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
    # Loopback unless told otherwise: the container sets HOST=0.0.0.0 (Dockerfile).
    host: Annotated[str, typer.Option(envvar="HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT")] = 8080,
) -> None:
    """Run the HTTP service (one uvicorn worker, uvloop + httptools, bounded connections)."""
    settings = _settings()
    from app.main import create_app
    from app.registry.cache import pin_problem_at_start
    from app.server import serve as run_server

    problem = asyncio.run(pin_problem_at_start(settings, lambda: datetime.now(UTC)))
    if problem is not None:
        print(f"configuration error: {problem}", file=sys.stderr)
        raise typer.Exit(2)

    run_server(create_app(settings, freeze_gc=True), settings, host, port)


def _cli_actor(actor: str | None) -> str:
    # Recorded on every control event; the login name when the operator does not give one.
    return f"cli:{actor or os.environ.get('USER') or 'unknown'}"


@cli.command("controls")
def controls(
    trading_state: Annotated[str | None, typer.Option(help="ACTIVE | REDUCING | HALTED")] = None,
    dspy_disabled: Annotated[bool | None, typer.Option()] = None,
    routing_disabled: Annotated[bool | None, typer.Option()] = None,
    actor: Annotated[
        str | None, typer.Option(help="recorded as cli:<actor> (default $USER)")
    ] = None,
    reason: Annotated[str, typer.Option(help="required when a change relaxes a control")] = "",
) -> None:
    """Show or change the shared operator controls (every replica sees it within 2 s).

    Every change is an append-only event (see ``controls-history``)."""
    settings = _settings()
    from app.controls import repository
    from app.controls import service as controls_service
    from app.controls.changes import ReasonRequired
    from app.db.session import create_engine, create_session_factory, unit_of_work
    from app.gates.context import TradingState

    try:
        state = TradingState(trading_state.upper()) if trading_state else None
    except ValueError:
        raise typer.BadParameter("--trading-state must be ACTIVE, REDUCING or HALTED") from None

    async def run() -> None:
        engine = create_engine(settings)
        factory = create_session_factory(engine)
        try:
            if state is None and dspy_disabled is None and routing_disabled is None:
                async with unit_of_work(factory) as session:
                    await repository.ensure(session, datetime.now(UTC))
                    shown = await repository.get(session)
                    print(_describe(shown) if shown is not None else "no controls row")
                return
            result = await controls_service.change(
                factory,
                actor=_cli_actor(actor),
                reason=reason,
                now=datetime.now(UTC),
                trading_state=state,
                dspy_disabled=dspy_disabled,
                routing_disabled=routing_disabled,
            )
            line = _describe(result.after)
            print(line if result.changed else f"unchanged: {line}")
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except ReasonRequired as exc:
        print(f"refused: {exc} (--reason)", file=sys.stderr)
        raise typer.Exit(2) from None


def _describe(c: Any) -> str:
    """One line an operator reads: ``v3 trading_state=HALTED dspy_disabled=False ...``."""
    return (
        f"v{c.version} trading_state={c.trading_state.value} dspy_disabled={c.dspy_disabled} "
        f"routing_disabled={c.routing_disabled}"
    )


@cli.command("controls-history")
def controls_history(
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """Control changes, newest first: time, actor, before -> after, reason."""
    settings = _settings()
    import orjson

    from app.controls import repository
    from app.controls.service import event_json

    async def go(session: Any) -> list[dict[str, Any]]:
        return [event_json(e) for e in await repository.history(session, limit=limit)]

    for e in _run_db(settings, go):
        if as_json:
            print(orjson.dumps(e).decode())
            continue
        before: dict[str, Any] = e["before"] or {}
        after: dict[str, Any] = e["after"]
        moves = [f"{k} {before.get(k)} -> {v}" for k, v in after.items() if before.get(k) != v]
        print(f"{e['at']}  v{e['version']}  {e['actor']}  {'; '.join(moves)}  {e['reason']!r}")


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
    Artifact.verified(
        artifact_hash(manifest, program_state),
        manifest,
        program_state,
        signature_version=settings.llm_dspy_signature_version,
    )

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

    out.parent.mkdir(parents=True, exist_ok=True)  # var/ exists only once make run used it
    out.write_bytes(orjson.dumps(program_state(new_program()), option=orjson.OPT_INDENT_2))
    print(out)


@cli.command()
def demo(
    url: Annotated[str, typer.Option(help="the running service")] = "http://127.0.0.1:8080",
    examples: Annotated[Path, typer.Option(help="request bodies (*.json)")] = Path("examples"),
) -> None:
    """Send the examples (re-dated to now; one kept stale on purpose) and print each decision."""
    from app.demo import DemoError, run

    try:
        outcomes = run(url.rstrip("/"), examples)
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    for outcome in outcomes:
        print(outcome.line)


def main() -> None:
    """Errors are one line and an exit code; ``--debug`` (anywhere) shows the traceback."""
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv.remove("--debug")
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        text = str(exc).strip()
        first = text.splitlines()[0][:300] if text else ""
        print(f"error: {type(exc).__name__}: {first} (--debug for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
