"""Architecture rules, checked on the source (ast), not by importing it.

- Pure modules (gates, decimal rules, request bounds, registry states/hashing, the heuristic,
  the splitter, drift statistics) import no web, database, HTTP or DSPy library, not even
  through another ``app`` module, and never read a clock: time comes in as an argument.
- Only the DSPy boundary modules import dspy.
- ``commit`` is called only by the session module (the one commit/rollback boundary).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"

FORBIDDEN_IN_PURE = frozenset(
    {"fastapi", "starlette", "sqlalchemy", "httpx", "dspy", "asyncpg", "aiosqlite"}
)
# (module or class the call goes through, attribute): reading a clock.
CLOCK_READS = frozenset(
    {
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "perf_counter"),
    }
)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.as_posix()


def pure_modules() -> list[Path]:
    paths = sorted((APP / "gates").glob("*.py"))
    for name in (
        "numbers.py",
        "review/bounds.py",
        "registry/states.py",
        "registry/hashing.py",
        "registry/artifact.py",
        "controls/changes.py",
        "review/heuristic.py",
        "review/budget.py",
        "rollout/splitter.py",
        "drift/stats.py",
        "drift/features.py",
        "decision.py",
    ):
        assert (APP / name).exists(), f"pure-module list names a file that is gone: app/{name}"
        paths.append(APP / name)
    return paths


def app_files() -> list[Path]:
    return sorted(APP.rglob("*.py"))


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def module_path(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def package_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts.pop()  # a module's package
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Every module a file imports (absolute dotted names, relative ones resolved), with line."""
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_of(path).split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:  # ``from app.review import heuristic`` imports a module
                yield f"{module}.{alias.name}", node.lineno


def app_modules_loaded_by(dotted: str) -> list[str]:
    """Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``."""
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def third_party_roots(start: Path) -> dict[str, list[str]]:
    """Top-level libraries ``start`` imports, directly or through other ``app`` modules.

    Maps each library to the chain of files that leads to it (for the failure message).
    """
    found: dict[str, list[str]] = {}
    seen: set[Path] = set()
    stack: list[tuple[Path, list[str]]] = [(start, [rel(start)])]
    while stack:
        path, chain = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        for module, line in imported_modules(path):
            root = module.split(".")[0]
            if root != "app":
                found.setdefault(root, [*chain, f"line {line}: import {module}"])
                continue
            for dotted in app_modules_loaded_by(module):
                target = module_path(dotted)
                if target is not None and target not in seen:
                    stack.append((target, [*chain, rel(target)]))
    return found


def clock_reads(path: Path) -> list[str]:
    out: list[str] = []
    for node in ast.walk(tree(path)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        owner_name = (
            owner.id
            if isinstance(owner, ast.Name)
            else owner.attr
            if isinstance(owner, ast.Attribute)
            else None
        )
        if (owner_name, node.func.attr) in CLOCK_READS:
            out.append(f"{rel(path)}:{node.lineno} {owner_name}.{node.func.attr}()")
    # ``from time import time`` / ``from datetime import datetime`` then a bare call.
    bare = {
        alias.asname or alias.name
        for node in ast.walk(tree(path))
        if isinstance(node, ast.ImportFrom) and node.module == "time"
        for alias in node.names
        if alias.name in {"time", "time_ns", "monotonic", "perf_counter"}
    }
    out.extend(
        f"{rel(path)}:{node.lineno} {node.func.id}()"
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in bare
    )
    return out


def test_pure_module_list_when_collected_then_covers_the_known_ones() -> None:
    names = {rel(p) for p in pure_modules()}
    assert {
        "app/gates/checks.py",
        "app/gates/prices.py",
        "app/numbers.py",
        "app/review/bounds.py",
        "app/registry/states.py",
        "app/registry/hashing.py",
        "app/review/heuristic.py",
        "app/decision.py",
    } <= names


@pytest.mark.parametrize("path", pure_modules(), ids=rel)
def test_pure_module_when_parsed_then_imports_no_io_or_framework_library(path: Path) -> None:
    libraries = third_party_roots(path)
    offending = {lib: chain for lib, chain in libraries.items() if lib in FORBIDDEN_IN_PURE}
    assert offending == {}, "\n".join(" -> ".join(c) for c in offending.values())


@pytest.mark.parametrize("path", pure_modules(), ids=rel)
def test_pure_module_when_parsed_then_never_reads_a_clock(path: Path) -> None:
    assert clock_reads(path) == []


def test_clock_detector_when_given_clock_calls_then_finds_them(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import datetime as dt\nimport time\nfrom datetime import datetime\n"
        "from time import monotonic\n"
        "a = datetime.now()\nb = dt.datetime.utcnow()\nc = time.time()\nd = monotonic()\n"
    )
    assert len(clock_reads(sample)) == 4, clock_reads(sample)


def test_import_walker_when_pure_module_uses_app_schemas_then_follows_into_pydantic() -> None:
    # Guards the transitive walk itself: heuristic reaches pydantic only via app.review.schemas.
    chain = third_party_roots(APP / "review" / "heuristic.py")["pydantic"]
    assert "app/review/schemas.py" in chain
    assert "sqlalchemy" in third_party_roots(APP / "pipeline.py")


def is_dspy_boundary(path: Path) -> bool:
    name = rel(path)
    if name in {"app/review/program.py", "app/review/jangar.py"}:
        return True
    if name.startswith("app/lanes/"):
        return True  # the offline lanes run DSPy optimizers; never imported by the request path
    return name.startswith("app/review/") and ("dspy" in path.stem or "live" in path.stem)


def test_dspy_when_imported_anywhere_then_only_in_the_boundary_modules() -> None:
    importers = {
        f"{rel(path)}:{line}"
        for path in app_files()
        for module, line in imported_modules(path)
        if module.split(".")[0] == "dspy" and not is_dspy_boundary(path)
    }
    assert importers == set()


def test_dspy_boundary_when_scanned_then_it_is_where_dspy_lives() -> None:
    # The rule above must have something to allow: the DSPy program imports dspy.
    program = APP / "review" / "program.py"
    assert any(m.split(".")[0] == "dspy" for m, _ in imported_modules(program))


def commit_calls(paths: list[Path]) -> list[str]:
    return [
        f"{rel(path)}:{node.lineno}"
        for path in paths
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
    ]


def test_commit_when_called_then_only_in_the_session_module() -> None:
    calls = commit_calls(app_files())
    assert calls, "expected unit_of_work in app/db/session.py to commit"
    assert {c.split(":")[0] for c in calls} == {"app/db/session.py"}, calls
