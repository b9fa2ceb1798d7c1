"""Eval lane, pure parts: risk statistics, bypass rule, scorecard aggregation, check packs."""

from __future__ import annotations

from typing import Any

import pytest

from app.lanes.evaluate import (
    ExampleRun,
    is_bypass,
    max_drawdown,
    percentile,
    reproducible,
    scorecard,
    sharpe,
)
from app.lanes.service import pack_results
from app.registry.artifact import Artifact, live_manifest
from app.registry.hashing import artifact_hash
from app.registry.promotion import PromotionPolicy, check_scorecard
from app.registry.states import ExecutorKind
from app.review.program import new_program, program_state
from app.review.runtime import FallbackReason
from app.review.schemas import Decision, Verdict


def live_artifact() -> Artifact:
    manifest = live_manifest(
        program_name="trade-review",
        signature_version="v1",
        model="gpt-5.3-codex-spark",
        optimizer="mipro",
        dataset_hash="d" * 64,
    )
    state: dict[str, Any] = {"dspy": program_state(new_program())}
    return Artifact.verified(
        artifact_hash(manifest, state), manifest, state, signature_version="v1"
    )


def run(
    i: int,
    verdict: Verdict = Verdict.APPROVE,
    decision: Decision = Decision.SUBMIT,
    *,
    fallback: FallbackReason | None = None,
    ret: float = 0.0,
    bypass: bool = False,
    latency: float | None = 10.0,
) -> ExampleRun:
    executor = ExecutorKind.HEURISTIC if fallback else ExecutorKind.DSPY_LIVE
    return ExampleRun(
        f"e{i}", verdict, decision, executor, fallback, None if fallback else latency,
        True, bypass, ret, True,
    )  # fmt: skip


def test_percentile_when_nearest_rank_then_known_values() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0
    assert percentile(values, 95) == 19.0
    assert percentile([], 50) is None


def test_sharpe_and_drawdown_when_known_series_then_known_values() -> None:
    assert sharpe([0.01, 0.01, 0.01]) == 0.0  # no spread: no risk-adjusted claim
    assert sharpe([0.02, 0.0]) == pytest.approx(1.0)
    assert max_drawdown([0.01, -0.03, 0.01, -0.005]) == pytest.approx(0.03)
    assert max_drawdown([-0.01, -0.01]) == pytest.approx(0.02)  # the peak starts at zero
    assert max_drawdown([0.01, 0.02]) == 0.0


@pytest.mark.parametrize(
    ("decision", "verdict", "failed", "abstain_action", "expected"),
    [
        (Decision.SUBMIT, Verdict.APPROVE, 0, "reject", False),
        (Decision.SUBMIT, Verdict.APPROVE, 1, "reject", True),
        (Decision.SUBMIT, Verdict.VETO, 0, "reject", True),
        (Decision.SUBMIT, Verdict.ESCALATE, 0, "reject", True),
        (Decision.SUBMIT, Verdict.ABSTAIN, 0, "reject", True),
        (Decision.SUBMIT, Verdict.ABSTAIN, 0, "submit", False),
        (Decision.REJECT, Verdict.VETO, 3, "reject", False),
    ],
)
def test_is_bypass_when_submit_against_the_rules_then_counted(
    decision: Decision, verdict: Verdict, failed: int, abstain_action: str, expected: bool
) -> None:
    assert is_bypass(decision, verdict, failed, abstain_action) is expected


def test_scorecard_when_candidate_vetoes_a_loser_the_active_takes_then_better_sharpe() -> None:
    candidate = live_artifact()
    runs = [run(0, ret=0.01), run(1, Verdict.VETO, Decision.REJECT), run(2, ret=0.012)]
    active = [run(0, ret=0.01), run(1, ret=-0.03), run(2, ret=0.012)]
    labels = [Verdict.APPROVE, Verdict.VETO, Verdict.APPROVE]
    card = scorecard(candidate, "d" * 64, runs, labels, active, runs[:2], hash_ok=True, extra={})
    assert card.n == 3
    assert card.verdict_accuracy == 1.0
    assert card.decision_agreement == pytest.approx(2 / 3, abs=1e-6)
    assert card.schema_valid_rate == 1.0 and card.fallback_rate == 0.0
    assert card.gate_compatibility and card.gate_bypass_count == 0
    assert (
        card.determinism_ok and card.model_extra and card.model_extra["determinism_compared"] == 2
    )
    assert card.delta_sharpe is not None and card.delta_sharpe > 0
    assert card.maxdd_delta is not None and card.maxdd_delta < 0
    assert check_scorecard(card, PromotionPolicy()) == []


def test_scorecard_when_gateway_fails_then_fallbacks_and_no_valid_answers_fail_the_policy() -> None:
    candidate = live_artifact()
    runs = [run(i, fallback=FallbackReason.HTTP_ERROR) for i in range(4)]
    runs[0] = run(0, fallback=FallbackReason.TIMEOUT)
    card = scorecard(
        candidate, "d" * 64, runs, [Verdict.APPROVE] * 4, None, runs[:2], hash_ok=True, extra={}
    )
    assert card.schema_valid_rate == 0.0  # nothing came back: fail closed, not "no evidence"
    assert card.fallback_rate == 1.0 and card.timeout_rate == 0.25
    assert card.latency_p50_ms is None
    assert card.delta_sharpe is None  # no active artifact to compare against
    reasons = check_scorecard(card, PromotionPolicy())
    packs = pack_results(card, reasons)
    assert packs["schema_valid"] is False and packs["fallback_rate"] is False
    assert packs["timeout_rate"] is False and packs["gate_bypass"] is True
    assert "delta_sharpe" not in packs


def test_scorecard_when_a_submit_bypassed_a_gate_then_counted_and_blocking() -> None:
    runs = [run(0, bypass=True), run(1)]
    card = scorecard(
        live_artifact(), "d" * 64, runs, [Verdict.APPROVE] * 2, None, [], hash_ok=True, extra={}
    )
    assert card.gate_bypass_count == 1
    assert card.determinism_ok is False  # nothing was re-run: no evidence of determinism
    packs = pack_results(card, check_scorecard(card, PromotionPolicy()))
    assert packs["gate_bypass"] is False and packs["determinism"] is False


def test_reproducible_when_state_tampered_then_false() -> None:
    artifact = live_artifact()
    assert reproducible(artifact.artifact_hash, artifact.manifest, artifact.program_state)
    tampered = {"dspy": {**artifact.program_state["dspy"]}}
    tampered["dspy"]["review"] = {**tampered["dspy"]["review"], "demos": [{"x": 1}]}
    assert not reproducible(artifact.artifact_hash, artifact.manifest, tampered)
