"""Properties every framing keeps, over varied plans: order, completeness, ids, parseable wire bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmstream.protocols
from llmstream.protocols import Scheduled, StreamItem, TokenRun, anthropic, native, openai
from llmstream.simulator import HttpFault, StreamPlan, resume_plan
from llmstream.sse import SSEDecoder

from .simulator_strategies import pooled_plans

Framing = Callable[[StreamPlan], Iterator[Scheduled]]
FRAMINGS: dict[str, Framing] = {
    "native": lambda plan: native.stream_events(plan, created=1, request_id="r"),
    "openai": lambda plan: openai.stream_events(plan, created=1, request_id="r"),
    "openai+usage": lambda plan: openai.stream_events(plan, created=1, request_id="r", include_usage=True),
    "anthropic": lambda plan: anthropic.stream_events(plan, created=1, request_id="r"),
}
# The same streams as the server sends them (token runs rendered from templates).
SENT: dict[str, Callable[[StreamPlan], Iterator[StreamItem]]] = {
    "native": lambda plan: native.stream_items(plan, created=1, request_id="r"),
    "openai": lambda plan: openai.stream_items(plan, created=1, request_id="r"),
    "openai+usage": lambda plan: openai.stream_items(plan, created=1, request_id="r", include_usage=True),
    "anthropic": lambda plan: anthropic.stream_items(plan, created=1, request_id="r"),
}


def wire_bytes(items: Iterator[StreamItem]) -> bytes:
    """What the server writes for ``items`` (llmstream.api.pacing renders runs the same way)."""
    parts = []
    for item in items:
        if isinstance(item, TokenRun):
            parts += [item.template.render(t.index, t.text) for t in item.tokens]
        else:
            parts.append(item.event.encode())
    return b"".join(parts)


def token_text(name: str, data: Any) -> str | None:
    """The token text an event carries, read the way each API's client reads it."""
    if name == "native":
        return data.get("text") if isinstance(data, dict) and "index" in data else None
    if name.startswith("openai"):
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices:
            return None
        delta = choices[0]["delta"]
        return delta.get("content") or delta.get("reasoning_content") if "role" not in delta else None
    if data.get("type") == "content_block_delta":
        delta = data["delta"]
        return delta.get("text", delta.get("thinking"))
    return None


@pytest.mark.parametrize("name", FRAMINGS)
# Each example frames and re-parses up to ~1,000 events (~5 ms), and the plans come from a pool of
# 38: 250 examples visit each plan several times with different resume points.
@settings(max_examples=250)
@given(pooled_plans, st.integers(-1, 40), st.booleans())
def test_framings_are_ordered_complete_and_parseable(
    name: str, plan: StreamPlan, after: int, resume: bool
) -> None:
    if resume:
        plan = resume_plan(plan, after)
    scheduled = list(FRAMINGS[name](plan))
    due = [s.due_ms for s in scheduled]
    assert due == sorted(due)
    assert due[0] == 0.0
    assert due[-1] == (plan.end_ms if plan.ending in ("finish", "error") else due[-1])

    # The server's bytes are the events' own encoding, and decode back to as many events (what any
    # spec-compliant client sees).
    sent = wire_bytes(SENT[name](plan))
    assert sent == b"".join(s.event.encode() for s in scheduled)
    decoder = SSEDecoder()
    decoded = decoder.feed(sent) + decoder.flush()
    assert len(decoded) == len(scheduled)

    texts, ids = [], []
    for item, event in zip(scheduled, decoded, strict=True):
        data = event.data if event.data == "[DONE]" else orjson.loads(event.data)
        text = token_text(name, data)
        if item.token is not None:
            assert text == item.token.text
            texts.append(text)
            ids.append(event.id)
        else:
            assert text in (None, "") or data.get("delta", {}).get("type") == "signature_delta"
    assert texts == [t.text for t in plan.tokens]
    assert ids == [f"{plan.stream_key}:{t.index}" for t in plan.tokens]

    last = decoded[-1]
    if plan.ending == "finish":
        expected_last = {"native": "finish", "anthropic": "message_stop"}.get(name, "message")
        assert last.event == expected_last
        if name.startswith("openai"):
            assert last.data == "[DONE]"
    elif plan.ending == "error":
        assert "error" in orjson.loads(last.data) or last.event == "error"
    else:
        assert scheduled[-1].token is not None or not plan.tokens


@given(pooled_plans)
def test_complete_bodies_hold_the_whole_completion(plan: StreamPlan) -> None:
    assert native.complete_body(plan, created=1, request_id="r")["text"] == plan.text
    body = openai.complete_body(plan, created=1, request_id="r")
    assert body["choices"][0]["message"]["content"] == plan.text  # type: ignore[index]
    message = anthropic.complete_body(plan, created=1, request_id="r")
    assert "".join(b.get("text", "") for b in message["content"]) == plan.text  # type: ignore[attr-defined, union-attr]
    orjson.dumps(body)


@pytest.mark.parametrize("kind", ["rate_limit", "server_error", "unavailable", "overloaded"])
def test_fault_statuses_agree_with_each_protocols_error_table(kind: Any) -> None:
    fault = HttpFault(kind)
    for module, api in ((native, "native"), (openai, "openai"), (anthropic, "anthropic")):
        assert module.fault_response(fault).status == module.status_for(kind) == fault.status(api)


def test_public_api() -> None:
    assert sorted(llmstream.protocols.__all__) == sorted(
        [
            "ErrorKind",
            "ErrorResponse",
            "Scheduled",
            "StreamItem",
            "TokenRun",
            "anthropic",
            "native",
            "openai",
            "request_error_kind",
        ]
    )
    for module in (native, openai, anthropic):
        for function in ("stream_events", "complete_body", "error_body", "error_event", "error_response",
                         "fault_response", "status_for"):  # fmt: skip
            assert function in module.__all__
            assert callable(getattr(module, function))


def test_request_errors_map_to_kinds() -> None:
    from llmstream.protocols import request_error_kind
    from llmstream.simulator import FaultSpecError, InvalidRequestError, UnknownModelError

    assert request_error_kind(UnknownModelError("x")) == "not_found"
    assert request_error_kind(FaultSpecError("x")) == "invalid_request"
    assert request_error_kind(InvalidRequestError("x", param="seed")) == "invalid_request"
