"""``python -m app lanes ...``: the learning lanes and the promotion commands.

Every lane command prints its output hash (and nothing else) on stdout, so a script can chain
them (``DATASET=$(python -m app lanes synthetic --n 60 --seed 7)``); progress and summaries go
to stderr. Exit codes: 0 ok, 1 lane failed, 2 configuration error, 3 promotion denied
(``E_LEARN_GATE_FAILED`` / ``E_LEARN_APPROVAL_MISSING``, reasons printed), 4 not found,
5 refused transition (not in the table, lost a race / slot taken, or the artifact itself is
refused: ``content_altered``, ``state_pruned``; the reason is printed), 6 drift breach
(``lanes drift``), 7 replay over the bar (``lanes replay``: orders the served arm rejected
would be submitted, or requests could not be re-decided; the evidence is recorded all the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Generator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from rich.console import Console

    from app.db.session import SessionFactory

T = TypeVar("T")

lanes = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Learning lanes: dataset-build -> compile -> eval -> promote (hashes on stdout).",
)


@functools.cache
def _err() -> Console:
    """stderr for people (tables, progress). rich is imported on first use: ``app.cli`` imports
    this module for every command, ``serve`` included (bench/README.md, cold_start)."""
    from rich.console import Console

    return Console(stderr=True)


EXIT_FAILED, EXIT_CONFIG, EXIT_DENIED, EXIT_NOT_FOUND, EXIT_REFUSED = 1, 2, 3, 4, 5
EXIT_DRIFT = 6  # lanes drift: a metric breached
EXIT_REPLAY = 7  # lanes replay: the replay fails the promotion bar (evidence recorded)
FLIPS_SHOWN = 50  # flipped orders listed in the table (--json lists every one)

ActorOpt = Annotated[str, typer.Option(help="recorded on every row and event")]


def _now() -> datetime:
    return datetime.now(UTC)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        for line in exc.problems:
            _err().print(f"configuration error: {line}")
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
        _err().print(f"[red]not found:[/red] {exc}")
        raise typer.Exit(EXIT_NOT_FOUND) from None
    except ArtifactRefused as exc:
        _err().print(f"[red]refused ({exc.reason}):[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    except (InvalidTransition, TransitionConflict) as exc:
        _err().print(f"[red]refused:[/red] {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    except ValueError as exc:
        _err().print(f"[red]lane failed:[/red] {exc}")
        raise typer.Exit(EXIT_FAILED) from None


def _parse_ts(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.strip().lower() == "now":
        return _now()
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{name} must be an ISO-8601 time or 'now', got {value!r}"
        ) from None
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
    until: Annotated[
        str | None, typer.Option(help="ISO time or 'now' (default: this hour)")
    ] = None,
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
        try:
            return await service.build_dataset(
                factory,
                since=start,
                until=end,
                seed=seed,
                actor=actor,
                clock=_now,
                max_examples=max_examples,
            )
        except ValueError as exc:
            if "no examples" not in str(exc):
                raise
            raise ValueError(
                f"empty window [{start.isoformat()} .. {end.isoformat()}): no review was "
                "recorded in it. Widen it (--since, --days; --until now includes the current "
                "hour); outcomes (POST /reviews/{id}/outcome) relabel submitted orders."
            ) from None

    data = _run(settings, go)
    _err().print(f"dataset [{start.isoformat()} .. {end.isoformat()}) seed={seed}: {data.counts()}")
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
    _err().print(f"synthetic dataset n={n} seed={seed}: {data.counts()}")
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
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
            console=_err(),
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
    _err().print(
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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    settings = _settings()
    from app.lanes import service

    with Progress(
        TextColumn("eval"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err(),
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
    _err().print(table)
    verdict = "[green]passes[/green]" if result.passes else "[red]fails[/red]"
    _err().print(f"promotion policy: {verdict} ({result.duration_s:.2f} s)")
    for reason in result.reasons:
        _err().print(f"  - {reason}")
    typer.echo(result.evidence_hash)


@lanes.command("replay")
def replay_cmd(
    artifact: Annotated[str, typer.Option(help="artifact hash (the candidate)")],
    since: Annotated[str | None, typer.Option(help="ISO time (default: until - days)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time or 'now' (default: now)")] = None,
    days: Annotated[float, typer.Option(help="window length when --since is omitted")] = 7.0,
    limit: Annotated[int, typer.Option(min=1, max=5000, help="newest reviews replayed")] = 500,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    actor: ActorOpt = "cli",
) -> None:
    """Re-decide the window's recorded requests with the candidate; diff against what was
    decided (replay evidence). Exit 7 when orders the served arm rejected would be submitted."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    settings = _settings()
    from app.lanes import service
    from app.lanes.replay import EmptyWindow

    end = _parse_ts(until, "--until") or _now()
    start = _parse_ts(since, "--since") or end - timedelta(days=days)
    if end <= start:
        raise typer.BadParameter("--until must be after --since")

    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err(),
        transient=True,
    ) as progress:
        task = progress.add_task("replay", total=None)

        async def go(factory: SessionFactory) -> Any:
            try:
                return await service.replay_candidate(
                    factory,
                    settings,
                    artifact=artifact,
                    since=start,
                    until=end,
                    actor=actor,
                    clock=_now,
                    limit=limit,
                    concurrency=concurrency,
                    on_progress=lambda d, t: progress.update(task, completed=d, total=t),
                )
            except EmptyWindow as exc:
                return exc

        result = _run(settings, go)
    if isinstance(result, EmptyWindow):
        if as_json:
            empty = {
                "artifact_hash": artifact,
                "since": start.isoformat(),
                "until": end.isoformat(),
                "window_reviews": 0,
                "recorded": False,
                "message": str(result),
            }
            typer.echo(json.dumps(empty, indent=2))
        _err().print(f"[red]empty window:[/red] {result}")
        raise typer.Exit(EXIT_FAILED)
    rep = result.report
    if as_json:
        out = {
            **rep.model_dump(mode="json"),
            "evidence_hash": result.evidence_hash,
            "passes": result.passes,
            "reasons": result.reasons,
        }
        typer.echo(json.dumps(out, indent=2))
    else:
        _print_replay(rep, result.passes, result.reasons, result.duration_s)
        typer.echo(result.evidence_hash)
    if not result.passes:
        raise typer.Exit(EXIT_REPLAY)


