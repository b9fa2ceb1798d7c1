"""The environment contract: working defaults, deprecated variables refused by name, one
readable line per configuration problem, and the CLI reporting them without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.review.jangar_url import normalize_base_url
from app.settings import DEPRECATED_VARIABLES, PROJECT_ROOT, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
GOOD_HASH = "a" * 64


def problems_of(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(environ)
    return info.value.problems


def test_empty_environ_when_loaded_then_embedded_defaults() -> None:
    s = load_settings({})
    assert s.database_url.startswith("sqlite+aiosqlite:///")
    db_path = Path(s.database_url.removeprefix("sqlite+aiosqlite:///"))
    assert db_path.is_absolute()
    assert db_path.is_relative_to(ROOT)
    assert PROJECT_ROOT == ROOT
    assert s.is_sqlite
    assert s.llm_model == "gpt-5.3-codex-spark"
    assert s.live_trading_enabled is False
    assert s.admin_token is None
    assert s.jangar_base_url is None
    assert s.llm_dspy_artifact_hash is None
    assert s.jangar_extra_headers == {}


def test_explicit_environ_when_process_env_differs_then_process_env_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_MODEL", "from-process-env")
    monkeypatch.setenv("LIVE_TRADING_ENABLED", "true")
    s = load_settings({})
    assert s.llm_model == "gpt-5.3-codex-spark"
    assert s.live_trading_enabled is False


@pytest.mark.parametrize("name", DEPRECATED_VARIABLES)
def test_deprecated_variable_when_set_then_refused_by_name(name: str) -> None:
    problems = problems_of({name: "anything"})
    assert len(problems) == 1
    assert problems[0].startswith(f"{name}:")
    assert "deprecated" in problems[0]


def test_deprecated_variables_list_when_compared_then_matches_the_contract() -> None:
    assert set(DEPRECATED_VARIABLES) == {
        "LLM_PROVIDER",
        "LLM_SELF_HOSTED_BASE_URL",
        "LLM_SELF_HOSTED_MODEL",
        "LLM_SELF_HOSTED_API_KEY",
        "LLM_ENABLED",
        "LLM_DSPY_RUNTIME_MODE",
    }


def test_all_deprecated_variables_when_set_together_then_each_named_once() -> None:
    problems = problems_of(dict.fromkeys(DEPRECATED_VARIABLES, ""))
    assert len(problems) == len(DEPRECATED_VARIABLES)
    for name in DEPRECATED_VARIABLES:
        assert sum(p.startswith(f"{name}:") for p in problems) == 1


def test_deprecated_variable_when_in_process_env_then_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_ENABLED", "1")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert any(p.startswith("LLM_ENABLED:") for p in info.value.problems)


def test_several_invalid_values_when_loaded_then_one_readable_line_each() -> None:
    bad = {
        "LLM_DSPY_TIMEOUT_SECONDS": "-1",
        "DATABASE_URL": "mysql://x",
        "JANGAR_BASE_URL": "ftp://x",
        "LLM_DSPY_ARTIFACT_HASH": "xyz",
    }
    with pytest.raises(SettingsError) as info:
        load_settings(bad)
    problems = info.value.problems
    assert len(problems) == len(bad), problems
    for name in bad:
        (line,) = [p for p in problems if p.startswith(f"{name}:")]
        assert "\n" not in line
        assert len(line) < 300, line
        assert "Traceback" not in line
        assert "errors.pydantic.dev" not in line
    assert str(info.value).splitlines() == problems


def test_valid_and_invalid_values_when_mixed_then_only_invalid_ones_reported() -> None:
    problems = problems_of({"LLM_MODEL": "m", "LLM_DSPY_TIMEOUT_SECONDS": "0"})
    assert [p.split(":", 1)[0] for p in problems] == ["LLM_DSPY_TIMEOUT_SECONDS"]


@pytest.mark.parametrize(
    "url",
    [
        "http://jangar:8080",
        "http://jangar:8080/openai/v1",
        "https://gw.example.com/jangar/openai/v1/",
    ],
)
def test_jangar_base_url_when_with_or_without_suffix_then_accepted(url: str) -> None:
    s = load_settings({"JANGAR_BASE_URL": url})
    assert s.jangar_base_url is not None
    assert normalize_base_url(s.jangar_base_url).endswith("/openai/v1/chat/completions")


def test_jangar_base_url_when_suffix_differs_then_same_endpoint() -> None:
    a = load_settings({"JANGAR_BASE_URL": "http://jangar:8080"}).jangar_base_url
    b = load_settings({"JANGAR_BASE_URL": "http://jangar:8080/openai/v1"}).jangar_base_url
    assert a is not None
    assert b is not None
    assert normalize_base_url(a) == normalize_base_url(b)


def test_blank_jangar_base_url_when_loaded_then_unset() -> None:
    assert load_settings({"JANGAR_BASE_URL": "  "}).jangar_base_url is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@db:5432/reviews", "postgresql+asyncpg://u@db:5432/reviews"),
        ("postgres://u@db:5432/reviews", "postgresql+asyncpg://u@db:5432/reviews"),
        ("postgresql+asyncpg://u@db/reviews", "postgresql+asyncpg://u@db/reviews"),
        ("sqlite+aiosqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_database_url_when_given_then_normalised_to_async_driver(given: str, expected: str) -> None:
    s = load_settings({"DATABASE_URL": given})
    assert s.database_url == expected
    assert s.is_sqlite == expected.startswith("sqlite")


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:///x.db", "x"])
def test_database_url_when_unsupported_then_refused(url: str) -> None:
    assert [p.split(":", 1)[0] for p in problems_of({"DATABASE_URL": url})] == ["DATABASE_URL"]


def test_artifact_hash_when_uppercase_then_normalised_to_lowercase() -> None:
    s = load_settings({"LLM_DSPY_ARTIFACT_HASH": f" {GOOD_HASH.upper()} "})
    assert s.llm_dspy_artifact_hash == GOOD_HASH


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"x-tenant": "desk-1", "x-env": "paper"}', {"x-tenant": "desk-1", "x-env": "paper"}),
        ("x-tenant=desk-1,x-env=paper", {"x-tenant": "desk-1", "x-env": "paper"}),
        (" x-tenant = desk-1 , x-env=paper, ", {"x-tenant": "desk-1", "x-env": "paper"}),
        ("x-token=a=b", {"x-token": "a=b"}),
        ("", {}),
    ],
)
def test_jangar_extra_headers_when_json_or_pairs_then_parsed(
    raw: str, expected: dict[str, str]
) -> None:
    assert load_settings({"JANGAR_EXTRA_HEADERS": raw}).jangar_extra_headers == expected


@pytest.mark.parametrize("raw", ["not-a-pair", "=v", '{"x": '])
def test_jangar_extra_headers_when_malformed_then_refused_by_name(raw: str) -> None:
    problems = problems_of({"JANGAR_EXTRA_HEADERS": raw})
    assert [p.split(":", 1)[0] for p in problems] == ["JANGAR_EXTRA_HEADERS"]


def test_extra_headers_when_in_process_env_then_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JANGAR_EXTRA_HEADERS", "x-a=1,x-b=2")
    assert load_settings().jangar_extra_headers == {"x-a": "1", "x-b": "2"}


def _cli(extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in DEPRECATED_VARIABLES}
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LLM_PROVIDER": "jangar"}, "LLM_PROVIDER"),
        ({"LLM_DSPY_TIMEOUT_SECONDS": "-1"}, "LLM_DSPY_TIMEOUT_SECONDS"),
    ],
)
def test_cli_migrate_when_configuration_invalid_then_exits_nonzero_naming_it_without_traceback(
    env: dict[str, str], named: str, tmp_path: Path
) -> None:
    # A database the command must never reach: configuration is checked first.
    db = tmp_path / "never.db"
    proc = _cli({"DATABASE_URL": f"sqlite+aiosqlite:///{db}", **env}, "migrate")
    assert proc.returncode != 0
    assert named in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "migrations: at head" not in proc.stdout
    assert not db.exists()
