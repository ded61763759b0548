"""Spec-exact, sans-IO Server-Sent Events codec (WHATWG HTML §9.2 "Server-sent events").

Encoding conventions (byte-exact tables in ``tests/unit/test_sse_encode.py``):

* UTF-8, never a BOM; every line ends with LF; every event ends with one blank line.
* Every line is ``name: value`` with exactly one space, so a value's own leading space survives
  (the parser strips one space after the colon, §9.2.6). An empty value gives ``data: ``.
* ``data`` and ``comment`` are split on CR, LF and CRLF only (the §9.2.5 end-of-line rule; never
  ``str.splitlines()``, which also splits on U+2028, U+0085, ``\\v``, ``\\f`` ...): one line each.
  A comment line is ``: text``.
* Field order: comment lines, ``event``, ``id``, ``retry``, ``data``. Metadata before the payload
  puts the small, fixed-shape lines first and the large, multi-line data last; a parser only acts
  on the blank line, so any fixed order is equivalent on the wire.
* ``data=None`` writes no data line (the client dispatches nothing); ``data=""`` writes ``data: ``
  (the client dispatches an event with empty data).
* An event with no field at all is refused: it would be a bare blank line that dispatches nothing.

Decoded events (``SSEDecoder``) carry the state in force when the event was dispatched:
``event`` is the type (``"message"`` when none was given), ``id`` the last event ID string
(``""`` when never set or reset by an empty ``id`` field, as in the spec), ``retry`` the
reconnection time set so far (``None`` if never), ``comment`` always ``None``.

Exceptions::

    ValueError
     └── SSEFieldError   a value that cannot be written as an event stream
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

__all__ = ["EventFamily", "SSEDecoder", "SSEFieldError", "ServerSentEvent"]

_utf8_decode = codecs.utf_8_decode
# §9.2.5: a line ends with CRLF, a lone LF or a lone CR -- and with nothing else.
_EOL = re.compile(r"\r\n|\r|\n")


class SSEFieldError(ValueError):
    """A field value that cannot be written as Server-Sent Events."""


def _show(value: object) -> str:
    # Long values keep both ends: the offending character is often the last one.
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-17:]}"


def _require_str(name: str, value: object) -> None:
    # Called only when value.__class__ is not str: an inline identity test is cheaper than a call.
    if not isinstance(value, str):
        raise SSEFieldError(
            f"SSE field {name!r} must be a str or None, got {type(value).__name__}: {_show(value)}"
        )


def _render(
    data: str | None, event: str | None, id: str | None, retry: int | None, comment: str | None
) -> bytes:
    """Validate the fields and return the event's wire bytes."""
    # f-strings rather than a list of parts: this runs once per token event.
    text = ""
    if comment is not None:
        if comment.__class__ is not str:
            _require_str("comment", comment)
        text = ": " + "\n: ".join(_EOL.split(comment)) + "\n"
    if event is not None:
        if event.__class__ is not str:
            _require_str("event", event)
        if "\r" in event or "\n" in event:
            raise SSEFieldError(f"SSE field 'event' must not contain CR or LF: {_show(event)}")
        text = f"{text}event: {event}\n"
    if id is not None:
        # A NUL makes every parser ignore the id (§9.2.6), so it could never take effect.
        if id.__class__ is not str:
            _require_str("id", id)
        if "\r" in id or "\n" in id or "\0" in id:
            raise SSEFieldError(f"SSE field 'id' must not contain CR, LF or NUL: {_show(id)}")
        text = f"{text}id: {id}\n"
    if retry is not None:
        # Exact int only: bool is an int subclass but True is not a reconnection time.
        if type(retry) is not int or retry < 0:
            raise SSEFieldError(f"SSE field 'retry' must be a non-negative int, got {_show(retry)}")
        try:
            text = f"{text}retry: {retry}\n"
        except ValueError:  # Python's int-to-str digit limit (sys.get_int_max_str_digits)
            raise SSEFieldError(
                f"SSE field 'retry' is too large to write: {retry.bit_length()} bits"
            ) from None
    if data is not None:
        if data.__class__ is not str:
            _require_str("data", data)
        if "\r" in data or "\n" in data:
            text = text + "data: " + "\ndata: ".join(_EOL.split(data)) + "\n"
        else:
            text = f"{text}data: {data}\n"
    if not text:
        raise SSEFieldError("ServerSentEvent needs at least one field: data, event, id, retry or comment")
    try:
        return f"{text}\n".encode()
    except UnicodeEncodeError:
        pass
    # Slow path, only to name the culprit: a lone surrogate has no UTF-8 form.
    for name, value in (("comment", comment), ("event", event), ("id", id), ("data", data)):
        try:
            (value or "").encode()
        except UnicodeEncodeError as exc:
            raise SSEFieldError(
                f"SSE field {name!r} is not encodable as UTF-8 ({exc.reason} at index {exc.start}): "
                f"{_show(value)}"
            ) from None
    raise AssertionError("unreachable: some field failed to encode")  # pragma: no cover


