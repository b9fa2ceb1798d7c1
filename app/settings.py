"""The service's environment contract: one validated settings class.

Every setting has a working local default so the embedded mode (SQLite, the deterministic
heuristic artifact, no Jangar) starts with no environment at all. Deprecated variables from the
system this service replaces are refused at start, by name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DEPRECATED_VARIABLES: tuple[str, ...] = (
    "LLM_PROVIDER",
    "LLM_SELF_HOSTED_BASE_URL",
    "LLM_SELF_HOSTED_MODEL",
    "LLM_SELF_HOSTED_API_KEY",
    "LLM_ENABLED",
    "LLM_DSPY_RUNTIME_MODE",
)

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MIN_TOKEN_CHARS = 32


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'trade-review.db'}"


class SettingsError(Exception):
    """Configuration problems, one readable line each (never a traceback)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=False)

    # --- storage -------------------------------------------------------------------------
    database_url: str = Field(default_factory=default_database_url)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    db_statement_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    # --- the rollout design's LLM contract ----------------------------------------------
    jangar_base_url: str | None = None
    jangar_api_key: SecretStr | None = None
    jangar_extra_headers: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    llm_model: str = Field(default="gpt-5.3-codex-spark", min_length=1)
    llm_dspy_artifact_hash: str | None = None
    llm_dspy_program_name: str = Field(default="trade-review", min_length=1, max_length=128)
    llm_dspy_signature_version: str = Field(default="v1", min_length=1, max_length=64)
    llm_dspy_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    llm_dspy_compile_metrics_policy_ref: str = "config/promotion.yaml"
    llm_dspy_secret_binding_ref: str = ""
    llm_dspy_agentrun_ttl_seconds: int = Field(default=3600, ge=60)

    # --- resilience around Jangar ---------------------------------------------------------
    breaker_window_seconds: float = Field(default=30.0, gt=0)
    breaker_min_calls: int = Field(default=10, ge=1)
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_cooldown_seconds: float = Field(default=10.0, gt=0)
    bulkhead_max_concurrent: int = Field(default=64, ge=1)
    # Per concurrent Jangar call, the LLM step ends this much earlier (capped at half the
    # deadline) so a burst's answers, not just its LLM calls, meet the deadline. 0 disables.
    llm_answer_reserve_ms: float = Field(default=2.0, ge=0, le=100)

    # --- answer deadline, probes, bounded generation (issue 12) ---------------------------
    # The tail reserve (gates + audit commit) is measured; these bound it. See review/budget.py.
    llm_tail_reserve_floor_ms: float = Field(default=5.0, ge=0, le=1000)
    # Less than this left for the LLM step: the heuristic answers at once (budget_exhausted).
    llm_min_budget_ms: float = Field(default=20.0, ge=0, le=10_000)
    # Completion-token limit sent to Jangar: a verdict is ~150-300 tokens; room for a short
    # preamble, never a runaway generation.
    llm_max_completion_tokens: int = Field(default=1024, ge=16, le=32_768)
    # Liveness/readiness served by a small thread on their own port, apart from the review
    # loop (unset: only the main port's /healthz and /readyz). Knative probes point here.
    probe_port: int | None = Field(default=None, ge=0, le=65535)
    probe_host: str = "0.0.0.0"  # noqa: S104 (kubelet probes the pod address)
    # /healthz on the probe port fails when the event loop has not ticked for this long.
    probe_loop_stall_seconds: float = Field(default=10.0, ge=0.5, le=300)

    # --- learning lanes and promotion ---------------------------------------------------
    learn_shadow_duration_days: float = Field(default=7.0, ge=0)
    learn_gate_delta_sharpe: float | None = None  # overrides config/promotion.yaml
    learn_gate_maxdd_tol: float | None = Field(default=None, ge=0)
    # /metrics reads the lane figures (runs, checks, state changes) from the database at most
    # this often; each read is bounded by min(2 s, DB_STATEMENT_TIMEOUT_SECONDS).
    metrics_figures_cache_seconds: float = Field(default=5.0, ge=0, le=300)

    # --- drift monitoring (app/drift) ----------------------------------------------------
    learn_drift_enabled: bool = True  # the in-service schedule; on-demand runs always work
    learn_drift_period_seconds: float = Field(default=300.0, ge=1.0, le=86_400)
    learn_drift_window_reviews: int = Field(default=1000, ge=30, le=1_000_000)
    learn_drift_reference_reviews: int = Field(default=500, ge=30, le=100_000)
    learn_drift_psi_thresh: float = Field(default=0.2, gt=0)  # PSI effect-size floor
    learn_drift_alpha: float = Field(default=0.005, gt=0, lt=0.5)  # per-run false-alarm bound
    learn_drift_auto_rollback: bool = False
    learn_drift_rollback_severity: str = Field(default="critical", pattern="^(warning|critical)$")
    # --- progressive delivery (rollout) ------------------------------------------------
    rollout_controller_enabled: bool = True  # off switch for the in-service controller
    rollout_controller_period_seconds: float = Field(default=15.0, gt=0, le=3600)
    rollout_default_window_seconds: float = Field(default=600.0, gt=0)
    rollout_default_min_samples: int = Field(default=50, ge=1)
    # Latency stops need the p95 gap to exceed this too: a 1.15x ratio of tiny numbers is noise.
    rollout_latency_floor_ms: float = Field(default=25.0, ge=0)
    post_promotion_watch_enabled: bool = True  # automatic rollback after a bad promotion
    post_promotion_watch_seconds: float = Field(default=1800.0, gt=0)
    post_promotion_min_samples: int = Field(default=20, ge=1)
    post_promotion_max_fallback_rate: float = Field(default=0.05, ge=0, le=1)
    post_promotion_max_error_rate: float = Field(default=0.01, ge=0, le=1)
    shadow_enabled: bool = True
    shadow_sample_rate: float = Field(default=1.0, ge=0, le=1)  # share of routing keys mirrored
    shadow_queue_max: int = Field(default=256, ge=1)  # overflow is dropped and counted
    shadow_max_concurrent: int = Field(default=4, ge=1)  # its own Jangar bulkhead
    learn_shadow_min_samples: int = Field(default=200, ge=0)
    learn_shadow_max_disagreement: float = Field(default=0.01, ge=0, le=1)  # seed 003
    learn_shadow_max_latency_ratio: float = Field(default=1.15, ge=1)  # seed 004

    # --- service ---------------------------------------------------------------------------
    admin_token: SecretStr | None = None
    live_trading_enabled: bool = False
    policy_path: Path = PROJECT_ROOT / "config" / "policy.yaml"
    controls_refresh_seconds: float = Field(default=1.0, gt=0, le=2.0)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    log_level: str = "INFO"

    # --- credentials and HTTP intake bounds (issue 8, items 9-11) ------------------------
    # Blank means unset; a set token must be at least MIN_TOKEN_CHARS long (checked below).
    scheduler_token: SecretStr | None = None
    # When SCHEDULER_TOKEN is set, /review needs it too (reviews count toward order-rate and
    # exposure reservations, so an open /review lets anyone spend a strategy's budget).
    scheduler_token_for_review: bool = True
    # Bounds on what one connection may hold: headers must arrive within this, a body within
    # that (408 request_timeout), an idle keep-alive connection is closed after this.
    http_header_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    http_keepalive_timeout_seconds: int = Field(default=5, ge=1, le=300)
    # Open connections per process; beyond it new connections are closed at once and
    # requests on existing ones get 503 (uvicorn's limit_concurrency).
    http_max_connections: int = Field(default=512, ge=1, le=100_000)

    @field_validator("admin_token", "scheduler_token", mode="before")
    @classmethod
    def _check_token(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None  # blank means unset, never "an empty secret"
        if isinstance(raw, str) and len(raw.strip()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters (e.g. `openssl rand -hex 32`)"
            )
        return raw.strip() if isinstance(raw, str) else raw

    @model_validator(mode="after")
    def _distinct_tokens(self) -> Settings:
        a, s = self.admin_token, self.scheduler_token
        if a is not None and s is not None and a.get_secret_value() == s.get_secret_value():
            raise ValueError(
                "SCHEDULER_TOKEN must differ from ADMIN_TOKEN (the scheduler must not hold admin)"
            )
        return self

    # --- operations: logs, traces, build identity (issue 11) ------------------------------
    log_access: bool = False  # one JSON line per HTTP request (uvicorn's access log)
    # Traces are exported (OTLP/HTTP) only when this is set; unset, no SDK is set up at all.
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "trade-review"
    # Baked into the image (Dockerfile ARG BUILD_SHA); the digest comes from the deploy.
    build_sha: str = Field(default="dev", max_length=64)
    image_digest: str = Field(default="unknown", max_length=128)

    @field_validator("jangar_base_url")
    @classmethod
    def _check_jangar_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from app.review.jangar_url import normalize_base_url

        normalize_base_url(value)  # raises ValueError with a readable message
        return value.strip()

    @field_validator("llm_dspy_artifact_hash")
    @classmethod
    def _check_hash(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().lower()
        if not _HASH_RE.match(value):
            raise ValueError("must be a 64-character lowercase sha256 hex digest")
        return value

    @field_validator("jangar_extra_headers", mode="before")
    @classmethod
    def _parse_headers(cls, value: Any) -> Any:
        # Accept JSON ({"x-a": "1"}) or "k=v,k2=v2" so a Knative env entry stays readable.
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return {}
            if text.startswith("{"):
                import json

                return json.loads(text)
            pairs = [p for p in text.split(",") if p.strip()]
            out: dict[str, str] = {}
            for pair in pairs:
                key, sep, val = pair.partition("=")
                if not sep or not key.strip():
                    raise ValueError("must be JSON or comma-separated key=value pairs")
                out[key.strip()] = val.strip()
            return out
        return value

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql", "postgres://")):
            raise ValueError(
                "must be sqlite+aiosqlite:///path or postgresql+asyncpg://user@host/db"
            )
        if value.startswith(("postgresql://", "postgres://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


class _ExplicitSettings(Settings):
    """Settings from the given mapping only (the process environment is not consulted)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment, refusing deprecated variables by name."""
    env = os.environ if environ is None else environ
    problems = [
        f"{name}: deprecated and no longer read; remove it "
        "(the review path is DSPy over Jangar only, see JANGAR_BASE_URL / LLM_MODEL)"
        for name in DEPRECATED_VARIABLES
        if name in env
    ]
    if problems:
        raise SettingsError(problems)
    try:
        if environ is None:
            return Settings(**overrides)
        values: dict[str, Any] = {
            k.lower(): v for k, v in environ.items() if k.lower() in Settings.model_fields
        }
        values.update(overrides)
        return _ExplicitSettings(**values)
    except ValidationError as exc:
        lines: list[str] = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]).upper() or "SETTINGS"
            lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise SettingsError(lines) from None
