"""Dataset lane: labelled examples, a deterministic train/val/test split, a reproducible hash.

Labelling rule (``LABEL_RULE`` = "v1"), per review in ``[since, until)``:

1. Of the review's recorded outcomes, take the one at the longest horizon that carries a
   realized P&L (the most complete view of what the trade did).
2. If the review was submitted and that outcome is a fill with ``realized_pnl > 0`` the label is
   ``approve``; with ``realized_pnl < 0`` it is ``veto`` (``label_source = realized_pnl``).
3. Otherwise (rejected, unfilled, flat P&L, no outcome yet) the label is the verdict stored on
   the review (``label_source = stored_verdict``): without an outcome the best available
   judgement is the one that was made.

Only what happened to SUBMITTED orders can relabel an example: a rejected order has no realized
P&L, and guessing one would teach the reviewer from a counterfactual nobody observed.

Split: ``u = int(sha256(f"{seed}:{example_id}")[:16], 16) / 16**16`` and train if ``u < 0.6``,
val if ``u < 0.8``, test otherwise. An example's split depends only on its id and the seed, so
rebuilding over a wider window never moves a test example into train.

Hash: ``sha256(canonical JSON of {"format", "examples"})`` where the examples are sorted by id and
each carries its split: the same window, outcomes and seed always give the same hash.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ReviewOutcomeRow
from app.lanes import repository
from app.registry.hashing import canonical_json, sha256_hex
from app.review.schemas import Decision, ReviewRequest, Verdict
from app.reviews import repository as reviews

LANE = "dataset"
LABEL_RULE = "v1"
DATASET_FORMAT = 1
SPLIT_RATIOS: tuple[float, float, float] = (0.6, 0.2, 0.2)
# A dataset lives in one lane_outputs row; beyond this the window is subsampled by hash.
DEFAULT_MAX_EXAMPLES = 5000


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class LabelSource(StrEnum):
    REALIZED_PNL = "realized_pnl"
    STORED_VERDICT = "stored_verdict"
    SIMULATED_OUTCOME = "simulated_outcome"


class LaneExample(BaseModel):
    """One labelled review request; ``inputs`` is the request exactly as it was reviewed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    example_id: str
    inputs: dict[str, Any]
    label: Verdict
    label_source: LabelSource
    # When the gates judge the request (its original review time): freshness checks need it.
    as_of: datetime
    split: Split
    # What the order did, when known: the observed P&L, and per unit of quantity so the eval can
    # price an artifact that would have sent a resized order.
    realized_pnl: float | None = None
    pnl_per_unit: float | None = None

    def request(self) -> ReviewRequest:
        return ReviewRequest.model_validate(self.inputs)


@dataclass(frozen=True, slots=True)
class Dataset:
    dataset_hash: str
    examples: tuple[LaneExample, ...]
    config: dict[str, Any]

    def split(self, which: Split) -> list[LaneExample]:
        return [e for e in self.examples if e.split is which]

    def counts(self) -> dict[str, int]:
        counted = Counter(e.split.value for e in self.examples)
        return {s.value: counted.get(s.value, 0) for s in Split}


@dataclass(frozen=True, slots=True)
class Label:
    verdict: Verdict
    source: LabelSource
    realized_pnl: float | None
    pnl_per_unit: float | None


# ------------------------------------------------------------------------------ pure parts


def split_of(
    example_id: str, seed: int, ratios: tuple[float, float, float] = SPLIT_RATIOS
) -> Split:
    """The split of one example: a function of its id and the seed only."""
    digest = hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()
    u = int(digest[:16], 16) / 16**16
    if u < ratios[0]:
        return Split.TRAIN
    if u < ratios[0] + ratios[1]:
        return Split.VAL
    return Split.TEST


