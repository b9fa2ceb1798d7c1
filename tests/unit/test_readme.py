"""Every README command block runs as written (a doc test, so the README cannot rot).

Every command block is fenced. A fenced block whose info string is ``sh runnable`` is run; any
other shell block must say on the line just before its fence why it is not
(``<!-- not run: a Kubernetes cluster -->``), and no command is left in an indented block
that nothing would run. Each runnable block runs in bash (``set -euo pipefail``) from the
repository root, in its own process group (background jobs such as ``make run &`` are stopped
with the group), on a throwaway SQLite database, a free port for the service (``PORT``) and one
for the Jangar stub (``STUB_PORT``), bounded in time. Where a block's output proves what its
prose says (an artifact serves, a control changed), the test checks that output.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RUNNABLE = "sh runnable"
SHELL_INFO = {"sh", "bash", "shell", "console", "zsh"}
NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>\S.*?) -->$")
# A command in an indented (unfenced) code block: nothing would run it.
INDENTED_COMMAND = re.compile(r"^ {4,}(?:make |\.venv/bin/python -m app|python -m app|curl)")
TIMEOUT_S = 120  # make run compiles bytecode on a cold machine; a bound, not a speed target


@dataclass(frozen=True, slots=True)
class Fence:
    line: int  # 1-based line of the opening fence
    info: str
    before: str  # the line just before the opening fence
    body: str


def fences(text: str) -> tuple[list[Fence], list[tuple[int, str]]]:
    """The fenced blocks, and the lines outside every fence (numbered from 1)."""
    lines = text.splitlines()
    found: list[Fence] = []
    outside: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("```"):  # a fence in a list item is indented
            outside.append((i + 1, lines[i]))
            i += 1
            continue
        start, info = i, lines[i].lstrip()[3:].strip()
        i += 1
        while i < len(lines) and not lines[i].lstrip().startswith("```"):
            i += 1
        assert i < len(lines), f"README.md:{start + 1}: fence never closed"
        before = lines[start - 1] if start else ""
        found.append(Fence(start + 1, info, before, "\n".join(lines[start + 1 : i]) + "\n"))
        i += 1
    return found, outside


def is_shell(info: str) -> bool:
    return info.split(" ", 1)[0] in SHELL_INFO


def runnable_blocks() -> list[str]:
    return [f.body for f in fences(README.read_text())[0] if f.info == RUNNABLE]


def unexplained(blocks: list[Fence]) -> list[Fence]:
    """Shell blocks that are neither run nor say why not."""
    return [
        f
        for f in blocks
        if is_shell(f.info) and f.info != RUNNABLE and not NOT_RUN.match(f.before.strip())
    ]


def unfenced(outside: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Commands in an indented (unfenced) code block: nothing would run them."""
    return [(n, line) for n, line in outside if INDENTED_COMMAND.match(line)]


def test_the_readme_has_runnable_blocks() -> None:
    assert runnable_blocks()


def test_readme_shell_blocks_when_not_runnable_then_say_why() -> None:
    silent = [
        f"README.md:{f.line}: ```{f.info} (line before: {f.before!r})"
        for f in unexplained(fences(README.read_text())[0])
    ]
    assert not silent, "a shell block is neither `sh runnable` nor `<!-- not run: why -->`"


def test_readme_commands_when_indented_then_fail_as_unfenced() -> None:
    found = [
        f"README.md:{n}: {line.strip()}" for n, line in unfenced(fences(README.read_text())[1])
    ]
    assert not found, "commands in an indented block: fence them (```sh runnable)"


def test_readme_block_checks_when_text_given_then_find_violations() -> None:
    # The two structure checks above, on a README that breaks each rule.
    text = "\n".join(
        [
            "Intro",
            "",
            "    make run",
            "",
            "```sh",
            "kubectl get pods",
            "```",
            "<!-- not run: a Kubernetes cluster -->",
            "```sh",
            "kn service list",
            "```",
            "```sh runnable",
            "make migrate",
            "```",
            "```json",
            '{"a": 1}',
            "```",
            "1. a step",
            "   ```bash",
            "   curl -s localhost:8080/healthz",
            "   ```",
            "<!-- not run: -->",
            "```sh",
            "kubectl apply -f knative/",
            "```",
        ]
    )
    blocks, outside = fences(text)
    assert [(b.line, b.info) for b in blocks] == [
        (5, "sh"),
        (9, "sh"),
        (12, "sh runnable"),
        (15, "json"),
        (19, "bash"),
        (23, "sh"),
    ]
    assert [b.line for b in unexplained(blocks)] == [5, 19, 23]  # 23: a reason left blank
    assert [n for n, _ in unfenced(outside)] == [3]


