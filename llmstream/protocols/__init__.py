"""Wire framing, pure: a `StreamPlan` in, scheduled SSE events and JSON bodies out, per API.

Each of `native`, `openai` and `anthropic` offers the same functions:

* ``stream_events(plan, *, created, request_id[, include_usage]) -> Iterator[Scheduled]``: every
  event of the response with its due time (ms from the response start), ending as ``plan.ending``
  says (finish events, an error event, or nothing more for truncate/reset);
* ``stream_items(...) -> Iterator[Scheduled | TokenRun]``: the same stream as the server sends it,
  each run of token events one `TokenRun`, rendered to bytes as its tokens fall due (templates.py);
* ``complete_body(plan, *, created, request_id) -> dict``: the non-streaming answer;
* ``error_body(kind, message) -> dict``, ``error_event(kind, message) -> ServerSentEvent``,
  ``status_for(kind) -> int``, ``error_response(kind, message) -> ErrorResponse``;
* ``fault_response(fault: HttpFault) -> ErrorResponse``: status, retry headers and body of a fault.

The event schemas, error shapes and the fault catalogue are in docs/api.md.
"""

from llmstream.protocols import anthropic, native, openai
from llmstream.protocols.wire import (
    ErrorKind,
    ErrorResponse,
    Scheduled,
    StreamItem,
    TokenRun,
    request_error_kind,
)

__all__ = [
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
