"""Loopback Jangar: an OpenAI chat-completions server with scriptable faults (tests, demos)."""

from jangar_stub.server import (
    DEFAULT_ANSWER,
    AnswerRule,
    Behaviour,
    JangarStub,
    RecordedRequest,
    answer_for,
    chat_adapter_content,
    requested_fields,
)

__all__ = [
    "DEFAULT_ANSWER",
    "AnswerRule",
    "Behaviour",
    "JangarStub",
    "RecordedRequest",
    "answer_for",
    "chat_adapter_content",
    "requested_fields",
]
