"""Issue 8, items 9-11: credentials, one body limit enforced before the body is read, auth
before anything else, and connections bounded in time and number on a real uvicorn server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import SettingsError, load_settings
from tests.conftest import make_settings
from tests.support.requests import base_request
from tests.support.server import ROOT, running_service

ADMIN = "admin-token-0123456789abcdef0123456789"
SCHED = "scheduler-token-0123456789abcdef012345"

# ----------------------------------------------------------------------------- item 9


@pytest.mark.parametrize("blank", ["", "   "])
def test_admin_token_when_blank_then_unset(blank: str) -> None:
    assert load_settings({"ADMIN_TOKEN": blank}).admin_token is None
    assert load_settings({"SCHEDULER_TOKEN": blank}).scheduler_token is None


@pytest.mark.parametrize("name", ["ADMIN_TOKEN", "SCHEDULER_TOKEN"])
def test_token_when_shorter_than_32_then_refused_in_one_line(name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: "x" * 31})
    assert info.value.problems == [
        f"{name}: must be at least 32 characters (e.g. `openssl rand -hex 32`)"
    ]
    kept = getattr(load_settings({name: "x" * 32}), name.lower())
    assert kept is not None and kept.get_secret_value() == "x" * 32


def test_tokens_when_equal_then_refused() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"ADMIN_TOKEN": ADMIN, "SCHEDULER_TOKEN": ADMIN})
    assert len(info.value.problems) == 1
    assert "must differ" in info.value.problems[0]


def test_serve_when_admin_token_short_then_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ADMIN_TOKEN": "short",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        "configuration error: ADMIN_TOKEN: must be at least 32 characters "
        "(e.g. `openssl rand -hex 32`)"
    ]


# ----------------------------------------------------------------------------- item 10


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "a" * 64, path)


def _admin_routes() -> list[tuple[str, str]]:
    app = create_app(make_settings("sqlite+aiosqlite:///unused.db", admin_token=ADMIN))
    out = [
        (method.upper(), _concrete(path))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/admin")
        for method in operations
    ]
    assert len(out) >= 10
    return out


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", ADMIN, f"Basic {ADMIN}", f"Bearer {SCHED}"]
)
async def test_every_admin_route_when_credential_missing_or_wrong_then_401_with_challenge(
    app_factory: Any, authorization: str | None
) -> None:
    headers = {"X-Operator": "x" * 500}  # invalid too: auth is checked before other headers
    if authorization is not None:
        headers["Authorization"] = authorization
    async with app_factory(admin_token=ADMIN, scheduler_token=SCHED) as (client, _):
        for method, path in _admin_routes():
            r = await client.request(method, path, headers=headers, content=b"{" * 10)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith('Bearer realm="trade-review"')


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_when_any_case_then_accepted(app_factory: Any, scheme: str) -> None:
    async with app_factory(admin_token=ADMIN) as (client, _):
        r = await client.get("/admin/controls", headers={"Authorization": f"{scheme}  {ADMIN}"})
    assert r.status_code == 200, r.text


async def test_outcome_when_scheduler_token_set_then_required_and_admin_token_not_enough(
    app_factory: Any,
) -> None:
    outcome = {"filled": True, "fill_price": 200.0, "fill_qty": 10, "horizon_seconds": 60}
    async with app_factory(admin_token=ADMIN, scheduler_token=SCHED) as (client, _):
        auth = {"Authorization": f"Bearer {SCHED}"}
        review = (await client.post("/review", json=base_request(), headers=auth)).json()
        url = f"/reviews/{review['review_id']}/outcome"
        for headers in ({}, {"Authorization": f"Bearer {ADMIN}"}):
            r = await client.post(url, json=outcome, headers=headers)
            assert r.status_code == 401
            assert "www-authenticate" in r.headers
        r = await client.post(url, json=outcome, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["recorded"] is True


async def test_review_when_scheduler_token_set_then_required_unless_opted_out(
    app_factory: Any,
) -> None:
    async with app_factory(scheduler_token=SCHED) as (client, _):
        r = await client.post(
            "/review", json=base_request(), headers={"Idempotency-Key": "x" * 999}
        )
        assert r.status_code == 401  # before the Idempotency-Key header is validated
        ok = await client.post(
            "/review", json=base_request(), headers={"Authorization": f"bearer {SCHED}"}
        )
        assert ok.status_code == 200
        assert (await client.get("/healthz")).status_code == 200  # probes stay open
    async with app_factory(scheduler_token=SCHED, scheduler_token_for_review=False) as (c, _):
        assert (await c.post("/review", json=base_request(rationale="open"))).status_code == 200
        r = await c.post("/reviews/x/outcome", json={"filled": False})
        assert r.status_code == 401  # outcomes still need it


@pytest.mark.parametrize("path", ["/review", "/reviews/x/outcome", "/admin/controls"])
async def test_body_limit_when_exceeded_on_any_route_then_413(app_factory: Any, path: str) -> None:
    big = b'{"pad": "' + b"x" * 300_000 + b'"}'
    async with app_factory(admin_token=ADMIN) as (client, _):
        headers = {"Authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
        r = await client.post(path, content=big, headers=headers)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


# ----------------------------------------------------------------------------- item 11
# A real uvicorn server on loopback, short timeouts so the test is quick; margins are wide.

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
DROP_WITHIN = 20.0  # "dropped within a bounded time": bound asserted with a wide margin


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("intake") / "s.db"
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "ADMIN_TOKEN": ADMIN,
        "HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "HTTP_KEEPALIVE_TIMEOUT_SECONDS": "1",
        "HTTP_MAX_CONNECTIONS": "16",
    }
    with running_service(env) as base:
        yield base


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=DROP_WITHIN + 10)


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and how long that took."""
    t0 = time.monotonic()
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - t0


