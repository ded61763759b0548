"""Byte-exact tables for ServerSentEvent: what each field writes, and what is refused."""

from __future__ import annotations

import dataclasses
import enum
import math
import pickle
from typing import Any

import pytest

from llmstream.sse import ServerSentEvent, SSEFieldError

ENCODED: list[tuple[str, dict[str, Any], bytes]] = [
    # name, fields, expected bytes
    ("data", {"data": "hello"}, b"data: hello\n\n"),
    ("event", {"event": "token"}, b"event: token\n\n"),
    ("id", {"id": "42"}, b"id: 42\n\n"),
    ("retry", {"retry": 3000}, b"retry: 3000\n\n"),
    ("retry-zero", {"retry": 0}, b"retry: 0\n\n"),
    ("comment", {"comment": "keep-alive"}, b": keep-alive\n\n"),
    (
        "all-fields-in-order",
        {"data": "d", "event": "e", "id": "i", "retry": 1, "comment": "c"},
        b": c\nevent: e\nid: i\nretry: 1\ndata: d\n\n",
    ),
    ("data-empty", {"data": ""}, b"data: \n\n"),
    ("data-none-event-only", {"event": "ping", "data": None}, b"event: ping\n\n"),
    ("event-empty", {"event": "", "data": "x"}, b"event: \ndata: x\n\n"),
    ("id-empty-resets", {"id": ""}, b"id: \n\n"),
    ("comment-empty", {"comment": ""}, b": \n\n"),
    ("data-lf", {"data": "a\nb"}, b"data: a\ndata: b\n\n"),
    ("data-cr", {"data": "a\rb"}, b"data: a\ndata: b\n\n"),
    ("data-crlf", {"data": "a\r\nb"}, b"data: a\ndata: b\n\n"),
    ("data-lfcr-is-two-ends", {"data": "a\n\rb"}, b"data: a\ndata: \ndata: b\n\n"),
    ("data-trailing-lf", {"data": "a\n"}, b"data: a\ndata: \n\n"),
    ("data-only-lf", {"data": "\n"}, b"data: \ndata: \n\n"),
    ("data-blank-lines", {"data": "a\n\n\nb"}, b"data: a\ndata: \ndata: \ndata: b\n\n"),
    ("data-u2028-not-a-line-end", {"data": "a\u2028b\u2029c"}, "data: a\u2028b\u2029c\n\n".encode()),
    ("data-nel-not-a-line-end", {"data": "a\x85b"}, b"data: a\xc2\x85b\n\n"),
    ("data-vt-ff-not-line-ends", {"data": "a\vb\fc"}, b"data: a\x0bb\x0cc\n\n"),
    ("data-fs-gs-rs-not-line-ends", {"data": "a\x1cb\x1dc\x1ed"}, b"data: a\x1cb\x1dc\x1ed\n\n"),
    ("data-leading-space-kept", {"data": " x"}, b"data:  x\n\n"),
    ("data-leading-spaces-each-line", {"data": " a\n  b"}, b"data:  a\ndata:   b\n\n"),
    ("data-nul-allowed", {"data": "a\0b"}, b"data: a\x00b\n\n"),
    ("data-colon", {"data": "a: b"}, b"data: a: b\n\n"),
    ("event-leading-space-kept", {"event": " t"}, b"event:  t\n\n"),
    ("id-leading-space-kept", {"id": " 7"}, b"id:  7\n\n"),
    ("comment-multiline", {"comment": "one\ntwo\r\nthree\rfour"}, b": one\n: two\n: three\n: four\n\n"),
    ("comment-leading-space", {"comment": " x"}, b":  x\n\n"),
    ("comment-and-data", {"comment": "c", "data": "d"}, b": c\ndata: d\n\n"),
    ("unicode", {"data": "héllo wörld", "event": "ü"}, "event: ü\ndata: héllo wörld\n\n".encode()),
    (
        "emoji",
        {"data": "🦜🦜", "id": "🔑"},
        b"id: \xf0\x9f\x94\x91\ndata: \xf0\x9f\xa6\x9c\xf0\x9f\xa6\x9c\n\n",
    ),
    ("bom-in-data-is-just-a-char", {"data": "\ufeffx"}, b"data: \xef\xbb\xbfx\n\n"),
    ("big-retry", {"retry": 2**70}, b"retry: 1180591620717411303424\n\n"),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [(f, e) for _, f, e in ENCODED], ids=[n for n, _, _ in ENCODED]
)
def test_encode_bytes(fields: dict[str, Any], expected: bytes) -> None:
    event = ServerSentEvent(**fields)
    assert event.encode() == expected
    assert event.encode() is event.encode()  # built once, at construction
    for name in ("data", "event", "id", "retry", "comment"):
        assert getattr(event, name) == fields.get(name)  # nothing altered


