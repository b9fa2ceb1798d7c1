"""Every Prometheus metric of the service, in one place. Label values come from closed sets
(StrEnums: decision, executor, arm, gate code, fallback reason), never from free text."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0,
)  # fmt: skip

REVIEWS = Counter("trade_review_reviews_total", "Reviews answered", ["decision", "executor", "arm"])
GATE_FAILURES = Counter("trade_review_gate_failures_total", "Gate failures", ["gate"])
REVIEW_LATENCY = Histogram(
    "trade_review_review_latency_seconds",
    "End-to-end /review latency (parse to committed row)",
    ["executor"],
    buckets=_LATENCY_BUCKETS,
)
FALLBACKS = Counter(
    "trade_review_fallback_total", "Reviews answered by the heuristic fallback", ["reason"]
)
AUDIT_UNAVAILABLE = Counter(
    "trade_review_audit_unavailable_total", "Reviews refused because the row could not be written"
)
IDEMPOTENT_REPLAYS = Counter(
    "trade_review_idempotent_replays_total", "Requests answered from an existing review row"
)
REQUEST_ERRORS = Counter("trade_review_request_errors_total", "4xx/5xx error answers", ["code"])
ACTIVE_ARTIFACT = Gauge(
    "trade_review_active_artifact_info",
    "Artifact currently served (1 for the served one)",
    ["program", "artifact_hash", "executor"],
)
ARTIFACT_LOAD_FAILURES = Counter(
    "trade_review_artifact_load_failures_total",
    "Artifacts refused at load",
    ["reason"],  # registry.artifact.Refusal: content_altered | state_pruned |
    # signature_mismatch | never_active | missing | invalid
)
TRADING_STATE = Gauge(
    "trade_review_trading_state", "Operator trading state (1 = current)", ["state"]
)
STATE_REFRESH_FAILURES = Counter(
    "trade_review_state_refresh_failures_total", "Failed polls of controls/registry"
)

# --- Jangar (the dspy_live executor) ---------------------------------------------------------
JANGAR_CALLS = Counter(
    "trade_review_jangar_calls_total",
    "Jangar call attempts by outcome (closed set: ok, timeout, transport_error, http_error, "
    "auth, rate_limited, schema_invalid, circuit_open, bulkhead_full)",
    ["outcome"],
)
JANGAR_LATENCY = Histogram(
    "trade_review_jangar_latency_seconds",
    "Jangar program call latency (deadline included)",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
)
JANGAR_TOKENS = Counter("trade_review_jangar_tokens_total", "Tokens used", ["kind"])
JANGAR_IN_FLIGHT = Gauge("trade_review_jangar_in_flight", "Jangar calls in flight")
BREAKER_STATE = Gauge(
    "trade_review_jangar_breaker_state", "Circuit breaker state (1 = current)", ["state"]
)

# --- learning lanes and promotion -------------------------------------------------------------
# Lanes run in short-lived CLI/CronJob processes nobody scrapes, and promotions also happen
# through the admin API and the rollout controller. So these are not counted in process: each
# run, check result and state change is a database row, and ``LANE_FIGURES`` exports their
# totals on every replica's /metrics (``app/lanes/figures.py`` reads them, cached). Every
# replica exports the same totals: aggregate across replicas with ``max``, never ``sum``.
# Labels: model_type = executor kind (dspy_live | heuristic | unknown), state = artifact state,
# pack = promotion check, lane/outcome from closed sets (app/lanes/service.py).
LANE_DURATION_BUCKETS = (
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LaneDurations:
    """One lane's runs as a histogram: ``buckets[i]`` runs took <= ``LANE_DURATION_BUCKETS[i]``."""

    buckets: tuple[int, ...]
    count: int
    total_seconds: float


@dataclass(frozen=True, slots=True)
class LaneFigures:
    """Totals read from the database (aggregates, one row per label set)."""

    runs: Mapping[tuple[str, str], int] = field(default_factory=dict[tuple[str, str], int])
    durations: Mapping[str, LaneDurations] = field(default_factory=dict[str, LaneDurations])
    # (model_type, pack, passed) -> promotion checks of eval scorecards
    checks: Mapping[tuple[str, str, bool], int] = field(
        default_factory=dict[tuple[str, str, bool], int]
    )
    # (model_type, state) -> registry events entering that state (CLI, admin API, controller)
    states: Mapping[tuple[str, str], int] = field(default_factory=dict[tuple[str, str], int])


