# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
# (dspy ships no type information; its loose typing is contained in this module.)
"""Compile lane: a real DSPy optimizer over a recorded dataset -> a ``candidate`` artifact.

    dataset (train / val splits) -> optimizer(student, metric, Jangar LM) -> program state
    -> manifest (optimizer, dataset hash, compile-config hash) -> registry.register (candidate)
    -> lane_outputs row (lane "compile")

Optimizers: MIPROv2 (default, ``auto="light"``), GEPA (the Jangar LM also reflects), and
BootstrapFewShot. The task model, MIPROv2's prompt model and GEPA's reflection model are all the
pinned ``LLM_MODEL`` through Jangar (``app.lanes.lm``), under ChatAdapter with its silent JSON
fallback off, exactly as serving calls it.

Metric: 1.0 when the answer re-validates as a ``ReviewVerdict`` (the serving schema check) and
its verdict equals the example's label, else 0.0; an answer that does not validate scores 0.

Reproducibility: the optimizers are seeded, the split is fixed, the LM has no cache, and the
stub/gateway is expected to answer the same request the same way, so the same dataset, compile
config and seed give the same program state and therefore the same artifact hash.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import dspy  # pyright: ignore[reportMissingTypeStubs]
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.db.session import SessionFactory, read_only, unit_of_work
from app.lanes import dataset as datasets
from app.lanes import repository
from app.lanes.dataset import Dataset, LaneExample, Split
from app.lanes.errors import LaneDeadlineExceeded
from app.lanes.lm import LaneLM
from app.observability.logging import event
from app.registry import service
from app.registry.artifact import Artifact, live_manifest
from app.registry.hashing import artifact_hash, canonical_json, sha256_hex
from app.review.live import to_verdict
from app.review.program import (
    TradeReviewProgram,
    TradeReviewSignature,
    new_program,
    prediction_fields,
    program_inputs,
    program_state,
)
from app.settings import Settings

LANE = "compile"
METRIC_VERSION = "verdict_match+schema_v1"
INPUT_NAMES: tuple[str, ...] = tuple(TradeReviewSignature.input_fields)


class Optimizer(StrEnum):
    MIPRO = "mipro"
    GEPA = "gepa"
    BOOTSTRAP = "bootstrap"


class CompileConfig(BaseModel):
    """Everything that decides the compiled program (hashed into the manifest).

    ``num_threads`` and time budgets are execution details, not part of the hash.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    optimizer: Optimizer = Optimizer.MIPRO
    seed: int = 0
    # MIPROv2 / GEPA budget preset; None means the explicit budget below.
    auto: Literal["light", "medium", "heavy"] | None = "light"
    num_candidates: int | None = Field(default=None, ge=1, le=50)  # MIPROv2, auto=None
    num_trials: int | None = Field(default=None, ge=1, le=500)  # MIPROv2, auto=None
    max_metric_calls: int | None = Field(default=None, ge=1, le=100_000)  # GEPA, auto=None
    max_bootstrapped_demos: int = Field(default=2, ge=0, le=16)
    max_labeled_demos: int = Field(default=2, ge=0, le=16)
    max_train: int | None = Field(default=None, ge=1)  # cap on train examples used
    max_val: int | None = Field(default=None, ge=1)  # cap on val examples used

    def hashed(self, model: str) -> dict[str, Any]:
        return {
            **self.model_dump(mode="json"),
            "model": model,
            "adapter": "chat(use_json_adapter_fallback=False)",
            "metric": METRIC_VERSION,
        }


def config_hash(config: CompileConfig, model: str) -> str:
    return sha256_hex(canonical_json(config.hashed(model)))


@dataclass(frozen=True, slots=True)
class CompileResult:
    artifact_hash: str
    dataset_hash: str
    compile_config_hash: str
    optimizer: Optimizer
    seed: int
    train_n: int
    val_n: int
    val_score: float
    lm_calls: int
    duration_s: float


class LaneReviewProgram(TradeReviewProgram):
    """The serving program plus the synchronous ``forward`` optimizers call from threads.

    Same predictor name (``review``) and signature, so its state is the serving program's.
    """

    def forward(self, **inputs: Any) -> dspy.Prediction:
        return self.review(**inputs)


