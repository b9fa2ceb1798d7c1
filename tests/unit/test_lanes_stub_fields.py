"""The Jangar stub answers the fields a request asks for (optimizers use other signatures)."""

from __future__ import annotations

import json
from typing import Any

import dspy

from app.review.program import TradeReviewSignature
from jangar_stub import DEFAULT_ANSWER, AnswerRule, answer_for, requested_fields


class ProposeInstruction(dspy.Signature):
    """Propose an instruction."""

    program_description: str = dspy.InputField()
    proposed_instruction: str = dspy.OutputField()
    confident: bool = dspy.OutputField()
    tier: Any = dspy.OutputField()


def body(adapter: Any, signature: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"messages": adapter.format(signature, demos=[], inputs=inputs)}


REVIEW_INPUTS: dict[str, Any] = {
    "order": {"symbol": "AAPL"},
    "portfolio": {},
    "market": {},
    "market_context": {"riskFlags": ["earnings_window"]},
    "recent_decisions": [],
    "policy": {},
}


def test_requested_fields_when_review_signature_then_every_output_in_order() -> None:
    fields = requested_fields(body(dspy.ChatAdapter(), TradeReviewSignature, REVIEW_INPUTS))
    assert [name for name, _ in fields] == list(TradeReviewSignature.output_fields)


def test_answer_for_when_other_signature_then_plausible_deterministic_values() -> None:
    request = body(dspy.ChatAdapter(), ProposeInstruction, {"program_description": "reviews"})
    answer = answer_for(request, DEFAULT_ANSWER)
    assert set(answer) == {"proposed_instruction", "confident", "tier"}
    assert "risk reviewer" in str(answer["proposed_instruction"])
    assert answer["confident"] is True
    assert answer == answer_for(request, DEFAULT_ANSWER)
    other = body(dspy.ChatAdapter(), ProposeInstruction, {"program_description": "other"})
    assert (
        answer_for(other, DEFAULT_ANSWER)["proposed_instruction"] != answer["proposed_instruction"]
    )


def test_answer_for_when_rule_needs_instructions_then_only_applies_with_them() -> None:
    rule = AnswerRule("earnings_window", {"verdict": "veto"}, instructions_contain="event risk")
    plain = body(dspy.ChatAdapter(), TradeReviewSignature, REVIEW_INPUTS)
    assert answer_for(plain, DEFAULT_ANSWER, [rule])["verdict"] == "approve"
    instructed = TradeReviewSignature.with_instructions("Veto orders carrying event risk.")
    request = body(dspy.ChatAdapter(), instructed, REVIEW_INPUTS)
    assert answer_for(request, DEFAULT_ANSWER, [rule])["verdict"] == "veto"


def test_answer_for_when_review_field_missing_from_answer_then_it_stays_missing() -> None:
    # Tests provoke parse failures this way; the stub must not paper over them.
    partial = {k: v for k, v in DEFAULT_ANSWER.items() if k != "confidence"}
    answer = answer_for(body(dspy.ChatAdapter(), TradeReviewSignature, REVIEW_INPUTS), partial)
    assert "confidence" not in answer and answer["verdict"] == "approve"


def test_answer_for_when_not_a_chat_adapter_prompt_then_configured_answer() -> None:
    request = {"messages": [{"role": "user", "content": "hello"}]}
    assert answer_for(request, {"verdict": "approve"}) == {"verdict": "approve"}
    json.dumps(answer_for(request, DEFAULT_ANSWER))
