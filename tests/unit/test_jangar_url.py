"""JANGAR_BASE_URL normalisation: every accepted spelling maps to one chat-completions URL."""

from __future__ import annotations

import pytest

from app.review.jangar import normalize_base_url

CHAT = "/openai/v1/chat/completions"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://jangar:8080", "http://jangar:8080" + CHAT),
        ("http://jangar:8080/", "http://jangar:8080" + CHAT),
        ("http://jangar:8080/openai/v1", "http://jangar:8080" + CHAT),
        ("http://jangar:8080/openai/v1/", "http://jangar:8080" + CHAT),
        ("https://jangar.example.com", "https://jangar.example.com" + CHAT),
        ("https://gw.example.com/jangar", "https://gw.example.com/jangar" + CHAT),
        ("https://gw.example.com/jangar/openai/v1", "https://gw.example.com/jangar" + CHAT),
        ("http://127.0.0.1:8181", "http://127.0.0.1:8181" + CHAT),
        ("  http://jangar:8080/openai/v1  ", "http://jangar:8080" + CHAT),
    ],
)
def test_accepted_base_urls(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "jangar:8080",
        "jangar.example.com/openai/v1",
        "ftp://jangar:8080",
        "ws://jangar:8080/openai/v1",
        "http://",
        "http://jangar:8080/openai/v1?x=1",
        "http://jangar:8080/#frag",
        "http://jangar:8080/v1",
        "http://jangar:8080/openai",
        "http://jangar:8080/openai/v1/chat/completions",
    ],
)
def test_refused_base_urls(given: str) -> None:
    with pytest.raises(ValueError, match="JANGAR_BASE_URL"):
        normalize_base_url(given)
