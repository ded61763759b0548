"""Anthropic-compatible API: `POST /v1/messages` (and the Anthropic shape of `GET /v1/models`).

Point the official SDK at it with ``Anthropic(base_url="http://127.0.0.1:8000", api_key="any")``.
Request fields follow the Messages API, `max_tokens` required as there; the `anthropic-version`
header is accepted (any value) but not required. llmstream's own options ride in an extension object
the SDK passes through ``extra_body``: ``{"llmstream": {"seed", "faults", "fault_rate", "fault_pool",
"ttft_ms", "tokens_per_s", "jitter", "timestamps"}}``, or the X-LLMStream-Fault headers
(``extra_headers``). ``timestamps`` adds the server's send time ``t`` to each content_block_delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, Response, request

from llmstream.api import error_shapes, serving
from llmstream.api.planning import plan_for
from llmstream.api.requests import (
    HeaderLookup,
    fault_options,
    json_body,
    max_tokens,
    optional_bool,
    optional_int,
    optional_number,
    optional_object,
    string_list,
    text_of_parts,
    timing,
)
from llmstream.api.stream_lane import LaneRoute
from llmstream.protocols import ErrorKind, anthropic
from llmstream.request_ids import request_id
from llmstream.simulator import MODELS, PROFILES, InvalidRequestError, Message, StreamRequest
from llmstream.simulator.request import MAX_STOP_SEQUENCES
from llmstream.sse import ServerSentEvent
from llmstream.sse_response import EventStreamResponse
from llmstream.streaming import Closing

blueprint = Blueprint("anthropic_api", __name__, url_prefix="/v1")

ROLES = ("user", "assistant")
MODELS_CREATED_AT = "2023-11-14T22:13:20Z"
THINKING_TYPES = ("enabled", "disabled", "adaptive")
MIN_THINKING_BUDGET = 1024
_IGNORED_NUMBERS = {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0)}


@dataclass(frozen=True, slots=True)
class AnthropicCall:
    request: StreamRequest
    stream: bool = False
    timestamps: bool = False


def parse_call(body: dict[str, Any], headers: HeaderLookup) -> AnthropicCall:
    """A Messages request body as a call; `InvalidRequestError` when it is not valid."""
    model = body.get("model")
    if not isinstance(model, str):
        raise InvalidRequestError("model: field required (a string)", param="model")
    if body.get("max_tokens") is None:
        raise InvalidRequestError("max_tokens: field required (an integer)", param="max_tokens")
    limit = max_tokens(optional_int(body, "max_tokens"), model, "max_tokens")
    assert limit is not None
    for name, (low, high) in _IGNORED_NUMBERS.items():
        value = optional_number(body, name)
        if value is not None and not low <= value <= high:
            raise InvalidRequestError(f"{name} must be from {low:g} to {high:g}, not {value:g}", param=name)
    top_k = optional_int(body, "top_k")
    if top_k is not None and top_k < 0:
        raise InvalidRequestError(f"top_k must not be negative, not {top_k}", param="top_k")
    _check_thinking(optional_object(body, "thinking"), limit)
    system = _system(body.get("system"))
    extension = optional_object(body, "llmstream")
    faults = fault_options(extension, headers, prefix="llmstream.")
    return AnthropicCall(
        StreamRequest(
            model=model,
            messages=system + _messages(body.get("messages")),
            # The Messages API has no seed; ours rides in the extension object.
            seed=optional_int(extension, "seed", param="llmstream.seed") or 0,
            max_tokens=limit,
            stop=string_list(
                body.get("stop_sequences"), "stop_sequences", limit=MAX_STOP_SEQUENCES, single=False
            ),
            **timing(extension, prefix="llmstream.").fields(),
            faults=faults.faults,
            fault_rate=faults.fault_rate,
            fault_pool=faults.fault_pool,
        ),
        stream=optional_bool(body, "stream") or False,
        timestamps=optional_bool(extension, "timestamps", param="llmstream.timestamps") or False,
    )


def _check_thinking(thinking: Mapping[str, Any], limit: int) -> None:
    """Accepted as the API checks it; the `reasoning` model thinks, the others do not, whatever it says."""
    if not thinking:
        return
    kind = thinking.get("type")
    if kind not in THINKING_TYPES:
        raise InvalidRequestError(
            f"thinking.type must be one of {', '.join(THINKING_TYPES)}, not {kind!r}", param="thinking.type"
        )
    if kind == "enabled":
        budget = optional_int(thinking, "budget_tokens", param="thinking.budget_tokens")
        if budget is None or not MIN_THINKING_BUDGET <= budget < limit:
            raise InvalidRequestError(
                f"thinking.budget_tokens must be an integer of at least {MIN_THINKING_BUDGET} and less than "
                f"max_tokens ({limit}), not {budget}",
                param="thinking.budget_tokens",
            )


def _system(system: object) -> tuple[Message, ...]:
    if system is None:
        return ()
    return (Message("system", _text(system, "system")),)


def _messages(messages: object) -> tuple[Message, ...]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages: at least one message is required", param="messages")
    result = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object with role and content", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequestError(
                f"{where}.role must be one of {', '.join(ROLES)}, not {role!r} (a system prompt goes in "
                "the top-level system field)",
                param=f"{where}.role",
            )
        result.append(Message(role, _text(message.get("content"), f"{where}.content")))
    return tuple(result)


def _text(content: object, where: str) -> str:
    return text_of_parts(content, where, parts="content blocks")


@blueprint.post("/messages")
async def messages() -> Response | EventStreamResponse:
    """A message: the message object, or with "stream": true the event stream."""
    return await serving.answer(opening(await json_body(), request.headers), DIALECT)


def opening(body: dict[str, Any], headers: HeaderLookup) -> serving.Opening:
    """A Messages body, checked and planned (a stream resumes after the Last-Event-ID header)."""
    call = parse_call(body, headers)
    plan = plan_for(call.request, headers.get("Last-Event-ID") if call.stream else None)
    return serving.Opening(
        plan,
        stream=call.stream,
        events=lambda created, request_id: anthropic.stream_items(
            plan, created=created, request_id=request_id
        ),
        timestamps=call.timestamps,
    )


# The SDK reads `request-id` (Anthropic's name; llmstream.request_ids adds X-Request-ID for everyone).
ID_HEADERS = ("request-id",)


@blueprint.after_request
async def _request_id_header(response: Response) -> Response:
    for name in ID_HEADERS:
        response.headers[name] = request_id()
    return response


def model_list() -> Response:
    """GET /v1/models in Anthropic's shape (served by the OpenAI blueprint, which owns the route)."""
    data = [_model(name) for name in MODELS]
    body = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
    return error_shapes.json_response(body)


