"""Jangar LM transport: a DSPy 3.4 async engine speaking OpenAI chat completions over SSE.

Why an engine and not ``dspy.LM(api_base=...)``: DSPy's built-in engine quietly switches to
litellm when a call carries headers (our ``traceparent``) or when ``OPENAI_API_BASE`` is set,
bounds only silence between bytes, and cannot parse the SSE reply Jangar sends. Owning the HTTP
exchange here gives one cancellable stream per call and errors the runtime can classify.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, NoReturn, cast

import dspy  # pyright: ignore[reportMissingTypeStubs]
import httpx
import orjson
from dspy import lm15  # pyright: ignore[reportMissingTypeStubs]

from app.review.jangar_url import normalize_base_url

if TYPE_CHECKING:
    from dspy._vendor.lm15.types import StreamEvent

__all__ = ["JangarEngine", "JangarReply", "build_lm", "call_headers", "normalize_base_url"]

PROVIDER: Final = "jangar"

# Per-call headers (``traceparent``) travel beside DSPy rather than through LM kwargs: a call
# kwarg named ``headers`` would make DSPy route the call to litellm.
call_headers: ContextVar[Mapping[str, str]] = ContextVar("jangar_call_headers")
_NO_HEADERS: Final[Mapping[str, str]] = {}

# A reply larger than this is a runaway generation, not a review; stop reading it.
_MAX_CONTENT_CHARS: Final = 1_000_000
# ChatAdapter's end of answer. Once it has arrived nothing the adapter parses can follow, so a
# model that keeps generating is not read further (the stream is closed: no more budget, and
# no more tokens on a paid gateway, are spent on it).
COMPLETED_MARKER: Final = "[[ ## completed ## ]]"
# After the marker a well-behaved stream sends only its finish/usage frames and [DONE]; those
# are read (the connection then stays reusable) but never more than this many events.
_EVENTS_AFTER_MARKER: Final = 8
# How long the end of the HTTP body may take to follow [DONE] before the connection is dropped.
_DRAIN_AFTER_DONE_S: Final = 0.25
# Enough of an error body to diagnose, never enough to flood a log line.
_ERROR_SNIPPET_CHARS: Final = 300

# Config knobs the Jangar wire carries; any other one set on a Request is refused (lm15's rule:
# never drop a setting silently).
_FORWARDED_CONFIG: Final = frozenset({"temperature", "max_tokens", "response_format"})
# DSPy's name for the limit -> the wire name; the smaller of it and the engine's limit goes out.
_TOKEN_LIMIT: Final = "max_completion_tokens"  # noqa: S105 (a field name)
_ROLES: Final = frozenset({"user", "assistant", "developer"})
_STREAM_FIELDS: Final[Mapping[str, Any]] = {
    "stream": True,
    # include_plan=false: otherwise Jangar mixes planning text into the content channel.
    "stream_options": {"include_usage": True, "include_plan": False},
}


class JangarEngine:
    """One-attempt async engine: no retries, no cache (the caller's runtime owns both).

    The ``httpx.AsyncClient`` is borrowed: the app lifespan creates and closes it, so its pool
    and timeouts are configured in one place and shared across calls.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        completions_url: str,
        model: str,
        api_key: str | None,
        extra_headers: Mapping[str, str],
        max_completion_tokens: int | None = None,
    ) -> None:
        if not model:
            raise ValueError("model must be a non-empty string")
        # Sent on every call as ``max_completion_tokens`` (the OpenAI name reasoning models
        # require; ``max_tokens`` is refused by them). The engine owns the exchange, so DSPy's
        # gpt-5* rule (max_tokens >= 16000 on its built-in engines) does not apply here.
        self._max_completion_tokens = max_completion_tokens
        self._client = client
        self._url = completions_url
        self._model = model
        self._api_key = api_key
        self._extra_headers = dict(extra_headers)

    @property
    def model(self) -> str:
        return self._model

    def __repr__(self) -> str:  # never show the key
        return f"JangarEngine(url={self._url!r}, model={self._model!r})"

    async def complete(self, request: lm15.Request) -> lm15.Response:
        reply = await self._exchange(self._body(request))
        return reply.response(self._model)

    async def complete_messages(self, messages: Sequence[Mapping[str, str]]) -> JangarReply:
        """One exchange for chat messages that are already formatted (role + text each).

        The serving path's entry (``app.review.live``): the same wire body ``complete`` sends
        for a ``Request`` of these messages and no config knobs, without DSPy's request/response
        objects around it. Raises the same ``lm15`` errors, and ``ProviderError`` for a blank
        completion as ``complete`` does.
        """
        body: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            **_STREAM_FIELDS,
        }
        if self._max_completion_tokens is not None:
            body[_TOKEN_LIMIT] = self._max_completion_tokens
        reply = await self._exchange(body)
        reply.check()
        return reply

    async def _exchange(self, body: Mapping[str, Any]) -> JangarReply:
        content = orjson.dumps(body)
        headers = self._headers()
        try:
            # The stream context is what makes cancellation (the caller's deadline) close the
            # socket at once instead of leaving a half-read reply in the pool.
            async with self._client.stream(
                "POST", self._url, content=content, headers=headers
            ) as resp:
                if resp.status_code >= 300:
                    await _raise_for_status(resp)
                content_type = resp.headers.get("content-type", "").split(";", 1)[0].strip()
                if content_type == "application/json":
                    return _parse_completion(await resp.aread())
                if content_type == "text/event-stream":
                    return await _read_sse(resp)
                raise _provider_error(f"unexpected content-type {content_type!r}", resp)
        except httpx.TimeoutException as exc:
            raise lm15.TimeoutError(
                f"Jangar timed out ({type(exc).__name__})", provider=PROVIDER
            ) from exc
        except httpx.DecodingError as exc:
            raise lm15.ProviderError(
                f"Jangar reply could not be decoded: {exc}", provider=PROVIDER
            ) from exc
        except httpx.RequestError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise lm15.TransportError(
                f"Jangar connection failed ({reason})", provider=PROVIDER
            ) from exc

    async def stream(self, request: lm15.Request) -> AsyncIterator[StreamEvent]:
        # DSPy streams only under dspy.streamify; replaying the finished reply keeps one code
        # path for the wire, and a review is parsed whole anyway.
        response = await self.complete(request)
        for event in lm15.response_to_events(response):
            yield event

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""

    def _headers(self) -> dict[str, str]:
        # Lower-cased so "Authorization" and "authorization" cannot both go out; the protocol
        # headers come last because the SSE parsing below depends on them.
        headers = {name.lower(): value for name, value in self._extra_headers.items()}
        headers.update(
            (name.lower(), value) for name, value in call_headers.get(_NO_HEADERS).items()
        )
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream"
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def _body(self, request: lm15.Request) -> dict[str, Any]:
        if request.tools:
            raise lm15.UnsupportedFeatureError(
                "the Jangar transport does not send tools", feature="tools", provider=PROVIDER
            )
        messages: list[dict[str, str]] = []
        if request.system is not None:
            messages.append({"role": "system", "content": _system_text(request.system)})
        for index, message in enumerate(request.messages):
            text = message.text
            if message.role not in _ROLES or text is None:
                raise lm15.UnsupportedFeatureError(
                    "the Jangar transport sends text-only user/assistant/developer messages",
                    feature=f"messages[{index}]",
                    provider=PROVIDER,
                )
            messages.append({"role": message.role, "content": text})
        body: dict[str, Any] = {"model": self._model, "messages": messages, **_STREAM_FIELDS}
        config = request.config
        for knob in fields(config):
            value = getattr(config, knob.name)
            if value is None or value == ():
                continue
            if knob.name not in _FORWARDED_CONFIG:
                raise lm15.UnsupportedFeatureError(
                    f"the Jangar transport does not send config.{knob.name}",
                    feature=f"config.{knob.name}",
                    provider=PROVIDER,
                )
            if knob.name == "max_tokens":
                continue  # folded into the token limit below
            body[knob.name] = value
        limits = [v for v in (config.max_tokens, self._max_completion_tokens) if isinstance(v, int)]
        if limits:
            body[_TOKEN_LIMIT] = min(limits)
        return body


