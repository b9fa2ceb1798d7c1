"""Decimal bounds, plain notation, and the one structural bound on a request document (pure)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from app.numbers import ceil_to, decimal_problem, floor_to, plain, precision_step, to_decimal
from app.review import bounds
from app.review.bounds import document_problem, nesting_exceeds
from app.review.schemas import ReviewRequest
from tests.support.requests import base_request


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("999999999999999", None),  # 15 integer digits: the largest magnitude
        ("999999999999999.999999999999999999", None),
        ("1000000000000000", "below 1e15"),
        ("1e15", "below 1e15"),
        ("1e999999", "below 1e15"),
        ("0.000000000000000001", None),  # 18 decimal places: the finest step
        ("0.0000000000000000001", "at most 18 decimal places"),
        ("1e-400", "at most 18 decimal places"),
        ("10.00000000000000000000000000", None),  # trailing zeros carry no precision
        ("1E+14", None),
        ("0E-400", None),  # zero is zero, whatever its exponent
        ("NaN", "finite"),
        ("-Infinity", "finite"),
        ("-999999999999999", None),
    ],
)
def test_decimal_problem_when_checked_then_bounds_digits_and_exponent(
    text: str, problem: str | None
) -> None:
    found = decimal_problem(Decimal(text))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("215.02", Decimal("215.02")),
        (215.02, Decimal("215.02")),
        (3, Decimal(3)),
        (" 5 ", Decimal(5)),
        ("1e999999", None),
        ("1e-400", None),
        ("abc", None),
        ("nan", None),
        (True, None),
        (None, None),
        ([1], None),
        ("1" * 65, None),
        ("0" * 61 + "1.5", Decimal("1.5")),  # 64 characters: read
        ("0" * 62 + "1.5", None),  # 65 characters: not read
    ],
)
def test_to_decimal_when_given_free_form_values_then_bounded_or_none(
    value: Any, expected: Decimal | None
) -> None:
    assert to_decimal(value) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [("1E+18", "1000000000000000000"), ("1E-7", "0.0000001"), ("10.50", "10.50"), ("0", "0")],
)
def test_plain_when_formatting_then_never_exponent_notation(value: str, text: str) -> None:
    assert plain(Decimal(value)) == text


def test_step_rounding_when_applied_then_floor_and_ceil_to_multiples() -> None:
    assert floor_to(Decimal("250"), Decimal(100)) == 200
    assert ceil_to(Decimal("250"), Decimal(100)) == 300
    assert floor_to(Decimal("300"), Decimal(100)) == ceil_to(Decimal("300"), Decimal(100)) == 300
    assert precision_step(Decimal("2.50")) == Decimal("0.1")
    assert precision_step(Decimal("1E+1")) == precision_step(Decimal("10")) == 1


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    root = node
    for _ in range(depth - 1):
        node["x"] = {}
        node = node["x"]
    return root


def _request_with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = base_request()
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return body


def test_document_when_free_form_nesting_is_at_the_cap_then_accepted() -> None:
    # body(1) -> decision(2) -> params(3): params may hold MAX_DEPTH - 2 more levels.
    body = _request_with(("decision", "params"), _nested(bounds.MAX_DEPTH - 2))
    assert document_problem(body) is None
    ReviewRequest.model_validate(body)


@pytest.mark.parametrize("depth", [bounds.MAX_DEPTH - 1, 900, 5000])
def test_document_when_nesting_exceeds_the_cap_then_refused(depth: int) -> None:
    body = _request_with(("decision", "params"), _nested(depth))
    assert document_problem(body) == (
        "decision.params" + ".x" * (bounds.MAX_DEPTH - 2),
        f"nested deeper than {bounds.MAX_DEPTH} levels",
    )
    with pytest.raises(ValidationError, match="nested deeper than 32 levels"):
        ReviewRequest.model_validate(body)


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (("decision", "strategy_id"), "a\x00b", "control character"),
        (("decision", "rationale"), "bell\x07", "control character"),
        (("decision", "rationale"), "del\x7f", "control character"),
        (("decision", "rationale"), "c1\x85", "control character"),
        (("account",), {"k\x00": 1}, "a key contains a control character"),
        (("account",), {"k\n": 1}, "a key contains a control character"),
        (("positions",), [{"symbol": "AAPL\x00"}], "control character"),
        (("account",), {"x": "y" * (bounds.MAX_STRING_CHARS + 1)}, "string longer than"),
        (("account",), {"k" * (bounds.MAX_KEY_CHARS + 1): 1}, "key is longer"),
        (("account",), {str(i): i for i in range(bounds.MAX_OBJECT_KEYS + 1)}, "keys"),
        (("account",), {"a": list(range(bounds.MAX_ARRAY_ITEMS + 1))}, "items"),
        (("account",), {"a": float("inf")}, "not finite"),
        (("account",), {"a": 2**63}, "64-bit"),
        (("account",), {"a": -(2**63) - 1}, "64-bit"),
    ],
)
def test_document_when_a_value_breaks_a_bound_then_refused_naming_the_problem(
    path: tuple[str, ...], value: Any, problem: str
) -> None:
    found = document_problem(_request_with(path, value))
    assert found is not None and problem in found[1], found


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("decision", "rationale"), "line one\nline two\ttabbed\r\n"),
        (("account",), {"x": "y" * bounds.MAX_STRING_CHARS}),
        (("account",), {"k" * bounds.MAX_KEY_CHARS: 1}),
        (("account",), {str(i): i for i in range(bounds.MAX_OBJECT_KEYS)}),
        (("account",), {"a": list(range(bounds.MAX_ARRAY_ITEMS))}),
        (("account",), {"a": 2**63 - 1, "b": -(2**63), "c": 1e308, "d": "ÄÖ €"}),
    ],
)
def test_document_when_values_sit_at_the_bounds_then_accepted(
    path: tuple[str, ...], value: Any
) -> None:
    assert document_problem(_request_with(path, value)) is None


def test_document_when_too_many_values_then_refused() -> None:
    body = _request_with(("account",), {"a": [[0] * 1000 for _ in range(60)]})
    found = document_problem(body)
    assert found is not None and "values in the request" in found[1]


@pytest.mark.parametrize("field", ["strategy_id", "timeframe"])
def test_identifier_when_it_holds_a_newline_then_refused(field: str) -> None:
    body = _request_with(("decision", field), "x\ny")
    with pytest.raises(ValidationError, match=field):
        ReviewRequest.model_validate(body)


def test_nesting_scan_when_brackets_sit_inside_strings_then_not_counted() -> None:
    assert nesting_exceeds(b"[" * 33 + b"]" * 33)
    assert not nesting_exceeds(b"[" * 32 + b"]" * 32)
    assert not nesting_exceeds(b'{"a": "' + b"[" * 100 + b'"}')
    assert nesting_exceeds(b'{"a": "\\"[[[", "b": ' + b"[" * 40)


def test_request_when_decimals_come_in_exponent_notation_then_dumped_plain() -> None:
    body = copy.deepcopy(base_request())
    body["decision"]["qty"] = "1E+3"
    body["portfolio"]["equity"] = "1.5e5"
    dumped = ReviewRequest.model_validate(body).model_dump(mode="json")
    assert dumped["decision"]["qty"] == "1000"
    assert dumped["portfolio"]["equity"] == "150000"
