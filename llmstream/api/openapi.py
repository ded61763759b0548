"""The OpenAPI 3.1 document of every route, written by hand as data (served at /openapi.json).

Hand-written rather than generated: the routes take JSON bodies checked by plain functions, and the
streams' event schemas (docs/api.md) are prose no generator could produce. A unit test checks that every
route the app registers is described here, so a new route cannot go undocumented.
"""

from __future__ import annotations

import functools
from typing import Any

from llmstream import __version__
from llmstream.simulator import MODELS
from llmstream.simulator.faults import ACCEPTED_FORMS

__all__ = ["document"]

JSON = "application/json"
SSE = "text/event-stream"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _number(description: str, **limits: float) -> Schema:
    return {"type": "number", "description": description, **limits}


def _integer(description: str, **limits: int) -> Schema:
    return {"type": "integer", "description": description, **limits}


def _string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


_MODEL = _string("a simulated model", enum=list(MODELS))
_FAULT_OPTIONS: dict[str, Schema] = {
    "faults": _string(f"faults to inject: {ACCEPTED_FORMS}"),
    "fault_rate": _number("probability (0-1) of one fault drawn from fault_pool", minimum=0, maximum=1),
    "fault_pool": _string("the faults fault_rate draws from, comma-separated"),
}
_TIMING_OPTIONS: dict[str, Schema] = {
    "ttft_ms": _number("time to first token, ms (overrides the model's)", minimum=0, maximum=600_000),
    "tokens_per_s": _number("mean tokens per second (overrides the model's)", exclusiveMinimum=0),
    "jitter": _number("spread of the gaps between tokens; 0 = perfectly regular", minimum=0, maximum=3),
}
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {"role": {"type": "string"}, "content": {}},
}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    return {"type": "object", "properties": properties, "required": list(required), **extra}


SCHEMAS: dict[str, Schema] = {
    "NativeChatRequest": _object(
        {
            "prompt": _string("the user's message (or give messages)"),
            "messages": {
                "type": "array",
                "items": _MESSAGE,
                "description": "roles system, user, assistant; content a string",
            },
            "model": {**_MODEL, "default": "typical"},
            "seed": _integer("the same request and seed give the same stream", default=0),
            "max_tokens": _integer("completion tokens at most (finish_reason length)", minimum=1),
            "stop": {"type": ["string", "array"], "description": "up to 16 stop sequences"},
            **_TIMING_OPTIONS,
            **_FAULT_OPTIONS,
            "timestamps": {"type": "boolean", "description": "add the send time t to token events"},
            "stream": {"type": "boolean", "default": True, "description": "false: one JSON body"},
        },
        description="prompt or messages, not both",
    ),
    "NativeChatResponse": _object(
        {
            name: {}
            for name in ("stream_id", "stream_key", "model", "created", "text", "finish_reason", "usage")
        }
    ),
    "NativeError": _object(
        {"error": _object({"type": {"type": "string"}, "message": {"type": "string"}, "param": {}})}
    ),
    "LlmstreamOptions": _object(
        {
            "seed": _integer("Anthropic only (the Messages API has no seed)"),
            **_TIMING_OPTIONS,
            **_FAULT_OPTIONS,
            "timestamps": {"type": "boolean", "description": "add the send time t to token events"},
        },
        description="llmstream's extension field (SDKs: extra_body={'llmstream': {...}})",
    ),
    "OpenAIChatRequest": _object(
        {
            "model": _MODEL,
            "messages": {
                "type": "array",
                "items": _MESSAGE,
                "description": "roles system, developer, user, assistant, tool, function; content a string, "
                "null, or an array of parts (text parts are read)",
            },
            "stream": {"type": "boolean", "default": False, "description": "true: an event stream"},
            "stream_options": _object(
                {"include_usage": {"type": "boolean"}}, description="include_usage: a last chunk with usage"
            ),
            "max_tokens": _integer("completion tokens at most", minimum=1),
            "max_completion_tokens": _integer("as max_tokens (wins when both are given)", minimum=1),
            "seed": _integer("the same request and seed give the same completion"),
            "stop": {"type": ["string", "array", "null"], "description": "up to 4 stop sequences"},
            "n": _integer("must be 1", minimum=1, maximum=1),
            "temperature": _number("accepted and ignored", minimum=0, maximum=2),
            "top_p": _number("accepted and ignored", minimum=0, maximum=1),
            "llmstream": _ref("LlmstreamOptions"),
        },
        ("model", "messages"),
    ),
    "OpenAIError": _object(
        {"error": _object({name: {} for name in ("message", "type", "param", "code")})},
    ),
    "AnthropicMessagesRequest": _object(
        {
            "model": _MODEL,
            "max_tokens": _integer("required, as in the Messages API", minimum=1),
            "messages": {
                "type": "array",
                "items": _MESSAGE,
                "description": "roles user and assistant; content a string or an array of blocks "
                "(text blocks are read)",
            },
            "system": {"type": ["string", "array"], "description": "the system prompt"},
            "stop_sequences": {
                "type": "array",
                "items": {"type": "string"},
                "maxItems": 16,
                "description": "stop_reason stop_sequence when one is met",
            },
            "stream": {"type": "boolean", "default": False, "description": "true: an event stream"},
            "thinking": _object(
                {"type": {"enum": ["enabled", "disabled", "adaptive"]}, "budget_tokens": {}},
                description="checked; the reasoning model thinks, the others do not",
            ),
            "temperature": _number("accepted and ignored", minimum=0, maximum=1),
            "top_p": _number("accepted and ignored", minimum=0, maximum=1),
            "top_k": _integer("accepted and ignored", minimum=0),
            "llmstream": _ref("LlmstreamOptions"),
        },
        ("model", "max_tokens", "messages"),
    ),
    "AnthropicError": _object(
        {"type": {"const": "error"}, "error": _object({"type": {"type": "string"}, "message": {}})}
    ),
}