def _print_replay(rep: Any, passes: bool, reasons: list[str], duration_s: float) -> None:
    """Counts as a table, then one unwrapped line per flipped order (ids stay whole, so they
    can be copied and grepped), reject -> submit first."""
    from rich.table import Table

    extra: dict[str, Any] = rep.model_extra or {}
    _err().print(
        f"replay {rep.artifact_hash[:12]} over [{rep.since.isoformat()} .. "
        f"{rep.until.isoformat()}): {rep.n} of {rep.window_reviews} recorded reviews re-decided"
        + (" (the newest, --limit)" if extra.get("truncated") else ""),
        soft_wrap=True,
    )
    head = Table()
    head.add_column("decision change")
    head.add_column("orders", justify="right")
    head.add_row("same", str(rep.same))
    head.add_row("reject -> submit", str(rep.reject_to_submit))
    head.add_row("submit -> reject", str(rep.submit_to_reject))
    head.add_row("could not re-decide", str(rep.errors))
    head.add_row("reject -> submit share", f"{rep.reject_to_submit_share:.4f}")
    if extra.get("policy_changed"):
        head.add_row("judged under another policy", str(extra["policy_changed"]))
    _err().print(head)
    if rep.flips:
        _err().print("flipped orders (reject -> submit first):")
    for f in rep.flips[:FLIPS_SHOWN]:
        new = str(f["new_decision"])
        if f["new_reasons"]:
            new += f" ({', '.join(f['new_reasons'])})"
        _err().print(
            f"  {str(f['change']).replace('_to_', ' -> ')}  {f['review_id']}  {f['at']}  "
            f"{f['symbol']}  {f['strategy_id']}  stored: {', '.join(f['served_reasons']) or '-'}"
            f"  new: {new}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    if len(rep.flips) > FLIPS_SHOWN:
        _err().print(f"  ... {len(rep.flips) - FLIPS_SHOWN} more flipped orders (--json lists all)")
    verdict = "[green]passes[/green]" if passes else "[red]fails[/red]"
    _err().print(f"promotion bar: {verdict} ({duration_s:.2f} s)")
    for reason in reasons:
        _err().print(f"  - {reason}", soft_wrap=True)


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
    waive: Annotated[
        list[str] | None,
        typer.Option(help="accept a check's findings by name: replay (recorded)"),
    ] = None,
    actor: ActorOpt = "cli",
) -> None:
    """Promote with evidence (scorecard, replay; for active also approval and shadow time)."""
    settings = _settings()
    from app.lanes import service
    from app.registry.promotion import REPLAY_WAIVER
    from app.registry.states import ArtifactState

    target = ArtifactState(to)
    if target not in (ArtifactState.SHADOW, ArtifactState.CANARY, ArtifactState.ACTIVE):
        raise typer.BadParameter("--to must be shadow, canary or active (use retire/rollback)")
    waivers = frozenset(waive or [])
    if not waivers <= {REPLAY_WAIVER}:
        raise typer.BadParameter(f"only {REPLAY_WAIVER!r} can be waived here")
    if waivers and target is ArtifactState.ACTIVE and approver is None:
        raise typer.BadParameter("--waive for active needs --approver (the approval records it)")
    approval: dict[str, Any] | None = None
    if approver is not None:
        approval = {"approver": approver, "ticket": ticket, "at": _now().isoformat()}
        if waivers:
            approval["waive"] = sorted(waivers)

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
            waivers=waivers,
        )

    result = _run(settings, go)
    if result.refusal is not None:
        _err().print(f"[red]refused ({result.refusal}):[/red] {artifact_hash[:12]} may not serve")
        for line in result.reasons:
            _err().print(f"  - {line}")
        raise typer.Exit(EXIT_REFUSED)
    if not result.promoted:
        code = result.code.value if result.code else "denied"
        _err().print(f"[red]{code}[/red]: promotion of {artifact_hash[:12]} to {to} denied")
        for line in result.reasons:
            _err().print(f"  - {line}")
        raise typer.Exit(EXIT_DENIED)
    _err().print(f"{artifact_hash[:12]}: {result.from_state} -> {to}")
    typer.echo(artifact_hash)


