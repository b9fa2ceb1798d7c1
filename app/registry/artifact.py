"""The in-memory artifact: a verified registry row, ready to serve."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.registry.hashing import artifact_hash
from app.registry.states import ExecutorKind
from app.review.heuristic import DEFAULT_PARAMS


class Refusal(StrEnum):
    """Why an artifact is refused (closed set: error codes and metric labels come from it)."""

    CONTENT_ALTERED = "content_altered"  # the stored content no longer hashes to its address
    STATE_PRUNED = "state_pruned"  # retention dropped its program state: it can never serve
    SIGNATURE_MISMATCH = "signature_mismatch"  # built for another LLM_DSPY_SIGNATURE_VERSION
    NEVER_ACTIVE = "never_active"  # a pin (or rollback) names an artifact never ACTIVE
    MISSING = "missing"  # no such artifact in the registry
    INVALID = "invalid"  # manifest or program state the service cannot build


class ArtifactRefused(Exception):
    """Never serve (or move into a serving state) this artifact; ``reason`` says why."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# What retention leaves of a pruned artifact's program state (its row and history stay).
PRUNED_STATE: dict[str, Any] = {"pruned": True}


def is_pruned(program_state: dict[str, Any]) -> bool:
    return program_state == PRUNED_STATE


def verify_content(
    stored_hash: str, manifest: dict[str, Any], program_state: dict[str, Any]
) -> None:
    """Refuse content that retention pruned or that no longer hashes to its address."""
    if is_pruned(program_state):
        raise ArtifactRefused(
            Refusal.STATE_PRUNED,
            f"artifact {stored_hash[:12]}: program state was pruned by retention",
        )
    actual = artifact_hash(manifest, program_state)
    if actual != stored_hash:
        raise ArtifactRefused(
            Refusal.CONTENT_ALTERED,
            f"artifact {stored_hash[:12]} hashes to {actual[:12]}: content was altered",
        )


@dataclass(frozen=True, slots=True)
class Artifact:
    artifact_hash: str
    program_name: str
    signature_version: str
    executor: ExecutorKind
    model: str | None
    manifest: dict[str, Any]
    program_state: dict[str, Any]

    @classmethod
    def verified(
        cls,
        stored_hash: str,
        manifest: dict[str, Any],
        program_state: dict[str, Any],
        *,
        signature_version: str,
    ) -> Artifact:
        """The artifact, if its content is intact and built for ``signature_version``."""
        verify_content(stored_hash, manifest, program_state)
        built_for = str(manifest.get("signature_version"))
        if built_for != signature_version:
            raise ArtifactRefused(
                Refusal.SIGNATURE_MISMATCH,
                f"artifact {stored_hash[:12]} was built for signature version {built_for}, "
                f"this service runs {signature_version}",
            )
        return cls(
            artifact_hash=stored_hash,
            program_name=str(manifest["program_name"]),
            signature_version=built_for,
            executor=ExecutorKind(manifest["executor"]),
            model=manifest.get("model"),
            manifest=manifest,
            program_state=program_state,
        )


def heuristic_bootstrap(
    program_name: str, signature_version: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Manifest and state of the bootstrap heuristic artifact (deterministic, so idempotent)."""
    manifest: dict[str, Any] = {
        "program_name": program_name,
        "signature_version": signature_version,
        "executor": ExecutorKind.HEURISTIC.value,
        "model": None,
        "lm_params": {},
        "optimizer": None,
        "dataset_hash": None,
        "compile_config_hash": None,
        "description": "bootstrap deterministic heuristic reviewer",
    }
    state: dict[str, Any] = {"heuristic": {"version": 1, "params": dict(DEFAULT_PARAMS)}}
    return manifest, state


def live_manifest(
    *,
    program_name: str,
    signature_version: str,
    model: str,
    optimizer: str | None,
    dataset_hash: str | None,
    compile_config_hash: str | None = None,
    lm_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Manifest of a dspy_live artifact (its program state travels beside it)."""
    return {
        "program_name": program_name,
        "signature_version": signature_version,
        "executor": ExecutorKind.DSPY_LIVE.value,
        "model": model,
        "lm_params": lm_params or {},
        "optimizer": optimizer,
        "dataset_hash": dataset_hash,
        "compile_config_hash": compile_config_hash,
    }