def _header(name: str, description: str) -> Schema:
    schema = {"type": "string"}
    return {"name": name, "in": "header", "required": False, "schema": schema, "description": description}


_LAST_EVENT_ID = _header("Last-Event-ID", "resume a stream after this token id (<stream key>:<index>)")
_FAULT_HEADERS = [
    _header("X-LLMStream-Fault", "faults to inject, when the body cannot carry them (a field wins)"),
    _header("X-LLMStream-Fault-Rate", "fault_rate, when the body cannot carry it"),
    _header("X-LLMStream-Fault-Pool", "fault_pool, when the body cannot carry it"),
]


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


def _errors(schema: str, *statuses: int) -> dict[str, Schema]:
    reasons = {
        400: "invalid request",
        404: "unknown model",
        413: "body above the size cap",
        429: "rate_limit fault (retry-after, retry-after-ms)",
        500: "server_error fault",
        503: "unavailable or overloaded fault; no room for another stream",
        529: "overloaded fault (Anthropic)",
    }
    content = {JSON: {"schema": _ref(schema)}}
    return {str(s): {"description": reasons[s], "content": content} for s in statuses}


def _stream_and_json(json_schema: Schema, events: str) -> Schema:
    return {
        "description": "the answer: a JSON body, or an event stream when streaming",
        "content": {
            JSON: {"schema": json_schema},
            SSE: {"schema": {"type": "string", "description": events}},
        },
    }


def _page(summary: str, content: str = "text/html") -> Schema:
    ok = {"description": summary, "content": {content: {}}}
    return {"get": {"summary": summary, "responses": {"200": ok}}}