def test_encode_never_writes_a_bom() -> None:
    assert not ServerSentEvent(data="x").encode().startswith(b"\xef\xbb\xbf")


JSON_ENCODED: list[tuple[str, Any, dict[str, Any], bytes]] = [
    ("token", {"i": 123, "text": " hello"}, {"event": "token", "id": "s:1"},
     b'event: token\nid: s:1\ndata: {"i":123,"text":" hello"}\n\n'),
    ("compact-nested", {"a": [1, 2, {"b": None}], "c": True}, {},
     b'data: {"a":[1,2,{"b":null}],"c":true}\n\n'),
    ("non-ascii-kept", {"t": "é🦜"}, {}, 'data: {"t":"é🦜"}\n\n'.encode()),
    ("newline-escaped", {"t": "a\nb\r"}, {}, b'data: {"t":"a\\nb\\r"}\n\n'),
    ("u2028-raw-single-line", "a\u2028b", {}, 'data: "a\u2028b"\n\n'.encode()),
    ("string", "hi", {"retry": 5}, b'retry: 5\ndata: "hi"\n\n'),
    ("number", 1.5, {}, b"data: 1.5\n\n"),
    ("null", None, {}, b"data: null\n\n"),
    ("null-inside", {"x": None, "y": [1.0, -0.0]}, {}, b'data: {"x":null,"y":[1.0,-0.0]}\n\n'),
    ("tuple", (1, "a"), {}, b'data: [1,"a"]\n\n'),
    ("empty-object", {}, {}, b"data: {}\n\n"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "fields", "expected"),
    [(p, f, e) for _, p, f, e in JSON_ENCODED],
    ids=[n for n, _, _, _ in JSON_ENCODED],
)
def test_encode_json(payload: Any, fields: dict[str, Any], expected: bytes) -> None:
    event = ServerSentEvent.json(payload, **fields)
    assert event.encode() == expected
    assert event == ServerSentEvent(data=event.data, **fields)


class Colour(enum.Enum):
    RED = "red"
    NAN = math.nan


def test_json_enum_with_finite_value() -> None:
    assert ServerSentEvent.json({"c": Colour.RED, "n": None}).data == '{"c":"red","n":null}'


@dataclasses.dataclass
class Point:
    x: float


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    # name, fields, message fragment
    ("event-lf", {"event": "a\nb"}, "SSE field 'event' must not contain CR or LF: 'a\\nb'"),
    ("event-cr", {"event": "a\rb"}, "SSE field 'event' must not contain CR or LF"),
    ("id-lf", {"id": "a\nb"}, "SSE field 'id' must not contain CR, LF or NUL"),
    ("id-cr", {"id": "\r"}, "SSE field 'id' must not contain CR, LF or NUL"),
    ("id-nul", {"id": "a\0b"}, "SSE field 'id' must not contain CR, LF or NUL: 'a\\x00b'"),
    ("retry-true", {"retry": True}, "SSE field 'retry' must be a non-negative int, got True"),
    ("retry-false", {"retry": False}, "SSE field 'retry' must be a non-negative int, got False"),
    ("retry-negative", {"retry": -1}, "SSE field 'retry' must be a non-negative int, got -1"),
    ("retry-float", {"retry": 1.5}, "SSE field 'retry' must be a non-negative int, got 1.5"),
    ("retry-integral-float", {"retry": 10.0}, "got 10.0"),
    ("retry-str", {"retry": "10"}, "SSE field 'retry' must be a non-negative int, got '10'"),
    ("retry-too-large", {"retry": 10**5000}, "SSE field 'retry' is too large to write"),
    ("data-bytes", {"data": b"x"}, "SSE field 'data' must be a str or None, got bytes: b'x'"),
    ("data-int", {"data": 1}, "SSE field 'data' must be a str or None, got int: 1"),
    ("event-int", {"event": 1}, "SSE field 'event' must be a str or None, got int"),
    ("id-int", {"id": 7}, "SSE field 'id' must be a str or None, got int: 7"),
    ("comment-list", {"comment": ["a"]}, "SSE field 'comment' must be a str or None, got list"),
    ("surrogate-data", {"data": "a\ud800"}, "'data' is not encodable as UTF-8 (surrogates not allowed"),
    ("surrogate-event", {"event": "\udfff"}, "SSE field 'event' is not encodable as UTF-8"),
    ("surrogate-id", {"id": "x\udc80", "data": "ok"}, "SSE field 'id' is not encodable as UTF-8"),
    ("surrogate-comment", {"comment": "\ud83d", "data": "ok"}, "'comment' is not encodable as UTF-8"),
    ("surrogate-reported-index", {"data": "ab\ud800"}, "at index 2"),
    ("no-field", {}, "ServerSentEvent needs at least one field"),
    ("all-none", {"data": None, "event": None}, "ServerSentEvent needs at least one field"),
    ("long-value-shortened", {"event": "x" * 200 + "\n"}, "xxxx...xxxxxxxxxxxxxx\\n'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"), [(f, m) for _, f, m in REFUSED], ids=[n for n, _, _ in REFUSED]
)
def test_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SSEFieldError) as info:
        ServerSentEvent(**fields)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value)) < 200