@lanes.command("rollback")
def rollback_cmd(reason: Annotated[str, typer.Option()] = "", actor: ActorOpt = "cli") -> None:
    """Re-point ACTIVE to the last-known-good artifact (prints the restored hash)."""
    settings = _settings()
    from app.lanes import service

    async def go(factory: SessionFactory) -> Any:
        return await service.rollback(factory, settings, actor=actor, reason=reason, clock=_now)

    restored, replaced = _run(settings, go)
    _err().print(f"active: {(replaced or 'none')[:12]} -> {restored[:12]}")
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
    _err().print(f"{artifact_hash[:12]}: {before} -> retired")
    typer.echo(artifact_hash)


@lanes.command("list")
def list_cmd() -> None:
    """The program's artifacts with state, executor, optimizer and dataset."""
    from rich.console import Console
    from rich.table import Table

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
def show_cmd(
    artifact_hash: Annotated[str, typer.Argument(help="full hash or a unique prefix (>= 6)")],
) -> None:
    """One artifact: manifest, lineage, events, evidence (scorecards, denials), lane runs (JSON)."""
    settings = _settings()
    from app.lanes import service

    async def go(factory: SessionFactory) -> Any:
        from app.db.session import read_only
        from app.registry.repository import resolve_prefix

        async with read_only(factory) as session:
            digest = await resolve_prefix(session, artifact_hash)
        return await service.show_artifact(factory, digest)

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


# ------------------------------------------------------------------------------ drift


@lanes.command("drift")
def drift_cmd(
    artifact_hash: Annotated[
        str | None, typer.Option(help="artifact to check (default: the ACTIVE one)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the run as JSON")] = False,
    actor: ActorOpt = "cli",
) -> None:
    """Run the drift monitor once and print a table (exit 6 when a metric breached)."""
    from rich.console import Console
    from rich.table import Table

    settings = _settings()
    from app.drift import monitor

    async def go(factory: SessionFactory) -> Any:
        return await monitor.run_once(
            factory, settings, clock=_now, artifact_hash=artifact_hash, actor=actor
        )

    run = _run(settings, go)
    if as_json:
        typer.echo(json.dumps(run.to_json(), indent=2, default=str))
    else:
        table = Table(
            title=f"drift {run.outcome.value}: {(run.artifact_hash or '-')[:12]} "
            f"({run.model_type}) reference {run.reference_source} n={run.reference_n}, "
            f"window m={run.window_n}"
        )
        for col in ("metric", "family", "test", "statistic", "threshold", "p", "n", "m", "breach"):
            table.add_column(
                col, justify="left" if col in ("metric", "family", "test") else "right"
            )
        for c in run.checks:
            table.add_row(
                c.metric,
                c.family.value,
                c.test.value,
                f"{c.statistic:.4g}",
                f"{c.threshold:.4g}",
                "-" if c.p_value is None else f"{c.p_value:.2g}",
                str(c.n),
                str(c.m),
                f"[red]{c.severity.value}[/red]" if c.breach else "",
            )
        Console().print(table)
        if run.message:
            _err().print(run.message)
        if run.rolled_back_to:
            _err().print(
                f"[red]E_LEARN_DRIFT_BREACH[/red]: rolled back to {run.rolled_back_to[:12]}"
            )
    if run.outcome.value == "error":
        raise typer.Exit(EXIT_FAILED)
    if any(c.breach for c in run.checks):
        raise typer.Exit(EXIT_DRIFT)


@lanes.command("drift-ack")
def drift_ack_cmd(
    reason: Annotated[str, typer.Option(help="why the breach is acceptable")],
    actor: ActorOpt = "cli",
) -> None:
    """Acknowledge every drift breach so far (promotions are no longer blocked by them)."""
    settings = _settings()
    from app.db.session import unit_of_work
    from app.drift import repository as drift_repo

    async def go(factory: SessionFactory) -> Any:
        async with unit_of_work(factory) as session:
            return await drift_repo.acknowledge(
                session, settings.llm_dspy_program_name, actor=actor, reason=reason, now=_now()
            )

    out = _run(settings, go)
    _err().print(
        f"acknowledged {len(out['acknowledged'])} breach row(s) through id {out['through_id']}"
    )
    typer.echo(out["through_id"])
