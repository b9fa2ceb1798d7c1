"""DSPy's adapter helpers build their pydantic TypeAdapters through the shared cache, and the
review program formats and parses exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime

import dspy.adapters.utils as dspy_adapter_utils
import pydantic

from app.review.program import (
    ReviewAdapter,
    install_type_adapter_cache,
    new_program,
    program_inputs,
)
from app.review.schemas import ReviewRequest
from jangar_stub import DEFAULT_ANSWER, chat_adapter_content
from tests.support.requests import base_request

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _format_and_parse() -> tuple[object, dict[str, object]]:
    adapter = ReviewAdapter()
    signature = new_program().review.signature
    inputs = program_inputs(ReviewRequest.model_validate(base_request(NOW)))
    messages = adapter.format(signature, [], inputs)
    return messages, adapter.parse(signature, chat_adapter_content(DEFAULT_ANSWER))


def test_cache_when_installed_then_dspy_builds_each_type_adapter_once() -> None:
    before = _format_and_parse()  # whatever is installed now: the reference result
    assert install_type_adapter_cache(), "dspy.adapters.utils no longer uses TypeAdapter"
    cache = dspy_adapter_utils.TypeAdapter
    assert not isinstance(cache, type)
    first = cache(list[str])
    assert cache(list[str]) is first
    assert install_type_adapter_cache()  # idempotent
    assert dspy_adapter_utils.TypeAdapter is cache
    after = _format_and_parse()
    assert after == before
    assert after[1]["verdict"] == "approve"


def test_cache_when_annotation_unhashable_or_configured_then_builds_fresh() -> None:
    install_type_adapter_cache()
    cache = dspy_adapter_utils.TypeAdapter
    config = pydantic.ConfigDict(strict=True)
    assert cache(int, config=config) is not cache(int, config=config)
