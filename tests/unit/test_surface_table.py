"""The table "documented surface -> test that covers it" in tests/README.md stays true.

It fails when a route (the OpenAPI schema, plus /docs and /openapi.json), a CLI command (the
typer app), a configuration variable (``Settings``) or an error code (``ErrorCode``) has no row;
when a row names something that no longer exists; when a named test does not exist; when an
**inert** row names something ``app/`` does use (it then needs a test); and when a command the
README shows is not a command of the CLI."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import Any

import pytest

from app.cli import cli
from app.errors import ErrorCode
from app.main import create_app
from app.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
TABLE_README = ROOT / "tests" / "README.md"
KINDS = ("route", "cli", "setting", "error")
REF = re.compile(r"`(tests/[\w/]+\.py)::([\w:]+)`")
ROW = re.compile(r"^\| `([^`]+)` \| (\w+) \| (.+) \|$")


def table() -> dict[str, dict[str, str]]:
    """kind -> surface -> the "covered by" cell."""
    text = TABLE_README.read_text()
    _, _, section = text.partition("## Documented surface -> test that covers it")
    assert section, "tests/README.md has no surface table section"
    rows: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
    for line in section.splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        surface, kind, cell = match.groups()
        assert kind in KINDS, f"unknown kind {kind!r} for {surface}"
        assert surface not in rows[kind], f"{kind} {surface} has two rows"
        rows[kind][surface] = cell
    return rows


def routes() -> set[str]:
    app = create_app(load_settings({}))
    schema: dict[str, Any] = app.openapi()
    found = {f"{method.upper()} {path}" for path, ops in schema["paths"].items() for method in ops}
    return found | {"GET /docs", f"GET {app.openapi_url}"}


def cli_commands() -> set[str]:
    import typer.main

    out: set[str] = set()

    def walk(command: Any, prefix: str) -> None:
        subcommands: dict[str, Any] | None = getattr(command, "commands", None)
        if subcommands is None:
            out.add(prefix)
            return
        for name, sub in subcommands.items():
            walk(sub, f"{prefix} {name}".strip())

    walk(typer.main.get_command(cli), "")
    return out


def settings_variables() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def error_codes() -> set[str]:
    return {code.value for code in ErrorCode}


EXPECTED = {
    "route": routes,
    "cli": cli_commands,
    "setting": settings_variables,
    "error": error_codes,
}


@functools.cache
def defined_tests(path: str) -> set[str]:
    """``name`` and ``Class::name`` of every test function in a test file."""
    tree = ast.parse((ROOT / path).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return {n for n in names if n.rsplit("::", 1)[-1].startswith("test_")}


def app_source_without(*skip: str) -> str:
    """Every module of ``app/`` except the ones that only declare the vocabulary."""
    files = sorted((ROOT / "app").rglob("*.py"))
    return "\n".join(p.read_text() for p in files if p.relative_to(ROOT).as_posix() not in skip)


@pytest.mark.parametrize("kind", KINDS)
def test_surface_table_when_compared_with_the_code_then_every_item_has_exactly_one_row(
    kind: str,
) -> None:
    listed = set(table()[kind])
    actual = EXPECTED[kind]()
    assert sorted(actual - listed) == [], f"{kind}s without a row in tests/README.md"
    assert sorted(listed - actual) == [], f"rows for {kind}s that no longer exist"


def test_surface_table_when_a_test_is_named_then_it_exists() -> None:
    missing: list[str] = []
    for kind, rows in table().items():
        for surface, cell in rows.items():
            refs = REF.findall(cell)
            if not refs and not cell.startswith("**inert**"):
                missing.append(f"{kind} {surface}: no test named")
            for path, name in refs:
                if not (ROOT / path).is_file() or name not in defined_tests(path):
                    missing.append(f"{kind} {surface}: {path}::{name}")
    assert missing == []


def test_surface_table_when_an_entry_is_inert_then_app_really_never_uses_it() -> None:
    rows = table()
    settings_use = app_source_without("app/settings.py")
    errors_use = app_source_without("app/errors.py")
    used: list[str] = []
    for surface, cell in rows["setting"].items():
        if cell.startswith("**inert**") and re.search(rf"\b{surface.lower()}\b", settings_use):
            used.append(surface)
    for surface, cell in rows["error"].items():
        member = ErrorCode(surface).name
        if cell.startswith("**inert**") and (
            re.search(rf"\bErrorCode\.{member}\b", errors_use) or f'"{surface}"' in errors_use
        ):
            used.append(surface)
    assert used == [], "marked inert but used by app/: give them a test"
    assert [s for k in ("route", "cli") for s, c in rows[k].items() if "**inert**" in c] == []


def test_readme_commands_when_shown_then_each_is_a_command_of_the_cli() -> None:
    readme = (ROOT / "README.md").read_text()
    groups = {c.split()[0] for c in cli_commands() if " " in c}
    shown: set[str] = set()
    for first, second in re.findall(
        r"(?:-m app|trade-review) ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", readme
    ):
        if first in groups and not second:
            continue  # the group named in prose ("trade-review lanes ..."), not a command
        shown.add(f"{first} {second}" if first in groups else first)
    assert shown, "no command found in README.md"
    assert sorted(shown - cli_commands()) == []
