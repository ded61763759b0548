"""OpenAI-compatible API: `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`.

Point the official SDK at it with ``OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="any")``.
Request fields follow the Chat Completions API; what cannot be simulated (temperature, top_p, tools ...)
is accepted and ignored. llmstream's own options ride in an extension object the SDK passes through
``extra_body``: ``{"llmstream": {"faults", "fault_rate", "fault_pool", "ttft_ms", "tokens_per_s",
"jitter", "timestamps"}}``, or the X-LLMStream-Fault headers (``extra_headers``). ``timestamps``
adds the server's send time ``t`` to each token chunk, for load-test clients measuring their own lag.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, Response, request

from llmstream.api import error_shapes, serving
from llmstream.api.anthropic_api import model_info, model_list
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
from llmstream.protocols import ErrorKind, StreamItem, openai
from llmstream.simulator import MODELS, InvalidRequestError, Message, StreamRequest, UnknownModelError
from llmstream.sse import ServerSentEvent
from llmstream.sse_response import EventStreamResponse
from llmstream.streaming import Closing

blueprint = Blueprint("openai_api", __name__, url_prefix="/v1")

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_STOP = 4  # OpenAI's limit (the simulator takes up to 16)
MODELS_CREATED = 1_700_000_000  # a fixed "created" for the model list: the same answer every time
# Accepted and ignored, but type- and range-checked as OpenAI does, so a client's bug still shows.
_IGNORED_NUMBERS = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


@dataclass(frozen=True, slots=True)
class OpenAICall:
    request: StreamRequest
    stream: bool = False
    include_usage: bool = False
    timestamps: bool = False


def parse_call(body: dict[str, Any], headers: HeaderLookup) -> OpenAICall:
    """A Chat Completions request body as a call; `InvalidRequestError` when it is not valid."""
    model = body.get("model")
    if not isinstance(model, str):
        raise InvalidRequestError("you must provide a model parameter (a string)", param="model")
    stream = optional_bool(body, "stream") or False
    stream_options = optional_object(body, "stream_options")
    if "stream_options" in body and body["stream_options"] is not None and not stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    n = optional_int(body, "n")
    if n not in (None, 1):
        raise InvalidRequestError(f"n must be 1: llmstream generates one choice, not {n}", param="n")
    for name, (low, high) in _IGNORED_NUMBERS.items():
        value = optional_number(body, name)
        if value is not None and not low <= value <= high:
            raise InvalidRequestError(f"{name} must be from {low:g} to {high:g}, not {value:g}", param=name)
    limit_field = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    extension = optional_object(body, "llmstream")
    faults = fault_options(extension, headers, prefix="llmstream.")
    return OpenAICall(
        StreamRequest(
            model=model,
            messages=_messages(body.get("messages")),
            seed=optional_int(body, "seed") or 0,
            max_tokens=max_tokens(optional_int(body, limit_field), model, limit_field),
            stop=string_list(body.get("stop"), "stop", limit=MAX_STOP),
            **timing(extension, prefix="llmstream.").fields(),
            faults=faults.faults,
            fault_rate=faults.fault_rate,
            fault_pool=faults.fault_pool,
        ),
        stream=stream,
        include_usage=optional_bool(stream_options, "include_usage", param="stream_options.include_usage")
        or False,
        timestamps=optional_bool(extension, "timestamps", param="llmstream.timestamps") or False,
    )


def _messages(messages: object) -> tuple[Message, ...]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("messages must be a non-empty array of messages", param="messages")
    result = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object with role and content", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequestError(
                f"{where}.role must be one of {', '.join(ROLES)}, not {role!r}", param=f"{where}.role"
            )
        result.append(Message(role, _content(message.get("content"), f"{where}.content")))
    return tuple(result)


def _content(content: object, where: str) -> str:
    # null is an assistant message that only called a tool.
    return "" if content is None else text_of_parts(content, where, parts="content parts")


@blueprint.post("/chat/completions")
async def chat_completions() -> Response | EventStreamResponse:
    """A chat completion: a chat.completion body, or with "stream": true a stream of chunks."""
    return await serving.answer(opening(await json_body(), request.headers), DIALECT)


def opening(body: dict[str, Any], headers: HeaderLookup) -> serving.Opening:
    """A Chat Completions body, checked and planned (a stream resumes after the Last-Event-ID header)."""
    call = parse_call(body, headers)
    plan = plan_for(call.request, headers.get("Last-Event-ID") if call.stream else None)

    def events(created: int, request_id: str) -> Iterable[StreamItem]:
        return openai.stream_items(
            plan, include_usage=call.include_usage, created=created, request_id=request_id
        )

    return serving.Opening(plan, stream=call.stream, events=events, timestamps=call.timestamps)


@blueprint.get("/models")
async def list_models() -> Response:
    """The models, as OpenAI lists them (or as Anthropic does, for a client sending anthropic-version)."""
    if "anthropic-version" in request.headers:
        return model_list()
    return error_shapes.json_response({"object": "list", "data": [_model(name) for name in MODELS]})


@blueprint.get("/models/<path:model_id>")
async def retrieve_model(model_id: str) -> Response:
    """One model; 404 model_not_found for an unknown one."""
    if "anthropic-version" in request.headers:
        return model_info(model_id)
    if model_id not in MODELS:
        raise UnknownModelError(f"The model {model_id!r} does not exist; choose one of: {', '.join(MODELS)}")
    return error_shapes.json_response(_model(model_id))


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": MODELS_CREATED, "owned_by": "llmstream"}


def final_event(closing: Closing) -> ServerSentEvent | None:
    """OpenAI's mid-stream error (a data event holding "error") for a stream the engine ends early."""
    error = serving.close_error(closing)
    if error is None:
        return None
    event = openai.error_event(*error)
    if closing.reason == "server_shutdown":
        return ServerSentEvent(data=event.data, retry=closing.retry_ms)
    return event


def render_error(
    kind: ErrorKind,
    message: str,
    *,
    param: str | None = None,
    status: int | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    """{"error": {"message", "type", "param", "code"}}."""
    body = openai.error_body(kind, message, param=param)
    if kind == "not_found" and param != "model":
        # model_not_found is the code for an unknown model only; an unknown route has none.
        error = body["error"]
        assert isinstance(error, dict)
        error["code"] = None
    return error_shapes.json_response(body, status or openai.status_for(kind), headers)


DIALECT = serving.Dialect(openai, render_error, final_event)
# Its streams, answered past Quart (llmstream.api.stream_lane).
LANE = LaneRoute(f"{blueprint.name}.{chat_completions.__name__}", opening, DIALECT)
# /v1/messages is Anthropic's (anthropic_api registers that longer prefix); the rest of /v1 is OpenAI's.
error_shapes.install(blueprint, render_error, prefixes=("/v1",))
