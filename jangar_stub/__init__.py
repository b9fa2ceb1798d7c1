"""Loopback Jangar: an OpenAI chat-completions server with scriptable faults (tests, demos)."""

from jangar_stub.server import (
    DEFAULT_ANSWER,
    Behaviour,
    JangarStub,
    RecordedRequest,
    chat_adapter_content,
)

__all__ = ["DEFAULT_ANSWER", "Behaviour", "JangarStub", "RecordedRequest", "chat_adapter_content"]
