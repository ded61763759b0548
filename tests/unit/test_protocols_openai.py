"""OpenAI Chat Completions framing: chunk sequence, include_usage, [DONE], errors, bodies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from llmstream.protocols import openai
from llmstream.protocols.wire import ErrorKind
from llmstream.simulator import HttpFault, StreamPlan, parse_faults

from .simulator_strategies import echo_plan, thinking_plan

CREATED = 1_700_000_000


def events(plan: StreamPlan, include_usage: bool = False) -> list[tuple[float, str | None, Any]]:
    """(due, id, data as JSON) per event; [DONE] stays a string. No event may be named."""
    out = []
    for scheduled in openai.stream_events(
        plan, created=CREATED, request_id="abc", include_usage=include_usage
    ):
        event = scheduled.event
        assert event.event is None, "the openai SDK only reads unnamed events"
        data = event.data or ""
        out.append((scheduled.due_ms, event.id, data if data == "[DONE]" else orjson.loads(data)))
    return out


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": "echo",
        "system_fingerprint": openai.complete_body(echo_plan(), created=0, request_id="x")[
            "system_fingerprint"
        ],
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        **extra,
    }


def test_a_small_stream() -> None:
    plan = echo_plan()
    key = plan.stream_key
    assert events(plan) == [
        (0.0, None, chunk({"role": "assistant", "content": "", "refusal": None})),
        (100.0, f"{key}:0", chunk({"content": "Hello"})),
        (200.0, f"{key}:1", chunk({"content": ","})),
        (300.0, f"{key}:2", chunk({"content": " world"})),
        (400.0, f"{key}:3", chunk({"content": "!"})),
        (400.0, None, chunk({}, "stop")),
        (400.0, None, "[DONE]"),
    ]


def test_byte_exact_first_and_last_events() -> None:
    wire = [s.event.encode() for s in openai.stream_events(echo_plan(), created=CREATED, request_id="abc")]
    assert wire[0].startswith(
        b'data: {"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,'
    )
    assert wire[0].endswith(
        b'"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        b'"logprobs":null,"finish_reason":null}]}\n\n'
    )
    assert wire[-1] == b"data: [DONE]\n\n"


def test_include_usage_adds_null_usage_everywhere_and_a_usage_chunk() -> None:
    out = events(echo_plan(), include_usage=True)
    assert all(data["usage"] is None for _, _, data in out[:-2])
    assert out[-2][2] == {
        **{k: v for k, v in chunk({}).items() if k != "choices"},
        "choices": [],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 4,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }
    assert out[-1][2] == "[DONE]"


def test_reasoning_tokens_stream_as_reasoning_content() -> None:
    out = events(thinking_plan(), include_usage=True)
    deltas = [data["choices"][0]["delta"] for _, _, data in out[1:5]]
    assert deltas == [
        {"reasoning_content": "Hello"},
        {"reasoning_content": ","},
        {"content": " world"},
        {"content": "!"},
    ]
    assert out[-2][2]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 2


def test_finish_reason_length() -> None:
    out = events(echo_plan(max_tokens=2))
    assert out[-2][2]["choices"][0]["finish_reason"] == "length"


def test_a_mid_stream_error_is_a_data_event_with_an_error_key_and_no_done() -> None:
    out = events(echo_plan(faults=parse_faults("error_after:1")))
    assert out[-1] == (
        200.0,
        None,
        {
            "error": {
                "message": "The model failed after 1 tokens (simulated fault error_after:1).",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    )
    assert len(out) == 3


def test_truncate_ends_without_finish_or_done() -> None:
    out = events(echo_plan(faults=parse_faults("truncate_after:2")))
    assert len(out) == 3
    assert out[-1][2]["choices"][0]["delta"] == {"content": ","}


def test_complete_body() -> None:
    body = openai.complete_body(echo_plan(), created=CREATED, request_id="abc")
    assert body == {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": CREATED,
        "model": "echo",
        "system_fingerprint": body["system_fingerprint"],
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello, world!",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": events(echo_plan(), include_usage=True)[-2][2]["usage"],
    }
    assert str(body["system_fingerprint"]).startswith("fp_")
    thinking = openai.complete_body(thinking_plan(), created=CREATED, request_id="abc")
    assert thinking["choices"][0]["message"]["reasoning_content"] == "Hello,"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kind", "status", "type_", "code"),
    [
        ("invalid_request", 400, "invalid_request_error", None),
        ("authentication", 401, "invalid_request_error", "invalid_api_key"),
        ("not_found", 404, "invalid_request_error", "model_not_found"),
        ("rate_limit", 429, "requests", "rate_limit_exceeded"),
        ("server_error", 500, "server_error", None),
        ("unavailable", 503, "server_error", None),
        ("overloaded", 503, "server_error", None),
    ],
)
def test_error_shapes(kind: ErrorKind, status: int, type_: str, code: str | None) -> None:
    response = openai.error_response(kind, "nope", param="model")
    assert response.status == status
    assert response.body == {"error": {"message": "nope", "type": type_, "param": "model", "code": code}}


def test_fault_responses_carry_retry_headers() -> None:
    response = openai.fault_response(HttpFault("rate_limit"))
    assert (response.status, response.headers) == (429, (("retry-after", "1"), ("retry-after-ms", "1000")))
    assert response.body["error"]["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert openai.fault_response(HttpFault("overloaded")).status == 503
