"""The promotion bars (``config/promotion.yaml``) and the pure check against them.

- The shipped file has exactly the keys and values written out in ``SHIPPED``.
- Every bar is tested at the bar, one step inside and one step outside; a bar the schema bounds
  on both sides (rates in [0, 1], counts and tolerances >= 0) is also tested at and beyond each
  bound.
- Named denials: worse max drawdown, gate incompatibility, non-determinism, timeout rate, an
  empty scorecard, an uncomputable gate without a named waiver (accepted with one).
- Each ``LEARN_GATE_*`` variable, loaded by the real settings contract, moves the bar that
  ``policy_for`` hands to ``check_scorecard``.

A denial's reason text is asserted exactly: ``lanes.service.pack_results`` files each failed
check under its pack by the reason's prefix, so the text is behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from app.lanes.service import pack_results
from app.registry.promotion import (
    PromotionPolicy,
    Scorecard,
    check_scorecard,
    load_promotion_policy,
    policy_for,
)
from app.rollout.evidence import WAIVABLE, uncomputable_gates
from app.settings import PROJECT_ROOT, SettingsError, load_settings

SHIPPED_PATH = PROJECT_ROOT / "config" / "promotion.yaml"

# config/promotion.yaml, written out: (type, value) so that 1 never passes for True.
SHIPPED: dict[str, tuple[type, object]] = {
    "min_schema_valid_rate": (float, 0.995),
    "max_fallback_rate": (float, 0.05),
    "max_timeout_rate": (float, 0.05),
    "max_gate_bypass_count": (int, 0),
    "require_reproducible_hash": (bool, True),
    "require_gate_compatibility": (bool, True),
    "require_determinism": (bool, True),
    "min_delta_sharpe": (float, 0.10),
    "max_drawdown_tolerance": (float, 0.02),
    "replay_max_reject_to_submit": (float, 0.0),
    "replay_lookback_days": (float, 7.0),
}
SHIPPED_VALUES = {k: v for k, (_, v) in SHIPPED.items()}
POLICY = PromotionPolicy.model_validate(SHIPPED_VALUES)

# A scorecard that passes every shipped bar with room; each test moves one figure.
PASSING: dict[str, Any] = {
    "artifact_hash": "a" * 64,
    "dataset_hash": "d" * 64,
    "n": 100,
    "schema_valid_rate": 1.0,
    "timeout_rate": 0.0,
    "fallback_rate": 0.0,
    "gate_compatibility": True,
    "gate_bypass_count": 0,
    "hash_reproducible": True,
    "determinism_ok": True,
    "delta_sharpe": 0.2,
    "maxdd_delta": 0.0,
}


def card(**figures: Any) -> Scorecard:
    return Scorecard.model_validate({**PASSING, **figures})


def failed_packs(sc: Scorecard, policy: PromotionPolicy = POLICY) -> set[str]:
    packs = pack_results(sc, check_scorecard(sc, policy))
    return {name for name, passed in packs.items() if not passed}


# ------------------------------------------------------------------ the shipped file


def test_shipped_promotion_yaml_when_loaded_then_exactly_the_written_bars() -> None:
    data = yaml.safe_load(SHIPPED_PATH.read_text())
    assert {k: (type(v), v) for k, v in data.items()} == SHIPPED


def test_policy_defaults_when_no_file_then_the_shipped_bars() -> None:
    assert PromotionPolicy().model_dump() == SHIPPED_VALUES
    for name, (kind, _) in SHIPPED.items():
        assert type(getattr(PromotionPolicy(), name)) is kind, name


def test_policy_in_force_when_nothing_overrides_then_the_shipped_file() -> None:
    assert load_promotion_policy(SHIPPED_PATH) == POLICY
    assert load_promotion_policy(SHIPPED_PATH, None) == POLICY
    assert policy_for(load_settings({})) == POLICY


def test_passing_scorecard_when_checked_then_no_reasons() -> None:
    assert check_scorecard(card(), POLICY) == []
    assert failed_packs(card()) == set()


# ------------------------------------------------------------------ every bar: at, inside, outside

# (figure, at the bar, one step inside, one step outside, the reason outside, its pack)
BARS: list[tuple[str, object, object, object, str, str]] = [
    (
        "schema_valid_rate",
        0.995,
        0.996,
        0.994,
        "schema-valid rate 0.9940 < 0.995",
        "schema_valid",
    ),
    ("fallback_rate", 0.05, 0.049, 0.051, "fallback rate 0.0510 > 0.05", "fallback_rate"),
    ("timeout_rate", 0.05, 0.049, 0.051, "timeout rate 0.0510 > 0.05", "timeout_rate"),
    (
        "gate_bypass_count",
        0,
        0,  # nothing is inside 0: a negative count is refused by the schema (below)
        1,
        "deterministic gate bypass count 1 > 0",
        "gate_bypass",
    ),
    ("delta_sharpe", 0.10, 0.11, 0.09, "delta Sharpe +0.090 < +0.100", "delta_sharpe"),
    ("maxdd_delta", 0.02, 0.019, 0.021, "max drawdown worse by 0.021 > 0.02", "max_drawdown"),
    ("n", 1, 2, 0, "scorecard covers no examples", "coverage"),
]


@pytest.mark.parametrize(
    ("figure", "at", "inside", "outside", "reason", "pack"), BARS, ids=[b[0] for b in BARS]
)
def test_bar_when_at_inside_or_outside_then_passes_passes_fails(
    figure: str, at: object, inside: object, outside: object, reason: str, pack: str
) -> None:
    assert check_scorecard(card(**{figure: at}), POLICY) == [], "at the bar"
    assert check_scorecard(card(**{figure: inside}), POLICY) == [], "one step inside"
    assert check_scorecard(card(**{figure: outside}), POLICY) == [reason], "one step outside"
    assert failed_packs(card(**{figure: outside})) == {pack}


# (policy field, a non-shipped bar, figure, at, inside, outside, the reason outside)
MOVED_BARS: list[tuple[str, float, str, float, float, float, str]] = [
    (
        "min_schema_valid_rate",
        0.9,
        "schema_valid_rate",
        0.9,
        0.91,
        0.89,
        "schema-valid rate 0.8900 < 0.9",
    ),
    ("max_fallback_rate", 0.2, "fallback_rate", 0.2, 0.19, 0.21, "fallback rate 0.2100 > 0.2"),
    ("max_timeout_rate", 0.2, "timeout_rate", 0.2, 0.19, 0.21, "timeout rate 0.2100 > 0.2"),
    (
        "max_gate_bypass_count",
        2,
        "gate_bypass_count",
        2,
        1,
        3,
        "deterministic gate bypass count 3 > 2",
    ),
    (
        "min_delta_sharpe",
        -0.5,
        "delta_sharpe",
        -0.5,
        -0.49,
        -0.51,
        "delta Sharpe -0.510 < -0.500",
    ),
    (
        "max_drawdown_tolerance",
        0.1,
        "maxdd_delta",
        0.1,
        0.09,
        0.11,
        "max drawdown worse by 0.110 > 0.1",
    ),
]


@pytest.mark.parametrize(
    ("field", "bar", "figure", "at", "inside", "outside", "reason"),
    MOVED_BARS,
    ids=[b[0] for b in MOVED_BARS],
)
def test_bar_when_policy_moves_it_then_check_follows_the_policy_not_the_shipped_value(
    field: str, bar: float, figure: str, at: float, inside: float, outside: float, reason: str
) -> None:
    policy = PromotionPolicy.model_validate({**SHIPPED_VALUES, field: bar})
    assert check_scorecard(card(**{figure: at}), policy) == []
    assert check_scorecard(card(**{figure: inside}), policy) == []
    assert check_scorecard(card(**{figure: outside}), policy) == [reason]


# (policy switch, scorecard flag, the reason when the flag is false, its pack)
SWITCHES = [
    (
        "require_reproducible_hash",
        "hash_reproducible",
        "artifact hash is not reproducible",
        "reproducible_hash",
    ),
    (
        "require_gate_compatibility",
        "gate_compatibility",
        "gate compatibility failed",
        "gate_compatibility",
    ),
    ("require_determinism", "determinism_ok", "determinism spot check failed", "determinism"),
]


@pytest.mark.parametrize(
    ("switch", "flag", "reason", "pack"), SWITCHES, ids=[s[0] for s in SWITCHES]
)
def test_required_flag_when_false_then_denied_unless_the_policy_drops_the_requirement(
    switch: str, flag: str, reason: str, pack: str
) -> None:
    assert check_scorecard(card(**{flag: True}), POLICY) == []
    assert check_scorecard(card(**{flag: False}), POLICY) == [reason]
    assert failed_packs(card(**{flag: False})) == {pack}
    relaxed = PromotionPolicy.model_validate({**SHIPPED_VALUES, switch: False})
    assert check_scorecard(card(**{flag: False}), relaxed) == []
    assert check_scorecard(card(**{flag: True}), relaxed) == []


def test_risk_figures_when_not_computed_then_check_scorecard_leaves_them_to_the_waiver_rule() -> (
    None
):
    sc = card(delta_sharpe=None, maxdd_delta=None)
    assert check_scorecard(sc, POLICY) == []
    assert "delta_sharpe" not in pack_results(sc, [])
    assert "max_drawdown" not in pack_results(sc, [])


# ------------------------------------------------------------------ both sides of bounded bars

# (model, field, lowest valid, highest valid or None (unbounded), step)
BOUNDS: list[tuple[type[PromotionPolicy] | type[Scorecard], str, float, float | None, float]] = [
    (PromotionPolicy, "min_schema_valid_rate", 0.0, 1.0, 0.001),
    (PromotionPolicy, "max_fallback_rate", 0.0, 1.0, 0.001),
    (PromotionPolicy, "max_timeout_rate", 0.0, 1.0, 0.001),
    (PromotionPolicy, "max_gate_bypass_count", 0, None, 1),
    (PromotionPolicy, "max_drawdown_tolerance", 0.0, None, 0.001),
    (Scorecard, "n", 0, None, 1),
    (Scorecard, "schema_valid_rate", 0.0, 1.0, 0.001),
    (Scorecard, "timeout_rate", 0.0, 1.0, 0.001),
    (Scorecard, "fallback_rate", 0.0, 1.0, 0.001),
    (Scorecard, "gate_bypass_count", 0, None, 1),
]


@pytest.mark.parametrize(
    ("model", "field", "low", "high", "step"),
    BOUNDS,
    ids=[f"{b[0].__name__}.{b[1]}" for b in BOUNDS],
)
def test_bounded_figure_when_at_or_beyond_either_bound_then_accepted_or_refused(
    model: type[PromotionPolicy] | type[Scorecard],
    field: str,
    low: float,
    high: float | None,
    step: float,
) -> None:
    base: dict[str, Any] = dict(SHIPPED_VALUES) if model is PromotionPolicy else dict(PASSING)
    assert getattr(model.model_validate({**base, field: low}), field) == low
    assert getattr(model.model_validate({**base, field: low + step}), field) == low + step
    with pytest.raises(ValidationError, match=field):
        model.model_validate({**base, field: low - step})
    if high is None:
        assert getattr(model.model_validate({**base, field: 10**6}), field) == 10**6
        return
    assert getattr(model.model_validate({**base, field: high}), field) == high
    assert getattr(model.model_validate({**base, field: high - step}), field) == high - step
    with pytest.raises(ValidationError, match=field):
        model.model_validate({**base, field: high + step})


def test_min_delta_sharpe_when_negative_then_accepted_as_a_bar() -> None:
    assert PromotionPolicy(min_delta_sharpe=-100).min_delta_sharpe == -100


def test_policy_when_unknown_key_or_assignment_then_refused() -> None:
    with pytest.raises(ValidationError, match="max_latency"):
        PromotionPolicy.model_validate({**SHIPPED_VALUES, "max_latency": 1})
    with pytest.raises(ValidationError, match="frozen"):
        POLICY.max_timeout_rate = 1.0  # type: ignore[misc]


def test_scorecard_when_extra_figures_or_assignment_then_kept_and_frozen() -> None:
    sc = card(brier=0.1)
    assert sc.model_dump()["brier"] == 0.1
    assert sc.split == "test"
    with pytest.raises(ValidationError, match="frozen"):
        sc.n = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    "missing",
    [
        "artifact_hash",
        "dataset_hash",
        "n",
        "schema_valid_rate",
        "timeout_rate",
        "fallback_rate",
        "gate_compatibility",
        "gate_bypass_count",
        "hash_reproducible",
        "determinism_ok",
    ],
)
def test_scorecard_when_a_required_figure_is_missing_then_refused(missing: str) -> None:
    figures = {k: v for k, v in PASSING.items() if k != missing}
    with pytest.raises(ValidationError, match=missing):
        Scorecard.model_validate(figures)


# ------------------------------------------------------------------ named denials


def test_promotion_when_max_drawdown_worse_than_tolerance_then_denied() -> None:
    assert check_scorecard(card(maxdd_delta=0.05), POLICY) == ["max drawdown worse by 0.050 > 0.02"]
    assert check_scorecard(card(maxdd_delta=-0.05), POLICY) == []  # better drawdown passes


def test_promotion_when_gate_compatibility_failed_then_denied() -> None:
    assert check_scorecard(card(gate_compatibility=False), POLICY) == ["gate compatibility failed"]


def test_promotion_when_determinism_spot_check_failed_then_denied() -> None:
    assert check_scorecard(card(determinism_ok=False), POLICY) == ["determinism spot check failed"]


def test_promotion_when_timeout_rate_above_bar_then_denied() -> None:
    assert check_scorecard(card(timeout_rate=0.3), POLICY) == ["timeout rate 0.3000 > 0.05"]


def test_promotion_when_scorecard_covers_no_examples_then_denied() -> None:
    assert check_scorecard(card(n=0), POLICY) == ["scorecard covers no examples"]


def test_promotion_when_no_scorecard_then_denied() -> None:
    assert check_scorecard(None, POLICY) == ["no eval scorecard for this artifact"]
    lax = PromotionPolicy(
        min_schema_valid_rate=0,
        max_fallback_rate=1,
        max_timeout_rate=1,
        max_gate_bypass_count=10**6,
        require_reproducible_hash=False,
        require_gate_compatibility=False,
        require_determinism=False,
        min_delta_sharpe=-(10**6),
        max_drawdown_tolerance=10**6,
    )
    assert check_scorecard(None, lax) == ["no eval scorecard for this artifact"]


def test_promotion_when_every_check_fails_then_every_reason_in_order() -> None:
    worst = card(
        n=0,
        schema_valid_rate=0.5,
        fallback_rate=0.5,
        timeout_rate=0.5,
        gate_bypass_count=3,
        hash_reproducible=False,
        gate_compatibility=False,
        determinism_ok=False,
        delta_sharpe=-0.25,
        maxdd_delta=0.125,
    )
    assert check_scorecard(worst, POLICY) == [
        "scorecard covers no examples",
        "schema-valid rate 0.5000 < 0.995",
        "fallback rate 0.5000 > 0.05",
        "timeout rate 0.5000 > 0.05",
        "deterministic gate bypass count 3 > 0",
        "artifact hash is not reproducible",
        "gate compatibility failed",
        "determinism spot check failed",
        "delta Sharpe -0.250 < +0.100",
        "max drawdown worse by 0.125 > 0.02",
    ]
    assert failed_packs(worst) == {
        "coverage",
        "schema_valid",
        "fallback_rate",
        "timeout_rate",
        "gate_bypass",
        "reproducible_hash",
        "gate_compatibility",
        "determinism",
        "delta_sharpe",
        "max_drawdown",
    }


# ------------------------------------------------------------------ uncomputable gates, waivers
# The rollout start (shadow -> canary) adds these to the shadow evidence; the waivers are
# recorded on the start event (tests/integration/test_rollout.py::
# test_uncomputable_gate_fails_unless_waived_by_name).

DELTA_MISSING = "delta Sharpe not computed (no outcomes) and not waived"
MAXDD_MISSING = "max drawdown not computed (no outcomes) and not waived"


def test_waivable_gates_when_listed_then_delta_sharpe_max_drawdown_and_replay() -> None:
    assert frozenset({"delta_sharpe", "max_drawdown", "replay"}) == WAIVABLE


def test_promotion_when_gate_uncomputable_and_not_waived_then_denied() -> None:
    none = frozenset[str]()
    assert uncomputable_gates(card(delta_sharpe=None), none) == [DELTA_MISSING]
    assert uncomputable_gates(card(maxdd_delta=None), none) == [MAXDD_MISSING]
    both = card(delta_sharpe=None, maxdd_delta=None)
    assert uncomputable_gates(both, none) == [DELTA_MISSING, MAXDD_MISSING]


def test_promotion_when_gate_uncomputable_and_another_gate_waived_then_still_denied() -> None:
    assert uncomputable_gates(card(delta_sharpe=None), frozenset({"max_drawdown"})) == [
        DELTA_MISSING
    ]
    assert uncomputable_gates(card(maxdd_delta=None), frozenset({"delta_sharpe"})) == [
        MAXDD_MISSING
    ]
    assert uncomputable_gates(card(delta_sharpe=None), frozenset({"delta sharpe"})) == [
        DELTA_MISSING
    ]


def test_promotion_when_gate_uncomputable_and_waived_by_name_then_accepted() -> None:
    both = card(delta_sharpe=None, maxdd_delta=None)
    assert uncomputable_gates(both, frozenset({"delta_sharpe"})) == [MAXDD_MISSING]
    assert uncomputable_gates(both, WAIVABLE) == []
    assert check_scorecard(both, POLICY) == []


def test_computed_gates_when_not_waived_then_nothing_to_waive() -> None:
    assert uncomputable_gates(card(), frozenset()) == []
    assert uncomputable_gates(None, frozenset()) == []  # check_scorecard reports it
    # a waiver never lets a computed figure past its bar
    assert check_scorecard(card(delta_sharpe=0.0), POLICY) == ["delta Sharpe +0.000 < +0.100"]


# ------------------------------------------------------------------ LEARN_GATE_* overrides


def test_learn_gate_delta_sharpe_when_set_then_the_check_uses_it() -> None:
    policy = policy_for(load_settings({"LEARN_GATE_DELTA_SHARPE": "0.3"}))
    assert policy.model_dump() == {**SHIPPED_VALUES, "min_delta_sharpe": 0.3}
    assert check_scorecard(card(delta_sharpe=0.3), policy) == []
    assert check_scorecard(card(delta_sharpe=0.31), policy) == []
    assert check_scorecard(card(delta_sharpe=0.29), policy) == ["delta Sharpe +0.290 < +0.300"]
    assert check_scorecard(card(delta_sharpe=0.2), POLICY) == []  # passes the shipped bar


def test_learn_gate_delta_sharpe_when_negative_then_a_worse_sharpe_passes() -> None:
    policy = policy_for(load_settings({"LEARN_GATE_DELTA_SHARPE": "-100"}))
    assert policy.min_delta_sharpe == -100
    assert check_scorecard(card(delta_sharpe=-5.0), policy) == []
    assert check_scorecard(card(delta_sharpe=-5.0), POLICY) == ["delta Sharpe -5.000 < +0.100"]


def test_learn_gate_maxdd_tol_when_set_then_the_check_uses_it() -> None:
    policy = policy_for(load_settings({"LEARN_GATE_MAXDD_TOL": "0.05"}))
    assert policy.model_dump() == {**SHIPPED_VALUES, "max_drawdown_tolerance": 0.05}
    assert check_scorecard(card(maxdd_delta=0.05), policy) == []
    assert check_scorecard(card(maxdd_delta=0.049), policy) == []
    assert check_scorecard(card(maxdd_delta=0.051), policy) == [
        "max drawdown worse by 0.051 > 0.05"
    ]
    assert check_scorecard(card(maxdd_delta=0.03), POLICY) == ["max drawdown worse by 0.030 > 0.02"]


def test_learn_gate_maxdd_tol_when_zero_then_any_worse_drawdown_denied() -> None:
    policy = policy_for(load_settings({"LEARN_GATE_MAXDD_TOL": "0"}))
    assert policy.max_drawdown_tolerance == 0
    assert check_scorecard(card(maxdd_delta=0.0), policy) == []
    assert check_scorecard(card(maxdd_delta=0.001), policy) == ["max drawdown worse by 0.001 > 0.0"]


def test_learn_gate_overrides_when_both_set_in_process_env_then_both_bars_move(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEARN_GATE_DELTA_SHARPE", "0.5")
    monkeypatch.setenv("LEARN_GATE_MAXDD_TOL", "0.0")
    policy = policy_for(load_settings())
    assert (policy.min_delta_sharpe, policy.max_drawdown_tolerance) == (0.5, 0.0)
    assert check_scorecard(card(delta_sharpe=0.4, maxdd_delta=0.01), policy) == [
        "delta Sharpe +0.400 < +0.500",
        "max drawdown worse by 0.010 > 0.0",
    ]


def test_learn_gate_maxdd_tol_when_negative_then_settings_refused_by_name() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"LEARN_GATE_MAXDD_TOL": "-0.01"})
    assert [p.split(":")[0] for p in info.value.problems] == ["LEARN_GATE_MAXDD_TOL"]


# ------------------------------------------------------------------ the policy file itself


def test_policy_ref_when_relative_then_resolved_against_the_project_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "promotion.yaml").write_text("max_timeout_rate: 0.5\n")
    monkeypatch.chdir(tmp_path)
    assert policy_for(load_settings({})) == POLICY


def test_policy_ref_when_absolute_then_that_file_with_overrides_on_top(tmp_path: Path) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text("max_timeout_rate: 0.01\nmin_delta_sharpe: 0.2\n")
    env = {"LLM_DSPY_COMPILE_METRICS_POLICY_REF": str(path)}
    policy = policy_for(load_settings(env))
    assert policy.max_timeout_rate == 0.01
    assert policy.min_delta_sharpe == 0.2
    assert check_scorecard(card(timeout_rate=0.02), policy) == ["timeout rate 0.0200 > 0.01"]
    overridden = policy_for(load_settings({**env, "LEARN_GATE_DELTA_SHARPE": "0.15"}))
    assert (overridden.max_timeout_rate, overridden.min_delta_sharpe) == (0.01, 0.15)


def test_policy_file_when_empty_then_the_model_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set\n")
    assert load_promotion_policy(path) == POLICY
    assert load_promotion_policy(path, {"min_delta_sharpe": 0.4}).min_delta_sharpe == 0.4


def test_policy_overrides_when_none_then_the_file_value_stays(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("min_delta_sharpe: 0.3\nmax_drawdown_tolerance: 0.04\n")
    kept = load_promotion_policy(path, {"min_delta_sharpe": None, "max_drawdown_tolerance": None})
    assert (kept.min_delta_sharpe, kept.max_drawdown_tolerance) == (0.3, 0.04)
    moved = load_promotion_policy(path, {"min_delta_sharpe": 0.0, "max_drawdown_tolerance": 0.0})
    assert (moved.min_delta_sharpe, moved.max_drawdown_tolerance) == (0.0, 0.0)


def test_policy_file_when_a_bar_is_out_of_range_then_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("max_fallback_rate: 1.5\n")
    with pytest.raises(ValidationError, match="max_fallback_rate"):
        load_promotion_policy(path)
