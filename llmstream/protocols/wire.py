"""What the three framings (native, OpenAI, Anthropic) share: the scheduled-event type, error kinds
and the texts of simulated faults.

Every protocol module has the same functions (see protocols/__init__.py); each turns a `StreamPlan`
into `Scheduled` events: an SSE event and the time it is due, in ms from the start of the response.
The I/O layer sends each event at its due time and, after the last one, does what ``plan.ending``
says ("reset": abort the connection; anything else: end the response normally).

What the server sends is ``stream_items``: the same stream with each run of token events kept as one
`TokenRun` (the plan's tokens and a `TokenTemplate`), rendered to bytes only as each falls due, with
no event object per token. ``stream_events`` is that stream with the runs expanded into `Scheduled`
events (`scheduled`), each built the slow, validated way; tests hold the two byte-equal.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, NamedTuple

from llmstream.protocols.templates import TokenTemplate
from llmstream.simulator import (
    HttpFaultKind,
    InvalidRequestError,
    StreamPlan,
    Token,
    TokenKind,
    Tokens,
    UnknownModelError,
)
from llmstream.sse import ServerSentEvent

__all__ = [
    "ErrorKind",
    "ErrorResponse",
    "Scheduled",
    "StreamItem",
    "TokenRun",
    "fault_message",
    "midstream_error_message",
    "request_error_kind",
    "runs_by_kind",
    "scheduled",
    "stamped",
    "thinking_signature",
]

# The error kinds the app can answer with, in neutral terms; each API maps them to its own types.
ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "rate_limit",
    "server_error",
    "unavailable",
    "overloaded",
]


class Scheduled(NamedTuple):
    """An event and when it is due (ms from the start of the response, non-decreasing in a stream).

    ``token`` is the plan token the event carries, if any: such events can get the server's send
    timestamp ``t`` (`stamped`) when a client asks for it.
    """

    due_ms: float
    event: ServerSentEvent
    token: Token | None = None


class TokenRun(NamedTuple):
    """Consecutive token events that share one template, each due at its token's time."""

    tokens: Tokens
    template: TokenTemplate


StreamItem = Scheduled | TokenRun


def scheduled(items: Iterable[StreamItem]) -> Iterator[Scheduled]:
    """``items`` with every `TokenRun` expanded into its events (whose bytes are what it renders)."""
    for item in items:
        if isinstance(item, Scheduled):
            yield item
            continue
        for token in item.tokens:
            yield Scheduled(token.due_ms, item.template.event(token.index, token.text), token)


def runs_by_kind(tokens: Tokens) -> Iterator[tuple[TokenKind, Tokens]]:
    """``tokens`` cut where the kind changes (thinking, then text): each run with its kind."""
    kinds = tokens.kinds
    start = 0
    while start < len(kinds):
        kind = kinds[start]
        other: TokenKind = "text" if kind == "thinking" else "thinking"
        try:
            end = kinds.index(other, start)  # a scan in C, not a comparison per token in Python
        except ValueError:
            end = len(kinds)
        yield kind, tokens[start:end]
        start = end


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """An HTTP error answer: status, extra headers (retry-after ...) and the JSON body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: dict[str, object]


_FAULT_MESSAGES: dict[HttpFaultKind, str] = {
    "rate_limit": "Rate limit reached for requests (simulated fault). Please try again in 1s.",
    "server_error": "The server had an error while processing your request (simulated fault).",
    "unavailable": "The service is temporarily unavailable (simulated fault). Please try again later.",
    "overloaded": "Overloaded (simulated fault).",
}


def fault_message(kind: HttpFaultKind) -> str:
    return _FAULT_MESSAGES[kind]


def midstream_error_message(plan: StreamPlan) -> str:
    """The message of the error event an ``error_after:N`` fault sends."""
    after = plan.faults.error_after
    return f"The model failed after {after} tokens (simulated fault error_after:{after})."


def request_error_kind(error: InvalidRequestError) -> ErrorKind:
    """The error kind for a refused request: an unknown model is not_found (404), the rest 400."""
    return "not_found" if isinstance(error, UnknownModelError) else "invalid_request"


def thinking_signature(plan: StreamPlan) -> str:
    """A stable stand-in for Anthropic's thinking signature (opaque base64 to clients)."""
    digest = hashlib.blake2b(f"{plan.stream_key}:{plan.thinking}".encode(), digest_size=48).digest()
    return base64.b64encode(digest).decode()


def stamped(event: ServerSentEvent, t: float) -> ServerSentEvent:
    """``event`` (data: a JSON object) with the send time ``t`` (Unix seconds) as one more member.

    An llmstream extension in all three APIs, only when a client asks for it: load-test clients compare
    ``t`` with their receive time to measure their own lag. Appending to the already-encoded object is
    cheaper than rendering the payload again, and a client that ignores unknown members (the OpenAI and
    Anthropic SDKs do) is unaffected.
    """
    data = event.data
    if data is None or not data.endswith("}"):
        raise ValueError("only an event whose data is a JSON object can carry a send time")
    body = data[:-1] + ("," if len(data) > 2 else "") + f'"t":{t:.6f}}}'
    return ServerSentEvent(data=body, event=event.event, id=event.id, retry=event.retry)
