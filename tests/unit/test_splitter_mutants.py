"""The sticky splitter at its edges: pinned buckets, the bucket line, weights outside 0..100.

Buckets are pinned to literal values: a rollout's canary slice must not move when the code is
redeployed mid-rollout, so any change of the key format, the hash input, the digest slice or the
bucket count is a behaviour change these tests catch.
"""

from __future__ import annotations

import pytest

from app.rollout.splitter import BUCKETS, bucket, on_canary, routing_key

# Keys whose buckets under salt "s" sit on either side of the 5% and 25% lines.
BUCKET_499 = "strat-16922:AAPL"
BUCKET_500 = "strat-21162:AAPL"
BUCKET_2499 = "strat-27:AAPL"
BUCKET_2500 = "strat-8489:AAPL"


def test_routing_key_when_built_then_strategy_colon_symbol() -> None:
    assert routing_key("strat-a", "AAPL") == "strat-a:AAPL"


def test_bucket_count_when_read_then_ten_thousand() -> None:
    assert BUCKETS == 10_000


@pytest.mark.parametrize(
    ("key", "salt", "expected"),
    [
        ("strat-a:AAPL", "salt-a", 622),
        ("strat-a:AAPL", "salt-b", 4429),
        ("strat-b:MSFT", "salt-a", 788),
        ("", "", 3192),
        ("x:y", "", 714),
        (BUCKET_499, "s", 499),
        (BUCKET_500, "s", 500),
        (BUCKET_2499, "s", 2499),
        (BUCKET_2500, "s", 2500),
    ],
)
def test_bucket_when_key_and_salt_given_then_pinned_value(
    key: str, salt: str, expected: int
) -> None:
    assert bucket(key, salt) == expected


def test_bucket_when_salt_and_key_are_split_differently_then_differs() -> None:
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert bucket("c", "ab") != bucket("bc", "a")


def test_buckets_when_many_keys_then_whole_range_used_and_nothing_outside() -> None:
    seen = {bucket(routing_key(f"s{i}", "X"), "salt") for i in range(50_000)}

    assert min(seen) == 0
    assert max(seen) == BUCKETS - 1
    assert len(seen) > 9_900


@pytest.mark.parametrize(
    ("key", "weight", "expected"),
    [
        # the canary is buckets [0, weight * 100): bucket 500 is the first one outside 5%
        (BUCKET_499, 5, True),
        (BUCKET_500, 5, False),
        (BUCKET_500, 5.01, True),
        (BUCKET_2499, 25, True),
        (BUCKET_2500, 25, False),
        # the line is rounded to a whole bucket: 4.996% is 499.6 -> 500 buckets
        (BUCKET_499, 4.996, True),
        (BUCKET_499, 4.994, False),
    ],
)
def test_on_canary_when_bucket_is_at_the_line_then_only_buckets_below_it(
    key: str, weight: float, expected: bool
) -> None:
    assert on_canary(key, "s", weight) is expected


@pytest.mark.parametrize("weight", [0, -5, -0.01])
def test_on_canary_when_weight_zero_or_negative_then_never(weight: float) -> None:
    assert not any(on_canary(k, "s", weight) for k in (BUCKET_499, BUCKET_500, "", "x:y"))
    assert on_canary(routing_key("a", "b"), "s", weight) is False


@pytest.mark.parametrize("weight", [100, 100.5, 1e9])
def test_on_canary_when_weight_full_or_above_then_always(weight: float) -> None:
    assert all(on_canary(k, "s", weight) is True for k in (BUCKET_2500, "", "x:y"))


def test_on_canary_when_weight_is_one_bucket_then_exactly_bucket_zero() -> None:
    keys = [routing_key(f"s{i}", "X") for i in range(50_000)]

    on = [k for k in keys if on_canary(k, "salt", 0.01)]

    assert on and all(bucket(k, "salt") == 0 for k in on)