JSON_REFUSED: list[tuple[str, Any, dict[str, Any], str]] = [
    ("nan", math.nan, {}, "JSON cannot represent NaN or Infinity"),
    ("inf", math.inf, {}, "JSON cannot represent NaN or Infinity"),
    ("minus-inf", -math.inf, {}, "JSON cannot represent NaN or Infinity"),
    ("nested-dict", {"a": {"b": [1, {"c": math.nan}]}}, {}, "NaN or Infinity"),
    ("nested-list", [None, [1.0, [math.inf]]], {}, "NaN or Infinity"),
    ("nested-tuple", ({"x": (-math.inf,)},), {}, "NaN or Infinity"),
    ("enum-nan", {"c": Colour.NAN}, {}, "NaN or Infinity"),
    ("surrogate", {"t": "\ud800"}, {}, "'data' cannot hold this payload as JSON: str is not valid UTF-8"),
    ("non-str-key", {1: 2}, {}, "SSE field 'data' cannot hold this payload as JSON: Dict key must be str"),
    ("huge-int", 2**64, {}, "Integer exceeds 64-bit range"),
    ("unknown-type", object(), {}, "Type is not JSON serializable: object"),
    ("dataclass", Point(math.nan), {}, "Type is not JSON serializable: Point"),
    ("bad-event", {}, {"event": "a\nb"}, "SSE field 'event' must not contain CR or LF"),
    ("bad-id", {}, {"id": "\0"}, "SSE field 'id' must not contain CR, LF or NUL"),
    ("bad-retry", {}, {"retry": True}, "SSE field 'retry' must be a non-negative int"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "fields", "message"),
    [(p, f, m) for _, p, f, m in JSON_REFUSED],
    ids=[n for n, _, _, _ in JSON_REFUSED],
)
def test_json_refused(payload: Any, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SSEFieldError, match=r"^SSE field") as info:
        ServerSentEvent.json(payload, **fields)
    assert message in str(info.value)


def test_frozen_and_keyword_only() -> None:
    event = ServerSentEvent(data="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ServerSentEvent("x")  # type: ignore[call-arg]
    assert not hasattr(event, "__dict__")


def test_value_semantics() -> None:
    a = ServerSentEvent(data="x", id="1")
    assert a == ServerSentEvent(data="x", id="1")
    assert a != ServerSentEvent(data="x", id="2")
    assert hash(a) == hash(ServerSentEvent(data="x", id="1"))
    assert repr(a) == "ServerSentEvent(data='x', event=None, id='1', retry=None, comment=None)"
    assert pickle.loads(pickle.dumps(a)).encode() == a.encode()
    replaced = dataclasses.replace(a, id="2")
    assert replaced.encode() == b"id: 2\ndata: x\n\n"
    with pytest.raises(SSEFieldError):
        dataclasses.replace(a, id="\n")


def test_str_subclasses_accepted() -> None:
    class Text(str):
        pass

    event = ServerSentEvent(data=Text("x"), event=Text("e"), id=Text("1"), comment=Text("c"))
    assert event.encode() == b": c\nevent: e\nid: 1\ndata: x\n\n"


def test_surrogate_reported_at_its_index_in_multiline_data() -> None:
    with pytest.raises(
        SSEFieldError, match=r"'data' is not encodable as UTF-8 \(surrogates not allowed at index 4\)"
    ):
        ServerSentEvent(data="a\nb\r\ud800")
