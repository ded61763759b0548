"""llmstream's own event stream: named events with JSON data, for browsers (EventSource) and scripts.

Events, in order (``id`` only on token events, so ``Last-Event-ID`` always names a token)::

    event: start     {"stream_id", "stream_key", "model", "created"[, "resumed_after"]}
    event: thinking  {"index", "text"[, "t"]}   id: <stream_key>:<index>   (reasoning model only)
    event: token     {"index", "text"[, "t"]}   id: <stream_key>:<index>
    event: finish    {"finish_reason": "stop"|"length", "usage": {prompt_tokens, completion_tokens,
                      total_tokens, reasoning_tokens, ttft_ms, tokens_per_s}}
    event: error     {"code", "message"}        (instead of finish, for an error_after fault)

Thinking tokens are their own event type rather than a field on ``token``: a UI that does not know
about reasoning ignores them without a line of code, and one that does adds one listener. Both share
one index sequence (thinking first), so resuming works across the switch. ``t`` is the server's send
timestamp, added by the I/O layer when asked (`wire.stamped`).
"""

from __future__ import annotations

from collections.abc import Iterator

from llmstream.protocols.templates import INDEX, TEXT, TokenTemplate
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
from llmstream.simulator import HttpFault, StreamPlan, TokenKind, event_id_prefix
from llmstream.sse import EventFamily, ServerSentEvent

__all__ = [
    "complete_body",
    "error_body",
    "error_event",
    "error_response",
    "fault_response",
    "start_event",
    "status_for",
    "stream_events",
    "stream_items",
]

_EVENT_TYPES: dict[TokenKind, str] = {"text": "token", "thinking": "thinking"}

_STATUS: dict[ErrorKind, int] = {
    "invalid_request": 400,
    "authentication": 401,
    "permission": 403,
    "not_found": 404,
    "request_too_large": 413,
    "rate_limit": 429,
    "server_error": 500,
    "unavailable": 503,
    "overloaded": 503,
}


def stream_events(plan: StreamPlan, *, created: int, request_id: str) -> Iterator[Scheduled]:
    """The whole stream: start at 0, tokens at their due times, then finish or error at ``end_ms``."""
    return scheduled(stream_items(plan, created=created, request_id=request_id))


def stream_items(plan: StreamPlan, *, created: int, request_id: str) -> Iterator[StreamItem]:
    """`stream_events` as the server sends it: each run of tokens of one kind is one `TokenRun`."""
    yield Scheduled(0.0, start_event(plan, created=created, request_id=request_id))
    prefix = event_id_prefix(plan.stream_key)
    for kind, tokens in runs_by_kind(plan.tokens):
        # One template per run, made when the run starts: a stream with no thinking makes none for it.
        family = EventFamily(event=_EVENT_TYPES[kind], id_prefix=prefix)
        yield TokenRun(tokens, TokenTemplate(family, {"index": INDEX, "text": TEXT}))
    if plan.ending == "finish":
        yield Scheduled(plan.end_ms, finish_event(plan))
    elif plan.ending == "error":
        yield Scheduled(plan.end_ms, error_event("server_error", midstream_error_message(plan)))


def start_event(plan: StreamPlan, *, created: int, request_id: str) -> ServerSentEvent:
    data: dict[str, object] = {
        "stream_id": request_id,
        "stream_key": plan.stream_key,
        "model": plan.model,
        "created": created,
    }
    if plan.resumed_after is not None:
        data["resumed_after"] = plan.resumed_after
    return ServerSentEvent.json(data, event="start")


def finish_event(plan: StreamPlan) -> ServerSentEvent:
    return ServerSentEvent.json({"finish_reason": plan.finish_reason, "usage": _usage(plan)}, event="finish")


def error_event(kind: ErrorKind, message: str) -> ServerSentEvent:
    """The mid-stream error event."""
    return ServerSentEvent.json({"code": kind, "message": message}, event="error")


def complete_body(plan: StreamPlan, *, created: int, request_id: str) -> dict[str, object]:
    """The non-streaming answer (the whole completion; mid-stream faults are the caller's to apply)."""
    body: dict[str, object] = {
        "stream_id": request_id,
        "stream_key": plan.stream_key,
        "model": plan.model,
        "created": created,
        "text": plan.text,
        "finish_reason": plan.finish_reason,
        "usage": _usage(plan),
    }
    if plan.profile.reasoning:
        body["thinking"] = plan.thinking
    return body


def status_for(kind: ErrorKind) -> int:
    return _STATUS[kind]


def error_body(kind: ErrorKind, message: str) -> dict[str, object]:
    """The JSON body of an HTTP error, the app's shape: {"error": {"type", "message"}}."""
    return {"error": {"type": kind, "message": message}}


def error_response(kind: ErrorKind, message: str) -> ErrorResponse:
    return ErrorResponse(status_for(kind), (), error_body(kind, message))


def fault_response(fault: HttpFault) -> ErrorResponse:
    """The answer to an HTTP-error fault (rate_limit, server_error, unavailable, overloaded)."""
    return ErrorResponse(
        fault.status("native"), fault.headers(), error_body(fault.kind, fault_message(fault.kind))
    )


def _usage(plan: StreamPlan) -> dict[str, object]:
    usage = plan.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "ttft_ms": usage.ttft_ms,
        "tokens_per_s": usage.tokens_per_s,
    }
