"""The HTTP client a Jangar engine borrows when its calls run under the review's deadline.

Kept free of dspy so the app can build it at start-up without importing the DSPy stack.
"""

from __future__ import annotations

import httpx


def deadline_client(max_connections: int, *, pool_timeout_s: float = 1.0) -> httpx.AsyncClient:
    """One pooled client for the serving (or shadow, or offline-evaluation) executor.

    The review deadline bounds each call; these only stop a dead peer early.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=2.0, read=None, write=5.0, pool=pool_timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )
