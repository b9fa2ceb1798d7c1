"""A real loopback HTTP server speaking Jangar's OpenAI chat-completions dialect.

Written on bare asyncio streams rather than an ASGI framework because the faults it must
produce (a reset socket, a half-written SSE line, a reply that never starts) and the one thing
it must observe (the client hanging up mid-reply) sit below what ASGI exposes reliably.
It runs its own event loop in a daemon thread so sync tests, async tests on any loop and a
session-scoped fixture can all share one instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, Self

COMPLETIONS_PATH = "/openai/v1/chat/completions"

# The slow behaviours' step: small enough that a 0.5 s deadline lands mid-reply.
DRIP_INTERVAL_S = 0.2
# How long ``runaway`` keeps generating after its answer (one delta every RUNAWAY_STEP_S).
RUNAWAY_SECONDS = 30.0
RUNAWAY_STEP_S = 0.02

_MAX_HEAD_BYTES = 64 * 1024

_CLIENT_FAULTS = (
    ConnectionError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ValueError,
)


class Behaviour(StrEnum):
    VALID = "valid"
    VALID_JSON = "valid_json"
    SLOW_FIRST_BYTE = "slow_first_byte"
    SLOW_DRIP = "slow_drip"
    HANG = "hang"
    HTTP_500 = "http_500"
    HTTP_429 = "http_429"
    HTTP_401 = "http_401"
    HTTP_403 = "http_403"
    MALFORMED_JSON = "malformed_json"
    SCHEMA_INVALID = "schema_invalid"
    ERROR_FRAME = "error_frame"
    CONNECTION_RESET = "connection_reset"
    PLAN_MIXED = "plan_mixed"
    # A model that never stops: the full answer (end marker included), then more text for
    # RUNAWAY_SECONDS, never a finish_reason. A client must stop reading at the marker.
    RUNAWAY = "runaway"


# The review signature's outputs, as a clean approve.
DEFAULT_ANSWER: Mapping[str, object] = MappingProxyType(
    {
        "verdict": "approve",
        "confidence": 0.82,
        "uncertainty": "low",
        "rationale": "Liquid name, small size, no risk flags.",
        "risk_flags": [],
        "required_checks": [],
        "adjusted_qty": None,
        "adjusted_order_type": None,
        "adjusted_limit_price": None,
    }
)

# Values no typed review field accepts: the protocol is fine, the content is not.
_SCHEMA_INVALID_OVERRIDES: Mapping[str, object] = MappingProxyType(
    {"verdict": "maybe", "confidence": "high"}
)


# ---------------------------------------------------------------------- requested fields
#
# Optimizers (MIPROv2's instruction proposer, GEPA's reflection) call the LM with signatures
# other than the review one. ChatAdapter lists the output fields it wants in the system message
# ("Your output fields are:" then "1. `name` (type): desc"), so the stub answers exactly those:
# review fields from the configured answer (a review field missing from it stays missing, so
# tests can still provoke parse failures), any other field with deterministic plausible text.

_OUTPUT_HEADER = "Your output fields are:"
_OUTPUT_END = "All interactions will be structured"
_FIELD_LINE = re.compile(r"^\d+\. `(?P<name>\w+)` \((?P<type>[^\n]*?)\):")
_LITERAL_OPTION = re.compile(r"'((?:[^'\\]|\\.)*)'")
_REVIEW_FIELDS = frozenset(DEFAULT_ANSWER)
_INSTRUCTION_FIELDS = frozenset({"proposed_instruction", "new_instruction", "instruction"})


@dataclass(frozen=True, slots=True)
class AnswerRule:
    """Override answer fields when the request's last user message contains ``contains``.

    A deterministic stand-in for a model that reads the inputs: e.g. veto when the market
    context carries an ``earnings_window`` flag. With ``instructions_contain`` the rule also
    needs that text in the system message, i.e. the model only acts on the inputs when its
    instructions tell it to (what gives a prompt optimizer something to find). Matching is
    case-insensitive.
    """

    contains: str
    fields: Mapping[str, object]
    instructions_contain: str | None = None

    def applies(self, user_text: str, system_text: str) -> bool:
        if self.contains.lower() not in user_text:
            return False
        wanted = self.instructions_contain
        return wanted is None or wanted.lower() in system_text


def requested_fields(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, type) of the output fields a ChatAdapter request asks for; [] if none listed."""
    text = _system_text(body)
    if _OUTPUT_HEADER not in text:
        return []
    section = text.split(_OUTPUT_HEADER, 1)[1].split(_OUTPUT_END, 1)[0]
    out: list[tuple[str, str]] = []
    for line in section.splitlines():
        match = _FIELD_LINE.match(line.strip())
        if match:
            out.append((match["name"], match["type"].strip()))
    return out


