"""Hypothesis properties: encode/decode round trips, chunking invariance, agreement with the spec."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.sse import EventFamily, ServerSentEvent, SSEDecoder, SSEFieldError
from tests.unit.sse_spec_reference import parse_stream

# Text biased toward what the codec must get right: line ends, look-alike line breaks, spaces,
# colons, NUL, BOM, non-ASCII; no lone surrogates (category Cs), which are refused.
tricky = st.sampled_from("\r\n :\0\ufeff\u2028\x85\x0bé🦜")
_text = st.text(alphabet=st.one_of(tricky, st.characters(exclude_categories=["Cs"])), max_size=12)
text = st.one_of(_text, _text.map(lambda s: s.replace("\n", "\r\n")))  # CRLF pairs too
one_line = text.map(lambda s: s.replace("\r", "").replace("\n", ""))


@st.composite
def events(draw: st.DrawFn, max_retry: int = 2**64) -> ServerSentEvent:
    """Any valid event: each field absent or drawn from its valid values, at least one present."""
    fields: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "data": text,
                "event": one_line,
                "id": one_line.map(lambda s: s.replace("\0", "")),
                "retry": st.integers(min_value=0, max_value=max_retry),
                "comment": text,
            },
        ).filter(bool)
    )
    return ServerSentEvent(**fields)


any_event = events()


def expected_decoding(sent: Sequence[ServerSentEvent]) -> tuple[list[ServerSentEvent], str, int | None]:
    """What a spec parser must report for these events: CR and CRLF in data arrive as LF, no type
    means "message", comments vanish, id and retry are the values in force at each dispatch."""
    out: list[ServerSentEvent] = []
    last_id, retry = "", None
    for e in sent:
        if e.id is not None:
            last_id = e.id
        if e.retry is not None:
            retry = e.retry
        if e.data is not None:
            data = e.data.replace("\r\n", "\n").replace("\r", "\n")
            out.append(ServerSentEvent(data=data, event=e.event or "message", id=last_id, retry=retry))
    return out, last_id, retry


def split(stream: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


def run(chunks: Sequence[bytes]) -> tuple[list[ServerSentEvent], str, int | None]:
    decoder = SSEDecoder()
    out = [e for chunk in chunks for e in decoder.feed(chunk)]
    out += decoder.flush()
    return out, decoder.last_event_id, decoder.retry


def reference(stream: bytes) -> tuple[list[ServerSentEvent], str, int | None]:
    result = parse_stream(stream)
    out = [
        ServerSentEvent(data=e.data, event=e.type, id=e.last_event_id, retry=e.reconnection_time)
        for e in result.events
    ]
    return out, result.last_event_id, result.reconnection_time


@given(any_event)
def test_encoding_shape_and_round_trip(event: ServerSentEvent) -> None:
    wire = event.encode()
    assert not wire.startswith(b"\xef\xbb\xbf")
    assert wire.endswith(b"\n\n")
    assert b"\r" not in wire
    lines = wire.decode().split("\n")
    assert lines[-2:] == ["", ""]
    assert all(line.startswith(("data: ", "event: ", "id: ", "retry: ", ": ")) for line in lines[:-2])
    assert run([wire]) == expected_decoding([event])


@given(st.lists(any_event, max_size=6), st.lists(st.integers(min_value=0), max_size=12))
def test_round_trip_stream(sent: list[ServerSentEvent], cuts: list[int]) -> None:
    # Generating events costs more than decoding them, so one example checks every way to read it:
    # whole, cut at arbitrary points, one byte at a time, and with the spec reference.
    stream = b"".join(e.encode() for e in sent)
    expected = expected_decoding(sent)
    assert run([stream]) == expected
    assert run(split(stream, cuts)) == expected
    assert run([stream[i : i + 1] for i in range(len(stream))]) == expected
    assert reference(stream) == expected


# Byte streams from a grammar of SSE-looking lines (field name, separator, value, line end), mixed
# with loose pieces and arbitrary bytes, so that the rare paths (CR/LF split over chunks, NUL in an
# id, retry digits, invalid UTF-8, BOMs) come up often.
PIECES = [
    b"0", b"7", b"12", b"-1", b"x", b"abc", b"message", b"\x00", b" ", b"  ", b"\t", b":", b"\xef\xbb\xbf",
    "\uff11".encode(), "\u00b2".encode(), "é".encode(), "🦜".encode(), "\u2028".encode(), b"\x85",
    b"\xff", b"\xe2\x82", b"\xc3", b"\xed\xa0\x80",
]  # fmt: skip
NAMES = [b"data", b"event", b"id", b"retry", b"Data", b"data ", b" data", b"", b"x", b"\xef\xbb\xbfdata"]
SEPARATORS = [b":", b": ", b":  ", b"", b" :", b"::"]
EOLS = [b"\n", b"\r", b"\r\n"]

piece = st.one_of(st.sampled_from(PIECES), st.binary(max_size=3))
eol = st.sampled_from(EOLS)
# Values that test a rule: digit strings for retry (ASCII digits and look-alikes that str.isdigit()
# also accepts), NUL for id, and anything else.
digits = st.text(alphabet="0123456789\uff11\u00b2\u0661", min_size=1, max_size=4).map(str.encode)
value = st.one_of(
    st.lists(piece, max_size=3).map(b"".join), digits, st.sampled_from([b"1\x002", b"\x00", b""])
)
# Mostly well-formed fields, so that the rules get exercised, with some malformed ones.
well_formed = st.tuples(st.sampled_from(NAMES[:4]), st.sampled_from([b":", b": "]), value, eol)
anything = st.tuples(st.sampled_from(NAMES), st.sampled_from(SEPARATORS), value, eol)
field_line = st.one_of(well_formed, well_formed, anything).map(b"".join)
sse_bytes = st.tuples(
    st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xef\xbb"]),
    st.lists(st.one_of(field_line, field_line, field_line, eol, piece), max_size=16).map(b"".join),
).map(b"".join)
sse_like = st.one_of(
    sse_bytes,
    sse_bytes,
    st.tuples(st.lists(any_event, max_size=3), sse_bytes).map(
        lambda p: b"".join(e.encode() for e in p[0]) + p[1]
    ),
)


@given(sse_like, st.lists(st.integers(min_value=0), max_size=16))
def test_decoder_agrees_with_reference(stream: bytes, cuts: list[int]) -> None:
    expected = reference(stream)
    assert run([stream]) == expected
    assert run(split(stream, cuts)) == expected
    assert run([stream[i : i + 1] for i in range(len(stream))]) == expected


@given(st.tuples(text, st.sampled_from(["\r", "\n", "\r\n"]), text).map("".join))
def test_line_breaks_refused_in_event_and_id(value: str) -> None:
    with pytest.raises(SSEFieldError, match="must not contain CR"):
        ServerSentEvent(event=value)
    with pytest.raises(SSEFieldError, match="must not contain CR"):
        ServerSentEvent(id=value)


# JSON payloads as the protocols build them, with the text a model might emit (any character but a
# lone surrogate, which JSON cannot carry as UTF-8) and the values the codec must refuse.
json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), text, st.sampled_from(["\ud800", 2**64])
)
json_payload = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)


def outcome(build: Any) -> ServerSentEvent | str:
    try:
        event: ServerSentEvent = build()
    except SSEFieldError as error:
        return f"refused: {error}"
    return event


@given(
    st.one_of(st.none(), one_line),
    st.one_of(st.none(), one_line.map(lambda s: s.replace("\0", ""))),
    json_payload,
    st.integers(min_value=0, max_value=10**9),
)
def test_an_event_family_writes_what_serversentevent_json_writes(
    event: str | None, prefix: str | None, payload: Any, n: int
) -> None:
    family = EventFamily(event=event, id_prefix=prefix)
    ident = None if prefix is None else f"{prefix}{n}"
    fast = outcome(lambda: family.json(payload, None if prefix is None else n))
    slow = outcome(lambda: ServerSentEvent.json(payload, event=event, id=ident))
    assert fast == slow
    if isinstance(fast, ServerSentEvent) and isinstance(slow, ServerSentEvent):
        assert fast.encode() == slow.encode()
        assert run([fast.encode()])[0] == expected_decoding([slow])[0]


@given(st.tuples(text, st.sampled_from(["\r", "\n", "\r\n", "\0"]), text).map("".join))
def test_an_event_family_refuses_an_unwritable_prefix_or_type_at_once(value: str) -> None:
    with pytest.raises(SSEFieldError, match="'id' must not contain"):
        EventFamily(id_prefix=value)
    if "\0" not in value:
        with pytest.raises(SSEFieldError, match="'event' must not contain"):
            EventFamily(event=value)


def test_an_event_family_takes_an_index_exactly_when_it_has_an_id_prefix() -> None:
    with pytest.raises(TypeError, match="exactly when"):
        EventFamily(id_prefix="k:").json({})
    with pytest.raises(TypeError, match="exactly when"):
        EventFamily(event="token").json({}, 3)