class LaneFiguresCollector(Collector):
    """Exports the last ``LaneFigures`` read; nothing (no series, never zeros) before the first
    read, so a replica that starts while the database is down does not report a reset."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._figures: tuple[LaneFigures, float] | None = None

    def publish(self, figures: LaneFigures, read_at: float) -> None:
        self._figures = (figures, read_at)

    def clear(self) -> None:
        self._figures = None

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._figures)

    def _families(self, current: tuple[LaneFigures, float] | None) -> list[Metric]:
        model_state = CounterMetricFamily(
            "learn_model_state",
            "Artifacts entering a registry state, every route (registry events)",
            labels=["model_type", "state"],
        )
        gate_pass = CounterMetricFamily(
            "learn_gate_pass",
            "Promotion checks passed by eval scorecards (pack: schema_valid, fallback_rate, "
            "timeout_rate, gate_bypass, reproducible_hash, gate_compatibility, determinism, "
            "delta_sharpe, max_drawdown, coverage)",
            labels=["model_type", "pack"],
        )
        gate_fail = CounterMetricFamily(
            "learn_gate_fail",
            "Promotion checks failed by eval scorecards",
            labels=["model_type", "pack"],
        )
        runs = CounterMetricFamily(
            "trade_review_lane_runs",
            "Lane runs by outcome (lane: dataset, synthetic, compile, eval, promote, rollback, "
            "retire; outcome: ok, denied, error), wherever they ran",
            labels=["lane", "outcome"],
        )
        durations = HistogramMetricFamily(
            "trade_review_lane_duration_seconds", "Lane run duration", labels=["lane"]
        )
        age = GaugeMetricFamily(
            "trade_review_lane_figures_age_seconds",
            "Seconds since the lane figures on this endpoint were read from the database",
        )
        if current is not None:
            figures, read_at = current
            for (model_type, state), n in sorted(figures.states.items()):
                model_state.add_metric([model_type, state], n)
            for (model_type, pack, passed), n in sorted(figures.checks.items()):
                (gate_pass if passed else gate_fail).add_metric([model_type, pack], n)
            for (lane, outcome), n in sorted(figures.runs.items()):
                runs.add_metric([lane, outcome], n)
            for lane, d in sorted(figures.durations.items()):
                edges = [str(b) for b in LANE_DURATION_BUCKETS]
                durations.add_metric(
                    [lane],
                    [*zip(edges, d.buckets, strict=True), ("+Inf", d.count)],
                    d.total_seconds,
                )
            age.add_metric([], max(0.0, self._monotonic() - read_at))
        return [model_state, gate_pass, gate_fail, runs, durations, age]


LANE_FIGURES = LaneFiguresCollector()
REGISTRY.register(LANE_FIGURES)
LANE_FIGURES_READ_FAILURES = Counter(
    "trade_review_lane_figures_read_failures_total",
    "Scrapes that could not read the lane figures (database down or slow): the last ones read "
    "are exported meanwhile",
)

# --- drift (app/drift) ------------------------------------------------------------------------
# Labels: model_type = executor kind (dspy_live | heuristic), metric = app.drift.features.Metric
# (a closed set), outcome from app.drift.monitor.RunOutcome.
LEARN_DRIFT_ALERT = Counter(
    "learn_drift_alert",
    "Drift breaches (exposed as learn_drift_alert_total)",
    ["model_type", "metric"],
)
LEARN_DRIFT_STATISTIC = Gauge(
    "learn_drift_statistic", "Latest drift statistic per metric", ["model_type", "metric"]
)
LEARN_DRIFT_THRESHOLD = Gauge(
    "learn_drift_threshold",
    "Latest breach threshold per metric (max of the effect floor and the significance bound)",
    ["model_type", "metric"],
)
LEARN_DRIFT_BREACH = Gauge(
    "learn_drift_breach", "1 when the metric breached in the latest run", ["model_type", "metric"]
)
LEARN_DRIFT_RUNS = Counter(
    "learn_drift_runs",
    "Drift runs by outcome (ok, breach, no_artifact, reference_pending, error)",
    ["outcome"],
)
LEARN_DRIFT_ROLLBACKS = Counter(
    "learn_drift_rollbacks", "Automatic rollbacks after a drift breach", ["outcome"]
)
# --- rollout (canary, controller, post-promotion watch) ---------------------------------------
CANARY_WEIGHT = Gauge(
    "trade_review_canary_weight",
    "Share of routing keys (percent) this replica sends to the canary arm",
    ["program"],
)
ROLLOUT_DECISIONS = Counter(
    "trade_review_rollout_decisions_total",
    "Controller and operator rollout decisions (decision: start, step, hold, abort, graduate, "
    "pause, resume)",
    ["decision"],
)
ROLLOUT_ABORTS = Counter(
    "trade_review_rollout_aborts_total",
    "Canaries stopped (alert on any increase; trigger: controller | operator)",
    ["trigger"],
)
POST_PROMOTION_ROLLBACKS = Counter(
    "trade_review_post_promotion_rollbacks_total",
    "Automatic rollbacks by the post-promotion watch (alert on any increase)",
)
ROLLOUT_CONTROLLER_LEADER = Gauge(
    "trade_review_rollout_controller_leader", "1 when this replica holds the controller lease"
)
SHADOW_REVIEWS = Counter(
    "trade_review_shadow_reviews_total",
    "Shadow reviews by outcome (agree, disagree, error)",
    ["outcome"],
)
SHADOW_DROPPED = Counter(
    "trade_review_shadow_dropped_total", "Shadow reviews dropped because the queue was full"
)
SHADOW_QUEUE_DEPTH = Gauge("trade_review_shadow_queue_depth", "Shadow reviews waiting")

# --- answer deadline (issue 12) -----------------------------------------------------------
DEADLINE_MISSES = Counter(
    "trade_review_deadline_misses_total",
    "Answers ready after arrival + LLM_DSPY_TIMEOUT_SECONDS (the audit commit is never cut)",
    ["executor"],
)

# --- intake (issue 8): write-time reservations and group-commit isolation ------------------
RESERVATION_REJECTS = Counter(
    "trade_review_reservation_rejects_total",
    "Submits turned into rejects at commit: with the orders in flight counted, a gate failed",
    ["gate"],
)
WRITE_ROWS_ISOLATED = Counter(
    "trade_review_write_rows_isolated_total",
    "Group-commit batches retried row by row because the database refused a row",
)

# --- operations: build identity (issue 11) ----------------------------------------------------
BUILD_INFO = Gauge(
    "trade_review_build_info",
    "The running build (1): git SHA baked into the image, image digest from the deploy",
    ["build_sha", "image_digest"],
)