def _non_finite(value: object) -> bool:
    """Whether ``value`` holds a float NaN/±Infinity where orjson would silently write ``null``."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_non_finite, value.values()))
    if isinstance(value, list | tuple):
        return any(map(_non_finite, value))
    if isinstance(value, enum.Enum):
        return _non_finite(value.value)
    return False


@dataclass(frozen=True, slots=True, kw_only=True, init=False)
class ServerSentEvent:
    """One event; validated at construction, so an unwritable event never exists."""

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None
    # Wire bytes, built while validating (b"" until built for decoder-made events).
    _wire: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __init__(
        self,
        *,
        data: str | None = None,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        # Hand-written rather than generated: a frozen dataclass's __init__ pays object.__setattr__
        # per field, a large share of a token event's cost; the slot setters below are cheaper.
        _fill(self, data, event, id, retry, comment, _render(data, event, id, retry, comment))

    def encode(self) -> bytes:
        """The event as UTF-8 ``text/event-stream`` bytes, ending with a blank line."""
        if not self._wire:
            _SET_WIRE(self, _render(self.data, self.event, self.id, self.retry, None))
        return self._wire

    @classmethod
    def json(
        cls, payload: Any, *, event: str | None = None, id: str | None = None, retry: int | None = None
    ) -> ServerSentEvent:
        """An event whose data is ``payload`` as compact JSON (UTF-8 kept, NaN/Infinity refused)."""
        self = object.__new__(cls)
        text = _json_text(payload)
        _fill(self, text, event, id, retry, None, _render(text, event, id, retry, None))
        return self


class EventFamily:
    """JSON events of one type whose ids share a prefix, such as a stream's token events
    (``id: <stream key>:<index>``): what they share is checked once, here, not once per event.

    ``family.json(payload, n)`` equals ``ServerSentEvent.json(payload, event=event, id=f"{prefix}{n}")``
    field for field and byte for byte, and refuses the same payloads with the same errors
    (tests/unit/test_sse_properties.py), at half the cost: the type and the prefix are known to be
    writable, ``n`` is an int's digits, and compact JSON has no line break (RFC 8259 §7 escapes every
    control character in a string, and no whitespace separates tokens), so only the payload's JSON
    encoding is left to do.
    """

    __slots__ = ("_event_line", "event", "id_prefix")

    def __init__(self, *, event: str | None = None, id_prefix: str | None = None) -> None:
        # A whole event of the family is validated once, so a bad type or prefix fails as it would there.
        ServerSentEvent(data="", event=event, id=None if id_prefix is None else f"{id_prefix}0")
        self.event = event
        self.id_prefix = id_prefix
        self._event_line = "" if event is None else f"event: {event}\n"

    def json(self, payload: Any, n: int | None = None) -> ServerSentEvent:
        """The family's event whose data is ``payload`` as JSON and whose id ends with ``n``."""
        if (n is None) != (self.id_prefix is None):
            raise TypeError("EventFamily.json takes n exactly when the family has an id prefix")
        text = _json_text(payload)
        e = _new(ServerSentEvent)
        if n is None:
            _fill(e, text, self.event, None, None, None, f"{self._event_line}data: {text}\n\n".encode())
        else:
            id = f"{self.id_prefix}{int(n)}"  # int(): a bool or an int subclass writes as its digits
            wire = f"{self._event_line}id: {id}\ndata: {text}\n\n".encode()
            _fill(e, text, self.event, id, None, None, wire)
        return e


def _json_text(payload: Any) -> str:
    """``payload`` as compact JSON text (UTF-8 kept, NaN/Infinity refused)."""
    try:
        # Compact, non-ASCII kept as UTF-8; refuses non-str keys, ints beyond 64 bits, lone
        # surrogates, and dataclasses (passed through, so no float can hide from the check below).
        raw = orjson.dumps(payload, option=orjson.OPT_PASSTHROUGH_DATACLASS)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise SSEFieldError(f"SSE field 'data' cannot hold this payload as JSON: {exc}") from None
    # orjson writes NaN/±Infinity as null instead of failing; JSON has no such numbers, so
    # refuse them. Only output containing "null" can hide one: the common case costs one search.
    if b"null" in raw and _non_finite(payload):
        raise SSEFieldError("SSE field 'data': JSON cannot represent NaN or Infinity in the payload")
    return raw.decode()


_new = object.__new__
# The slots' own setters write past the frozen __setattr__, without its per-call name lookup.
_Setter = Callable[[ServerSentEvent, object], None]
_SET_DATA, _SET_EVENT, _SET_ID, _SET_RETRY, _SET_COMMENT, _SET_WIRE = (
    cast(_Setter, vars(ServerSentEvent)[name].__set__)
    for name in ("data", "event", "id", "retry", "comment", "_wire")
)


def _fill(
    e: ServerSentEvent,
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
    wire: bytes,
) -> None:
    _SET_DATA(e, data)
    _SET_EVENT(e, event)
    _SET_ID(e, id)
    _SET_RETRY(e, retry)
    _SET_COMMENT(e, comment)
    _SET_WIRE(e, wire)