def model_info(model_id: str) -> Response:
    if model_id not in PROFILES:
        return render_error("not_found", f"model: {model_id}", param="model")
    return error_shapes.json_response(_model(model_id))


def _model(name: str) -> dict[str, object]:
    profile = PROFILES[name]
    return {
        "type": "model",
        "id": name,
        "display_name": name.title(),
        "created_at": MODELS_CREATED_AT,
        "max_input_tokens": profile.max_context_tokens,
        "max_tokens": profile.max_output_tokens,
    }


def final_event(closing: Closing) -> ServerSentEvent | None:
    """Anthropic's `event: error` for a stream the engine ends early; shutdown adds `retry:`."""
    error = serving.close_error(closing)
    if error is None:
        return None
    event = anthropic.error_event(*error)
    if closing.reason == "server_shutdown":
        return ServerSentEvent(data=event.data, event=event.event, retry=closing.retry_ms)
    return event


def render_error(
    kind: ErrorKind,
    message: str,
    *,
    param: str | None = None,
    status: int | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """{"type": "error", "error": {"type", "message"}} (Anthropic's shape has no param: it is in the
    message)."""
    if param is not None and not message.startswith(param):
        message = f"{param}: {message}"
    body = anthropic.error_body(kind, message)
    return error_shapes.json_response(body, status or anthropic.status_for(kind), headers)


DIALECT = serving.Dialect(anthropic, render_error, final_event)
# Its streams, answered past Quart (llmstream.api.stream_lane).
LANE = LaneRoute(f"{blueprint.name}.{messages.__name__}", opening, DIALECT, ID_HEADERS)
error_shapes.install(blueprint, render_error, prefixes=("/v1/messages",))
