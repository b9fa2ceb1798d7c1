# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false
# (dspy ships no type information; its loose typing is contained in this module.)
"""The DSPy review program: a typed Signature (docstring = the reviewer's task) and a Module.

This module and ``jangar``/``live`` are the only ones that import dspy; everything they return
is re-validated against ``ReviewVerdict`` so dspy's loose typing stops here.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Final, Literal

import dspy  # pyright: ignore[reportMissingTypeStubs]
import dspy.adapters.utils as _dspy_adapter_utils  # pyright: ignore[reportMissingTypeStubs]
import pydantic
from dspy.adapters.types.base_type import (  # pyright: ignore[reportMissingTypeStubs]
    CUSTOM_TYPE_START_IDENTIFIER,
)

from app.review.schemas import ReviewRequest

PROGRAM_NAME = "trade-review"
SIGNATURE_VERSION = "v1"


class _TypeAdapterCache:
    """``pydantic.TypeAdapter(annotation)``, built once per annotation.

    DSPy 3.4's adapter helpers (``dspy.adapters.utils``: ``parse_value`` for every output field,
    ``serialize_for_json`` for every input) build a fresh TypeAdapter, i.e. a new pydantic core
    schema, on every call: 12 per review, ~3 ms of CPU measured here, for annotations that never
    change. A TypeAdapter is immutable once built, so sharing one changes no result. Only
    hashable annotations without extra arguments are cached; anything else is built as before.
    """

    _MAX: Final = 512

    def __init__(self) -> None:
        self._adapters: dict[Any, pydantic.TypeAdapter[Any]] = {}

    def __call__(self, annotation: Any, *args: Any, **kwargs: Any) -> pydantic.TypeAdapter[Any]:
        if args or kwargs:
            return pydantic.TypeAdapter(annotation, *args, **kwargs)
        try:
            return self._adapters[annotation]
        except KeyError:
            adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(annotation)
            if len(self._adapters) < self._MAX:
                self._adapters[annotation] = adapter
            return adapter
        except TypeError:  # unhashable annotation
            return pydantic.TypeAdapter(annotation)


def install_type_adapter_cache() -> bool:
    """Point DSPy's adapter helpers at the cache (idempotent). False if this DSPy no longer
    builds its TypeAdapters through ``dspy.adapters.utils.TypeAdapter`` (then nothing changes;
    a test says so)."""
    current = getattr(_dspy_adapter_utils, "TypeAdapter", None)
    if isinstance(current, _TypeAdapterCache):
        return True
    if current is not pydantic.TypeAdapter:
        return False
    _dspy_adapter_utils.TypeAdapter = _TypeAdapterCache()
    return True


class TradeReviewSignature(dspy.Signature):
    """You are the pre-trade risk reviewer of a systematic trading desk.

    Review ONE proposed order from an automated strategy before it reaches the broker. Decide:
    approve (send as proposed), adjust (send smaller, or as a safer order type), veto (do not
    send), abstain (no opinion), or escalate (a human must look). Weigh the market context risk
    flags and staleness, the spread, volatility, the regime (high entropy means an uncertain
    regime: be defensive), the portfolio exposure after the trade, and recent rejected orders.
    Never propose a quantity larger than the order's; deterministic risk gates run after you
    and have the final word. Keep the rationale under 280 characters and factual.
    """

    order: dict[str, Any] = dspy.InputField(desc="the proposed order and the strategy's reasons")
    portfolio: dict[str, Any] = dspy.InputField(desc="equity, cash, exposure, positions")
    market: dict[str, Any] = dspy.InputField(desc="latest quote for the symbol (may be empty)")
    market_context: dict[str, Any] = dspy.InputField(
        desc="market-context bundle: freshness, quality, risk flags, domains (may be empty)"
    )
    recent_decisions: list[dict[str, Any]] = dspy.InputField(desc="recent orders of the strategy")
    policy: dict[str, Any] = dspy.InputField(desc="bounds for any adjustment")

    verdict: Literal["approve", "veto", "adjust", "abstain", "escalate"] = dspy.OutputField()
    confidence: float = dspy.OutputField(desc="0.0 to 1.0")
    uncertainty: Literal["low", "medium", "high"] = dspy.OutputField()
    rationale: str = dspy.OutputField(desc="at most 280 characters")
    risk_flags: list[str] = dspy.OutputField(desc="short snake_case risk labels")
    required_checks: list[str] = dspy.OutputField(desc="checks a human must do, or []")
    adjusted_qty: float | None = dspy.OutputField(desc="new quantity when verdict is adjust")
    adjusted_order_type: Literal["market", "limit", "stop", "stop_limit"] | None = dspy.OutputField(
        desc="new order type when verdict is adjust, else null"
    )
    adjusted_limit_price: float | None = dspy.OutputField(desc="limit price if adjusted")


class TradeReviewProgram(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.review = dspy.Predict(TradeReviewSignature)

    async def aforward(self, **inputs: Any) -> dspy.Prediction:
        return await self.review.acall(**inputs)


def program_inputs(request: ReviewRequest) -> dict[str, Any]:
    """The request's relevant parts, as separate typed inputs (not one opaque blob)."""
    dumped = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {
        "order": dumped["decision"],
        "portfolio": dumped["portfolio"],
        "market": dumped.get("market") or {},
        "market_context": dumped.get("market_context") or {},
        "recent_decisions": dumped.get("recent_decisions", [])[-20:],
        "policy": dumped["policy"],
    }


def new_program(state: dict[str, Any] | None = None) -> TradeReviewProgram:
    """A program, optionally with an artifact's saved state (instructions, demos) loaded."""
    program = TradeReviewProgram()
    if state:
        program.load_state(state)
    return program


