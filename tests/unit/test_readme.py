"""The README's runnable blocks run as written (a doc test, so the README cannot rot).

Only fenced blocks whose info string is ``sh runnable`` are run: prose and indented examples
stay free to show commands that need a cluster or a second machine. Each block runs in bash
(``set -euo pipefail``) from the repository root, in its own process group (background jobs
such as ``make run &`` are stopped with the group), on a throwaway SQLite database and a free
port (``PORT``), bounded in time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```sh runnable\n(.*?)^```", re.S | re.M)
TIMEOUT_S = 120  # make run compiles bytecode on a cold machine; a bound, not a speed target


def runnable_blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


def test_the_readme_has_runnable_blocks() -> None:
    assert runnable_blocks()


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_block_runs_as_written(index: int, tmp_path: Path) -> None:
    block = runnable_blocks()[index]
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'readme.db'}",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    log = tmp_path / "block.log"
    # A file, not a pipe: background jobs keep their stdout open after the block ends.
    with log.open("w") as sink:
        proc = subprocess.Popen(
            ["bash", "-c", "set -euo pipefail\n" + block],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            # The block's background jobs (the service) share its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    out = log.read_text()
    assert proc.returncode is not None and proc.returncode >= 0, f"block {index} timed out"
    assert proc.returncode == 0, f"block {index} failed:\n{block}\n--- output ---\n{out[-3000:]}"
    if "app demo" in block:
        assert "(kept stale on purpose): REJECT" in out
        assert re.search(r"stale \(\d+d \d+h old, max 300 s\)", out), out[-2000:]
        assert "SUBMIT" in out
