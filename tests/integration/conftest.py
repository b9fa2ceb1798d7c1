"""Shared fixtures for integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jangar_stub import JangarStub


@pytest.fixture(scope="session")
def jangar_stub_server() -> Iterator[JangarStub]:
    """One loopback Jangar for the whole session; use ``jangar_stub`` for a clean slate."""
    with JangarStub() as stub:
        yield stub


@pytest.fixture
def jangar_stub(jangar_stub_server: JangarStub) -> JangarStub:
    """The session's loopback Jangar, reset to ``valid`` with no recorded requests."""
    jangar_stub_server.reset()
    return jangar_stub_server
