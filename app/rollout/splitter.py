"""Sticky traffic split (pure: no clock, no I/O).

A routing key (``strategy_id:symbol``) hashed with the rollout's salt lands in one of 10,000
buckets; the key is on the canary arm when its bucket is below ``weight_pct * 100``. Buckets are
fixed for the life of a rollout, so a step up only adds keys to the canary (never moves one back)
and one strategy-symbol sees one arm for the whole step. A new salt reshuffles the slice.
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000


def routing_key(strategy_id: str, symbol: str) -> str:
    return f"{strategy_id}:{symbol}"


def bucket(key: str, salt: str) -> int:
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def on_canary(key: str, salt: str, weight_pct: float) -> bool:
    """Whether ``key`` is served by the canary at ``weight_pct`` (0..100)."""
    if weight_pct <= 0:
        return False
    if weight_pct >= 100:
        return True
    return bucket(key, salt) < round(weight_pct * BUCKETS / 100)
