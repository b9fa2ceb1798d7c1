"""The HTTP client a Jangar engine borrows when its calls run under the review's deadline.

Kept free of dspy so the app can build it at start-up without importing the DSPy stack.
"""

from __future__ import annotations

import httpx


def deadline_client(max_connections: int, *, pool_timeout_s: float = 1.0) -> httpx.AsyncClient:
    """One pooled client for the serving (or shadow, or offline-evaluation) executor.

    Every call through it runs under the review's deadline (``asyncio.timeout_at`` in
    ``review/live.py``), and only that deadline ends a call: no connect, read or write timer.
    Such a timer runs on the same event-loop clock as the deadline but is shorter, so when the
    loop stalls (a gen-2 collection of a large heap, a throttled or busy CPU) it expires across
    the stall on a step the kernel had already finished: a loopback connect that took
    microseconds was reported as ``ConnectTimeout`` after a 4 s stall, and a call that should
    have failed at once with its own error (a reset, a 500) or answered ended as ``timeout``
    (and counted as a breaker failure). Against a peer that is really dead such a timer only
    ends the call sooner with the same fallback; the breaker bounds how many calls pay the
    deadline. The pool timer stays: a call waits for a slot only if more calls are in flight
    than ``max_connections``, which the bulkhead prevents in serving.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=None, read=None, write=None, pool=pool_timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
    )
