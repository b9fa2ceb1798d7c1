"""The pure canary decision: hold on too few samples, abort on hard stops, hold on soft ones."""

from __future__ import annotations

from app.rollout.analysis import ArmFigures, ArmSample, Decision, Thresholds, decide, p95


def arm(
    n: int,
    *,
    fallback: str | None = None,
    bad: int = 0,
    ms: float = 100.0,
    tokens: int | None = 500,
    rejects: int = 0,
) -> ArmFigures:
    return ArmFigures.of(
        [
            ArmSample(
                decision="reject" if i < rejects else "submit",
                fallback_reason=fallback if i < bad else None,
                total_latency_ms=ms,
                tokens=tokens,
                verdict_rejects=i < rejects,
            )
            for i in range(n)
        ]
    )


T = Thresholds()


def test_green_steps_and_last_step_graduates() -> None:
    assert decide(arm(100), arm(100), T, min_samples=50, last_step=False).decision is Decision.STEP
    assert decide(arm(100), arm(100), T, min_samples=50, last_step=True).decision is (
        Decision.GRADUATE
    )


def test_too_few_samples_holds_even_when_failing() -> None:
    v = decide(arm(10, fallback="http_error", bad=10), arm(100), T, min_samples=50, last_step=True)
    assert v.decision is Decision.HOLD and v.insufficient
    v = decide(arm(100), arm(3), T, min_samples=50, last_step=True)
    assert v.decision is Decision.HOLD and v.insufficient


def test_hard_stops_abort() -> None:
    assert (
        decide(
            arm(100, fallback="http_error", bad=2), arm(100), T, min_samples=50, last_step=False
        ).decision
        is Decision.ABORT
    )
    assert (
        decide(
            arm(100, fallback="timeout", bad=6), arm(100), T, min_samples=50, last_step=False
        ).decision
        is Decision.ABORT
    )
    assert (
        decide(
            arm(1000, fallback="schema_invalid", bad=6),
            arm(100),
            T,
            min_samples=50,
            last_step=False,
        ).decision
        is Decision.ABORT
    )
    slow = decide(arm(100, ms=200), arm(100, ms=100), T, min_samples=50, last_step=False)
    assert slow.decision is Decision.ABORT and "p95" in slow.reasons[0]


def test_latency_ratio_of_tiny_numbers_is_not_a_stop() -> None:
    v = decide(arm(100, ms=3.0), arm(100, ms=1.0), T, min_samples=50, last_step=False)
    assert v.decision is Decision.STEP


def test_soft_stops_hold() -> None:
    v = decide(arm(100, tokens=600), arm(100, tokens=500), T, min_samples=50, last_step=False)
    assert v.decision is Decision.HOLD and not v.insufficient
    v = decide(arm(100, rejects=20), arm(100), T, min_samples=50, last_step=False)
    assert v.decision is Decision.HOLD


def test_p95_nearest_rank() -> None:
    assert p95([float(i) for i in range(1, 101)]) == 95.0
    assert p95([]) == 0.0


def test_latency_at_exactly_the_ratio_when_decided_then_at_the_bar_not_over_it() -> None:
    # 1.15 * 200 is 229.99999999999997 in binary floating point: 230 ms is at the bar.
    at = decide(arm(100, ms=230.0), arm(100, ms=200.0), T, min_samples=50, last_step=False)
    over = decide(arm(100, ms=230.5), arm(100, ms=200.0), T, min_samples=50, last_step=False)
    assert at.decision is Decision.STEP, at.reasons
    assert over.decision is Decision.ABORT and "p95 latency 230.5 ms > 1.15x" in over.reasons[0]


def test_shadow_latency_at_exactly_the_ratio_when_checked_then_passes_and_above_fails() -> None:
    from app.registry.promotion import PromotionPolicy
    from app.rollout.evidence import ShadowPolicy, check_shadow
    from app.rollout.shadow import ShadowStats

    policy = ShadowPolicy(min_samples=10, max_disagreement=0.01, max_latency_ratio=1.15)

    def stats(mine: float) -> ShadowStats:
        return ShadowStats(100, 0.0, 1.0, 0.0, p95_llm_ms=mine, served_p95_llm_ms=100.0)

    assert check_shadow(stats(115.0), policy, PromotionPolicy()) == []  # 1.15 * 100 = 114.99...
    assert check_shadow(stats(115.1), policy, PromotionPolicy()) == [
        "shadow p95 LLM latency 115.1 ms > 1.15x served 100.0 ms"
    ]
