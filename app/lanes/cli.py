"""``python -m app lanes ...``: the learning lanes and the promotion commands.

Every lane command prints its output hash (and nothing else) on stdout, so a script can chain
them (``DATASET=$(python -m app lanes synthetic --n 60 --seed 7)``); progress and summaries go
to stderr. Exit codes: 0 ok, 1 lane failed, 2 configuration error, 3 promotion denied
(``E_LEARN_GATE_FAILED`` / ``E_LEARN_APPROVAL_MISSING``, reasons printed), 4 not found,
5 refused transition (not in the table, lost a race / slot taken, or the artifact itself is
refused: ``content_altered``, ``state_pruned``; the reason is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Generator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from app.db.session import SessionFactory

T = TypeVar("T")

lanes = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Learning lanes: dataset-build -> compile -> eval -> promote (hashes on stdout).",
)
err = Console(stderr=True)

EXIT_FAILED, EXIT_CONFIG, EXIT_DENIED, EXIT_NOT_FOUND, EXIT_REFUSED = 1, 2, 3, 4, 5

ActorOpt = Annotated[str, typer.Option(help="recorded on every row and event")]


def _now() -> datetime:
    return datetime.now(UTC)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        for line in exc.problems:
            err.print(f"configuration error: {line}")
        raise typer.Exit(EXIT_CONFIG) from None


def _run(settings: Settings, fn: Callable[[SessionFactory], Awaitable[T]]) -> T:
    """Run ``fn`` with a session factory on a fresh engine; map expected failures to exits."""
    from app.db.session import create_engine, create_session_factory
    from app.registry.artifact import ArtifactRefused
    from app.registry.service import TransitionConflict
    from app.registry.states import InvalidTransition

    async def go() -> T:
        engine = create_engine(settings)
        try:
            return await fn(create_session_factory(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except LookupError as exc:
        err.print(f"[red]not found:[/red] {exc}")
        raise typer.Exit(EXIT_NOT_FOUND) from None
    except ArtifactRefused as exc:
        err.print(f"[red]refused ({exc.reason}):[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    except (InvalidTransition, TransitionConflict) as exc:
        err.print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    except ValueError as exc:
        err.print(f"[red]lane failed:[/red] {exc}")
        raise typer.Exit(EXIT_FAILED) from None


def _parse_ts(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be an ISO-8601 time, got {value!r}") from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@contextlib.contextmanager
def _quiet_optimizers(verbose: bool) -> Generator[None]:
    """DSPy's optimizers log every trial and draw tqdm bars; the rich progress replaces both.

    Some optimizers also print to stdout, which is reserved for the output hash: with
    ``--verbose`` their output goes to stderr, otherwise nowhere.
    """
    if verbose:
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    logger = logging.getLogger("dspy")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        logger.setLevel(level)


# ------------------------------------------------------------------------------ lanes


@lanes.command("dataset-build")
def dataset_build(
    since: Annotated[str | None, typer.Option(help="ISO time (default: until - days)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time (default: this hour)")] = None,
    days: Annotated[float, typer.Option(help="window length when --since is omitted")] = 30.0,
    seed: Annotated[int, typer.Option(help="split seed")] = 0,
    max_examples: Annotated[int, typer.Option(min=1)] = 5000,
    actor: ActorOpt = "cli",
) -> None:
    """Reviews + outcomes in [since, until) -> labelled, split dataset (prints its hash)."""
    settings = _settings()
    from app.lanes import service

    end = _parse_ts(until, "--until") or _now().replace(minute=0, second=0, microsecond=0)
    start = _parse_ts(since, "--since") or end - timedelta(days=days)

    async def go(factory: SessionFactory) -> Any:
        return await service.build_dataset(
            factory,
            since=start,
            until=end,
            seed=seed,
            actor=actor,
            clock=_now,
            max_examples=max_examples,
        )

    data = _run(settings, go)
    err.print(f"dataset [{start.isoformat()} .. {end.isoformat()}) seed={seed}: {data.counts()}")
    typer.echo(data.dataset_hash)


@lanes.command("synthetic")
def synthetic_cmd(
    n: Annotated[int, typer.Option(min=1, max=5000)] = 60,
    seed: Annotated[int, typer.Option()] = 7,
    actor: ActorOpt = "cli",
) -> None:
    """Seeded synthetic scenarios with simulated outcomes -> dataset (prints its hash)."""
    settings = _settings()
    from app.lanes import service

    async def go(factory: SessionFactory) -> Any:
        return await service.build_synthetic(factory, n=n, seed=seed, actor=actor, clock=_now)

    data = _run(settings, go)
    err.print(f"synthetic dataset n={n} seed={seed}: {data.counts()}")
    typer.echo(data.dataset_hash)


@lanes.command("compile")
def compile_cmd(
    dataset: Annotated[str, typer.Option(help="dataset hash")],
    optimizer: Annotated[str, typer.Option(help="mipro | gepa | bootstrap")] = "mipro",
    seed: Annotated[int, typer.Option()] = 0,
    auto: Annotated[str, typer.Option(help="light | medium | heavy | none")] = "light",
    num_candidates: Annotated[int | None, typer.Option(help="MIPROv2 with --auto none")] = None,
    num_trials: Annotated[int | None, typer.Option(help="MIPROv2 with --auto none")] = None,
    max_metric_calls: Annotated[int | None, typer.Option(help="GEPA with --auto none")] = None,
    max_bootstrapped_demos: Annotated[int, typer.Option(min=0, max=16)] = 2,
    max_labeled_demos: Annotated[int, typer.Option(min=0, max=16)] = 2,
    max_train: Annotated[int | None, typer.Option(min=1)] = None,
    max_val: Annotated[int | None, typer.Option(min=1)] = None,
    threads: Annotated[int, typer.Option(min=1, max=32)] = 2,
    call_timeout: Annotated[float, typer.Option(help="seconds per LM call")] = 60.0,
    deadline: Annotated[float | None, typer.Option(help="seconds for the whole run")] = None,
    verbose: Annotated[bool, typer.Option(help="show the optimizer's own logs")] = False,
    actor: ActorOpt = "cli",
) -> None:
    """Run the optimizer with the Jangar LM and register a candidate (prints its hash)."""
    settings = _settings()
    if not verbose:
        # tqdm reads this when first imported (with dspy, just below): no per-trial bars.
        os.environ.setdefault("TQDM_DISABLE", "1")
    from app.lanes import service
    from app.lanes.compile import CompileConfig, Optimizer

    try:
        config = CompileConfig(
            optimizer=Optimizer(optimizer),
            seed=seed,
            auto=None if auto == "none" else auto,  # pyright: ignore[reportArgumentType]
            num_candidates=num_candidates,
            num_trials=num_trials,
            max_metric_calls=max_metric_calls,
            max_bootstrapped_demos=max_bootstrapped_demos,
            max_labeled_demos=max_labeled_demos,
            max_train=max_train,
            max_val=max_val,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    with (
        _quiet_optimizers(verbose),
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:.0f} LM calls"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task(f"compile ({config.optimizer.value})", total=None)

        async def go(factory: SessionFactory) -> Any:
            return await service.compile_candidate(
                factory,
                settings,
                dataset_hash=dataset,
                config=config,
                actor=actor,
                clock=_now,
                num_threads=threads,
                call_timeout_s=call_timeout,
                run_deadline_s=deadline,
                on_call=lambda n: progress.update(task, completed=n),
            )

        result = _run(settings, go)
    err.print(
        f"compiled {result.optimizer.value} seed={result.seed} on {result.train_n} train / "
        f"{result.val_n} val: val score {result.val_score:.3f}, {result.lm_calls} LM calls, "
        f"{result.duration_s:.1f} s -> candidate"
    )
    typer.echo(result.artifact_hash)


@lanes.command("eval")
def eval_cmd(
    artifact: Annotated[str, typer.Option(help="artifact hash")],
    dataset: Annotated[str, typer.Option(help="dataset hash")],
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 4,
    max_examples: Annotated[int | None, typer.Option(min=1)] = None,
    actor: ActorOpt = "cli",
) -> None:
    """Candidate (and active) through the serving runtime + gates on the test split."""
    settings = _settings()
    from app.lanes import service

    with Progress(
        TextColumn("eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("eval", total=None)

        async def go(factory: SessionFactory) -> Any:
            return await service.evaluate_candidate(
                factory,
                settings,
                artifact=artifact,
                dataset_hash=dataset,
                actor=actor,
                clock=_now,
                concurrency=concurrency,
                max_examples=max_examples,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )

        result = _run(settings, go)
    table = Table(title=f"scorecard {artifact[:12]} (n={result.scorecard.n})")
    table.add_column("metric")
    table.add_column("value")
    for key, value in result.scorecard.model_dump().items():
        if key not in ("artifact_hash", "dataset_hash"):
            table.add_row(key, str(value))
    err.print(table)
    verdict = "[green]passes[/green]" if result.passes else "[red]fails[/red]"
    err.print(f"promotion policy: {verdict} ({result.duration_s:.2f} s)")
    for reason in result.reasons:
        err.print(f"  - {reason}")
    typer.echo(result.evidence_hash)


# ------------------------------------------------------------------------------ registry


@lanes.command("promote")
def promote_cmd(
    artifact_hash: str,
    to: Annotated[str, typer.Option(help="shadow | canary | active")],
    approver: Annotated[str | None, typer.Option(help="approval record (active)")] = None,
    ticket: Annotated[str | None, typer.Option(help="change ticket of the approval")] = None,
    reason: Annotated[str, typer.Option()] = "",
    replace_shadow: Annotated[
        bool, typer.Option(help="retire the artifact holding the shadow slot, if any")
    ] = False,
    actor: ActorOpt = "cli",
) -> None:
    """Promote with evidence (scorecard; for active also approval and shadow time)."""
    settings = _settings()
    from app.lanes import service
    from app.registry.states import ArtifactState

    target = ArtifactState(to)
    if target not in (ArtifactState.SHADOW, ArtifactState.CANARY, ArtifactState.ACTIVE):
        raise typer.BadParameter("--to must be shadow, canary or active (use retire/rollback)")
    approval: dict[str, Any] | None = None
    if approver is not None:
        approval = {"approver": approver, "ticket": ticket, "at": _now().isoformat()}

    async def go(factory: SessionFactory) -> Any:
        return await service.promote(
            factory,
            settings,
            digest=artifact_hash,
            target=target,
            actor=actor,
            approval=approval,
            reason=reason,
            clock=_now,
            replace_shadow=replace_shadow,
        )

    result = _run(settings, go)
    if result.refusal is not None:
        err.print(f"[red]refused ({result.refusal}):[/red] {artifact_hash[:12]} may not serve")
        for line in result.reasons:
            err.print(f"  - {line}")
        raise typer.Exit(EXIT_REFUSED)
    if not result.promoted:
        code = result.code.value if result.code else "denied"
        err.print(f"[red]{code}[/red]: promotion of {artifact_hash[:12]} to {to} denied")
        for line in result.reasons:
            err.print(f"  - {line}")
        raise typer.Exit(EXIT_DENIED)
    err.print(f"{artifact_hash[:12]}: {result.from_state} -> {to}")
    typer.echo(artifact_hash)


@lanes.command("rollback")
def rollback_cmd(reason: Annotated[str, typer.Option()] = "", actor: ActorOpt = "cli") -> None:
    """Re-point ACTIVE to the last-known-good artifact (prints the restored hash)."""
    settings = _settings()
    from app.lanes import service

    async def go(factory: SessionFactory) -> Any:
        return await service.rollback(factory, settings, actor=actor, reason=reason, clock=_now)

    restored, replaced = _run(settings, go)
    err.print(f"active: {(replaced or 'none')[:12]} -> {restored[:12]}")
    typer.echo(restored)


@lanes.command("retire")
def retire_cmd(
    artifact_hash: str, reason: Annotated[str, typer.Option()] = "", actor: ActorOpt = "cli"
) -> None:
    """Retire an artifact (any state the transition table allows)."""
    settings = _settings()
    from app.lanes import service

    async def go(factory: SessionFactory) -> Any:
        return await service.retire(
            factory, settings, digest=artifact_hash, actor=actor, reason=reason, clock=_now
        )

    before = _run(settings, go)
    err.print(f"{artifact_hash[:12]}: {before} -> retired")
    typer.echo(artifact_hash)


@lanes.command("list")
def list_cmd() -> None:
    """The program's artifacts with state, executor, optimizer and dataset."""
    settings = _settings()
    from app.lanes import service

    async def go(factory: SessionFactory) -> Any:
        return await service.list_artifacts(factory, settings)

    table = Table(title=settings.llm_dspy_program_name)
    for column in ("artifact", "state", "executor", "optimizer", "dataset", "created"):
        table.add_column(column)
    for row in _run(settings, go):
        table.add_row(
            row.artifact_hash,
            row.state,
            row.executor,
            str(row.manifest.get("optimizer") or "-"),
            str(row.manifest.get("dataset_hash") or "-")[:12],
            f"{row.created_at:%Y-%m-%d %H:%M}",
        )
    Console().print(table)


@lanes.command("show")
def show_cmd(artifact_hash: str) -> None:
    """One artifact: manifest, lineage, events, evidence (scorecards, denials), lane runs (JSON)."""
    settings = _settings()
    from app.lanes import service

    async def go(factory: SessionFactory) -> Any:
        return await service.show_artifact(factory, artifact_hash)

    view = _run(settings, go)
    row = view.row
    out = {
        "artifact_hash": row.artifact_hash,
        "state": row.state,
        "executor": row.executor,
        "manifest": row.manifest,
        "lineage": row.lineage,
        "events": view.events,
        "evidence": view.evidence,
        "lane_outputs": view.lane_outputs,
    }
    typer.echo(json.dumps(out, indent=2, default=str))