def program_state(program: TradeReviewProgram) -> dict[str, Any]:
    state: dict[str, Any] = program.dump_state()
    return state


def prediction_fields(prediction: Any) -> dict[str, Any]:
    names = (
        "verdict", "confidence", "uncertainty", "rationale", "risk_flags", "required_checks",
        "adjusted_qty", "adjusted_order_type", "adjusted_limit_price",
    )  # fmt: skip
    return {name: getattr(prediction, name, None) for name in names}


class ReviewAdapter(dspy.ChatAdapter):
    """ChatAdapter pinned for serving: no silent JSONAdapter second call, and the system
    message cached per signature content.

    DSPy rebuilds the system message (field descriptions and structure, via fresh pydantic
    TypeAdapters) on every call: ~4.5 ms of CPU per review measured here, for text that only
    changes when the artifact does.
    """

    _MAX_CACHED = 64

    def __init__(self) -> None:
        super().__init__(use_json_adapter_fallback=False)
        self._system_messages: dict[tuple[Any, ...], str] = {}
        # The user message's closing reminder of the output fields: also signature-only text,
        # rebuilt by DSPy on every call (~45 us). Keyed by the signature class itself (DSPy
        # signatures are immutable: load_state, with_instructions... return new classes), so
        # a lookup costs no key building and an unloaded artifact's entry goes with its class.
        self._requirements: weakref.WeakKeyDictionary[type[dspy.Signature], str] = (
            weakref.WeakKeyDictionary()
        )

    def format_system_message(self, signature: type[dspy.Signature]) -> str:
        key = (
            signature.instructions,
            tuple(
                (name, repr(field.annotation), repr(field.json_schema_extra))
                for name, field in signature.fields.items()
            ),
        )
        cached = self._system_messages.get(key)
        if cached is None:
            cached = super().format_system_message(signature)
            if len(self._system_messages) >= self._MAX_CACHED:
                self._system_messages.pop(next(iter(self._system_messages)))
            self._system_messages[key] = cached
        return cached

    def user_message_output_requirements(self, signature: type[dspy.Signature]) -> str:
        try:
            return self._requirements[signature]
        except KeyError:
            text: str = super().user_message_output_requirements(signature)
            self._requirements[signature] = text
            return text


@dataclass(frozen=True, slots=True)
class ReviewCall:
    """The review program's one LM call, prepared once per artifact.

    ``TradeReviewProgram`` is one ``Predict`` under ``ReviewAdapter``: per review DSPy formats
    the messages (system message, the artifact's demos, the inputs), calls the LM once and
    parses the completion. Through ``program.acall`` that call also pays for DSPy's module and
    LM machinery: callbacks, two ``settings.context`` scopes, adapter resolution and capability
    planning, a worker-thread hop to prepare the LM call and another to price it, request and
    response objects, the usage tracker and a trace entry. None of it changes the messages
    sent or how the answer is parsed for this program, and it cost ~3 ms of CPU per review
    (``bench/live_cpu.py``). A ``ReviewCall`` keeps the two parts that do: the adapter's
    formatting (the system message and demos formatted once here, the user message per call,
    both by the adapter's own methods) and the adapter's ``parse``.

    Built only for a program DSPy would run exactly this way (``review_call`` says when);
    anything else, or a message that is not plain text, takes ``program.acall`` as before.
    Tests compare both paths' wire bodies and parse results.
    """

    signature: type[dspy.Signature]
    adapter: ReviewAdapter
    prefix: tuple[dict[str, str], ...]  # the system message, then the demos as turns

    def messages(self, inputs: dict[str, Any]) -> list[dict[str, str]] | None:
        """What ``adapter.format(signature, demos, inputs)`` returns, or None when that would
        not be plain text (DSPy expands a custom-type marker into content blocks)."""
        content = self.adapter.format_user_message_content(
            self.signature, inputs, main_request=True
        )
        if CUSTOM_TYPE_START_IDENTIFIER in content:
            return None
        messages = list(self.prefix)
        if content:
            messages.append({"role": "user", "content": content})
        return messages

    def parse(self, completion: str) -> dict[str, Any]:
        """The output fields, as ``adapter.parse`` gives them (raises ``AdapterParseError``)."""
        fields: dict[str, Any] = self.adapter.parse(self.signature, completion)
        return fields


def review_call(program: TradeReviewProgram, adapter: ReviewAdapter) -> ReviewCall | None:
    """The program's call prepared for ``ReviewCall``, or None when DSPy's own machinery must
    run it: a program state that gives the predictor its own LM, config, decision fields or
    callbacks changes how DSPy calls or parses, so such a program keeps ``program.acall``."""
    predictor = program.review
    if (
        type(program) is not TradeReviewProgram
        or type(predictor) is not dspy.Predict
        or predictor.lm is not None
        or predictor.config
        or predictor.fields
        or program.callbacks
        or predictor.callbacks
    ):
        return None
    signature = predictor.signature
    if not isinstance(signature, type):
        return None
    if adapter._get_history_field_name(signature) is not None:  # pyright: ignore[reportPrivateUsage]
        return None
    prefix: list[dict[str, str]] = [
        {"role": "system", "content": adapter.format_system_message(signature)}
    ]
    for message in adapter.format_demos(signature, predictor.demos):
        content = message.get("content")
        if not isinstance(content, str) or CUSTOM_TYPE_START_IDENTIFIER in content:
            return None
        prefix.append({"role": str(message["role"]), "content": content})
    return ReviewCall(signature, adapter, tuple(prefix))