PATHS: dict[str, Schema] = {
    "/api/chat": {
        "post": {
            "tags": ["native"],
            "summary": "Chat with a simulated model: native events (start, token, finish)",
            "parameters": [_LAST_EVENT_ID, *_FAULT_HEADERS],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("NativeChatRequest")}}},
            "responses": {
                "200": _stream_and_json(
                    _ref("NativeChatResponse"), "events start, thinking, token, finish | error (docs/api.md)"
                ),
                **_errors("NativeError", 400, 404, 413, 429, 500, 503),
            },
        }
    },
    "/api/chat/stream": {
        "get": {
            "tags": ["native"],
            "summary": "The same chat through query parameters, for EventSource; resumes with Last-Event-ID",
            "parameters": [
                _query("prompt", {"type": "string"}, "the user's message", required=True),
                _query("model", _MODEL, "default typical"),
                _query("seed", {"type": "integer"}, "default 0"),
                _query("max_tokens", {"type": "integer"}, "completion tokens at most"),
                _query("stop", {"type": "string"}, "a stop sequence (repeat for several)"),
                *(_query(name, schema, schema["description"]) for name, schema in _TIMING_OPTIONS.items()),
                *(_query(name, schema, schema["description"]) for name, schema in _FAULT_OPTIONS.items()),
                _query("timestamps", {"type": "boolean"}, "add the send time t to token events"),
                _query("last_event_id", {"type": "string"}, "as the Last-Event-ID header"),
                _LAST_EVENT_ID,
                *_FAULT_HEADERS,
            ],
            "responses": {
                "200": {"description": "native events", "content": {SSE: {}}},
                **_errors("NativeError", 400, 404, 429, 500, 503),
            },
        }
    },
    "/api/models": _page("The simulated models: id, description, limits", JSON),
    "/v1/chat/completions": {
        "post": {
            "tags": ["openai"],
            "summary": "OpenAI-compatible chat completion (streaming or not)",
            "parameters": [_LAST_EVENT_ID, *_FAULT_HEADERS],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("OpenAIChatRequest")}}},
            "responses": {
                "200": _stream_and_json(
                    {"type": "object", "description": "chat.completion"},
                    "chat.completion.chunk data events, then data: [DONE]",
                ),
                **_errors("OpenAIError", 400, 404, 413, 429, 500, 503),
            },
        }
    },
    "/v1/models": _page("The models, as OpenAI lists them (Anthropic's shape with anthropic-version)", JSON),
    "/v1/models/{model_id}": {
        "get": {
            "tags": ["openai"],
            "summary": "One model (404 model_not_found for an unknown one)",
            "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": _MODEL}],
            "responses": {"200": {"description": "the model"}, **_errors("OpenAIError", 404)},
        }
    },
    "/v1/messages": {
        "post": {
            "tags": ["anthropic"],
            "summary": "Anthropic-compatible message (streaming or not)",
            "parameters": [
                _header("anthropic-version", "accepted, not required"),
                _LAST_EVENT_ID,
                *_FAULT_HEADERS,
            ],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _ref("AnthropicMessagesRequest")}},
            },
            "responses": {
                "200": _stream_and_json(
                    {"type": "object", "description": "the message"},
                    "message_start, content_block_start, ping, content_block_delta..., content_block_stop, "
                    "message_delta, message_stop",
                ),
                **_errors("AnthropicError", 400, 404, 413, 429, 500, 503, 529),
            },
        }
    },
    "/openapi.json": _page("This document", JSON),
    "/docs/api": _page("The API, for people"),
    "/": _page("The chat page"),
    "/healthz": _page("Liveness: 200 while the process answers", JSON),
    "/readyz": _page("Readiness: 200, or 503 once shutdown began", JSON),
    "/metrics": _page("Prometheus metrics", "text/plain"),
    "/demo/counter": _page("Counter demo page (EventSource, resumed with Last-Event-ID)"),
    "/demo/counter/stream": _page("Counter demo stream (?interval=, ?limit=, ?fail_at=)", SSE),
    "/demo/timeline": _page("Timeline demo page"),
    "/demo/relay": _page("Relay demo page"),
    "/demo/relay/stream": _page("Relay demo stream: an allowlisted upstream SSE stream, transformed", SSE),
}


@functools.cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmstream",
            "version": __version__,
            "description": "A simulated LLM: native, OpenAI-compatible and Anthropic-compatible streaming "
            "APIs. Event schemas and the fault catalogue: docs/api.md.",
        },
        "tags": [
            {"name": "native", "description": "llmstream's own API (named SSE events)"},
            {"name": "openai", "description": "OpenAI Chat Completions, for the openai SDK"},
            {"name": "anthropic", "description": "Anthropic Messages, for the anthropic SDK"},
        ],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
