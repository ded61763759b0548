"""The relay demo: the server reads an upstream SSE stream and passes it on to the browser, transformed.

    browser ─ GET /demo/relay/stream?upstream=/api/chat/stream?prompt=hi&transform=uppercase ─► relay
    relay ─ httpx stream ─► upstream ─ bytes ─► SSEDecoder ─► Transform ─► event_stream ─► browser

Never an open proxy: the upstream must be on the allowlist (setting `relay_allowlist`; by default this
app's own streams). A relative upstream (`/path?query`) means this server; an absolute one must match an
allowlisted URL exactly in scheme, host, port and path, after parsing, so `//host`, `../`, userinfo,
percent-encoding or another scheme reach nothing else (400). Redirects are not followed and proxy
variables are ignored, for the same reason.

Every failure of the upstream (refused connection, an HTTP error, not an event stream, a connection cut
mid-stream, silence) becomes one final `error` event. A browser that leaves cancels the source (the engine
does that on disconnect); leaving `client.stream(...)` closes the upstream response at once, so the
upstream server sees its client go too.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Final
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx
from quart import Blueprint, current_app, render_template, request

from llmstream.api.errors import BadRequest
from llmstream.config import Settings, relay_allowlist
from llmstream.sse import ServerSentEvent, SSEDecoder
from llmstream.sse_response import EventStreamResponse, event_stream

blueprint = Blueprint("relay", __name__, url_prefix="/demo/relay")

_CLIENT_KEY: Final = "llmstream.relay.client"
MAX_UPSTREAM_LENGTH: Final = 4_000
# An upstream that sends nothing (not even a heartbeat comment) for this long has failed.
READ_TIMEOUT_S: Final = 60.0
# Batching flushes at the end of a sentence, or once this many tokens wait (code has few full stops).
MAX_BATCH_TOKENS: Final = 64
_SELF_PATH: Final = "/demo/relay/stream"
_UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, controls, backslash: never in a URL
_SENTENCE_END = re.compile(r"([.!?…:][\"')\]]*\s*|\n\s*)$")
_DIGIT = re.compile(r"\d")


# ---- transformations ------------------------------------------------------------------------------


class Transform:
    """Passes events through unchanged; subclasses change the text of token events.

    A token event is one whose data is a JSON object with a string `text` (llmstream's native `token`
    and `thinking` events); every other event (start, finish, error, a counter's count) passes as is.
    """

    def feed(self, event: ServerSentEvent) -> list[ServerSentEvent]:
        payload = _token_payload(event)
        if payload is None:
            return [event]
        payload["text"] = self.text(str(payload["text"]))
        return [_with_data(event, payload)]

    def text(self, text: str) -> str:
        return text

    def flush(self) -> list[ServerSentEvent]:
        return []


class Uppercase(Transform):
    def text(self, text: str) -> str:
        return text.upper()


class RedactDigits(Transform):
    def text(self, text: str) -> str:
        return _DIGIT.sub("•", text)


class Sentences(Transform):
    """Batches token events into one event per sentence (or line), at token boundaries only.

    A batch carries the id of its last token, so a browser that resumes with that `Last-Event-ID` gets
    exactly the tokens after the batch: batching never breaks resumption.
    """

    def __init__(self) -> None:
        self._kind: str | None = None
        self._texts: list[str] = []
        self._last: ServerSentEvent | None = None
        self._index: object = None

    def feed(self, event: ServerSentEvent) -> list[ServerSentEvent]:
        payload = _token_payload(event)
        if payload is None:
            return [*self.flush(), event]
        out = self.flush() if event.event != self._kind else []
        text = str(payload["text"])  # a str: _token_payload checked it
        self._kind, self._last, self._index = event.event, event, payload.get("index")
        self._texts.append(text)
        if len(self._texts) >= MAX_BATCH_TOKENS or _SENTENCE_END.search(text):
            out.extend(self.flush())
        return out

    def flush(self) -> list[ServerSentEvent]:
        if self._last is None:
            return []
        payload = {"index": self._index, "text": "".join(self._texts), "tokens": len(self._texts)}
        batch = _with_data(self._last, payload)
        self._kind, self._texts, self._last, self._index = None, [], None, None
        return [batch]


TRANSFORMS: Final[dict[str, Callable[[], Transform]]] = {
    "none": Transform,
    "uppercase": Uppercase,
    "redact_digits": RedactDigits,
    "sentences": Sentences,
}


def _token_payload(event: ServerSentEvent) -> dict[str, object] | None:
    if event.data is None:
        return None
    try:
        payload = json.loads(event.data)
    except ValueError:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        return payload
    return None


def _with_data(event: ServerSentEvent, payload: dict[str, object]) -> ServerSentEvent:
    return ServerSentEvent.json(payload, event=event.event, id=event.id)


# ---- the allowlist --------------------------------------------------------------------------------


def resolve_upstream(raw: str, allowlist: tuple[str, ...], own_origin: str) -> str:
    """The URL to read for `raw` (a path on this server or an absolute URL); BadRequest unless allowed.

    `own_origin` (`http://host:port`) is where this server listens; relative upstreams go there.
    """
    if not raw:
        raise BadRequest("query parameter 'upstream' is required: a stream path such as /api/chat/stream?...")
    if len(raw) > MAX_UPSTREAM_LENGTH or _UNSAFE_CHARACTERS.search(raw):
        raise BadRequest("upstream must be a URL without spaces, control characters or backslashes")
    parts = _split(raw)
    allowed = ", ".join(allowlist) or "(none)"
    if raw.startswith("/") and not raw.startswith("//"):
        if parts.path == _SELF_PATH:
            raise BadRequest("the relay does not relay itself")
        if parts.path not in allowlist:
            raise BadRequest(f"upstream {parts.path!r} is not on the relay allowlist: {allowed}")
        return own_origin + urlunsplit(("", "", parts.path, parts.query, ""))
    canonical = _canonical_url(raw)
    if canonical not in {_canonical_url(entry) for entry in allowlist if not entry.startswith("/")}:
        raise BadRequest(f"upstream {canonical or raw[:100]!r} is not on the relay allowlist: {allowed}")
    return canonical + (f"?{parts.query}" if parts.query else "")


def _split(raw: str) -> SplitResult:
    try:
        return urlsplit(raw)
    except ValueError:
        raise BadRequest(f"upstream is not a URL: {raw[:100]!r}") from None


def _canonical_url(raw: str) -> str:
    """`scheme://host[:port]/path` with the host lowercased, or "" for anything but a plain http(s) URL."""
    parts = _split(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))


def own_origin(settings: Settings) -> str:
    """`http://host:port` of this server, as the connection was made to it (a wildcard bind: loopback).

    Taken from the ASGI scope's `server`, never from the Host header, which the caller chooses.
    """
    host, port = request.server or (settings.host, settings.port)
    if port is None:
        host, port = settings.host, settings.port
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# ---- routes ---------------------------------------------------------------------------------------


@blueprint.get("")
async def relay_page() -> str:
    settings: Settings = current_app.config["LLMSTREAM_SETTINGS"]
    return await render_template(
        "relay.html", allowlist=relay_allowlist(settings), transforms=list(TRANSFORMS)
    )


@blueprint.get("/stream")
async def relay_stream() -> EventStreamResponse:
    """Relays `?upstream=` (allowlisted) transformed by `?transform=`; forwards `Last-Event-ID`."""
    settings: Settings = current_app.config["LLMSTREAM_SETTINGS"]
    name = request.args.get("transform", "none")
    if name not in TRANSFORMS:
        raise BadRequest(f"transform must be one of {', '.join(TRANSFORMS)}, not {name!r}")
    url = resolve_upstream(request.args.get("upstream", ""), relay_allowlist(settings), own_origin(settings))
    headers = {"Accept": "text/event-stream"}
    last_event_id = request.headers.get("Last-Event-ID")
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return event_stream(relay(_client(), url, headers, TRANSFORMS[name]()))


async def relay(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], transform: Transform
) -> AsyncIterator[ServerSentEvent]:
    """The relayed stream: upstream events through `transform`; any upstream failure ends it with an
    `error` event. Cancelling it (the browser left) exits `client.stream()`, which closes the upstream
    response, and so the upstream's connection, on the way out."""
    decoder, ids = SSEDecoder(), _IdFilter()
    try:
        async with client.stream("GET", url, headers=headers) as response:
            failure = await _refusal(response)
            if failure is not None:
                yield _error_event(failure)
                return
            async for chunk in response.aiter_bytes():
                for event in decoder.feed(chunk):
                    for out in transform.feed(event):
                        yield ids.forwardable(out)
            decoder.flush()  # the end completes nothing (§9.2.6): an unfinished event is dropped
            for out in transform.flush():
                yield ids.forwardable(out)
    except httpx.HTTPError as exc:
        for out in transform.flush():  # what the upstream sent before failing still reaches the browser
            yield ids.forwardable(out)
        yield _error_event(_describe(exc))


class _IdFilter:
    """Sends an event's id only when it changes.

    The decoder gives every event the last id in force, and the type "message" when none was sent;
    re-sending those would be noise, and an empty `id:` would reset the browser's Last-Event-ID.
    """

    def __init__(self) -> None:
        self._last = ""

    def forwardable(self, event: ServerSentEvent) -> ServerSentEvent:
        new_id = event.id if event.id and event.id != self._last else None
        if new_id is not None:
            self._last = new_id
        kind = None if event.event == "message" else event.event
        return ServerSentEvent(data=event.data, event=kind, id=new_id)


async def _refusal(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        body = (await response.aread())[:300].decode("utf-8", "replace")
        return f"upstream answered HTTP {response.status_code}: {body}"
    content_type = response.headers.get("content-type", "")
    if not content_type.startswith("text/event-stream"):
        return f"upstream is not an event stream (content-type {content_type or 'missing'!r})"
    return None


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect to the upstream: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return f"the upstream was silent for too long ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the upstream cut the connection mid-stream: {exc}"
    return f"reading the upstream failed: {type(exc).__name__}: {exc}"


def _error_event(message: str) -> ServerSentEvent:
    return ServerSentEvent.json({"code": "upstream_error", "message": message}, event="error")


# ---- the HTTP client: one per app, closed when the app stops --------------------------------------


def _client() -> httpx.AsyncClient:
    client: httpx.AsyncClient | None = current_app.extensions.get(_CLIENT_KEY)
    if client is None:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S),
            follow_redirects=False,  # a redirect could lead off the allowlist
            trust_env=False,  # proxy variables must not route the relay elsewhere
        )
        current_app.extensions[_CLIENT_KEY] = client
    return client


@blueprint.after_app_serving
async def _close_client() -> None:
    client: httpx.AsyncClient | None = current_app.extensions.pop(_CLIENT_KEY, None)
    if client is not None:
        await client.aclose()
