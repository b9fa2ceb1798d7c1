"""The serving executor's direct call (``ReviewCall``) against DSPy's own path for the same
program: the same wire request, the same parse of valid and messy answers, the same outcome
for every fault, the same token counts.

The reference is what the executor ran before: ``program.acall`` under
``dspy.context(lm=build_lm(engine), adapter=ReviewAdapter())``, its prediction through
``to_verdict`` and its failures through ``classify``. Each case runs both on the same input and
compares everything the executor hands on (``LiveResult``), and the stub or transport compares
what went over the wire.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dspy
import httpx
import pytest

from app.registry.artifact import Artifact
from app.registry.states import ExecutorKind
from app.review.jangar import JangarEngine, build_lm
from app.review.jangar_url import normalize_base_url
from app.review.live import (
    CallOutcome,
    LiveExecutor,
    _usage,  # pyright: ignore[reportPrivateUsage]
    classify,
    to_verdict,
)
from app.review.program import (
    ReviewAdapter,
    TradeReviewSignature,
    install_type_adapter_cache,
    new_program,
    prediction_fields,
    program_inputs,
    program_state,
    review_call,
)
from app.review.schemas import ReviewRequest, ReviewVerdict
from app.settings import Settings, load_settings
from jangar_stub import DEFAULT_ANSWER, Behaviour, JangarStub, chat_adapter_content
from tests.support.requests import base_request

MODEL = "gpt-5.3-codex-spark"
NOW = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    """What the executor hands on for one review."""

    outcome: CallOutcome
    verdict: ReviewVerdict | None
    prompt_tokens: int | None
    completion_tokens: int | None


def settings_for(base_url: str, **overrides: Any) -> Settings:
    return load_settings(
        {},
        jangar_base_url=base_url,
        llm_model=MODEL,
        llm_dspy_timeout_seconds=30.0,
        **overrides,
    )


def artifact_for(state: dict[str, Any], tag: str = "a") -> Artifact:
    return Artifact(
        artifact_hash=tag * 64,
        program_name="trade-review",
        signature_version="v1",
        executor=ExecutorKind.DSPY_LIVE,
        model=MODEL,
        manifest={},
        program_state={"dspy": state},
    )


async def through_dspy(
    client: httpx.AsyncClient, settings: Settings, state: dict[str, Any], request: ReviewRequest
) -> Outcome:
    """The reference: DSPy's Predict -> ChatAdapter -> dspy.LM -> the Jangar engine."""
    assert settings.jangar_base_url is not None
    engine = JangarEngine(
        client,
        normalize_base_url(settings.jangar_base_url),
        settings.llm_model,
        None,
        settings.jangar_extra_headers,
        max_completion_tokens=settings.llm_max_completion_tokens,
    )
    install_type_adapter_cache()
    lm = build_lm(engine, settings.llm_model)
    try:
        with dspy.context(lm=lm, adapter=ReviewAdapter(), disable_history=True, track_usage=True):
            prediction = await new_program(state).acall(**program_inputs(request))
        verdict = to_verdict(prediction_fields(prediction))
    except Exception as exc:
        return Outcome(classify(exc), None, None, None)
    return Outcome(CallOutcome.OK, verdict, *_usage(prediction))


async def through_executor(
    client: httpx.AsyncClient, settings: Settings, state: dict[str, Any], request: ReviewRequest
) -> Outcome:
    result = await LiveExecutor(settings, client).review(request, artifact_for(state), {})
    return Outcome(result.outcome, result.verdict, result.prompt_tokens, result.completion_tokens)


def uncompiled() -> dict[str, Any]:
    return program_state(new_program())


def compiled() -> dict[str, Any]:
    """Instructions rewritten and demos as LabeledFewShot leaves them, one incomplete."""
    state = uncompiled()
    state["review"]["signature"]["instructions"] = (
        "Review the order like a careful desk head.\nVeto event risk; shrink wide spreads."
    )
    demos: list[dict[str, Any]] = []
    for i, verdict in enumerate(("approve", "veto")):
        body = base_request(NOW, qty=str(5 + i))
        demos.append(
            {
                **program_inputs(ReviewRequest.model_validate(body)),
                **DEFAULT_ANSWER,
                "verdict": verdict,
                "rationale": f"demo {i}: Zürich desk note — spread 2 bp\nsecond line",
            }
        )
    demos.append({"order": {"symbol": "MSFT", "qty": "3"}, "verdict": "abstain"})
    state["review"]["demos"] = demos
    return state