class _SyncRefusal:
    """The sync half ``dspy.LM`` insists on; the service only ever calls ``acall``.

    A blocking HTTP call from inside the event loop would stall every request, so a sync call
    fails loudly instead of being served.
    """

    _MESSAGE: Final = "the Jangar transport is async-only: call the program with acall()"

    def complete(self, request: lm15.Request) -> lm15.Response:
        raise lm15.UnsupportedFeatureError(self._MESSAGE, feature="sync", provider=PROVIDER)

    def stream(self, request: lm15.Request) -> NoReturn:
        raise lm15.UnsupportedFeatureError(self._MESSAGE, feature="sync", provider=PROVIDER)

    def close(self) -> None:
        return None


def build_lm(engine: JangarEngine, model: str) -> dspy.LM:
    """A ``dspy.LM`` on ``engine`` with DSPy's retries and response cache off.

    ``openai/`` is only DSPy's model-family prefix here (it decides, e.g., that ``gpt-5*`` is a
    reasoning model); no OpenAI client is involved. No temperature/max_tokens are set, so for
    reasoning models DSPy adds none and the request carries neither.
    """
    if model != engine.model:
        raise ValueError(f"build_lm model {model!r} differs from the engine's {engine.model!r}")
    return dspy.LM(
        f"openai/{model}",
        engine=_SyncRefusal(),
        async_engine=engine,
        cache=False,
        num_retries=0,
    )