def to_dspy_example(example: LaneExample) -> dspy.Example:
    # The label travels as the ``verdict`` output so labelled demos show the right answer.
    fields = {**program_inputs(example.request()), "verdict": example.label.value}
    return dspy.Example(**fields).with_inputs(*INPUT_NAMES)


def _score(gold: Any, prediction: Any) -> tuple[float, str]:
    try:
        verdict = to_verdict(prediction_fields(prediction))
    except (ValidationError, ValueError, TypeError) as exc:
        return 0.0, f"The answer does not validate as a review: {type(exc).__name__}."
    expected = str(gold.verdict)
    if verdict.verdict.value == expected:
        return 1.0, f"Correct verdict {expected}."
    return 0.0, f"Verdict {verdict.verdict.value} but what happened calls for {expected}."


def verdict_metric(gold: Any, prediction: Any, trace: Any = None) -> float:
    """1.0 for a schema-valid answer whose verdict matches the label, else 0.0."""
    return _score(gold, prediction)[0]


def gepa_metric(
    gold: Any,
    prediction: Any,
    trace: Any = None,
    pred_name: Any = None,
    pred_trace: Any = None,
) -> dspy.Prediction:
    """The same score, with the textual feedback GEPA reflects on."""
    score, feedback = _score(gold, prediction)
    return dspy.Prediction(score=score, feedback=feedback)


def _cap(items: list[LaneExample], limit: int | None) -> list[LaneExample]:
    ordered = sorted(items, key=lambda e: e.example_id)
    return ordered if limit is None else ordered[:limit]


def optimize(
    settings: Settings,
    data: Dataset,
    config: CompileConfig,
    *,
    num_threads: int = 2,
    call_timeout_s: float = 60.0,
    run_deadline_s: float | None = None,
    on_call: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], float, int, int, int]:
    """Run the optimizer (blocking; call it from a worker thread in async code).

    Returns (program state, val score 0..1, LM calls, train n, val n).
    """
    train = [to_dspy_example(e) for e in _cap(data.split(Split.TRAIN), config.max_train)]
    val = [to_dspy_example(e) for e in _cap(data.split(Split.VAL), config.max_val)]
    if not train or not val:
        raise ValueError(
            f"dataset {data.dataset_hash[:12]} needs train and val examples "
            f"(has {len(train)} train, {len(val)} val)"
        )
    adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)
    with LaneLM(settings, call_timeout_s=call_timeout_s, run_deadline_s=run_deadline_s) as lane:
        lane.on_call = on_call
        lm = lane.lm
        student = LaneReviewProgram()
        with dspy.context(lm=lm, adapter=adapter):
            try:
                compiled = _run_optimizer(config, student, train, val, lm, num_threads)
            except Exception as exc:
                if lane.deadline_passed:
                    raise LaneDeadlineExceeded(f"compile exceeded {run_deadline_s} s") from exc
                raise
            evaluate = dspy.Evaluate(
                devset=val,
                metric=verdict_metric,
                num_threads=num_threads,
                display_progress=False,
                display_table=False,
            )
            score = float(evaluate(compiled).score) / 100.0
        calls = lane.calls
        if lane.deadline_passed:
            # Calls refused after the deadline scored as failures: the result is not trustworthy.
            raise LaneDeadlineExceeded(f"compile exceeded {run_deadline_s} s")
    return program_state(compiled), score, calls, len(train), len(val)