def _decoded(data: str, event: str, id: str, retry: int | None) -> ServerSentEvent:
    """An event from the decoder, whose values are valid by construction (decoded text, split into
    lines): validation is skipped, and encode() builds the bytes if they are ever asked for."""
    e = _new(ServerSentEvent)
    # _fill() inlined: this runs once per decoded event.
    _SET_DATA(e, data)
    _SET_EVENT(e, event)
    _SET_ID(e, id)
    _SET_RETRY(e, retry)
    _SET_COMMENT(e, None)
    _SET_WIRE(e, b"")
    return e


class SSEDecoder:
    """Incremental ``text/event-stream`` parser (WHATWG HTML §9.2.5-§9.2.6), fed raw bytes.

    ``feed()`` returns the events completed so far; ``flush()`` ends the stream.
    """

    __slots__ = (
        "_data",
        "_event",
        "_id",
        "_last_event_id",
        "_pending",
        "_retry",
        "_skip_lf",
        "_start",
        "_undecoded",
    )

    _data: list[str]
    _event: str
    _id: str
    _last_event_id: str
    _pending: list[str]
    _retry: int | None
    _skip_lf: bool
    _start: bool
    _undecoded: bytes

    def __init__(self) -> None:
        self._last_event_id = ""
        self._retry = None
        self._new_stream()

    def _new_stream(self) -> None:
        self._undecoded = b""  # the start of a character split across chunks
        self._start = True  # a BOM may still come
        self._skip_lf = False  # the text so far ended with a CR
        self._pending = []  # pieces of an unterminated line, joined once it ends (linear, not quadratic)
        self._data = []  # data buffer as lines: "\n".join == the spec buffer minus its final LF
        self._event = ""  # event type buffer
        self._id = ""  # last event ID buffer (§9.2.5: per stream, starts empty)

    @property
    def last_event_id(self) -> str:
        """The last event ID string: set when an event block ends, ``""`` until then (§9.2.6)."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds set by the stream, or ``None`` if never set."""
        return self._retry

    def feed(self, data: bytes | bytearray | memoryview) -> list[ServerSentEvent]:
        """Parse a chunk; return the events it completed."""
        # §9.2.5 "UTF-8 decode": invalid bytes become U+FFFD. final=False holds back an incomplete
        # character for the next chunk; this is what codecs' incremental decoder does, minus a
        # layer of Python calls per chunk.
        if self._undecoded:
            data = self._undecoded + data
        text, used = _utf8_decode(data, "replace", False)
        self._undecoded = bytes(data[used:])
        if self._start and text:
            # "UTF-8 decode" drops one leading BOM; decoding first means a BOM split across
            # chunks is already one character here. Only at the very start of the stream.
            self._start = False
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf and text:
            # The previous chunk's final CR already ended its line (dispatching without waiting);
            # an LF now is the second half of that CRLF, not a blank line.
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        if "\r" in text:
            lines = _EOL.split(text)
            self._skip_lf = text[-1] == "\r"
        else:
            lines = text.split("\n")
        tail = lines.pop()  # the unterminated rest, possibly ""
        pending = self._pending
        if not lines:
            pending.append(tail)
            return []
        if pending:
            pending.append(lines[0])
            lines[0] = "".join(pending)
            pending.clear()
        if tail:
            pending.append(tail)
        return self._process(lines)

    def flush(self) -> list[ServerSentEvent]:
        """End the stream and return what that completes: always nothing, per §9.2.6.

        "Once the end of the file is reached, any pending data must be discarded": an unterminated
        line and an event without its blank line are dropped (a final CR already ended its line in
        ``feed``). The decoder is then ready for the next stream (a reconnection); ``last_event_id``
        and ``retry`` persist, as they belong to the event source, not the stream.
        """
        self._new_stream()
        return []

    def _process(self, lines: list[str]) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        data, event, id_, retry = self._data, self._event, self._id, self._retry
        for line in lines:
            if not line:
                # Dispatch (§9.2.6): the ID string is set even when nothing is dispatched; an
                # empty data buffer dispatches nothing; both buffers reset, the ID buffer does not.
                self._last_event_id = id_
                if data:
                    events.append(_decoded("\n".join(data), event or "message", id_, retry))
                    data = []
                event = ""
                continue
            # Name before the first colon, value after it minus exactly one leading space; no colon:
            # the whole line is the name and the value is empty. A comment (":...") has an empty
            # name, which matches no field, so it is ignored like any unknown field.
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                if "\0" not in value:
                    id_ = value
            elif name == "retry" and value.isascii() and value.isdigit():
                # "Only ASCII digits": isdigit() alone would accept fullwidth or superscript digits.
                # Past Python's int-from-str digit limit (> 10**4300 ms) the field is ignored, not a
                # crash; leading zeros count towards that limit but not towards the value.
                with contextlib.suppress(ValueError):
                    retry = int(value.lstrip("0") or "0")
            # Any other field name is ignored (§9.2.6), compared literally, no case folding.
        self._data, self._event, self._id, self._retry = data, event, id_, retry
        return events