# ---------------------------------------------------------------------- wire parsing


@dataclass(slots=True)
class JangarReply:
    """One completion as read off the wire (``content`` ends at the adapter's end marker)."""

    id: str | None = None
    model: str | None = None
    content: str = ""
    finish_reason: str | None = None
    usage: lm15.Usage | None = None
    completed: bool = False  # the adapter's end marker has arrived
    overrun: bool = False  # text kept coming after it

    def check(self) -> None:
        if not self.content.strip():
            raise lm15.ProviderError("Jangar returned an empty completion", provider=PROVIDER)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def response(self, fallback_model: str) -> lm15.Response:
        self.check()
        # "length" is kept so DSPy can report truncation; anything else is a normal stop.
        finish = "length" if self.finish_reason == "length" else "stop"
        return lm15.Response(
            id=self.id or None,
            model=self.model or fallback_model,
            message=lm15.Message.assistant([lm15.TextPart(self.content)]),
            finish_reason=finish,
            usage=self.usage or lm15.Usage(),
        )

    def absorb_meta(self, obj: Mapping[str, Any]) -> None:
        if self.id is None and isinstance(obj.get("id"), str) and obj["id"]:
            self.id = obj["id"]
        if self.model is None and isinstance(obj.get("model"), str) and obj["model"]:
            self.model = obj["model"]
        usage = _usage(obj.get("usage"))
        if usage is not None:
            self.usage = usage

    def append(self, text: str) -> None:
        if self.completed:
            self.overrun = self.overrun or bool(text.strip())
            return
        start = max(0, len(self.content) - len(COMPLETED_MARKER))
        self.content += text
        if len(self.content) > _MAX_CONTENT_CHARS:
            raise lm15.ProviderError(
                f"Jangar reply exceeded {_MAX_CONTENT_CHARS} characters", provider=PROVIDER
            )
        # The marker may straddle two deltas: search from just before this one.
        at = self.content.find(COMPLETED_MARKER, start)
        if at >= 0:
            end = at + len(COMPLETED_MARKER)
            self.overrun = bool(self.content[end:].strip())
            self.content = self.content[:end]
            self.completed = True


async def _read_sse(resp: httpx.Response) -> JangarReply:
    reply = JangarReply()
    data: list[str] = []
    done = False
    after_marker = 0
    lines = resp.aiter_lines()
    async for line in lines:
        if line == "":
            # A blank line ends one SSE event; its data lines join with newlines (SSE spec).
            if data and _sse_event(reply, "\n".join(data)):
                done = True
                break
            data = []
            if reply.completed:
                after_marker += 1
                if reply.overrun or after_marker > _EVENTS_AFTER_MARKER:
                    # The answer is complete; whatever the model adds is not read (leaving
                    # the stream context closes the connection).
                    reply.finish_reason = reply.finish_reason or "stop"
                    return reply
        elif line.startswith(":"):
            continue  # comment / keepalive
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        # event:, id:, retry: carry nothing an OpenAI-style stream needs.
    if done:
        # Only the chunked body's terminator follows [DONE]: read it, so the connection goes
        # back to the pool instead of being closed (a new TCP connection per review otherwise).
        # A server that keeps the stream open after [DONE] is not waited for.
        with contextlib.suppress(TimeoutError, httpx.HTTPError):
            async with asyncio.timeout(_DRAIN_AFTER_DONE_S):
                async for _ in lines:
                    break
        return reply
    if data:
        done = _sse_event(reply, "\n".join(data))
    if not done and reply.finish_reason is None:
        raise lm15.ProviderError(
            "Jangar stream ended before [DONE] or a finish_reason", provider=PROVIDER
        )
    return reply


def _sse_event(reply: JangarReply, data: str) -> bool:
    """Fold one SSE ``data`` payload into ``reply``; True when it is the ``[DONE]`` sentinel."""
    if data.strip() == "[DONE]":
        return True
    obj = _json_object(data, what="SSE data line")
    _raise_error_frame(obj)
    reply.absorb_meta(obj)
    choices = obj.get("choices")
    for item in cast(list[object], choices) if isinstance(choices, list) else []:
        choice = _as_object(item)
        if choice is None:
            continue
        # Only delta.content is the answer; plan/reasoning fields are Jangar's scratchpad.
        text = (_as_object(choice.get("delta")) or {}).get("content")
        if isinstance(text, str):
            reply.append(text)
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            reply.finish_reason = finish
    return False


