"""Jangar base-URL contract, kept free of dspy/httpx so settings can validate it cheaply."""

from __future__ import annotations

from urllib.parse import urlsplit

_SUFFIX = "/openai/v1"


def normalize_base_url(url: str) -> str:
    """Return the chat-completions URL for a Jangar base URL.

    Accepts ``http(s)://host[:port][/prefix]`` with or without a trailing ``/openai/v1``.
    Anything else (no scheme, another scheme, query, fragment, a different API suffix such as
    ``/v1``) is refused with a readable ``ValueError``.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"JANGAR_BASE_URL must start with http:// or https:// (got {url!r})")
    if not parts.hostname:
        raise ValueError(f"JANGAR_BASE_URL has no host (got {url!r})")
    if parts.query or parts.fragment:
        raise ValueError(f"JANGAR_BASE_URL must not carry a query or fragment (got {url!r})")
    path = parts.path.rstrip("/")
    if path.endswith(_SUFFIX):
        path = path[: -len(_SUFFIX)]
    segments = [s for s in path.split("/") if s]
    if segments and segments[-1] in ("v1", "openai", "chat", "completions"):
        raise ValueError(
            "JANGAR_BASE_URL must be the Jangar root, optionally ending in /openai/v1 "
            f"(got {url!r})"
        )
    return f"{parts.scheme}://{parts.netloc}{path}{_SUFFIX}/chat/completions"
