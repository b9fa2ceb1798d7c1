"""The in-memory artifact: a verified registry row, ready to serve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.registry.hashing import artifact_hash
from app.registry.states import ExecutorKind
from app.review.heuristic import DEFAULT_PARAMS


class ArtifactIntegrityError(Exception):
    """The stored content does not hash to the stored address: never serve it."""


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
        cls, stored_hash: str, manifest: dict[str, Any], program_state: dict[str, Any]
    ) -> Artifact:
        actual = artifact_hash(manifest, program_state)
        if actual != stored_hash:
            raise ArtifactIntegrityError(
                f"artifact {stored_hash[:12]} hashes to {actual[:12]}: content was altered"
            )
        return cls(
            artifact_hash=stored_hash,
            program_name=str(manifest["program_name"]),
            signature_version=str(manifest["signature_version"]),
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
