"""The sticky splitter: stable, proportional, monotone across steps, reshuffled by a new salt."""

from __future__ import annotations

import pytest

from app.rollout.splitter import on_canary, routing_key

KEYS = [routing_key(f"strat-{i % 997}", f"SYM{i}") for i in range(100_000)]


def test_same_key_same_arm() -> None:
    for key in KEYS[:1000]:
        first = on_canary(key, "salt-a", 25)
        assert all(on_canary(key, "salt-a", 25) is first for _ in range(3))


@pytest.mark.parametrize("weight", [5, 25, 50, 100])
def test_each_step_share_within_one_point(weight: float) -> None:
    share = sum(on_canary(k, "salt-a", weight) for k in KEYS) / len(KEYS) * 100
    assert abs(share - weight) < 1.0, share


def test_steps_only_add_keys_to_the_canary() -> None:
    at5 = {k for k in KEYS if on_canary(k, "s", 5)}
    at25 = {k for k in KEYS if on_canary(k, "s", 25)}
    assert at5 and at5 <= at25


def test_a_new_salt_moves_the_slice() -> None:
    a = {k for k in KEYS if on_canary(k, "salt-a", 5)}
    b = {k for k in KEYS if on_canary(k, "salt-b", 5)}
    overlap = len(a & b) / len(a)
    assert overlap < 0.2  # independent slices overlap ~5%


def test_zero_and_full_weight() -> None:
    assert not any(on_canary(k, "s", 0) for k in KEYS[:100])
    assert all(on_canary(k, "s", 100) for k in KEYS[:100])
