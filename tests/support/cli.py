"""The operator CLI, invoked in-process (typer's runner) on a thread of its own."""

from __future__ import annotations

import threading
from typing import Any

from typer.testing import CliRunner

from app.cli import cli


def invoke(*args: str, env: dict[str, str]) -> Any:
    """Run the CLI in a thread: its asyncio.run must not touch the test session's loop."""
    out: list[Any] = []
    thread = threading.Thread(
        target=lambda: out.append(CliRunner().invoke(cli, list(args), env=env))
    )
    thread.start()
    thread.join(120)
    return out[0]
