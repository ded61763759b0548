"""Bad requests, for each API: the exact status and error body, in that API's own shape.

One server with a small body cap (64 KiB) answers every row; afterwards it must still be healthy with no
stream left open: bad input never crashes the server or leaks a stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest

from llmstream.simulator import Message, StreamRequest, stream_key
from tests.integration.conftest import serve_command
from tests.integration.serverproc import RunningServer, free_port, running_server

CAP = 65_536
TOO_BIG = {"prompt": "x" * CAP}
KEY_OF_ANOTHER_STREAM = "0123456789abcdef:3"
# The key of {"prompt": "hi"} with every default: the server must compute the same one.
HI_KEY = stream_key(StreamRequest(model="typical", messages=(Message("user", "hi"),)))
USER = [{"role": "user", "content": "hi"}]


class Row(NamedTuple):
    method: str
    path: str
    body: Any  # bytes are sent as they are; anything else as JSON; None: no body
    status: int
    expected: dict[str, Any]
    headers: dict[str, str] | None = None


def native(message: str, param: str | None = None, kind: str = "invalid_request") -> dict[str, Any]:
    error = {"type": kind, "message": message}
    return {"error": error if param is None else {**error, "param": param}}


def openai(
    message: str, param: str | None = None, *, kind: str = "invalid_request_error", code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def anthropic(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


NOT_JSON = "the request body is not valid JSON (at line 1, column 2)"
TOO_LARGE = f"the request body is larger than this server's limit of {CAP} bytes"
MALFORMED_ID = "malformed Last-Event-ID {!r}: expected '<16 hex digit stream key>:<index>'"
ACCEPTED = (
    "rate_limit, server_error, unavailable, overloaded, error_after:N, truncate_after:N, reset_after:N, "
    "stall:N:MS, slow_first_token:MS (N, MS: non-negative integers; several faults separated by commas)"
)
MODELS = "choose one of: instant, fast, typical, slow, reasoning, echo"

NATIVE = [
    Row("POST", "/api/chat", b"{", 400, native(NOT_JSON)),
    Row("POST", "/api/chat", b"", 400, native("the request body is empty: send a JSON object")),
    Row("POST", "/api/chat", [], 400, native("the request body must be a JSON object, not an array")),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "model": "gpt-4"},
        404,
        native(f"The model 'gpt-4' does not exist; {MODELS}", "model", "not_found"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "max_tokens": 0},
        400,
        native("max_tokens must be from 1 to 8192 for model 'typical', not 0", "max_tokens"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "max_tokens": "10"},
        400,
        native("max_tokens must be an integer, not a string ('10')", "max_tokens"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "seed": 1.5},
        400,
        native("seed must be an integer, not a number (1.5)", "seed"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"messages": []},
        400,
        native("messages must be a non-empty array of messages", "messages"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"messages": [{"role": "robot", "content": "x"}]},
        400,
        native("messages[0].role must be one of system, user, assistant, not 'robot'", "messages[0].role"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"messages": [{"role": "user", "content": 5}]},
        400,
        native("messages[0].content must be a string", "messages[0].content"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "messages": USER},
        400,
        native("give either prompt (a string) or messages (an array), not both or neither"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "stop": [str(i) for i in range(17)]},
        400,
        native("stop may hold at most 16 sequences, not 17", "stop"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "ttft_ms": -1},
        400,
        native("ttft_ms must be a number at least 0 and at most 600000, not -1.0", "ttft_ms"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "fault_rate": 2},
        400,
        native("fault_rate must be from 0 to 1, not 2", "fault_rate"),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi", "faults": "explode"},
        400,
        native(
            f"bad fault 'explode' in 'explode': unknown fault; accepted forms: {ACCEPTED}",
            "faults",
        ),
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi"},
        400,
        native("X-LLMStream-Fault-Rate must be a number, not 'often'", "X-LLMStream-Fault-Rate"),
        {"X-LLMStream-Fault-Rate": "often"},
    ),
    Row(
        "POST",
        "/api/chat",
        {"prompt": "hi"},
        400,
        native(
            "Last-Event-ID belongs to a different request (stream 0123456789abcdef; this request is "
            f"{HI_KEY})",
            "Last-Event-ID",
        ),
        {"Last-Event-ID": KEY_OF_ANOTHER_STREAM},
    ),
    Row(
        "GET",
        "/api/chat/stream?prompt=hi",
        None,
        400,
        native(MALFORMED_ID.format("x:1"), "Last-Event-ID"),
        {"Last-Event-ID": "x:1"},
    ),
    Row("GET", "/api/chat/stream", None, 400, native("the prompt query parameter is required", "prompt")),
    Row(
        "GET",
        "/api/chat/stream?prompt=hi&seed=abc",
        None,
        400,
        native("seed must be an integer, not 'abc'", "seed"),
    ),
    Row(
        "GET",
        "/api/chat/stream?prompt=hi&timestamps=maybe",
        None,
        400,
        native("timestamps must be true or false (or 1 or 0), not 'maybe'", "timestamps"),
    ),
    Row(
        "POST",
        "/api/chat",
        TOO_BIG,
        413,
        native(TOO_LARGE, kind="request_too_large"),
    ),
    Row(
        "PUT",
        "/api/chat",
        {"prompt": "hi"},
        405,
        native("PUT is not allowed on /api/chat; use POST"),
    ),
    Row(
        "GET",
        "/api/nowhere",
        None,
        404,
        native("no such route: GET /api/nowhere (the routes are listed at /docs/api)", kind="not_found"),
    ),
]

COMPLETIONS = "/v1/chat/completions"
OPENAI = [
    Row("POST", COMPLETIONS, b"{", 400, openai(NOT_JSON)),
    Row(
        "POST",
        COMPLETIONS,
        {"messages": USER},
        400,
        openai("you must provide a model parameter (a string)", "model"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "gpt-4o", "messages": USER},
        404,
        openai(f"The model 'gpt-4o' does not exist; {MODELS}", "model", code="model_not_found"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "n": 2},
        400,
        openai("n must be 1: llmstream generates one choice, not 2", "n"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "stop": ["a", "b", "c", "d", "e"]},
        400,
        openai("stop may hold at most 4 sequences, not 5", "stop"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "stop": 5},
        400,
        openai("stop must be a string or an array of strings, not an integer (5)", "stop"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "max_completion_tokens": 100_000},
        400,
        openai(
            "max_completion_tokens must be from 1 to 8192 for model 'fast', not 100000",
            "max_completion_tokens",
        ),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "max_tokens": -1},
        400,
        openai("max_tokens must be from 1 to 8192 for model 'fast', not -1", "max_tokens"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": []},
        400,
        openai("messages must be a non-empty array of messages", "messages"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": [{"role": "robot", "content": "x"}]},
        400,
        openai(
            "messages[0].role must be one of system, developer, user, assistant, tool, function, not 'robot'",
            "messages[0].role",
        ),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": [{"role": "user", "content": 5}]},
        400,
        openai(
            "messages[0].content must be a string or an array of content parts, not an integer",
            "messages[0].content",
        ),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
        400,
        openai("messages[0].content[0] must be an object with a type", "messages[0].content[0]"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "stream_options": {"include_usage": True}},
        400,
        openai("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "temperature": 3},
        400,
        openai("temperature must be from 0 to 2, not 3", "temperature"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "llmstream": {"faults": "stall:1"}},
        400,
        openai(
            "bad fault 'stall:1' in 'stall:1': MS must be an integer from 0 to 600000, not ''; "
            f"accepted forms: {ACCEPTED}",
            "llmstream.faults",
        ),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "llmstream": []},
        400,
        openai("llmstream must be an object, not an array", "llmstream"),
    ),
    Row(
        "POST",
        COMPLETIONS,
        {"model": "fast", "messages": USER, "stream": True},
        400,
        openai(MALFORMED_ID.format("nope"), "Last-Event-ID"),
        {"Last-Event-ID": "nope"},
    ),
    Row(
        "POST",
        COMPLETIONS,
        TOO_BIG,
        413,
        openai(TOO_LARGE, code="request_too_large"),
    ),
    Row("GET", COMPLETIONS, None, 405, openai("GET is not allowed on /v1/chat/completions; use POST")),
    Row(
        "GET",
        "/v1/models/gpt-4o",
        None,
        404,
        openai(f"The model 'gpt-4o' does not exist; {MODELS}", "model", code="model_not_found"),
    ),
    Row(
        "GET",
        "/v1/embeddings",
        None,
        404,
        openai("no such route: GET /v1/embeddings (the routes are listed at /docs/api)"),
    ),
]

MESSAGES = "/v1/messages"
ANTHROPIC = [
    Row("POST", MESSAGES, b"{", 400, anthropic(NOT_JSON)),
    Row(
        "POST",
        MESSAGES,
        {"model": "fast", "messages": USER},
        400,
        anthropic("max_tokens: field required (an integer)"),
    ),
    Row(
        "POST",
        MESSAGES,
        {"max_tokens": 10, "messages": USER},
        400,
        anthropic("model: field required (a string)"),
    ),
    Row(
        "POST",
        MESSAGES,
        {"model": "claude-x", "max_tokens": 10, "messages": USER},
        404,
        anthropic(f"model: The model 'claude-x' does not exist; {MODELS}", "not_found_error"),
    ),
    Row(
        "POST",
        MESSAGES,
        {"model": "fast", "max_tokens": 9000, "messages": USER},
        400,
        anthropic("max_tokens must be from 1 to 8192 for model 'fast', not 9000"),
    ),
    Row(
        "POST",
        MESSAGES,
        {"model": "fast", "max_tokens": 10, "messages": []},
        400,
        anthropic("messages: at least one message is required"),
    ),
    Row(
        "POST",
        MESSAGES,
        {"model": "fast", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
        400,
        anthropic(
            "messages[0].role must be one of user, assistant, not 'system' (a system prompt goes in the "
            "top-level system field)"
        ),
    ),
    Row(
        "POST",
        MESSAGES,
        {"model": "fast", "max_tokens": 10, "messages": USER, "system": 5},
        400,
        anthropic("system must be a string or an array of content blocks, not an integer"),
    ),
    Row(
        "POST",
        MESSAGES,
        {"model": "fast", "max_tokens": 10, "messages": USER, "stop_sequences": "x"},
        400,
        anthropic("stop_sequences must be an array of strings, not a string ('x')"),
    ),
    Row(
        "POST",
        MESSAGES,
        {
            "model": "fast",
            "max_tokens": 2000,
            "messages": USER,
            "thinking": {"type": "enabled", "budget_tokens": 10},
        },
        400,
        anthropic(
            "thinking.budget_tokens must be an integer of at least 1024 and less than max_tokens (2000), "
            "not 10"
        ),
    ),
    Row(
        "POST",
        MESSAGES,
        {"model": "fast", "max_tokens": 10, "messages": USER, "llmstream": {"seed": "a"}},
        400,
        anthropic("llmstream.seed must be an integer, not a string ('a')"),
    ),
    Row(
        "POST",
        MESSAGES,
        TOO_BIG,
        413,
        anthropic(TOO_LARGE, "request_too_large"),
    ),
    Row("GET", MESSAGES, None, 405, anthropic("GET is not allowed on /v1/messages; use POST")),
]

TABLE = (
    [("native", row) for row in NATIVE]
    + [("openai", row) for row in OPENAI]
    + [("anthropic", row) for row in ANTHROPIC]
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("errors") / "server.log"
    with running_server(
        serve_command("uvicorn", port, "--max-body-bytes", str(CAP)), port, log_path=log
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


@pytest.mark.parametrize(("api", "row"), TABLE, ids=[f"{api}-{i}" for i, (api, _) in enumerate(TABLE)])
def test_bad_request(client: httpx.Client, api: str, row: Row) -> None:
    if isinstance(row.body, bytes):
        response = client.request(row.method, row.path, content=row.body, headers=row.headers)
    elif row.body is None:
        response = client.request(row.method, row.path, headers=row.headers)
    else:
        response = client.request(row.method, row.path, json=row.body, headers=row.headers)
    assert (response.status_code, response.json()) == (row.status, row.expected)
    assert response.headers["content-type"] == "application/json"
    if row.status == 405:
        assert response.headers["allow"]


def test_bad_requests_leave_the_server_healthy_with_no_stream_open(
    server: RunningServer, client: httpx.Client
) -> None:
    for _, row in TABLE:  # once more, all in a row, then look
        client.request(row.method, row.path, content=row.body if isinstance(row.body, bytes) else None)
    assert server.process.poll() is None
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics").text
    assert re.search(r"^llmstream_open_streams 0\.0$", metrics, re.MULTILINE)
    assert "Traceback" not in server.log()
