"""Schemathesis against the service's own OpenAPI schema, every endpoint, on a real server.

Bounded for CI: a fixed example budget per operation and a derandomized (seeded) run. Checks:
no 5xx, documented status codes, declared content types, responses conforming to the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.server import running_service

TOKEN = "schemathesis-admin-token-0123456789abcdef"


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db: Path = tmp_path_factory.mktemp("st") / "st.db"
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{db}", "ADMIN_TOKEN": TOKEN}
    with running_service(env) as base:
        yield base


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_api_when_fuzzed_then_no_5xx_and_conforms(service_url: str) -> None:
    # Driven through Hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.
    api = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10  # every endpoint, admin included
    calls: dict[str, int] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            label = case.operation.label
            calls[label] = calls.get(label, 0) + 1
            case.call_and_validate(
                base_url=service_url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                checks=CHECKS,
                timeout=15,
            )

        run()
    assert set(calls) == {op.label for op in operations}