def requests() -> list[ReviewRequest]:
    plain = base_request(NOW)
    rich = base_request(NOW, rationale="breakout\nline two — «quoted» 東京", qty="7")
    rich["market_context"] = {
        "symbol": "AAPL",
        "as_of": plain["market"]["as_of"],
        "risk_flags": ["earnings_window"],
        "domains": {"news": {"headline": 'Q3 beat; guidance "raised"'}},
    }
    rich["recent_decisions"] = [
        {
            "symbol": "AAPL",
            "action": "buy",
            "qty": "3",
            "decision": "rejected",
            "at": plain["market"]["as_of"],
        }
    ]
    return [ReviewRequest.model_validate(plain), ReviewRequest.model_validate(rich)]


# ---------------------------------------------------------------------- the wire request


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
        yield client


@pytest.mark.parametrize("state", [uncompiled(), compiled()], ids=["uncompiled", "compiled"])
@pytest.mark.parametrize("index", [0, 1], ids=["plain", "rich"])
async def test_direct_call_when_reviewed_then_stub_sees_the_request_dspy_sends(
    jangar_stub: JangarStub,
    http_client: httpx.AsyncClient,
    state: dict[str, Any],
    index: int,
) -> None:
    request = requests()[index]
    settings = settings_for(jangar_stub.base_url, jangar_extra_headers={"X-Desk": "equities"})
    assert review_call(new_program(state), ReviewAdapter()) is not None  # the direct path

    reference = await through_dspy(http_client, settings, state, request)
    direct = await through_executor(http_client, settings, state, request)

    first, second = jangar_stub.requests
    assert second.body == first.body
    assert second.headers == first.headers  # content-length too: the same bytes
    roles = [m["role"] for m in first.body["messages"]]
    demos = len(state["review"]["demos"])
    assert roles == ["system", *["user", "assistant"] * demos, "user"]
    assert direct == reference
    assert direct.outcome is CallOutcome.OK
    assert direct.prompt_tokens is not None and direct.prompt_tokens > 0


@pytest.mark.parametrize("state", [uncompiled(), compiled()], ids=["uncompiled", "compiled"])
def test_review_call_messages_when_formatted_then_equal_adapter_format(
    state: dict[str, Any],
) -> None:
    adapter = ReviewAdapter()
    program = new_program(state)
    call = review_call(program, adapter)
    assert call is not None
    for request in requests():
        inputs = program_inputs(request)
        expected = adapter.format(call.signature, program.review.demos, inputs)
        assert call.messages(inputs) == expected
        assert call.messages(inputs) == expected  # the cached prefix is not consumed


# ---------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour.VALID,
        Behaviour.VALID_JSON,
        Behaviour.PLAN_MIXED,
        Behaviour.RUNAWAY,
        Behaviour.SCHEMA_INVALID,
        Behaviour.HTTP_500,
        Behaviour.HTTP_429,
        Behaviour.HTTP_401,
        Behaviour.HTTP_403,
        Behaviour.MALFORMED_JSON,
        Behaviour.ERROR_FRAME,
        Behaviour.CONNECTION_RESET,
    ],
    ids=lambda b: b.value,
)
async def test_direct_call_when_stub_behaves_then_same_outcome_as_dspy(
    jangar_stub: JangarStub, http_client: httpx.AsyncClient, behaviour: Behaviour
) -> None:
    settings = settings_for(jangar_stub.base_url)
    request = requests()[0]
    jangar_stub.set_behaviour(behaviour)
    reference = await through_dspy(http_client, settings, uncompiled(), request)
    direct = await through_executor(http_client, settings, uncompiled(), request)
    assert direct == reference
    first, second = jangar_stub.requests
    assert second.body == first.body


# ---------------------------------------------------------------------- messy answers

VALID = chat_adapter_content(DEFAULT_ANSWER)


