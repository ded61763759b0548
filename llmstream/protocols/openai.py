"""OpenAI Chat Completions framing, as the official ``openai`` SDK parses it.

Streaming: unnamed events (``data:`` only; the SDK treats any named event other than ``error`` as
foreign), each a ``chat.completion.chunk``::

    {"id": "chatcmpl-<request_id>", "object": "chat.completion.chunk", "created", "model",
     "system_fingerprint", "choices": [{"index": 0, "delta": {...}, "logprobs": null,
     "finish_reason": null}]}                                   (+ "usage": null with include_usage)

1. the role chunk, delta {"role": "assistant", "content": "", "refusal": null};
2. one chunk per token, delta {"content": text}; a reasoning model's thinking tokens come first as
   delta {"reasoning_content": text}, the field DeepSeek and vLLM use (OpenAI's own API streams no
   reasoning text); token chunks carry ``id: <stream_key>:<index>`` (ignored by the SDK);
3. the finish chunk, delta {} and finish_reason "stop" or "length";
4. with ``stream_options.include_usage``: a chunk with "choices": [] and the usage;
5. the literal ``data: [DONE]``.

A mid-stream error is a data event ``{"error": {"message", "type", "param", "code"}}``: the SDK
raises ``APIError`` for any chunk holding an "error" key. No [DONE] follows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from llmstream.protocols.templates import TEXT, TokenTemplate
from llmstream.protocols.wire import (
    ErrorKind,
    ErrorResponse,
    Scheduled,
    StreamItem,
    TokenRun,
    fault_message,
    midstream_error_message,
    runs_by_kind,
    scheduled,
)
from llmstream.simulator import HttpFault, StreamPlan, event_id_prefix
from llmstream.sse import EventFamily, ServerSentEvent

__all__ = [
    "DONE",
    "complete_body",
    "completion_id",
    "error_body",
    "error_event",
    "error_response",
    "fault_response",
    "status_for",
    "stream_events",
    "stream_items",
]

DONE = ServerSentEvent(data="[DONE]")

# kind -> (HTTP status, error.type, error.code), as api.openai.com answers.
_ERRORS: dict[ErrorKind, tuple[int, str, str | None]] = {
    "invalid_request": (400, "invalid_request_error", None),
    "authentication": (401, "invalid_request_error", "invalid_api_key"),
    "permission": (403, "invalid_request_error", "permission_denied"),
    "not_found": (404, "invalid_request_error", "model_not_found"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "rate_limit": (429, "requests", "rate_limit_exceeded"),
    "server_error": (500, "server_error", None),
    "unavailable": (503, "server_error", None),
    "overloaded": (503, "server_error", None),
}


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def stream_events(
    plan: StreamPlan, *, created: int, request_id: str, include_usage: bool = False
) -> Iterator[Scheduled]:
    """The whole stream: role chunk at 0, token chunks at their due times, then the end at ``end_ms``."""
    return scheduled(stream_items(plan, created=created, request_id=request_id, include_usage=include_usage))


def stream_items(
    plan: StreamPlan, *, created: int, request_id: str, include_usage: bool = False
) -> Iterator[StreamItem]:
    """`stream_events` as the server sends it: each run of tokens of one kind is one `TokenRun`."""
    head: dict[str, object] = {
        "id": completion_id(request_id),
        "object": "chat.completion.chunk",
        "created": created,
        "model": plan.model,
        "system_fingerprint": _fingerprint(plan),
    }

    def chunk(delta: dict[str, object], finish_reason: str | None = None) -> dict[str, object]:
        body = {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            body["usage"] = None
        return body

    yield Scheduled(0.0, ServerSentEvent.json(chunk({"role": "assistant", "content": "", "refusal": None})))
    token_chunks = EventFamily(id_prefix=event_id_prefix(plan.stream_key))
    for kind, tokens in runs_by_kind(plan.tokens):
        field = "reasoning_content" if kind == "thinking" else "content"
        yield TokenRun(tokens, TokenTemplate(token_chunks, chunk({field: TEXT})))
    if plan.ending == "error":
        yield Scheduled(plan.end_ms, error_event("server_error", midstream_error_message(plan)))
    elif plan.ending == "finish":
        yield Scheduled(plan.end_ms, ServerSentEvent.json(chunk({}, plan.finish_reason)))
        if include_usage:
            yield Scheduled(plan.end_ms, ServerSentEvent.json({**head, "choices": [], "usage": _usage(plan)}))
        yield Scheduled(plan.end_ms, DONE)


def complete_body(plan: StreamPlan, *, created: int, request_id: str) -> dict[str, object]:
    """The non-streaming ``chat.completion`` (the whole completion; mid-stream faults are the caller's)."""
    message: dict[str, object] = {
        "role": "assistant",
        "content": plan.text,
        "refusal": None,
        "annotations": [],
    }
    if plan.profile.reasoning:
        message["reasoning_content"] = plan.thinking
    return {
        "id": completion_id(request_id),
        "object": "chat.completion",
        "created": created,
        "model": plan.model,
        "system_fingerprint": _fingerprint(plan),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}],
        "usage": _usage(plan),
    }


def status_for(kind: ErrorKind) -> int:
    return _ERRORS[kind][0]


def error_body(
    kind: ErrorKind, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, object]:
    """{"error": {"message", "type", "param", "code"}}; ``code`` defaults to OpenAI's for the kind."""
    _, error_type, default_code = _ERRORS[kind]
    return {"error": {"message": message, "type": error_type, "param": param, "code": code or default_code}}


def error_event(kind: ErrorKind, message: str) -> ServerSentEvent:
    """The mid-stream error: an unnamed data event holding an "error" object."""
    return ServerSentEvent.json(error_body(kind, message))


def error_response(kind: ErrorKind, message: str, *, param: str | None = None) -> ErrorResponse:
    return ErrorResponse(status_for(kind), (), error_body(kind, message, param=param))


def fault_response(fault: HttpFault) -> ErrorResponse:
    """The answer to an HTTP-error fault; rate_limit carries retry-after and retry-after-ms."""
    return ErrorResponse(
        fault.status("openai"), fault.headers(), error_body(fault.kind, fault_message(fault.kind))
    )


def _fingerprint(plan: StreamPlan) -> str:
    # Stable per model, like a deployment's fingerprint.
    return "fp_" + hashlib.blake2b(plan.model.encode(), digest_size=5).hexdigest()


def _usage(plan: StreamPlan) -> dict[str, object]:
    usage = plan.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
