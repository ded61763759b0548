"""The stream lane (llmstream.api.stream_lane) answers as Quart's routes would, and only what it should.

Run in-process through the app's ASGI interface (Quart's test client), once with the lane and once
with Quart answering everything: the two answers must be the same, byte for byte, whichever of the two
ends up answering with the lane in place.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from quart import Quart

from llmstream.api import fault_metrics, native_api, stream_lane
from llmstream.api.requests import HeaderLookup
from llmstream.api.serving import Opening
from llmstream.app import create_app
from llmstream.config import Settings
from llmstream.sse_response import set_stream_lane

MESSAGES = [{"role": "user", "content": "Tell me about streams."}]
NATIVE = {"model": "instant", "messages": MESSAGES, "max_tokens": 12, "seed": 3}
OPENAI = {"model": "instant", "messages": MESSAGES, "max_tokens": 12, "seed": 3, "stream": True}
ANTHROPIC = {"model": "instant", "messages": MESSAGES, "max_tokens": 12, "stream": True}


@dataclass(frozen=True)
class Case:
    path: str
    body: bytes | dict[str, Any]
    laned: bool  # the lane answers it (else Quart does)
    headers: dict[str, str] = field(default_factory=dict)


CASES = {
    # Streams: the lane's.
    "native stream": Case("/api/chat", NATIVE, laned=True),
    "openai stream with usage": Case(
        "/v1/chat/completions", {**OPENAI, "stream_options": {"include_usage": True}}, laned=True
    ),
    "anthropic stream": Case("/v1/messages", ANTHROPIC, laned=True),
    "native resumed stream": Case("/api/chat", NATIVE, True, {"Last-Event-ID": "{key}:4"}),
    "native stream with a mid-stream fault": Case("/api/chat", {**NATIVE, "faults": "error_after:5"}, True),
    "openai stream with a fault header": Case(
        "/v1/chat/completions", OPENAI, laned=True, headers={"X-LLMStream-Fault": "truncate_after:3"}
    ),
    # Everything else: Quart's, in the API's own shape.
    "native non-streaming": Case("/api/chat", {**NATIVE, "stream": False}, laned=False),
    "openai non-streaming": Case("/v1/chat/completions", {**OPENAI, "stream": False}, laned=False),
    "anthropic planned http fault": Case(
        "/v1/messages", {**ANTHROPIC, "llmstream": {"faults": "overloaded"}}, laned=False
    ),
    "openai invalid call": Case("/v1/chat/completions", {**OPENAI, "n": 2}, laned=False),
    "anthropic body not json": Case("/v1/messages", b'{"model": ', laned=False),
    "native body not an object": Case("/api/chat", b"[1, 2]", laned=False),
    "native empty body": Case("/api/chat", b"", laned=False),
    "native body too large": Case("/api/chat", {**NATIVE, "padding": "x" * 2_000}, laned=False),
    "native resume id of another stream": Case("/api/chat", NATIVE, False, {"Last-Event-ID": "0:4"}),
}


def app_with_counted_hooks(*, lane: bool) -> tuple[Quart, list[str]]:
    app = create_app(Settings(max_body_bytes=1_000))
    if not lane:
        set_stream_lane(app, None)
    seen: list[str] = []

    @app.before_request
    async def _count() -> None:
        seen.append("before_request")

    return app, seen


async def answer(app: Quart, case: Case, request_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    client = app.test_client()
    headers = {"X-Request-ID": request_id, **case.headers}
    if "{key}" in headers.get("Last-Event-ID", ""):
        # A resumable id of this very stream: its key is in the first stream's start event.
        first = await client.post(case.path, json=case.body, headers={"X-Request-ID": request_id})
        key = re.search(rb'"stream_key":"([0-9a-f]+)"', await first.get_data())
        assert key is not None
        headers["Last-Event-ID"] = headers["Last-Event-ID"].format(key=key[1].decode())
    if isinstance(case.body, bytes):
        headers["Content-Type"] = "application/json"
        response = await client.post(case.path, data=case.body, headers=headers)
    else:
        response = await client.post(case.path, json=case.body, headers=headers)
    body = await response.get_data()
    # The only field that may differ between two answers: the second the response was created.
    body = re.sub(rb'"created(_at)?":\s*"?[0-9T:Z-]+"?', b'"created":0', body)
    return response.status_code, list(response.headers.items()), body


@pytest.mark.parametrize("name", CASES)
async def test_the_stream_lane_answers_as_quart_would(name: str) -> None:
    case = CASES[name]
    laned_app, laned_hooks = app_with_counted_hooks(lane=True)
    quart_app, quart_hooks = app_with_counted_hooks(lane=False)

    with_lane = await answer(laned_app, case, "probe-1")
    without = await answer(quart_app, case, "probe-1")

    assert with_lane == without
    status, headers, body = with_lane
    assert ("x-request-id", "probe-1") in headers
    if case.laned:
        assert status == 200
        assert ("content-type", "text/event-stream") in headers
        assert body.count(b"\n\n") > 3
    # Faults are counted once per answer, whoever gives it.
    laned_counts = fault_metrics.tally_of(laned_app).counts
    assert laned_counts == fault_metrics.tally_of(quart_app).counts
    # The lane took the request (Quart's hooks never ran for it), or left it to Quart.
    requests = 2 if "{key}" in case.headers.get("Last-Event-ID", "") else 1
    assert len(quart_hooks) == requests
    assert len(laned_hooks) == (0 if case.laned else requests)


async def test_a_get_of_a_stream_path_is_left_to_quart() -> None:
    app, hooks = app_with_counted_hooks(lane=True)
    response = await app.test_client().get("/api/chat")
    assert response.status_code == 405
    assert hooks == ["before_request"]


async def test_a_stream_the_hub_has_no_room_for_is_refused_by_quart_in_the_apis_shape() -> None:
    app = create_app(Settings(max_streams=0))
    response = await app.test_client().post("/v1/messages", json=ANTHROPIC)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["request-id"] == response.headers["X-Request-ID"]
    body = await response.get_json()
    assert body["type"] == "error"
    assert body["error"]["message"] == "too many open streams (at most 0)"


def asgi_scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


class AsgiCall:
    """One request to an ASGI app, as a server makes it: the body in ``pieces``, then nothing until
    the client goes (`hang_up`); what the app sends, and when (loop time from the call)."""

    def __init__(self, app: Quart, path: str, pieces: list[dict[str, Any]]) -> None:
        self.pieces, self.sent, self.at = list(pieces), [], []
        self.answered, self.gone = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        self.began = loop.time()
        self.serving = asyncio.ensure_future(app(asgi_scope(path), self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        if self.pieces:
            return self.pieces.pop(0)
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self.at.append(asyncio.get_running_loop().time() - self.began)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.answered.set()

    async def hang_up(self) -> None:
        self.gone.set()
        await asyncio.wait_for(self.serving, 5)


async def test_a_body_that_stops_coming_gets_its_408_once_the_body_timeout_has_passed_not_twice() -> None:
    # The lane waits for the rest of a stream's body up to BODY_TIMEOUT, then leaves the request to
    # Quart: Quart must get what is left of that time, not the whole of it again.
    app = create_app(Settings())
    app.config["BODY_TIMEOUT"] = 1.0
    half_a_body = {"type": "http.request", "body": b'{"prompt": "hi', "more_body": True}
    call = AsgiCall(app, "/api/chat", [half_a_body])
    await asyncio.wait_for(call.answered.wait(), 10)
    waited = call.at[-1]
    await call.hang_up()

    assert call.sent[0]["status"] == 408
    body = b"".join(m.get("body", b"") for m in call.sent[1:])
    error = json.loads(body)["error"]  # in the native API's shape, as Quart's handler renders it
    assert error["type"] == "invalid_request"
    assert "within the specified time" in error["message"]
    assert 1.0 <= waited < 1.9  # one BODY_TIMEOUT, with room for a slow machine; two would be 2.0


async def test_checking_and_planning_a_laned_request_take_nothing_off_its_time_to_first_token() -> None:
    # Regression: the lane noted the request as received once it had checked and planned it, so that
    # time was added to every token's due time (Quart's path notes it when the body is complete).
    app = create_app(Settings())
    slow_checks = 0.06

    def slow_opening(body: dict[str, Any], headers: HeaderLookup) -> Opening:
        time.sleep(slow_checks)  # a long prompt's planning, say
        return native_api.opening(body, headers)

    stream_lane.install(app, [replace(native_api.LANE, opening=slow_opening)])
    body = {"prompt": "hello there", "model": "echo", "ttft_ms": 100, "tokens_per_s": 20, "jitter": 0}
    pieces = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    call = AsgiCall(app, "/api/chat", pieces)
    await asyncio.wait_for(call.answered.wait(), 10)
    await call.hang_up()

    tokens = [at for at, m in zip(call.at, call.sent, strict=True) if b"event: token" in m.get("body", b"")]
    assert tokens
    assert 0.1 <= tokens[0] < 0.1 + slow_checks  # due 100 ms after the request, planning included