def _run_optimizer(
    config: CompileConfig,
    student: LaneReviewProgram,
    train: list[dspy.Example],
    val: list[dspy.Example],
    lm: dspy.LM,
    num_threads: int,
) -> LaneReviewProgram:
    match config.optimizer:
        case Optimizer.MIPRO:
            mipro_kwargs: dict[str, Any] = {}
            compile_kwargs: dict[str, Any] = {}
            if config.auto is None:
                mipro_kwargs["num_candidates"] = config.num_candidates or 3
                compile_kwargs["num_trials"] = config.num_trials or 4
            optimizer = dspy.MIPROv2(
                metric=verdict_metric,
                prompt_model=lm,
                task_model=lm,
                auto=config.auto,
                max_bootstrapped_demos=config.max_bootstrapped_demos,
                max_labeled_demos=config.max_labeled_demos,
                seed=config.seed,
                num_threads=num_threads,
                verbose=False,
                track_stats=False,
                **mipro_kwargs,
            )
            return optimizer.compile(
                student,
                trainset=train,
                valset=val,
                seed=config.seed,
                # Without a minibatch the whole (small) val split scores every trial.
                minibatch=len(val) > 35,
                **compile_kwargs,
            )
        case Optimizer.GEPA:
            gepa_kwargs: dict[str, Any] = (
                {"auto": config.auto}
                if config.auto is not None
                else {"max_metric_calls": config.max_metric_calls or 200}
            )
            optimizer = dspy.GEPA(
                metric=gepa_metric,
                reflection_lm=lm,
                num_threads=num_threads,
                seed=config.seed,
                track_stats=False,
                **gepa_kwargs,
            )
            compiled = optimizer.compile(student, trainset=train, valset=val)
            if not isinstance(compiled, LaneReviewProgram):
                raise TypeError(f"GEPA returned a {type(compiled).__name__}, not the program")
            return compiled
        case Optimizer.BOOTSTRAP:
            optimizer = dspy.BootstrapFewShot(
                metric=verdict_metric,
                max_bootstrapped_demos=config.max_bootstrapped_demos,
                max_labeled_demos=config.max_labeled_demos,
            )
            return optimizer.compile(student, trainset=train)


async def run(
    factory: SessionFactory,
    settings: Settings,
    *,
    dataset_hash: str,
    config: CompileConfig,
    actor: str,
    clock: Callable[[], datetime],
    num_threads: int = 2,
    call_timeout_s: float = 60.0,
    run_deadline_s: float | None = None,
    on_call: Callable[[int], None] | None = None,
) -> CompileResult:
    """Load the dataset, optimize (in a worker thread), register the candidate, record the run."""
    async with read_only(factory) as session:
        data = await datasets.load(session, dataset_hash)
    start = time.perf_counter()
    state, score, calls, train_n, val_n = await asyncio.to_thread(
        optimize,
        settings,
        data,
        config,
        num_threads=num_threads,
        call_timeout_s=call_timeout_s,
        run_deadline_s=run_deadline_s,
        on_call=on_call,
    )
    duration = round(time.perf_counter() - start, 3)
    new_program(state)  # refuse a state the serving program cannot load
    cfg_hash = config_hash(config, settings.llm_model)
    manifest = live_manifest(
        program_name=settings.llm_dspy_program_name,
        signature_version=settings.llm_dspy_signature_version,
        model=settings.llm_model,
        optimizer=config.optimizer.value,
        dataset_hash=data.dataset_hash,
        compile_config_hash=cfg_hash,
    )
    stored_state: dict[str, Any] = {"dspy": state}
    Artifact.verified(
        artifact_hash(manifest, stored_state),
        manifest,
        stored_state,
        signature_version=settings.llm_dspy_signature_version,
    )
    hashed_config = config.hashed(settings.llm_model)
    lineage: dict[str, Any] = {
        "lane": LANE,
        "dataset_hash": data.dataset_hash,
        "compile_config": hashed_config,
        "compile_config_hash": cfg_hash,
        "optimizer": config.optimizer.value,
        "seed": config.seed,
        "train_n": train_n,
        "val_n": val_n,
        "val_score": score,
        "lm_calls": calls,
        "duration_s": duration,
        "num_threads": num_threads,
        "dspy_version": dspy.__version__,
    }
    now = clock()
    async with unit_of_work(factory) as session:
        digest = await service.register(
            session, manifest, stored_state, actor=actor, lineage=lineage, now=now
        )
        await repository.add(
            session,
            lane=LANE,
            output_hash=digest,
            artifact_hash=digest,
            config=hashed_config,
            payload=lineage,
            actor=actor,
            now=now,
        )
    event(
        "lanes.compiled",
        logging.INFO,
        artifact_hash=digest,
        optimizer=config.optimizer.value,
        val_score=score,
        lm_calls=calls,
        duration_s=duration,
    )
    return CompileResult(
        artifact_hash=digest,
        dataset_hash=data.dataset_hash,
        compile_config_hash=cfg_hash,
        optimizer=config.optimizer,
        seed=config.seed,
        train_n=train_n,
        val_n=val_n,
        val_score=score,
        lm_calls=calls,
        duration_s=duration,
    )