def _blocks(fields: dict[str, str], *, marker: bool = True) -> str:
    text = "\n\n".join(f"[[ ## {name} ## ]]\n{value}" for name, value in fields.items())
    return text + ("\n\n[[ ## completed ## ]]" if marker else "")


_RAW = {
    "verdict": "approve",
    "confidence": "0.82",
    "uncertainty": "low",
    "rationale": "Liquid name, small size.",
    "risk_flags": "[]",
    "required_checks": "[]",
    "adjusted_qty": "null",
    "adjusted_order_type": "null",
    "adjusted_limit_price": "null",
}

MESSY: dict[str, str] = {
    "valid": VALID,
    "prose_before": "Sure, here is my review of the order.\n\n" + VALID,
    "reordered": _blocks(dict(reversed(list(_RAW.items())))),
    "duplicate_field": _blocks(_RAW) + "\n\n[[ ## verdict ## ]]\nveto",
    "header_inline": VALID.replace("[[ ## verdict ## ]]\napprove", "[[ ## verdict ## ]] approve"),
    "crlf": VALID.replace("\n", "\r\n"),
    "no_completed_marker": _blocks(_RAW, marker=False),
    "text_after_marker": VALID + "\n\nI hope this helps!",
    "unknown_field": _blocks({**_RAW, "mood": "calm"}),
    "missing_field": _blocks({k: v for k, v in _RAW.items() if k != "required_checks"}),
    "bad_literal": _blocks({**_RAW, "verdict": "maybe"}),
    "bad_float": _blocks({**_RAW, "confidence": "high"}),
    "confidence_out_of_range": _blocks({**_RAW, "confidence": "1.7"}),
    "python_list": _blocks({**_RAW, "risk_flags": "['wide_spread', 'earnings']"}),
    "fenced_list": _blocks({**_RAW, "risk_flags": '```json\n["wide_spread"]\n```'}),
    "bare_word_list": _blocks({**_RAW, "required_checks": "confirm_size"}),
    "none_words": _blocks({**_RAW, "adjusted_qty": "None", "adjusted_order_type": "none"}),
    "adjust_numbers": _blocks(
        {
            **_RAW,
            "verdict": "adjust",
            "adjusted_qty": "5",
            "adjusted_order_type": "limit",
            "adjusted_limit_price": "199.5",
        }
    ),
    "quoted_literal": _blocks({**_RAW, "verdict": '"veto"', "uncertainty": "'high'"}),
    "long_rationale": _blocks({**_RAW, "rationale": "x" * 1000}),
    "json_object_instead": json.dumps(dict(DEFAULT_ANSWER)),
    "markers_only": "[[ ## completed ## ]]",
    "blank": "   \n  ",
}


def sse_handler(
    content: str, *, finish: str = "stop", usage: dict[str, Any] | None = None, pieces: int = 3
) -> Callable[[httpx.Request], httpx.Response]:
    size = max(1, len(content) // pieces)
    deltas = [content[i : i + size] for i in range(0, len(content), size)] or [""]

    def handler(request: httpx.Request) -> httpx.Response:
        frames: list[dict[str, Any]] = [
            {"id": "c1", "model": MODEL, "choices": [{"delta": {"content": d}}]} for d in deltas
        ]
        frames.append({"choices": [{"delta": {}, "finish_reason": finish}]})
        if usage is not None:
            frames.append({"choices": [], "usage": usage})
        body = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body.encode()
        )

    return handler


async def both_through(
    handler: Callable[[httpx.Request], httpx.Response], state: dict[str, Any] | None = None
) -> tuple[Outcome, Outcome, list[bytes]]:
    bodies: list[bytes] = []

    def recording(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return handler(request)

    state = state if state is not None else uncompiled()
    settings = settings_for("http://jangar.test")
    request = requests()[0]
    async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
        reference = await through_dspy(client, settings, state, request)
        direct = await through_executor(client, settings, state, request)
    return reference, direct, bodies


@pytest.mark.parametrize("finish", ["stop", "length"])
@pytest.mark.parametrize("name", list(MESSY))
async def test_direct_call_when_answer_is_messy_then_parsed_or_refused_as_dspy_does(
    name: str, finish: str
) -> None:
    usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    reference, direct, bodies = await both_through(
        sse_handler(MESSY[name], finish=finish, usage=usage)
    )
    assert direct == reference
    assert bodies[0] == bodies[1]


@pytest.mark.parametrize("name", [n for n in MESSY if n != "blank"])
def test_review_call_parse_when_answer_is_messy_then_same_fields_or_error_as_dspy(
    name: str,
) -> None:
    """The parse alone, field by field (types included), against ChatAdapter's."""
    adapter = ReviewAdapter()
    program = new_program()
    call = review_call(program, adapter)
    assert call is not None
    try:
        expected: Any = adapter.parse(call.signature, MESSY[name])
    except Exception as exc:  # the same error class, or the test fails below
        with pytest.raises(type(exc)):
            call.parse(MESSY[name])
        return
    got = call.parse(MESSY[name])
    assert got == expected
    assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]


