"""The stream lane: a model API's streaming request answered without Quart's per-request machinery.

Quart spends about half a millisecond of CPU on every request before and after its handler: the
request object and its context, routing, hooks, the response object and its finalising (measured on
Uvicorn's protocol with no sockets: 620 µs for `GET /healthz`, 140 µs for a bare ASGI app). A paced
stream's start cost about 1 ms in all, and while a core is full, every start's wait stays in each of
its tokens (llmstream.api.pacing): at 250 new streams a second, a quarter of the core went on starts.

So `POST /api/chat`, `POST /v1/chat/completions` and `POST /v1/messages`, asking for a stream, are
answered here: the same `opening` of the route (its checks and its plan), the same events, stream and
headers, with none of Quart's machinery (a start now costs about 0.45 ms). The connection
(llmstream.sse_response) reads the whole body first, however many messages it comes in. Whatever this
lane does not answer goes to Quart untouched, with the body read so far: a body over
MAX_CONTENT_LENGTH or not complete within BODY_TIMEOUT, a client gone, anything that is not a JSON
object, a call its `opening` refuses, one not asking for a stream, a planned HTTP fault, a stream the
hub has no room for. Quart answers those exactly as before, errors in each API's own shape, and runs
the same `opening` again, which decides the same way: a plan is a pure function of the request.
tests/unit/test_stream_lane.py holds the lane's answers equal to Quart's, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from quart import Quart

from llmstream import request_ids
from llmstream.api import fault_metrics
from llmstream.api.pacing import paced
from llmstream.api.requests import HeaderLookup
from llmstream.api.serving import Dialect, Opening, created
from llmstream.sse_response import LaneAnswer, encode_headers, hub_of, set_stream_lane, sse_headers
from llmstream.streaming import EventStream

__all__ = ["LaneRoute", "ScopeHeaders", "StreamLane", "install"]


@dataclass(frozen=True, slots=True)
class LaneRoute:
    """A route the lane answers: its Quart endpoint, and what the route's view does with a body."""

    endpoint: str  # "blueprint.view": the lane answers the rule's path, as Quart routes it
    opening: Callable[[dict[str, Any], HeaderLookup], Opening]
    dialect: Dialect
    id_headers: tuple[str, ...] = ()  # headers besides X-Request-ID that carry the request's id


class StreamLane:
    """The app's lane (llmstream.sse_response.StreamLane): the streams of its routes."""

    def __init__(self, app: Quart, routes: Iterable[LaneRoute]) -> None:
        self._config = app.config
        self._hub = hub_of(app)
        self._faults = fault_metrics.tally_of(app)
        self._routes: dict[tuple[str, str], LaneRoute] = {}
        for route in routes:
            for method, path in _paths(app, route.endpoint):
                self._routes[method, path] = route

    @property
    def max_body(self) -> int | None:
        """The app's MAX_CONTENT_LENGTH, read as Quart reads it: for each request."""
        limit: int | None = self._config["MAX_CONTENT_LENGTH"]
        return limit

    def takes(self, scope: Mapping[str, Any]) -> bool:
        return self._route(scope) is not None

    def _route(self, scope: Mapping[str, Any]) -> LaneRoute | None:
        if scope.get("root_path"):
            return None  # under a root path, Quart's routing decides what the path means
        return self._routes.get((scope["method"], scope["path"]))

    def answer(self, scope: Mapping[str, Any], body: bytes) -> LaneAnswer | None:
        route, max_body = self._route(scope), self.max_body
        if route is None or (max_body is not None and len(body) > max_body):
            return None
        headers = ScopeHeaders(scope["headers"])
        try:
            value = orjson.loads(body)
            if not isinstance(value, dict):
                return None
            opening = route.opening(value, headers)
        except Exception:  # refused (or worse): Quart runs the same code and answers in the API's shape
            return None
        plan = opening.plan
        if not opening.stream or plan.http_error is not None or self._hub.refusal() is not None:
            return None
        request_id = request_ids.chosen_id(headers.get(request_ids.HEADER))
        self._faults.record(plan, streamed=True)
        source = paced(opening.events(created(), request_id), plan, timestamps=opening.timestamps)
        final_event = route.dialect.final_event
        stream = EventStream(source, self._hub, options=self._hub.options, final_event=final_event)
        # In the order Quart's path gives them: the response's own, its blueprint's, then the app's.
        named = [(name, request_id) for name in (*route.id_headers, request_ids.HEADER)]
        return stream, encode_headers(sse_headers(scope.get("http_version", "1.1")) + named)


class ScopeHeaders:
    """An ASGI request's headers, looked up by name in any case; the first of repeated ones, as
    werkzeug's `Headers.get` gives it (Quart's path reads them there)."""

    __slots__ = ("_values",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in raw:
            values.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        self._values = values

    def get(self, key: str, /) -> str | None:
        return self._values.get(key.lower())


def install(app: Quart, routes: Iterable[LaneRoute]) -> None:
    """Answer ``routes``' streams through the lane; call it once their blueprints are registered."""
    set_stream_lane(app, StreamLane(app, routes))


def _paths(app: Quart, endpoint: str) -> list[tuple[str, str]]:
    rules = [rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint]
    if len(rules) != 1 or rules[0].arguments:
        raise ValueError(f"the stream lane answers one fixed path per endpoint; {endpoint!r} has {rules}")
    rule = rules[0]
    return [(method, rule.rule) for method in sorted(rule.methods or ()) if method == "POST"]