# --------------------------------------------------------------------- what the output shows


def shown_json(out: str) -> dict[str, Any]:
    """The one indented JSON document a block printed (``lanes show``), among the log lines."""
    found = re.search(r"^\{\n.*?^\}$", out, re.S | re.M)
    assert found, out[-3000:]
    return json.loads(found.group(0))


def check_demo(out: str) -> None:
    assert "(kept stale on purpose): REJECT" in out
    assert re.search(r"stale \(\d+d \d+h old, max 300 s\)", out), out[-2000:]
    assert "SUBMIT" in out


def check_live(out: str) -> None:
    # The registered program passed the gates, served, and the rollback took it off again.
    assert "promotion policy: passes" in out, out[-3000:]
    promoted = re.search(r"^(\w{12}): shadow -> active$", out, re.M)
    assert promoted, out[-3000:]
    assert re.search(r"SUBMIT .*executor dspy_live", out), out[-3000:]
    rolled = re.search(r"^active: (\w{12}) -> (\w{12})$", out, re.M)
    assert rolled and rolled.group(1) == promoted.group(1) != rolled.group(2), out[-3000:]


def check_lanes(out: str) -> None:
    assert re.search(r"compiled mipro seed=7 .*\s-> candidate", out, re.S), out[-3000:]
    moved = re.search(r"^(\w{12}): candidate -> shadow$", out, re.M)
    assert moved, out[-3000:]
    view = shown_json(out)  # lanes show, given a 12-character prefix
    assert view["artifact_hash"].startswith(moved.group(1))
    assert view["state"] == "shadow" and view["manifest"]["optimizer"] == "mipro"
    assert [e["kind"] for e in view["evidence"]] == ["scorecard"]
    assert [o["lane"] for o in view["lane_outputs"]] == ["compile", "eval"]


def check_dataset(out: str) -> None:
    # Six demo reviews in the window, split; the registry lists the bootstrap heuristic.
    counts = re.search(r"dataset \[[^)]*\)\s+seed=7: (\{[^}]*\})", out)
    assert counts, out[-3000:]
    assert sum(ast.literal_eval(counts.group(1)).values()) == 6
    assert re.search(r"│ active\s+│ heuristic", out), out[-3000:]


def check_controls(out: str) -> None:
    assert re.search(r"v2  cli:alice  trading_state ACTIVE -> HALTED  ''", out), out[-3000:]
    assert re.search(r"v3  cli:alice  trading_state HALTED -> ACTIVE  'feed fixed'", out)
    events = [json.loads(line) for line in out.splitlines() if line.startswith('{"id":')]
    assert [(e["version"], e["after"]["trading_state"]) for e in events] == [
        (3, "ACTIVE"),
        (2, "HALTED"),
        (1, "ACTIVE"),
    ]
    assert events[0]["reason"] == "feed fixed" and events[0]["actor"] == "cli:alice"


def checks_for(block: str) -> list[Callable[[str], None]]:
    lines = block.splitlines()
    found: list[Callable[[str], None]] = []
    if any("app demo" in line and ">/dev/null" not in line for line in lines):
        found.append(check_demo)
    for marker, check in (
        ("artifacts register-live", check_live),
        ("lanes compile", check_lanes),
        ("lanes dataset-build", check_dataset),
        ("controls-history --json", check_controls),
    ):
        if marker in block:
            found.append(check)
    return found


def test_readme_runnable_blocks_when_listed_then_cover_lanes_live_and_controls() -> None:
    # Every runnable block is either a plain "it runs" block or has its output checked; the
    # blocks that promote, compile, build or change controls must all be among the checked.
    checked = [b for b in runnable_blocks() if checks_for(b)]
    for marker in ("register-live", "lanes compile", "dataset-build", "controls-history"):
        assert any(marker in b for b in checked), marker


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_block_runs_as_written(index: int, tmp_path: Path) -> None:
    block = runnable_blocks()[index]
    port = free_port()
    stub_port = free_port()
    while stub_port == port:
        stub_port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "STUB_PORT": str(stub_port),
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
    for check in checks_for(block):
        check(out)