def test_messy_cases_when_listed_then_both_kinds_are_covered() -> None:
    """The table above holds answers DSPy accepts and answers it refuses (else it proves
    little): counted against ChatAdapter itself."""
    adapter = ReviewAdapter()
    signature = TradeReviewSignature
    accepted = refused = 0
    for text in MESSY.values():
        try:
            adapter.parse(signature, text)
            accepted += 1
        except Exception:
            refused += 1
    assert accepted >= 10 and refused >= 5, (accepted, refused)


# ---------------------------------------------------------------------- usage, odd failures


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {},
        {"prompt_tokens": 3},
        {"completion_tokens": 4},
        {"total_tokens": 9},
        {"prompt_tokens": "x", "completion_tokens": 4},
        {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    ],
    ids=["absent", "empty", "prompt_only", "completion_only", "total_only", "bad", "zeros"],
)
async def test_direct_call_when_usage_is_partial_then_same_tokens_as_dspy(
    usage: dict[str, Any] | None,
) -> None:
    reference, direct, _ = await both_through(sse_handler(VALID, usage=usage))
    assert direct == reference
    assert direct.outcome is CallOutcome.OK


async def test_direct_call_when_transport_raises_unexpectedly_then_same_outcome_as_dspy() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug below the engine")

    reference, direct, _ = await both_through(broken)
    assert direct == reference
    assert direct.outcome is CallOutcome.TRANSPORT_ERROR


# ---------------------------------------------------------------------- DSPy's path is kept


async def test_program_with_its_own_config_when_reviewed_then_dspy_runs_it_as_before(
    jangar_stub: JangarStub, http_client: httpx.AsyncClient
) -> None:
    """A state that gives the predictor a config changes what DSPy sends (here a temperature):
    such a program is not given the direct call, and DSPy's own path still serves it."""
    state = uncompiled()
    state["review"]["config"] = {"temperature": 0.2}
    assert review_call(new_program(state), ReviewAdapter()) is None
    settings = settings_for(jangar_stub.base_url)
    request = requests()[0]
    reference = await through_dspy(http_client, settings, state, request)
    direct = await through_executor(http_client, settings, state, request)
    assert direct == reference
    assert direct.outcome is CallOutcome.OK
    first, second = jangar_stub.requests
    assert first.body == second.body
    assert second.body["temperature"] == 0.2


async def test_input_with_a_custom_type_marker_when_reviewed_then_dspy_formats_it_as_before(
    jangar_stub: JangarStub, http_client: httpx.AsyncClient
) -> None:
    """DSPy turns text between custom-type markers into content blocks; the direct call does
    not imitate that: such a request goes through DSPy's path, with DSPy's result."""
    body = base_request(
        NOW,
        rationale='<<CUSTOM-TYPE-START-IDENTIFIER>>[{"type": "text", "text": "hi"}]'
        "<<CUSTOM-TYPE-END-IDENTIFIER>>",
    )
    request = ReviewRequest.model_validate(body)
    call = review_call(new_program(), ReviewAdapter())
    assert call is not None
    assert call.messages(program_inputs(request)) is None
    settings = settings_for(jangar_stub.base_url)
    reference = await through_dspy(http_client, settings, uncompiled(), request)
    direct = await through_executor(http_client, settings, uncompiled(), request)
    assert direct == reference
    assert direct.outcome is CallOutcome.OK
    first, second = jangar_stub.requests
    assert second.body == first.body
