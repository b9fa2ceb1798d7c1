"""Scenario ``cold_start``: spawn to the first ``/readyz`` 200.

Two copies of the service's files (``app/``, ``migrations/``, ``config/``, ``alembic.ini``) are
made under ``var/bench/``, so whatever bytecode the working tree holds (``make compile``,
``make run``) cannot leak into either figure:

- **as deployed**: the copy is compiled with the Dockerfile's own command
  (``python -m compileall -q app migrations``); the dependencies' bytecode comes from the
  install (``uv pip install --compile-bytecode``, in the Makefile as in the Dockerfile). This is
  what a container of the image runs, and the figure judged against the target.
- **source only**: the same files without bytecode (a checkout that never ran ``make compile``;
  with ``PYTHONDONTWRITEBYTECODE=1`` every start compiles every ``app`` module). The figure
  reported as "as deployed" before the Dockerfile compiled ``app/``; kept for comparison.

Both run with ``PYTHONDONTWRITEBYTECODE=1`` (no start fills a cache for the next) and are
started alternately (as deployed, source only, as deployed, ...) so a change of machine load
falls on both.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.harness import (
    PROCS,
    PY,
    ROOT,
    WORK,
    Context,
    SqliteDB,
    free_port,
    log,
    rnd,
    service_env,
    wait_http,
)

# What the Dockerfile copies into the image (COPY lines), and how it compiles it (RUN line).
IMAGE_FILES = ("alembic.ini", "migrations", "config", "app")
IMAGE_COMPILE = ("-m", "compileall", "-q", "app", "migrations")


def _copy_tree(dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in IMAGE_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=skip)
        else:
            shutil.copy2(src, dest / name)


def _pyc_count(tree: Path) -> int:
    return sum(1 for _ in (tree / "app").rglob("*.pyc"))


def _start(tree: Path, db: SqliteDB, tag: str) -> float:
    port = free_port()
    log_path = WORK / f"cold-{tag}.log"
    env = service_env(DATABASE_URL=db.url, PYTHONDONTWRITEBYTECODE="1")
    argv = [PY, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    t0 = time.monotonic()
    proc = PROCS.spawn("cold-start", argv, env=env, log_path=log_path, cwd=tree)
    try:
        wait_http(port, "/readyz", proc, log_path, timeout_s=60, poll_s=0.005)
        return time.monotonic() - t0
    finally:
        PROCS.stop(proc)


def run(ctx: Context) -> dict[str, Any]:
    db = SqliteDB("cold")
    db.prepare()
    deployed_tree, source_tree = WORK / "cold-image", WORK / "cold-source"
    _copy_tree(deployed_tree)
    _copy_tree(source_tree)
    subprocess.run([PY, *IMAGE_COMPILE], cwd=deployed_tree, check=True)
    if _pyc_count(source_tree) or not _pyc_count(deployed_tree):
        raise RuntimeError("cold start trees: expected bytecode in the image copy only")
    # One discarded start: registers the bootstrap artifact in the fresh database, so that
    # neither series has a first start doing more than the others.
    _start(deployed_tree, db, "warmup")
    n = ctx.cfg.cold_starts
    deployed: list[float] = []
    source: list[float] = []
    for i in range(n):
        deployed.append(_start(deployed_tree, db, f"image-{i}"))
        source.append(_start(source_tree, db, f"source-{i}"))
    log(f"cold start (as deployed, app compiled as in the image): {[rnd(t) for t in deployed]}")
    log(f"cold start (source only, no app bytecode): {[rnd(t) for t in source]}")
    return {
        "measure": "python -m app serve spawned on a fresh port against a migrated SQLite "
        "database, until the first GET /readyz 200 (polled every 5 ms); a copy of the image's "
        "files compiled with the Dockerfile's compileall (as deployed) and a copy without "
        "bytecode (source only), started alternately, PYTHONDONTWRITEBYTECODE=1 for both; one "
        "discarded start first",
        "image_compile_command": f"python {' '.join(IMAGE_COMPILE)}",
        "pythondontwritebytecode_in_env": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "as_deployed_s": [rnd(t) for t in deployed],
        "median_s": rnd(statistics.median(deployed)),
        "source_only_s": [rnd(t) for t in source],
        "source_only_median_s": rnd(statistics.median(source)),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