def label_review(*, verdict: str, decision: str, outcomes: Sequence[ReviewOutcomeRow]) -> Label:
    """Rule v1 (module docstring): realized P&L of a submitted fill, else the stored verdict."""
    priced = [o for o in outcomes if o.realized_pnl is not None]
    best = max(priced, key=lambda o: (o.horizon_seconds, o.id or 0), default=None)
    pnl = best.realized_pnl if best is not None else None
    per_unit = None
    if best is not None and pnl is not None and best.fill_qty:
        per_unit = pnl / best.fill_qty
    if decision == Decision.SUBMIT.value and best is not None and best.filled and pnl:
        label = Verdict.APPROVE if pnl > 0 else Verdict.VETO
        return Label(label, LabelSource.REALIZED_PNL, pnl, per_unit)
    submitted = decision == Decision.SUBMIT.value
    return Label(
        Verdict(verdict),
        LabelSource.STORED_VERDICT,
        pnl if submitted else None,
        per_unit if submitted else None,
    )


def dataset_hash(examples: Sequence[LaneExample]) -> str:
    ordered = sorted(examples, key=lambda e: e.example_id)
    body = {"format": DATASET_FORMAT, "examples": [e.model_dump(mode="json") for e in ordered]}
    return sha256_hex(canonical_json(body))


def subsample(ids: Sequence[str], seed: int, limit: int) -> set[str]:
    """A deterministic, unbiased subset of at most ``limit`` ids (smallest seeded hashes)."""
    if len(ids) <= limit:
        return set(ids)
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"sample:{seed}:{i}".encode()).hexdigest())
    return set(ranked[:limit])


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------ lane runs


async def save(
    session: AsyncSession,
    examples: Sequence[LaneExample],
    config: dict[str, Any],
    *,
    actor: str,
    now: datetime,
) -> Dataset:
    """Hash the examples and record them as a ``dataset`` lane output (idempotent on the hash)."""
    if not examples:
        raise ValueError("the dataset has no examples")
    ordered = tuple(sorted(examples, key=lambda e: e.example_id))
    digest = dataset_hash(ordered)
    dataset = Dataset(digest, ordered, config)
    if await repository.latest(session, LANE, digest) is None:
        await repository.add(
            session,
            lane=LANE,
            output_hash=digest,
            artifact_hash=None,
            config=config,
            payload={
                "format": DATASET_FORMAT,
                "counts": dataset.counts(),
                "labels": dict(sorted(Counter(e.label.value for e in ordered).items())),
                "examples": [e.model_dump(mode="json") for e in ordered],
            },
            actor=actor,
            now=now,
        )
    return dataset


async def load(session: AsyncSession, digest: str) -> Dataset:
    """The dataset recorded under ``digest``; its content is re-hashed before use."""
    row = await repository.latest(session, LANE, digest)
    if row is None:
        raise LookupError(f"dataset {digest} not found")
    examples = tuple(LaneExample.model_validate(e) for e in row.payload.get("examples", []))
    if dataset_hash(examples) != digest:
        raise ValueError(f"dataset {digest[:12]} does not hash to its address: content altered")
    return Dataset(digest, examples, dict(row.config))


async def build_from_reviews(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    seed: int,
    actor: str,
    now: datetime,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> Dataset:
    """Reviews and their outcomes in ``[since, until)`` -> a recorded dataset."""
    if until <= since:
        raise ValueError("until must be after since")
    rows = await reviews.reviews_with_outcomes(session, since, until)
    keep = subsample([r.review_id for r, _ in rows], seed, max_examples)
    examples: list[LaneExample] = []
    skipped = 0
    for row, outcomes in rows:
        if row.review_id not in keep:
            continue
        try:
            ReviewRequest.model_validate(row.request_json)
            label = label_review(verdict=row.verdict, decision=row.decision, outcomes=outcomes)
        except (ValidationError, ValueError):
            skipped += 1  # a row written by an older schema: not a usable example
            continue
        examples.append(
            LaneExample(
                example_id=row.review_id,
                inputs=row.request_json,
                label=label.verdict,
                label_source=label.source,
                as_of=_aware(row.created_at),
                split=split_of(row.review_id, seed),
                realized_pnl=label.realized_pnl,
                pnl_per_unit=label.pnl_per_unit,
            )
        )
    config: dict[str, Any] = {
        "source": "reviews",
        "since": _aware(since).isoformat(),
        "until": _aware(until).isoformat(),
        "seed": seed,
        "ratios": list(SPLIT_RATIOS),
        "label_rule": LABEL_RULE,
        "max_examples": max_examples,
        "window_reviews": len(rows),
        "skipped": skipped,
    }
    return await save(session, examples, config, actor=actor, now=now)
