"""Decimal rules shared by the schema, the gates, the planner and the heuristic (pure).

Every decimal the service accepts is bounded (``decimal_problem``): at most
``MAX_INTEGER_DIGITS`` digits before the point and ``MAX_FRACTION_DIGITS`` after it, so a value
such as ``1e999999`` or ``1e-400`` never reaches arithmetic. Arithmetic on those values runs under
``DECIMAL_CONTEXT``: precision wide enough that products and ratios of bounded values are exact
enough for a limit comparison, and traps on, so a computation that still goes wrong raises an
``ArithmeticError`` that the caller turns into a fail-closed answer (never a silent NaN that
compares as "passes"). Decimals are written in plain notation (``plain``), never ``1E+18``.
"""

from __future__ import annotations

import math
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any

MAX_INTEGER_DIGITS = 15  # |value| < 10**15: larger than any equity or order this desk sees
MAX_FRACTION_DIGITS = 18  # finer than any price or quantity increment (and float noise)

DECIMAL_CONTEXT = Context(
    prec=80,
    rounding=ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)


def decimal_problem(value: Decimal) -> str | None:
    """Why ``value`` is outside the accepted range, or ``None`` when it is fine."""
    if not value.is_finite():
        return "must be a finite number"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: an int exponent
    # Trailing zeros carry no magnitude: 10.000 is 10 (as_tuple keeps them, normalize() rounds).
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
        exponent += 1
    if exponent + significant > MAX_INTEGER_DIGITS and any(digits):
        return f"must be below 1e{MAX_INTEGER_DIGITS} in magnitude"
    if -exponent > MAX_FRACTION_DIGITS and any(digits):
        return f"must have at most {MAX_FRACTION_DIGITS} decimal places"
    return None


def to_decimal(value: Any) -> Decimal | None:
    """A bounded finite decimal from a free-form JSON value (str or number), else ``None``."""
    if (
        value is None
        or isinstance(value, bool)
        or not isinstance(value, (str, int, float, Decimal))
    ):
        return None
    if isinstance(value, str) and len(value) > 64:
        return None
    try:
        out = Decimal(str(value).strip())
    except ArithmeticError:
        return None
    return out if decimal_problem(out) is None else None


def plain(value: Decimal) -> str:
    """Positional notation: ``1E+3`` -> ``"1000"``, ``1E-7`` -> ``"0.0000001"``."""
    return format(value, "f")


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """The largest multiple of ``step`` (> 0) not above ``value``."""
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of ``step`` (> 0) not below ``value``."""
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


def precision_step(original: Decimal) -> Decimal:
    """The increment of ``original``'s last significant decimal place (1 for whole numbers)."""
    _, digits, exponent = original.as_tuple()
    assert isinstance(exponent, int)
    significant = len(digits)
    while significant > 1 and digits[significant - 1] == 0:
        significant -= 1
        exponent += 1
    return Decimal(1).scaleb(min(exponent, 0))


def over_ratio(value: float, ratio: float, base: float) -> bool:
    """``value > ratio * base``, where a value exactly at the ratio is at the bar, not over it:
    ``1.15 * 100.0`` is ``114.99999999999999`` in binary floating point, so a plain ``>`` would
    refuse 115 ms against a 1.15x bar on 100 ms."""
    bar = ratio * base
    return value > bar and not math.isclose(value, bar, rel_tol=1e-9, abs_tol=1e-12)
