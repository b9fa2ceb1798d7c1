"""Content addressing: ``artifact_hash = sha256(canonical JSON of manifest + program state)``."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same object always gives the same bytes."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_hash(manifest: dict[str, Any], program_state: dict[str, Any]) -> str:
    return sha256_hex(canonical_json({"manifest": manifest, "program_state": program_state}))
