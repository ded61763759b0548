"""llmstream's native framing: byte-exact events for a small plan, endings, bodies and errors."""

from __future__ import annotations

import orjson

from llmstream.protocols import native
from llmstream.protocols.wire import stamped
from llmstream.simulator import HttpFault, StreamPlan, parse_faults, resume_plan

from .simulator_strategies import echo_plan, thinking_plan

CREATED = 1_700_000_000


def wire(plan: StreamPlan) -> list[tuple[float, bytes]]:
    return [
        (s.due_ms, s.event.encode()) for s in native.stream_events(plan, created=CREATED, request_id="req1")
    ]


def test_a_small_stream_byte_exact() -> None:
    plan = echo_plan()
    key = plan.stream_key
    usage = (
        b'{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15,"reasoning_tokens":0,'
        b'"ttft_ms":100.0,"tokens_per_s":10.0}'
    )
    assert wire(plan) == [
        (
            0.0,
            b'event: start\ndata: {"stream_id":"req1","stream_key":"%s","model":"echo",'
            b'"created":1700000000}\n\n' % key.encode(),
        ),
        (100.0, b'event: token\nid: %s:0\ndata: {"index":0,"text":"Hello"}\n\n' % key.encode()),
        (200.0, b'event: token\nid: %s:1\ndata: {"index":1,"text":","}\n\n' % key.encode()),
        (300.0, b'event: token\nid: %s:2\ndata: {"index":2,"text":" world"}\n\n' % key.encode()),
        (400.0, b'event: token\nid: %s:3\ndata: {"index":3,"text":"!"}\n\n' % key.encode()),
        (400.0, b'event: finish\ndata: {"finish_reason":"stop","usage":%s}\n\n' % usage),
    ]


def test_thinking_tokens_are_their_own_event_type_in_the_same_index_sequence() -> None:
    events = [s.event for s in native.stream_events(thinking_plan(), created=CREATED, request_id="r")]
    assert [e.event for e in events] == ["start", "thinking", "thinking", "token", "token", "finish"]
    assert [orjson.loads(e.data or "")["index"] for e in events[1:5]] == [0, 1, 2, 3]
    usage = orjson.loads(events[-1].data or "")["usage"]
    assert usage["reasoning_tokens"] == 2
    assert usage["completion_tokens"] == 4


def test_the_io_layer_can_add_a_send_timestamp() -> None:
    plan = echo_plan()
    scheduled = list(native.stream_events(plan, created=CREATED, request_id="r"))
    token = scheduled[1].token
    assert token is not None
    assert token.text == "Hello"
    event = stamped(scheduled[1].event, 1234.5)
    expected = b'event: token\nid: %s:0\ndata: {"index":0,"text":"Hello","t":1234.500000}\n\n'
    assert event.encode() == expected % plan.stream_key.encode()
    assert scheduled[0].token is None
    assert scheduled[-1].token is None


def test_endings() -> None:
    error = wire(echo_plan(faults=parse_faults("error_after:2")))
    assert error[-1] == (
        300.0,
        b'event: error\ndata: {"code":"server_error","message":"The model failed after 2 tokens '
        b'(simulated fault error_after:2)."}\n\n',
    )
    assert len(error) == 1 + 2 + 1
    for kind in ("truncate", "reset"):
        cut = wire(echo_plan(faults=parse_faults(f"{kind}_after:3")))
        assert len(cut) == 1 + 3
        assert cut[-1][1].startswith(b"event: token\n")


def test_a_resumed_stream_says_so_and_restarts_its_clock() -> None:
    resumed = resume_plan(echo_plan(), 1)
    events = list(native.stream_events(resumed, created=CREATED, request_id="r"))
    assert orjson.loads(events[0].event.data or "")["resumed_after"] == 1
    assert [(s.due_ms, s.event.event) for s in events] == [
        (0.0, "start"),
        (0.0, "token"),
        (100.0, "token"),
        (100.0, "finish"),
    ]


def test_complete_body() -> None:
    assert native.complete_body(echo_plan(), created=CREATED, request_id="r") == {
        "stream_id": "r",
        "stream_key": echo_plan().stream_key,
        "model": "echo",
        "created": CREATED,
        "text": "Hello, world!",
        "finish_reason": "stop",
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 4,
            "total_tokens": 15,
            "reasoning_tokens": 0,
            "ttft_ms": 100.0,
            "tokens_per_s": 10.0,
        },
    }
    assert native.complete_body(thinking_plan(), created=CREATED, request_id="r")["thinking"] == "Hello,"


def test_errors() -> None:
    assert native.error_body("invalid_request", "bad") == {
        "error": {"type": "invalid_request", "message": "bad"}
    }
    assert native.error_event("overloaded", "busy").encode() == (
        b'event: error\ndata: {"code":"overloaded","message":"busy"}\n\n'
    )
    response = native.fault_response(HttpFault("rate_limit"))
    assert response.status == 429
    assert response.headers == (("retry-after", "1"), ("retry-after-ms", "1000"))
    assert response.body["error"] == {
        "type": "rate_limit",
        "message": "Rate limit reached for requests (simulated fault). Please try again in 1s.",
    }  # type: ignore[index]
    assert native.fault_response(HttpFault("overloaded")).status == 503
    assert native.error_response("not_found", "no such model").status == 404