def answer_for(
    body: Mapping[str, Any], answer: Mapping[str, object], rules: Sequence[AnswerRule] = ()
) -> dict[str, object]:
    """The fields the stub sends for ``body`` (same request -> same answer)."""
    wanted = requested_fields(body)
    last_user = _last_user_text(body).lower()
    system = " ".join(_system_text(body).lower().split())
    effective = dict(answer)
    for rule in rules:
        if rule.applies(last_user, system):
            effective.update(rule.fields)
    if not wanted:
        return effective  # not a ChatAdapter prompt: the configured answer, as before
    digest = ""  # only a field the answer does not hold needs it (not a review's)
    out: dict[str, object] = {}
    for name, type_text in wanted:
        if name in effective:
            out[name] = effective[name]
        elif name not in _REVIEW_FIELDS:
            digest = digest or _digest(body)
            out[name] = _plausible(name, type_text, digest)
    return out


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_messages(body), sort_keys=True).encode()).hexdigest()


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]  # pyright: ignore[reportUnknownVariableType]


def _system_text(body: Mapping[str, Any]) -> str:
    for message in _messages(body):
        if message.get("role") == "system" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(_messages(body)):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _plausible(name: str, type_text: str, digest: str) -> object:
    """A deterministic value a model could have written for a field of this type."""
    t = type_text.replace(" ", "")
    if t.startswith("Union[") and "NoneType" in t:
        return None
    if t.startswith("Literal["):
        options = _LITERAL_OPTION.findall(type_text)
        return options[0] if options else ""
    if t == "bool":
        return True
    if t == "int":
        return 1
    if t == "float":
        return 0.5
    if t.startswith(("list", "List", "tuple")):
        return []
    if t.startswith(("dict", "Dict")):
        return {}
    if name in _INSTRUCTION_FIELDS:
        return (
            "You are the pre-trade risk reviewer of a systematic trading desk. Veto any order "
            "whose market context carries event risk (earnings window, pending news, halts); "
            "approve small, liquid orders with fresh context; shrink orders when spread, "
            "volatility or regime entropy are elevated. Keep the rationale short and factual. "
            f"(variant {digest[:8]})"
        )
    label = name.replace("_", " ")
    return (
        f"{label.capitalize()} ({digest[:8]}): orders are reviewed for event risk, liquidity, "
        "exposure and regime before they reach the broker."
    )


def _render(value: object) -> str:
    # ChatAdapter hands a typed field's text to json_repair + pydantic, so non-strings go out
    # as JSON (None -> null, [] -> []); strings stay bare, as a model would write them.
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def chat_adapter_content(fields: Mapping[str, object]) -> str:
    """The completion text DSPy's ChatAdapter parses into ``fields``."""
    blocks = [f"[[ ## {name} ## ]]\n{_render(value)}" for name, value in fields.items()]
    blocks.append("[[ ## completed ## ]]")
    return "\n\n".join(blocks)


# JSONAdapter (GEPA's instruction proposer uses it) asks for one JSON object instead of markers.
_JSON_ADAPTER_MARK = "Outputs will be a JSON object"


def _content(ex: _Exchange, fields: Mapping[str, object]) -> str:
    if _JSON_ADAPTER_MARK in _system_text(ex.body):
        return json.dumps(dict(fields), default=str)
    return chat_adapter_content(fields)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes


@dataclass(frozen=True, slots=True)
class _Exchange:
    """Everything one reply needs, snapshotted under the lock so replies never race setters."""

    body: dict[str, Any]
    answer: dict[str, object]
    delay_s: float
    writer: asyncio.StreamWriter
    seq: int

    @property
    def wants_stream(self) -> bool:
        return self.body.get("stream") is True

    def stream_option(self, name: str) -> object:
        options = self.body.get("stream_options")
        return options.get(name) if isinstance(options, dict) else None

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) and model else "jangar-stub"


