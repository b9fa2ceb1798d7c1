"""The real service as a subprocess on a free loopback port (uvicorn, uvloop, httptools)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_service(
    env: dict[str, str], timeout: float = 30.0, log_path: Path | None = None
) -> Iterator[str]:
    """Migrate, start ``python -m app serve``, wait for /readyz 200; yields the base URL.
    ``log_path``: the service's stderr (its JSON log) goes to that file instead of a pipe."""
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port), "HOST": "127.0.0.1"}
    subprocess.run(
        [sys.executable, "-m", "app", "migrate"],
        env=full_env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    log = log_path.open("wb") if log_path is not None else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve"],
        env=full_env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                out = log_path.read_bytes() if log_path else proc.stderr.read()  # type: ignore[union-attr]
                raise RuntimeError(f"service exited: {out.decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("service not ready in time")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not None:
            log.close()