def test_partial_headers_when_never_completed_then_408_and_dropped(server: str) -> None:
    with _connect(server) as sock:
        sock.sendall(b"POST /review HTTP/1.1\r\nHost: x\r\nContent-Ty")
        data, took = _read_until_closed(sock)
    assert took < DROP_WITHIN
    assert data.startswith(b"HTTP/1.1 408")
    assert b'"request_timeout"' in data


def test_silent_connection_when_nothing_sent_then_dropped(server: str) -> None:
    with _connect(server) as sock:
        data, took = _read_until_closed(sock)
    assert took < DROP_WITHIN
    assert data == b""


def test_partial_body_when_never_completed_then_408_and_dropped(server: str) -> None:
    with _connect(server) as sock:
        sock.sendall(
            b"POST /review HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"decision": '
        )
        data, took = _read_until_closed(sock)
    assert took < DROP_WITHIN
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_idle_keepalive_when_unused_then_dropped(server: str) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data, took = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 200")
    assert took < DROP_WITHIN


def test_admin_when_huge_body_declared_without_credential_then_401_before_body(
    server: str,
) -> None:
    # 50 MB declared, not a byte of it sent: the answer must not wait for the body.
    with _connect(server) as sock:
        sock.sendall(
            b"POST /admin/controls HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n"
        )
        data, took = _read_until_closed(sock)
    assert took < DROP_WITHIN
    assert data.startswith(b"HTTP/1.1 401")
    assert b'www-authenticate: bearer realm="trade-review"' in data.lower()


def test_connections_when_over_the_cap_then_refused_and_server_still_serves(server: str) -> None:
    held = [_connect(server) for _ in range(16)]
    try:
        time.sleep(0.3)
        extra = _connect(server)
        with extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data, _ = _read_until_closed(extra)
        assert not data.startswith(b"HTTP/1.1 200")  # closed at once, or 503
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + DROP_WITHIN
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{server}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not serve again after the held connections closed")
