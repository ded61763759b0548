"""llmstream's own API: `POST /api/chat`, `GET /api/chat/stream` (for EventSource) and `GET /api/models`.

Both chat routes take the same options (a JSON body, or query parameters for GET) and resume after the
`Last-Event-ID` header (or `?last_event_id=`, for a first EventSource connection that cannot set
headers). Events and error bodies are llmstream.protocols.native's; docs/api.md has the schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, Response, request
from werkzeug.datastructures import MultiDict

from llmstream.api import error_shapes, serving
from llmstream.api.planning import plan_for
from llmstream.api.requests import (
    HeaderLookup,
    fault_options,
    json_body,
    max_tokens,
    optional_bool,
    optional_int,
    optional_string,
    parse_bool,
    parse_number,
    string_list,
    timing,
)
from llmstream.api.stream_lane import LaneRoute
from llmstream.protocols import ErrorKind, native
from llmstream.simulator import PROFILES, InvalidRequestError, Message, StreamRequest
from llmstream.simulator.request import MAX_STOP_SEQUENCES
from llmstream.sse import ServerSentEvent
from llmstream.sse_response import EventStreamResponse
from llmstream.streaming import Closing

blueprint = Blueprint("native_api", __name__, url_prefix="/api")

DEFAULT_MODEL = "typical"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class NativeCall:
    """A valid native request: what to plan, and how to answer."""

    request: StreamRequest
    stream: bool = True
    timestamps: bool = False


def parse_call(body: dict[str, Any], headers: HeaderLookup) -> NativeCall:
    """A native JSON body (or the query turned into one) as a call; `InvalidRequestError` if not valid."""
    model = optional_string(body, "model")
    model = DEFAULT_MODEL if model is None else model
    faults = fault_options(body, headers)
    return NativeCall(
        StreamRequest(
            model=model,
            messages=_messages(body),
            seed=optional_int(body, "seed") or 0,
            max_tokens=max_tokens(optional_int(body, "max_tokens"), model, "max_tokens"),
            stop=string_list(body.get("stop"), "stop", limit=MAX_STOP_SEQUENCES),
            **timing(body).fields(),
            faults=faults.faults,
            fault_rate=faults.fault_rate,
            fault_pool=faults.fault_pool,
        ),
        stream=optional_bool(body, "stream") is not False,
        timestamps=optional_bool(body, "timestamps") or False,
    )


def _messages(body: Mapping[str, Any]) -> tuple[Message, ...]:
    prompt, messages = body.get("prompt"), body.get("messages")
    if (prompt is None) == (messages is None):
        raise InvalidRequestError("give either prompt (a string) or messages (an array), not both or neither")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise InvalidRequestError("prompt must be a string", param="prompt")
        return (Message("user", prompt),)
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages must be a non-empty array of messages", param="messages")
    result = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object with role and content", param=where)
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidRequestError(
                f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}", param=f"{where}.role"
            )
        if not isinstance(content, str):
            raise InvalidRequestError(f"{where}.content must be a string", param=f"{where}.content")
        result.append(Message(role, content))
    return tuple(result)


# Query parameters of GET /api/chat/stream, turned into the JSON body they stand for.
_QUERY_INTS = ("seed", "max_tokens")
_QUERY_NUMBERS = ("ttft_ms", "tokens_per_s", "jitter", "fault_rate")
_QUERY_STRINGS = ("prompt", "model", "faults", "fault_pool")


def query_body(args: MultiDict[str, str]) -> dict[str, Any]:
    if "prompt" not in args:
        raise InvalidRequestError("the prompt query parameter is required", param="prompt")
    body: dict[str, Any] = {name: args[name] for name in _QUERY_STRINGS if name in args}
    for name in _QUERY_INTS:
        if name in args:
            body[name] = int(parse_number(args[name], name, integer=True))
    for name in _QUERY_NUMBERS:
        if name in args:
            body[name] = parse_number(args[name], name)
    if "stop" in args:
        body["stop"] = args.getlist("stop")
    if "timestamps" in args:
        body["timestamps"] = parse_bool(args["timestamps"], "timestamps")
    return body


@blueprint.post("/chat")
async def chat() -> Response | EventStreamResponse:
    """Chat: a stream of native events, or (with "stream": false) one JSON body."""
    return await serving.answer(opening(await json_body(), request.headers), DIALECT)


@blueprint.get("/chat/stream")
async def chat_stream() -> Response | EventStreamResponse:
    """Chat through query parameters, for EventSource: always a stream."""
    call = parse_call(query_body(request.args), request.headers)
    last = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    call = NativeCall(call.request, stream=True, timestamps=call.timestamps)
    return await serving.answer(_opening(call, last), DIALECT)


@blueprint.get("/models")
async def models() -> dict[str, object]:
    """The simulated models and what each is like."""
    return {
        "models": [
            {
                "id": p.name,
                "description": p.description,
                "reasoning": p.reasoning,
                "max_context_tokens": p.max_context_tokens,
                "max_output_tokens": p.max_output_tokens,
            }
            for p in PROFILES.values()
        ]
    }


def opening(body: dict[str, Any], headers: HeaderLookup) -> serving.Opening:
    """``POST /api/chat``'s body, checked and planned (resumed after the Last-Event-ID header)."""
    return _opening(parse_call(body, headers), headers.get("Last-Event-ID"))


def _opening(call: NativeCall, last_event_id: str | None) -> serving.Opening:
    plan = plan_for(call.request, last_event_id if call.stream else None)
    return serving.Opening(
        plan,
        stream=call.stream,
        events=lambda created, request_id: native.stream_items(plan, created=created, request_id=request_id),
        timestamps=call.timestamps,
    )


def final_event(closing: Closing) -> ServerSentEvent | None:
    """The native `error` event for a stream the engine ends early; shutdown adds `retry:`."""
    error = serving.close_error(closing)
    if error is None:
        return None
    kind, message = error
    if closing.reason == "server_shutdown":
        data = {"code": kind, "message": message, "retry_ms": closing.retry_ms}
        return ServerSentEvent.json(data, event="error", retry=closing.retry_ms)
    return native.error_event(kind, message)


def render_error(
    kind: ErrorKind,
    message: str,
    *,
    param: str | None = None,
    status: int | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """The native error body, {"error": {"type", "message"[, "param"]}}."""
    body = native.error_body(kind, message)
    if param is not None:
        error = body["error"]
        assert isinstance(error, dict)
        error["param"] = param
    return error_shapes.json_response(body, status or native.status_for(kind), headers)


DIALECT = serving.Dialect(native, render_error, final_event)
# Its streams, answered past Quart (llmstream.api.stream_lane).
LANE = LaneRoute(f"{blueprint.name}.{chat.__name__}", opening, DIALECT)
error_shapes.install(blueprint, render_error, prefixes=("/api",))