def _parse_completion(raw: bytes) -> JangarReply:
    obj = _json_object(raw, what="JSON body")
    _raise_error_frame(obj)
    reply = JangarReply()
    reply.absorb_meta(obj)
    choices = obj.get("choices")
    first = cast(list[object], choices)[0] if isinstance(choices, list) and choices else None
    choice = _as_object(first) or {}
    content = (_as_object(choice.get("message")) or {}).get("content")
    if not isinstance(content, str):
        raise lm15.ProviderError(
            "Jangar JSON body has no text in choices[0].message.content", provider=PROVIDER
        )
    reply.append(content)
    finish = choice.get("finish_reason")
    reply.finish_reason = finish if isinstance(finish, str) else None
    return reply


def _json_object(raw: str | bytes, *, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise lm15.ProviderError(f"Jangar sent a malformed {what}", provider=PROVIDER) from exc
    obj = _as_object(value)
    if obj is None:
        raise lm15.ProviderError(f"Jangar sent a {what} that is not an object", provider=PROVIDER)
    return obj


def _as_object(value: object) -> dict[str, Any] | None:
    # JSON objects always have string keys, so the cast only restates what json.loads made.
    return cast(dict[str, Any], value) if isinstance(value, dict) else None


def _raise_error_frame(obj: Mapping[str, Any]) -> None:
    error = obj.get("error")
    if error is None:
        return
    message, code = _error_fields(error)
    raise lm15.ProviderError(
        f"Jangar reported an error: {message}", provider=PROVIDER, provider_code=code
    )


def _error_fields(error: object) -> tuple[str, str | None]:
    obj = _as_object(error)
    if obj is None:
        return str(error)[:_ERROR_SNIPPET_CHARS], None
    message = obj.get("message")
    code = obj.get("type") or obj.get("code")
    return (
        str(message)[:_ERROR_SNIPPET_CHARS] if message else "unspecified",
        str(code) if code else None,
    )


def _usage(value: object) -> lm15.Usage | None:
    obj = _as_object(value)
    if obj is None:
        return None
    counts: dict[str, int | None] = {}
    for wire, name in (
        ("prompt_tokens", "input_tokens"),
        ("completion_tokens", "output_tokens"),
        ("total_tokens", "total_tokens"),
    ):
        raw = obj.get(wire)
        ok = isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0
        counts[name] = cast(int, raw) if ok else None
    return lm15.Usage(
        input_tokens=counts["input_tokens"],
        output_tokens=counts["output_tokens"],
        total_tokens=counts["total_tokens"],
    )


def _system_text(system: str | tuple[Any, ...]) -> str:
    if isinstance(system, str):
        return system
    texts: list[str] = []
    for part in system:
        if not isinstance(part, lm15.TextPart):
            raise lm15.UnsupportedFeatureError(
                "the Jangar transport sends a text-only system prompt",
                feature="system",
                provider=PROVIDER,
            )
        texts.append(part.text)
    return "\n".join(texts)


async def _raise_for_status(resp: httpx.Response) -> NoReturn:
    status = resp.status_code
    # Bounded read: an error page is diagnosis, not payload.
    snippet = b""
    async for chunk in resp.aiter_bytes():
        snippet += chunk
        if len(snippet) >= 4096:
            break
    detail = _error_detail(snippet)
    request_id = resp.headers.get("x-request-id")
    message = f"Jangar answered HTTP {status}: {detail}"
    meta: dict[str, Any] = {"provider": PROVIDER, "status": status, "request_id": request_id}
    if status == 429:
        retry_after = _retry_after(resp.headers.get("retry-after"))
        raise lm15.RateLimitError(message, retry_after=retry_after, **meta)
    if status in (401, 403):
        raise lm15.AuthError(message, env_keys=("JANGAR_API_KEY",), **meta)
    if 400 <= status < 500:
        raise lm15.InvalidRequestError(message, **meta)
    if status >= 500:
        raise lm15.ServerError(message, **meta)
    raise lm15.ProviderError(message, **meta)  # 3xx: redirects are not followed on purpose


def _error_detail(snippet: bytes) -> str:
    try:
        parsed: object = json.loads(snippet)
    except ValueError:
        text = snippet.decode("utf-8", "replace").strip()
        return text[:_ERROR_SNIPPET_CHARS] or "(empty body)"
    obj = _as_object(parsed)
    if obj is not None and "error" in obj:
        message, _code = _error_fields(obj["error"])
        return message
    return str(parsed)[:_ERROR_SNIPPET_CHARS]


def _retry_after(value: str | None) -> float | None:
    # Only the delta-seconds form; an HTTP-date from Jangar would be a surprise worth ignoring.
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _provider_error(message: str, resp: httpx.Response) -> lm15.ProviderError:
    return lm15.ProviderError(
        f"Jangar sent {message}",
        provider=PROVIDER,
        status=resp.status_code,
        request_id=resp.headers.get("x-request-id"),
    )
