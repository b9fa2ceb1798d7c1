"""DSPy's adapter helpers build their pydantic TypeAdapters through the shared cache, and the
review program formats and parses exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime

import dspy
import dspy.adapters.utils as dspy_adapter_utils
import pydantic

from app.review.program import (
    ReviewAdapter,
    TradeReviewSignature,
    install_type_adapter_cache,
    new_program,
    program_inputs,
    program_state,
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


class _Other(dspy.Signature):
    """Summarise an order."""

    order: dict[str, object] = dspy.InputField()
    summary: str = dspy.OutputField()
    score: float = dspy.OutputField()


def test_review_adapter_when_signatures_change_then_formats_as_chat_adapter() -> None:
    """The cached system message and output-field reminder are the ones ChatAdapter builds, per
    signature: the review program, a loaded state with new instructions and field text, and an
    unrelated signature, formatted in turn by one adapter (twice, so the second is cached)."""
    state = program_state(new_program())
    state["review"]["signature"]["instructions"] = "Be brief.\nVeto event risk."
    state["review"]["signature"]["fields"][0]["description"] = "the order, as sent"
    inputs = program_inputs(ReviewRequest.model_validate(base_request(NOW)))
    loaded: type[dspy.Signature] = new_program(state).review.signature  # pyright: ignore[reportAssignmentType]
    assert loaded is not TradeReviewSignature
    cases: list[tuple[type[dspy.Signature], dict[str, object]]] = [
        (TradeReviewSignature, inputs),
        (loaded, inputs),
        (_Other, {"order": inputs["order"]}),
    ]
    adapter = ReviewAdapter()
    reference = dspy.ChatAdapter(use_json_adapter_fallback=False)
    for _ in range(2):
        for signature, values in cases:
            assert adapter.format(signature, [], values) == reference.format(signature, [], values)
            assert adapter.user_message_output_requirements(
                signature
            ) == reference.user_message_output_requirements(signature)
