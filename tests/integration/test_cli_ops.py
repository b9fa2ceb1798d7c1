"""The operator CLI for newcomers: one-line errors with an exit code (``--debug`` for the
traceback), ``lanes show`` by hash prefix, ``dataset-build --until now`` explaining an empty
window."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp("cli") / "cli.db"
    url = f"sqlite+aiosqlite:///{path}"
    assert cli("migrate", db=url).returncode == 0
    return url, path


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback() -> None:
    unreachable = "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    plain = cli("lanes", "list", db=unreachable)
    assert plain.returncode == 1
    lines = plain.stderr.strip().splitlines()
    assert len(lines) == 1, plain.stderr
    assert lines[0].startswith("error: ") and "--debug" in lines[0]
    assert "Traceback" not in plain.stderr
    debug = cli("--debug", "lanes", "list", db=unreachable)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr


def test_show_accepts_a_unique_hash_prefix(migrated: tuple[str, Path], tmp_path: Path) -> None:
    url, path = migrated
    state = tmp_path / "state.json"
    assert cli("artifacts", "export-state", "--out", str(state), db=url).returncode == 0
    registered = cli("artifacts", "register-live", "--state-file", str(state), db=url)
    assert registered.returncode == 0, registered.stderr
    digest = registered.stdout.strip()
    with sqlite3.connect(path) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM llm_dspy_workflow_artifacts WHERE artifact_hash = ?", (digest,)
        ).fetchone()
    assert stored == (1,)
    shown = cli("lanes", "show", digest[:10], db=url)
    assert shown.returncode == 0, shown.stderr
    assert f'"artifact_hash": "{digest}"' in shown.stdout
    too_short = cli("lanes", "show", digest[:3], db=url)
    assert too_short.returncode == 4
    assert "hash prefix" in too_short.stderr


def test_dataset_build_until_now_explains_an_empty_window(migrated: tuple[str, Path]) -> None:
    url, _ = migrated
    built = cli("lanes", "dataset-build", "--until", "now", "--days", "1", db=url)
    assert built.returncode == 1, built.stderr
    said = " ".join(built.stderr.split())
    assert "empty window [" in said and "no review was recorded in it" in said
    assert "Traceback" not in built.stderr
    bad = cli("lanes", "dataset-build", "--until", "yesterday-ish", db=url)
    assert bad.returncode == 2 and "'now'" in bad.stderr
