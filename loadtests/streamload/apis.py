"""The three streaming APIs as a load-test client sees them: the request to send, and a reader that
turns the decoded SSE events into tokens, the final event, the reported usage and errors.

Pure: no I/O, no Locust. A reader is fed ``(event, receive time)`` pairs; `Reading.problems()` then
says what is wrong with the stream as a whole (the integrity check every load-test stream passes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from llmstream.sse import ServerSentEvent

__all__ = ["API_NAMES", "ApiName", "Reading", "StreamSpec", "request_for"]

ApiName = Literal["native", "openai", "anthropic"]
API_NAMES: tuple[ApiName, ...] = ("native", "openai", "anthropic")


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What to ask for. ``llmstream`` False: the target is another server (send only standard fields,
    expect no event ids, no send timestamps, no usage equal to the chunk count)."""

    model: str = "fast"
    prompt: str = "Explain how token streaming works."
    max_tokens: int = 64
    seed: int = 0
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    llmstream: bool = True
    headers: tuple[tuple[str, str], ...] = ()


def request_for(api: ApiName, spec: StreamSpec) -> tuple[str, list[tuple[str, str]], bytes]:
    """(path, headers, JSON body) of a streaming request to ``api``."""
    messages = [{"role": "user", "content": spec.prompt}]
    options: dict[str, Any] = {"timestamps": True, "seed": spec.seed}
    if spec.ttft_ms is not None:
        options["ttft_ms"] = spec.ttft_ms
    if spec.tokens_per_s is not None:
        options["tokens_per_s"] = spec.tokens_per_s
    body: dict[str, Any] = {"model": spec.model, "messages": messages, "stream": True}
    path = {"native": "/api/chat", "openai": "/v1/chat/completions", "anthropic": "/v1/messages"}[api]
    if api == "native":
        if not spec.llmstream:
            raise ValueError("the native API exists only on llmstream")
        body.update(options, max_tokens=spec.max_tokens)
    elif api == "openai":
        body.update(max_tokens=spec.max_tokens, stream_options={"include_usage": True})
    else:
        body.update(max_tokens=spec.max_tokens)
    if api != "native" and spec.llmstream:
        body["llmstream"] = options
    headers = [("Content-Type", "application/json"), ("Accept", "text/event-stream"), *spec.headers]
    if api == "anthropic":
        headers.append(("anthropic-version", "2023-06-01"))
    return path, headers, orjson.dumps(body)


@dataclass(slots=True)
class Reading:
    """What one stream (or a stream and its resumption) delivered, as the client saw it."""

    api: ApiName
    recv: list[float] = field(default_factory=list)  # receive time of each token, in arrival order
    sent: list[float | None] = field(default_factory=list)  # the server's send time ``t``, if sent
    indices: list[int | None] = field(default_factory=list)  # the server's token index, if known
    finished: bool = False  # the API's final event arrived
    usage_tokens: int | None = None  # completion tokens the server reported
    error: str | None = None  # an error event's message
    last_event_id: str | None = None
    resumed_after: int | None = None  # the native start event of a resumed stream says where it resumes

    @property
    def tokens(self) -> int:
        return len(self.recv)

    def feed(self, event: ServerSentEvent, now: float) -> None:
        if event.id:
            self.last_event_id = event.id
        _READERS[self.api](self, event, now)

    def token(self, now: float, data: dict[str, Any], event_id: str | None, index: int | None = None) -> None:
        self.recv.append(now)
        t = data.get("t")
        self.sent.append(float(t) if isinstance(t, int | float) else None)
        if index is None and event_id and ":" in event_id:
            tail = event_id.rpartition(":")[2]
            index = int(tail) if tail.isdigit() else None
        self.indices.append(index)

    def problems(
        self, *, complete: bool = True, check_usage: bool = True, check_indices: bool = False
    ) -> list[str]:
        """What is wrong: token indices not consecutive, no final event (when ``complete``), an error
        event, or usage that differs from the tokens received. Empty when the stream is sound.

        ``check_indices``: every token must carry its index (llmstream's do, in the data or the event
        id): without them a dropped or repeated token could pass unseen."""
        found = []
        if self.error is not None:
            found.append(f"error event: {self.error}")
        known = [i for i in self.indices if i is not None]
        if check_indices and self.indices and not known:
            found.append("no token event carries its index")
        if known:
            if len(known) != len(self.indices):
                found.append("some token events carry no index")
            if known != list(range(len(known))):
                at = next(n for n, index in enumerate(known) if index != n)
                found.append(f"token indices not consecutive from 0: position {at} has index {known[at]}")
        if complete and not self.finished and self.error is None:
            found.append("the stream ended without its final event")
        if complete and self.finished and check_usage:
            if self.usage_tokens is None:
                found.append("the final event reported no usage")
            elif self.usage_tokens != self.tokens:
                found.append(f"usage reports {self.usage_tokens} tokens, {self.tokens} were received")
        return found


def _json(event: ServerSentEvent) -> dict[str, Any]:
    try:
        value = orjson.loads(event.data or "")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _read_native(reading: Reading, event: ServerSentEvent, now: float) -> None:
    kind = event.event
    if kind in ("token", "thinking"):
        data = _json(event)
        index = data.get("index")
        reading.token(now, data, event.id, index if isinstance(index, int) else None)
    elif kind == "finish":
        reading.finished = True
        usage = _json(event).get("usage") or {}
        reading.usage_tokens = usage.get("completion_tokens")
    elif kind == "error":
        reading.error = str(_json(event).get("message") or event.data)
    elif kind == "start":
        resumed = _json(event).get("resumed_after")
        reading.resumed_after = resumed if isinstance(resumed, int) else None


def _read_openai(reading: Reading, event: ServerSentEvent, now: float) -> None:
    if event.data == "[DONE]":
        reading.finished = True
        return
    data = _json(event)
    if "error" in data:
        error = data["error"]
        reading.error = str(error.get("message") if isinstance(error, dict) else error)
        return
    choices = data.get("choices") or []
    if choices:
        delta = choices[0].get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content"):
            reading.token(now, data, event.id)
    usage = data.get("usage")
    if isinstance(usage, dict):
        reading.usage_tokens = usage.get("completion_tokens")


def _read_anthropic(reading: Reading, event: ServerSentEvent, now: float) -> None:
    kind = event.event
    if kind == "content_block_delta":
        data = _json(event)
        delta = data.get("delta") or {}
        if delta.get("text") or delta.get("thinking"):
            reading.token(now, data, event.id)
    elif kind == "message_delta":
        usage = _json(event).get("usage") or {}
        reading.usage_tokens = usage.get("output_tokens")
    elif kind == "message_stop":
        reading.finished = True
    elif kind == "error":
        error = _json(event).get("error") or {}
        reading.error = str(error.get("message") or event.data)


_READERS = {"native": _read_native, "openai": _read_openai, "anthropic": _read_anthropic}