class _ClientGone(Exception):
    """The client hung up before the reply was complete."""


class JangarStub:
    """Loopback Jangar for tests; every setter is safe to call from any thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        behaviour: Behaviour | str = Behaviour.VALID,
        delay_s: float = 5.0,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._initial_delay_s = delay_s
        self._default = Behaviour(behaviour)
        self._queue: deque[Behaviour] = deque()
        self._answer: dict[str, object] = dict(DEFAULT_ANSWER)
        self._rules: tuple[AnswerRule, ...] = ()
        self._delay_s = delay_s
        self._requests: list[RecordedRequest] = []
        self._disconnects = 0
        self._accepted = 0
        self._seq = 0
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._connections: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("JangarStub already started")
        self._thread = threading.Thread(target=self._run, name="jangar-stub", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("JangarStub did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError("JangarStub failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("JangarStub is not running")
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("JangarStub is not running")
        return self._port

    def set_behaviour(self, behaviour: Behaviour | str) -> None:
        with self._lock:
            self._default = Behaviour(behaviour)

    def queue(self, *behaviours: Behaviour | str) -> None:
        parsed = [Behaviour(b) for b in behaviours]
        with self._lock:
            self._queue.extend(parsed)

    def set_answer(self, fields: Mapping[str, object]) -> None:
        with self._lock:
            self._answer = dict(fields)

    def set_rules(self, rules: Iterable[AnswerRule]) -> None:
        """Deterministic per-request overrides of the answer (applied in order)."""
        with self._lock:
            self._rules = tuple(rules)

    @property
    def delay_s(self) -> float:
        with self._lock:
            return self._delay_s

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        with self._lock:
            self._delay_s = float(value)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> int:
        with self._lock:
            return self._disconnects

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since the last reset (keep-alive reuse shows here)."""
        with self._lock:
            return self._accepted

    def reset(self) -> None:
        with self._lock:
            self._default = Behaviour.VALID
            self._queue.clear()
            self._answer = dict(DEFAULT_ANSWER)
            self._rules = ()
            self._delay_s = self._initial_delay_s
            self._requests.clear()
            self._disconnects = 0
            self._accepted = 0

    # ------------------------------------------------------------------ server loop

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to start(); the thread must not die silently
            self._startup_error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._on_connection, self._host, self._requested_port, limit=_MAX_HEAD_BYTES
        )
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        with self._lock:
            self._accepted += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None or not await self._serve_one(request, reader, writer):
                    break
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            pass  # a client sending garbage or vanishing between requests just loses its socket
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()

    async def _serve_one(
        self, request: _HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; return whether the connection may carry another."""
        if request.method != "POST" or request.path != COMPLETIONS_PATH:
            error = {"error": {"message": f"no route {request.path}", "type": "not_found"}}
            await _send_json(writer, 404, error)
            return True
        body = _json_object(request.raw_body)
        with self._lock:
            self._requests.append(RecordedRequest(request.path, dict(request.headers), body))
            behaviour = self._queue.popleft() if self._queue else self._default
            self._seq += 1
            answer = answer_for(body, self._answer, self._rules)
            exchange = _Exchange(body, answer, self._delay_s, writer, self._seq)

        reply = asyncio.create_task(_reply(behaviour, exchange))
        # The only way to see a hang-up while we are silent (hang, slow_first_byte) is to keep
        # a read pending: EOF there means the client closed its end.
        watch = asyncio.create_task(reader.read(1))
        try:
            await asyncio.wait({reply, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            reply.cancel()
            watch.cancel()
            raise
        if not reply.done():
            stray = _result_or_none(watch)
            if stray:
                # Bytes mid-reply (pipelining) cannot be put back; finish and drop the socket.
                await _finish(reply)
                return False
            reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reply
            self._count_disconnect()
            return False
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watch
        try:
            return reply.result()
        except (_ClientGone, ConnectionError):
            self._count_disconnect()
            return False

    def _count_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1


# ---------------------------------------------------------------------- replies


async def _finish(task: asyncio.Task[bool]) -> bool:
    try:
        return await task
    except (_ClientGone, ConnectionError):
        return False


def _result_or_none(task: asyncio.Task[bytes]) -> bytes | None:
    if task.cancelled():
        return None
    if task.exception() is not None:
        return None  # a reset read is a hang-up too
    return task.result()


async def _reply(behaviour: Behaviour, ex: _Exchange) -> bool:
    """Write the reply for ``behaviour``; return whether the connection stays usable."""
    fields = ex.answer
    match behaviour:
        case Behaviour.VALID:
            await _send_answer(ex, _content(ex, fields), stream=ex.wants_stream)
        case Behaviour.VALID_JSON:
            await _send_answer(ex, _content(ex, fields), stream=False)
        case Behaviour.SLOW_FIRST_BYTE:
            await asyncio.sleep(ex.delay_s)
            await _send_answer(ex, _content(ex, fields), stream=ex.wants_stream)
        case Behaviour.SLOW_DRIP:
            pieces = max(2, round(ex.delay_s / DRIP_INTERVAL_S))
            await _send_answer(
                ex, _content(ex, fields), stream=True, pieces=pieces, gap_s=DRIP_INTERVAL_S
            )
        case Behaviour.HANG:
            await asyncio.Event().wait()
        case Behaviour.HTTP_500:
            error = {"error": {"message": "upstream exploded", "type": "server_error"}}
            await _send_json(ex.writer, 500, error)
        case Behaviour.HTTP_401 | Behaviour.HTTP_403:
            status = 401 if behaviour is Behaviour.HTTP_401 else 403
            error = {"error": {"message": "invalid api key", "type": "authentication_error"}}
            await _send_json(ex.writer, status, error)
        case Behaviour.HTTP_429:
            error = {"error": {"message": "slow down", "type": "rate_limit_error"}}
            await _send_json(ex.writer, 429, error, extra_headers=[("retry-after", "2")])
        case Behaviour.MALFORMED_JSON:
            await _send_malformed(ex)
        case Behaviour.SCHEMA_INVALID:
            broken = {**fields, **_SCHEMA_INVALID_OVERRIDES}
            await _send_answer(ex, _content(ex, broken), stream=ex.wants_stream)
        case Behaviour.ERROR_FRAME:
            await _send_error_frame(ex)
        case Behaviour.CONNECTION_RESET:
            await _send_reset(ex)
            return False
        case Behaviour.PLAN_MIXED:
            content = _content(ex, fields)
            mix = ex.stream_option("include_plan") is not False
            await _send_answer(ex, content, stream=ex.wants_stream, plan=mix)
        case Behaviour.RUNAWAY:
            await _send_runaway(ex, _content(ex, fields))
    return True


async def _send_runaway(ex: _Exchange, content: str) -> None:
    sse = _Sse(ex.writer)
    await sse.open()
    await sse.event(_chunk(ex, {"role": "assistant", "content": ""}))
    for part in _split(content, 4):
        await sse.event(_chunk(ex, {"content": part}))
    end = time.monotonic() + RUNAWAY_SECONDS
    while time.monotonic() < end:
        await asyncio.sleep(RUNAWAY_STEP_S)
        await sse.event(_chunk(ex, {"content": " and another thing"}))
    await sse.event(_chunk(ex, {}, finish_reason="length"))
    await sse.done()


_PLAN_NOTES = ("\n<plan>check liquidity</plan>\n", "\n<plan>compare to limits</plan>\n")


async def _send_answer(
    ex: _Exchange,
    content: str,
    *,
    stream: bool,
    pieces: int = 4,
    gap_s: float = 0.0,
    plan: bool = False,
) -> None:
    parts = _split(content, pieces)
    if plan:
        # Jangar interleaves its planning text into the same content channel.
        mixed: list[str] = []
        for i, part in enumerate(parts):
            mixed.append(part)
            if i < len(parts) - 1:
                mixed.append(_PLAN_NOTES[i % len(_PLAN_NOTES)])
        parts = mixed
    text = "".join(parts)
    usage = _usage(ex, text)
    if not stream:
        await _send_json(ex.writer, 200, _completion(ex, text, usage))
        return
    sse = _Sse(ex.writer, buffered=not gap_s)
    await sse.open()
    await sse.raw(b": keepalive\n\n")
    await sse.event(_chunk(ex, {"role": "assistant", "content": ""}))
    for i, part in enumerate(parts):
        if i and gap_s:
            await asyncio.sleep(gap_s)
        await sse.event(_chunk(ex, {"content": part}))
    await sse.event(_chunk(ex, {}, finish_reason="stop"))
    if ex.stream_option("include_usage") is True:
        await sse.event(_usage_chunk(ex, usage))
    await sse.done()


async def _send_malformed(ex: _Exchange) -> None:
    if not ex.wants_stream:
        await _send_raw_json(ex.writer, 200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
        return
    sse = _Sse(ex.writer)
    await sse.open()
    await sse.event(_chunk(ex, {"content": "[[ ## verdict ## ]]\n"}))
    await sse.raw(b'data: {"choices": [{"delta": {"content": "appr\n\n')
    await sse.done()


async def _send_error_frame(ex: _Exchange) -> None:
    sse = _Sse(ex.writer)
    await sse.open()
    await sse.event(_chunk(ex, {"content": "[[ ## verdict ## ]]\n"}))
    await sse.event({"error": {"message": "model worker crashed", "type": "server_error"}})
    await sse.close()


async def _send_reset(ex: _Exchange) -> None:
    sse = _Sse(ex.writer)
    await sse.open()
    await sse.event(_chunk(ex, {"content": "[[ ## verdict ## ]]\n"}))
    sock = ex.writer.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER 0 turns close into a TCP RST: what a crashed proxy looks like on the wire.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ex.writer.transport.abort()


def _split(text: str, pieces: int) -> list[str]:
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    out: list[str] = []
    start = 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def _usage(ex: _Exchange, completion: str) -> dict[str, int]:
    # Deterministic, roughly token-shaped counts; tests only need them stable and non-zero.
    prompt = max(1, len(json.dumps(ex.body.get("messages", []))) // 4)
    done = max(1, len(completion) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done}


def _completion(ex: _Exchange, content: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-stub-{ex.seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": ex.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def _chunk(
    ex: _Exchange, delta: dict[str, Any], finish_reason: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-stub-{ex.seq}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": ex.model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _usage_chunk(ex: _Exchange, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-stub-{ex.seq}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": ex.model,
        "choices": [],
        "usage": usage,
    }


# ---------------------------------------------------------------------- HTTP/1.1 plumbing

_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if writer.is_closing():
        raise _ClientGone
    writer.write(data)
    await writer.drain()


async def _send_json(
    writer: asyncio.StreamWriter,
    status: int,
    payload: Mapping[str, Any],
    *,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> None:
    await _send_raw_json(writer, status, json.dumps(payload).encode(), extra_headers=extra_headers)


async def _send_raw_json(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> None:
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    await _write(writer, _head(status, [*headers, *extra_headers]) + body)


class _Sse:
    """A chunked ``text/event-stream`` body.

    ``buffered``: the events are collected and the whole reply goes out in one socket write at
    ``close`` (still one chunk per event). For replies written without pauses: writing each
    event on its own cost the stub ~1 ms of CPU per reply and the client a wake-up per event,
    which the benchmarks then counted as the service's LLM step. Paced replies (drip,
    runaway) and faults write as they go.
    """

    def __init__(self, writer: asyncio.StreamWriter, *, buffered: bool = False) -> None:
        self._writer = writer
        self._buffer: list[bytes] | None = [] if buffered else None

    async def _send(self, data: bytes) -> None:
        if self._buffer is not None:
            self._buffer.append(data)
        else:
            await _write(self._writer, data)

    async def open(self) -> None:
        headers = [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked"),
        ]
        await self._send(_head(200, headers))

    async def raw(self, data: bytes) -> None:
        await self._send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def event(self, payload: Mapping[str, Any]) -> None:
        await self.raw(b"data: " + json.dumps(payload).encode() + b"\n\n")

    async def done(self) -> None:
        await self.raw(b"data: [DONE]\n\n")
        await self.close()

    async def close(self) -> None:
        await self._send(b"0\r\n\r\n")
        if self._buffer is not None:
            data, self._buffer = b"".join(self._buffer), None
            await _write(self._writer, data)


async def _read_request(reader: asyncio.StreamReader) -> _HttpRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None  # clean close between requests
        raise
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise ValueError("chunked request bodies are not supported by the stub")
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return _HttpRequest(method, target.split("?", 1)[0], headers, body)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {"_unparsed": raw.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"_json": value}
