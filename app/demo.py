"""``python -m app demo``: send the examples, re-dated to now, to a running service and print
each decision. One example keeps its original (old) timestamps on purpose, to show the
fail-closed answer and its reason ("... stale (10d 14h old, max 300 s)")."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx

_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
STALE_ON_PURPOSE = "01_buy_market_aapl.json"


class DemoError(Exception):
    """One line for the operator (the CLI prints it and exits non-zero)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    status: int
    line: str


def _parse(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _format(ts: datetime, like: str) -> str:
    text = ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    return text + "Z" if like.endswith("Z") else text


def redate(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Every timestamp moved by (now - decision.event_ts): relative timings are kept."""
    delta = now - _parse(str(body["decision"]["event_ts"]))

    def shift(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: shift(v) for k, v in cast(dict[str, Any], node).items()}
        if isinstance(node, list):
            return [shift(v) for v in cast(list[Any], node)]
        if isinstance(node, str) and _ISO.match(node):
            return _format(_parse(node) + delta, node)
        return node

    return cast(dict[str, Any], shift(body))


def describe(name: str, status: int, answer: dict[str, Any]) -> str:
    if status != 200:
        error = answer.get("error", {})
        return f"{name}: HTTP {status} {error.get('code')}: {error.get('message')}"
    decision = str(answer["decision"]).upper()
    order = answer["order"]
    lineage = answer["lineage"]
    head = (
        f"{name}: {decision} {order['action']} {order['qty']} {order['symbol']} "
        f"(verdict {answer['review']['verdict']}, executor {lineage['executor']})"
    )
    failed = [g for g in answer["gates"] if not g["passed"]]
    reasons = [f"{g['code']}: {g['reason']}" for g in failed]
    reasons += [r for r in answer["reasons"] if r.startswith("verdict_")]
    return head + "".join(f"\n    - {r}" for r in reasons)


def run(
    base_url: str,
    examples: Path,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    client: httpx.Client | None = None,
) -> list[Outcome]:
    files = sorted(examples.glob("*.json"))
    if not files:
        raise DemoError(f"no examples (*.json) in {examples}")
    # A proxy from the environment must not capture a loopback service.
    host = httpx.URL(base_url).host
    loopback = host in {"127.0.0.1", "localhost", "::1"}
    http = client or httpx.Client(base_url=base_url, timeout=10.0, trust_env=not loopback)
    out: list[Outcome] = []
    try:
        for path in files:
            body = json.loads(path.read_text())
            stale = path.name == STALE_ON_PURPOSE
            if not stale:
                # A few seconds back: a clock slightly ahead of the server's is not "future".
                body = redate(body, now() - timedelta(seconds=2))
            headers = {"idempotency-key": f"demo-{uuid.uuid4()}"}
            try:
                r = http.post("/review", json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise DemoError(
                    f"cannot reach {base_url} ({type(exc).__name__}): start the service "
                    f"with `make run` in another terminal"
                ) from None
            name = path.name + (" (kept stale on purpose)" if stale else "")
            out.append(Outcome(path.name, r.status_code, describe(name, r.status_code, r.json())))
    finally:
        if client is None:
            http.close()
    return out
