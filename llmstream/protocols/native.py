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

from llmstream.protocols.wire import (
    ErrorKind,
    ErrorResponse,
    Scheduled,
    fault_message,
    midstream_error_message,
)
from llmstream.simulator import HttpFault, StreamPlan, Token, event_id_prefix
from llmstream.sse import EventFamily, ServerSentEvent

__all__ = [
    "TokenEvents",
    "complete_body",
    "error_body",
    "error_event",
    "error_response",
    "fault_response",
    "start_event",
    "status_for",
    "stream_events",
]

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
    yield Scheduled(0.0, start_event(plan, created=created, request_id=request_id))
    token_events = TokenEvents(plan.stream_key)
    for token in plan.tokens:
        yield Scheduled(token.due_ms, token_events(token), token)
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


class TokenEvents:
    """A stream's ``token`` and ``thinking`` events: one `EventFamily` each, as their ids share the
    stream key (built once per stream rather than once per token: the per-token cost of a paced stream)."""

    __slots__ = ("_text", "_thinking")

    def __init__(self, stream_key: str) -> None:
        prefix = event_id_prefix(stream_key)
        self._text = EventFamily(event="token", id_prefix=prefix)
        self._thinking = EventFamily(event="thinking", id_prefix=prefix)

    def __call__(self, token: Token) -> ServerSentEvent:
        family = self._thinking if token.kind == "thinking" else self._text
        return family.json({"index": token.index, "text": token.text}, token.index)


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
