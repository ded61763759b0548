"""Anthropic Messages framing: the full event sequence, thinking blocks, stop reasons, errors, bodies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmstream.protocols import anthropic
from llmstream.protocols.wire import ErrorKind, thinking_signature
from llmstream.simulator import HttpFault, StreamPlan, parse_faults, resume_plan

from .simulator_strategies import echo_plan, thinking_plan


def events(plan: StreamPlan) -> list[tuple[float, str | None, dict[str, Any]]]:
    """(due, id, data) per event; checks that every event's name repeats its data's type."""
    out = []
    for scheduled in anthropic.stream_events(plan, created=0, request_id="abc"):
        data = orjson.loads(scheduled.event.data or "")
        assert scheduled.event.event == data.pop("type")
        out.append((scheduled.due_ms, scheduled.event.id, {"event": scheduled.event.event, **data}))
    return out


def delta(index: int, text: str, kind: str = "text") -> dict[str, Any]:
    return {"event": "content_block_delta", "index": index, "delta": {"type": f"{kind}_delta", kind: text}}


def message_start(output_tokens: int = 1) -> dict[str, Any]:
    return {
        "event": "message_start",
        "message": {
            "id": "msg_abc",
            "type": "message",
            "role": "assistant",
            "model": "echo",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 11, "output_tokens": output_tokens},
        },
    }


def test_the_full_sequence() -> None:
    plan = echo_plan()
    key = plan.stream_key
    assert events(plan) == [
        (0.0, None, message_start()),
        (
            0.0,
            None,
            {"event": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (0.0, None, {"event": "ping"}),
        (100.0, f"{key}:0", delta(0, "Hello")),
        (200.0, f"{key}:1", delta(0, ",")),
        (300.0, f"{key}:2", delta(0, " world")),
        (400.0, f"{key}:3", delta(0, "!")),
        (400.0, None, {"event": "content_block_stop", "index": 0}),
        (
            400.0,
            None,
            {
                "event": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 4},
            },
        ),
        (400.0, None, {"event": "message_stop"}),
    ]


def test_byte_exact_start() -> None:
    first = next(iter(anthropic.stream_events(echo_plan(), created=0, request_id="abc")))
    assert first.event.encode() == (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_abc","type":"message",'
        b'"role":"assistant","model":"echo","content":[],"stop_reason":null,"stop_sequence":null,'
        b'"usage":{"input_tokens":11,"output_tokens":1}}}\n\n'
    )


def test_a_thinking_block_comes_first_signed_then_the_text_block_at_index_1() -> None:
    plan = thinking_plan()
    sequence = [data for _, _, data in events(plan)]
    signature = {"type": "signature_delta", "signature": thinking_signature(plan)}
    assert sequence[1:] == [
        {"event": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"event": "ping"},
        delta(0, "Hello", "thinking"),
        delta(0, ",", "thinking"),
        {"event": "content_block_delta", "index": 0, "delta": signature},
        {"event": "content_block_stop", "index": 0},
        {"event": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        delta(1, " world"),
        delta(1, "!"),
        {"event": "content_block_stop", "index": 1},
        {
            "event": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 4},
        },
        {"event": "message_stop"},
    ]
    # The block switch happens when the first text token is due.
    assert [due for due, _, data in events(plan) if data["event"] == "content_block_start"] == [0.0, 300.0]


def test_stop_reasons() -> None:
    def final_delta(plan: StreamPlan) -> dict[str, Any]:
        return next(data for _, _, data in events(plan) if data["event"] == "message_delta")

    assert final_delta(echo_plan(max_tokens=2))["delta"] == {
        "stop_reason": "max_tokens",
        "stop_sequence": None,
    }
    stopped = final_delta(echo_plan(stop=("world",)))
    assert stopped["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "world"}
    assert stopped["usage"] == {"output_tokens": 3}


def test_an_empty_completion_still_has_its_text_block() -> None:
    names = [data["event"] for _, _, data in events(echo_plan(""))]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_a_resumed_stream_opens_the_block_it_resumes_in() -> None:
    sequence = [data for _, _, data in events(resume_plan(thinking_plan(), 2))]
    assert sequence[1] == {
        "event": "content_block_start",
        "index": 1,
        "content_block": {"type": "text", "text": ""},
    }
    assert [d["event"] for d in sequence].count("content_block_start") == 1


def test_a_mid_stream_error_event() -> None:
    out = events(echo_plan(faults=parse_faults("error_after:2")))
    assert out[-1] == (
        300.0,
        None,
        {
            "event": "error",
            "error": {
                "type": "api_error",
                "message": "The model failed after 2 tokens (simulated fault error_after:2).",
            },
        },
    )
    assert anthropic.error_event("overloaded", "Overloaded").encode() == (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )


def test_reset_ends_after_the_tokens() -> None:
    out = events(echo_plan(faults=parse_faults("reset_after:1")))
    assert [data["event"] for _, _, data in out] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
    ]


def test_complete_body() -> None:
    assert anthropic.complete_body(echo_plan(stop=("world",)), created=0, request_id="abc") == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "echo",
        "content": [{"type": "text", "text": "Hello, "}],
        "stop_reason": "stop_sequence",
        "stop_sequence": "world",
        "usage": {"input_tokens": 11, "output_tokens": 3},
    }
    plan = thinking_plan()
    assert anthropic.complete_body(plan, created=0, request_id="abc")["content"] == [
        {"type": "thinking", "thinking": "Hello,", "signature": thinking_signature(plan)},
        {"type": "text", "text": " world!"},
    ]


@pytest.mark.parametrize(
    ("kind", "status", "type_"),
    [
        ("invalid_request", 400, "invalid_request_error"),
        ("authentication", 401, "authentication_error"),
        ("permission", 403, "permission_error"),
        ("not_found", 404, "not_found_error"),
        ("request_too_large", 413, "request_too_large"),
        ("rate_limit", 429, "rate_limit_error"),
        ("server_error", 500, "api_error"),
        ("overloaded", 529, "overloaded_error"),
    ],
)
def test_error_shapes(kind: ErrorKind, status: int, type_: str) -> None:
    response = anthropic.error_response(kind, "nope")
    assert (response.status, response.body) == (
        status,
        {"type": "error", "error": {"type": type_, "message": "nope"}},
    )


def test_fault_responses() -> None:
    overloaded = anthropic.fault_response(HttpFault("overloaded"))
    assert (overloaded.status, overloaded.body["error"]) == (
        529,
        {"type": "overloaded_error", "message": "Overloaded (simulated fault)."},
    )  # type: ignore[index]
    limited = anthropic.fault_response(HttpFault("rate_limit"))
    assert (limited.status, limited.headers) == (429, (("retry-after", "1"), ("retry-after-ms", "1000")))
