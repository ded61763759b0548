"""Anthropic Messages framing, as the official ``anthropic`` SDK parses it.

Streaming: named events whose data repeats the name in ``type``::

    message_start        {"type", "message": {"id": "msg_<request_id>", "type": "message",
                          "role": "assistant", "model", "content": [], "stop_reason": null,
                          "stop_sequence": null, "usage": {"input_tokens": N, "output_tokens": 1}}}
    content_block_start  {"type", "index", "content_block": {"type": "text", "text": ""}}
    ping                 {"type": "ping"}
    content_block_delta  {"type", "index", "delta": {"type": "text_delta", "text"}}   id: <key>:<index>
    content_block_stop   {"type", "index"}
    message_delta        {"type", "delta": {"stop_reason", "stop_sequence"}, "usage": {"output_tokens"}}
    message_stop         {"type": "message_stop"}

``output_tokens`` in message_delta is cumulative (the whole completion). stop_reason: "end_turn",
"max_tokens", or "stop_sequence" with ``stop_sequence`` set. The reasoning model first streams a
thinking block at index 0 (content_block {"type": "thinking", "thinking": ""}, deltas
{"type": "thinking_delta", "thinking"}, then one {"type": "signature_delta", "signature"} just
before its content_block_stop) and the text block at index 1. A mid-stream error is
``event: error`` {"type": "error", "error": {"type", "message"}}, on which the SDK raises.
"""

from __future__ import annotations

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
    thinking_signature,
)
from llmstream.simulator import HttpFault, StreamPlan, TokenKind, event_id_prefix
from llmstream.sse import EventFamily, ServerSentEvent

__all__ = [
    "complete_body",
    "error_body",
    "error_event",
    "error_response",
    "fault_response",
    "message_id",
    "status_for",
    "stop_reason",
    "stream_events",
    "stream_items",
]

