"""Every Prometheus metric of the service, in one place. Label values come from closed sets
(StrEnums: decision, executor, arm, gate code, fallback reason), never from free text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
# Counted where the lanes act (lane runs, CLI/admin-lane promotions): transitions made through
# other entry points are not counted here. Labels: model_type = executor kind (dspy_live |
# heuristic), state = artifact state, pack = promotion check, lane/outcome from closed sets.
LEARN_MODEL_STATE = Counter(
    "learn_model_state",
    "Artifacts entering a registry state through the lanes (exposed as learn_model_state_total)",
    ["model_type", "state"],
)
LEARN_GATE_PASS = Counter(
    "learn_gate_pass",
    "Promotion checks passed by eval scorecards (pack: schema_valid, fallback_rate, "
    "timeout_rate, gate_bypass, reproducible_hash, gate_compatibility, determinism, "
    "delta_sharpe, max_drawdown, coverage)",
    ["model_type", "pack"],
)
LEARN_GATE_FAIL = Counter(
    "learn_gate_fail", "Promotion checks failed by eval scorecards", ["model_type", "pack"]
)
LANE_RUNS = Counter(
    "trade_review_lane_runs",
    "Lane runs by outcome (lane: dataset, synthetic, compile, eval, replay, promote, rollback, "
    "retire; outcome: ok, denied, error)",
    ["lane", "outcome"],
)
LANE_DURATION = Histogram(
    "trade_review_lane_duration_seconds",
    "Lane run duration",
    ["lane"],
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
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