# kind -> (HTTP status, error.type), as api.anthropic.com answers.
_ERRORS: dict[ErrorKind, tuple[int, str]] = {
    "invalid_request": (400, "invalid_request_error"),
    "authentication": (401, "authentication_error"),
    "permission": (403, "permission_error"),
    "not_found": (404, "not_found_error"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit": (429, "rate_limit_error"),
    "server_error": (500, "api_error"),
    "unavailable": (503, "api_error"),
    "overloaded": (529, "overloaded_error"),
}
_DELTA_FIELD: dict[TokenKind, tuple[str, str]] = {
    "thinking": ("thinking_delta", "thinking"),
    "text": ("text_delta", "text"),
}


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def stop_reason(plan: StreamPlan) -> str:
    if plan.finish_reason == "length":
        return "max_tokens"
    return "stop_sequence" if plan.stop_sequence is not None else "end_turn"


def stream_events(plan: StreamPlan, *, created: int, request_id: str) -> Iterator[Scheduled]:
    """The whole stream. ``created`` is unused (Anthropic messages carry no timestamp): kept so that
    every protocol's stream_events takes the same arguments."""
    return scheduled(stream_items(plan, created=created, request_id=request_id))


def stream_items(plan: StreamPlan, *, created: int, request_id: str) -> Iterator[StreamItem]:
    """`stream_events` as the server sends it: each run of tokens of one kind is one `TokenRun`."""
    del created
    text_index = 1 if plan.profile.reasoning else 0
    message = _message(plan, request_id, content=[], stop=False)
    message["usage"] = {"input_tokens": plan.usage.prompt_tokens, "output_tokens": 1}
    yield Scheduled(0.0, _event("message_start", {"message": message}))
    # The first block opens with the message; a fresh empty completion still gets its (empty) text block.
    first = plan.tokens[0].kind if plan.tokens else None
    if first is None and plan.resumed_after is None and plan.ending == "finish" and not plan.completion:
        first = "text"
    open_kind: TokenKind | None = first
    if open_kind is not None:
        yield Scheduled(0.0, _block_start(open_kind, text_index))
    yield Scheduled(0.0, _event("ping", {}))
    deltas = EventFamily(event="content_block_delta", id_prefix=event_id_prefix(plan.stream_key))
    for kind, tokens in runs_by_kind(plan.tokens):
        if kind != open_kind:
            for event in _switch(plan, open_kind, kind, text_index):
                yield Scheduled(tokens.due_ms[0], event)
            open_kind = kind
        delta_type, field = _DELTA_FIELD[kind]
        data = {
            "type": "content_block_delta",
            "index": text_index if kind == "text" else 0,
            "delta": {"type": delta_type, field: TEXT},
        }
        yield TokenRun(tokens, TokenTemplate(deltas, data))
    if plan.ending == "error":
        yield Scheduled(plan.end_ms, error_event("server_error", midstream_error_message(plan)))
    elif plan.ending == "finish":
        for event in _switch(plan, open_kind, None, text_index):
            yield Scheduled(plan.end_ms, event)
        delta = {"stop_reason": stop_reason(plan), "stop_sequence": plan.stop_sequence}
        usage = {"output_tokens": plan.usage.completion_tokens}
        yield Scheduled(plan.end_ms, _event("message_delta", {"delta": delta, "usage": usage}))
        yield Scheduled(plan.end_ms, _event("message_stop", {}))


def complete_body(plan: StreamPlan, *, created: int, request_id: str) -> dict[str, object]:
    """The non-streaming message (the whole completion; mid-stream faults are the caller's)."""
    del created
    content: list[dict[str, object]] = []
    if plan.profile.reasoning:
        content.append({"type": "thinking", "thinking": plan.thinking, "signature": thinking_signature(plan)})
    if "text" in plan.completion.kinds or not plan.completion:
        content.append({"type": "text", "text": plan.text})
    return _message(plan, request_id, content=content, stop=True)


def status_for(kind: ErrorKind) -> int:
    return _ERRORS[kind][0]


def error_body(kind: ErrorKind, message: str) -> dict[str, object]:
    """{"type": "error", "error": {"type", "message"}}."""
    return {"type": "error", "error": {"type": _ERRORS[kind][1], "message": message}}


def error_event(kind: ErrorKind, message: str) -> ServerSentEvent:
    """The mid-stream ``error`` event."""
    return ServerSentEvent.json(error_body(kind, message), event="error")


def error_response(kind: ErrorKind, message: str) -> ErrorResponse:
    return ErrorResponse(status_for(kind), (), error_body(kind, message))


def fault_response(fault: HttpFault) -> ErrorResponse:
    """The answer to an HTTP-error fault; overloaded is Anthropic's 529."""
    return ErrorResponse(
        fault.status("anthropic"), fault.headers(), error_body(fault.kind, fault_message(fault.kind))
    )


def _event(name: str, fields: dict[str, object], *, id: str | None = None) -> ServerSentEvent:
    return ServerSentEvent.json({"type": name, **fields}, event=name, id=id)


def _block_start(kind: TokenKind, text_index: int) -> ServerSentEvent:
    block = {"type": "thinking", "thinking": ""} if kind == "thinking" else {"type": "text", "text": ""}
    return _event(
        "content_block_start", {"index": text_index if kind == "text" else 0, "content_block": block}
    )


def _switch(
    plan: StreamPlan, closing: TokenKind | None, opening: TokenKind | None, text_index: int
) -> Iterator[ServerSentEvent]:
    """Close the open block (a thinking block signs itself first) and open the next one."""
    if closing == "thinking":
        signature = {"type": "signature_delta", "signature": thinking_signature(plan)}
        yield _event("content_block_delta", {"index": 0, "delta": signature})
    if closing is not None:
        yield _event("content_block_stop", {"index": text_index if closing == "text" else 0})
    if opening is not None:
        yield _block_start(opening, text_index)


def _message(
    plan: StreamPlan, request_id: str, *, content: list[dict[str, object]], stop: bool
) -> dict[str, object]:
    return {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": content,
        "stop_reason": stop_reason(plan) if stop else None,
        "stop_sequence": plan.stop_sequence if stop else None,
        "usage": {"input_tokens": plan.usage.prompt_tokens, "output_tokens": plan.usage.completion_tokens},
    }
