"""Token events rendered straight to wire bytes: the hot path of every stream.

A stream's token events differ only in the token's index and text; everything else (the event type,
the id prefix, the rest of the JSON payload) is the same for every token of the stream. A
`TokenTemplate` renders that common part once, as bytes with two holes, so that a token costs one JSON
string encoding and one bytes format, with no payload dict, no `ServerSentEvent` and no `Token`:

    template = TokenTemplate(EventFamily(event="token", id_prefix="k:"), {"index": INDEX, "text": TEXT})
    template.render(7, "Hi")  ==  b'event: token\\nid: k:7\\ndata: {"index":7,"text":"Hi"}\\n\\n'

``render(i, text)`` is byte for byte ``event(i, text).encode()``, the event built the slow way
(``family.json`` of the payload with the holes filled), and refuses the same texts (a lone surrogate
has no UTF-8 form) with the same error (tests/unit/test_protocols_templates.py holds both with
Hypothesis).

Why it is exact: compact JSON has no line break (RFC 8259 §7 escapes every control character inside a
string, and no whitespace separates tokens), so the data stays one ``data:`` line whatever the text;
an index is an int's digits, always writable in an id; and a JSON string is encoded the same wherever it
sits in a document.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmstream.sse import EventFamily, ServerSentEvent

__all__ = ["INDEX", "TEXT", "TokenTemplate"]

# Stand-ins for what changes from token to token, put in a template's payload where the value goes.
# NUL makes them impossible in real payload text: JSON escapes it (RFC 8259 §7).
TEXT = "\x00llmstream-token-text\x00"
INDEX = "\x00llmstream-token-index\x00"
_SAMPLE_INDEX = 9_876_543_210_123  # a sample id's digits, found again in the rendered event


class TokenTemplate:
    """One family of token events (``family``'s type and id prefix, ``payload``'s JSON), with the
    token's ``TEXT`` (required) and ``INDEX`` (optional) left open; the id, if the family has an id
    prefix, ends with the index."""

    __slots__ = ("_format", "family", "payload")

    def __init__(self, family: EventFamily, payload: Any) -> None:
        self.family = family
        self.payload = payload
        # Rendered by the family itself, so the template validates what an event would, and its bytes
        # differ from an event's only in the holes. An EventFamily writes `event:`, `id:`, then `data:`
        # (llmstream.sse `_render`'s order).
        numbered = family.id_prefix is not None
        sample = family.json(payload, _SAMPLE_INDEX if numbered else None).encode()
        event_line = b"" if family.event is None else f"event: {family.event}\n".encode()
        id_head = b"" if family.id_prefix is None else f"id: {family.id_prefix}".encode()
        id_line = id_head + b"%d\n" % _SAMPLE_INDEX if numbered else b""
        if not sample.startswith(event_line + id_line):
            raise AssertionError(f"unexpected field order in {sample!r}")  # pragma: no cover
        data_line = sample[len(event_line) + len(id_line) :]
        if data_line.count(orjson.dumps(TEXT)) != 1:
            raise ValueError("a token template's payload holds TEXT exactly once")
        # Everything but the holes is escaped: only they are format directives.
        data_format = _escaped(data_line).replace(orjson.dumps(TEXT), b"%(t)s")
        data_format = data_format.replace(orjson.dumps(INDEX), b"%(i)d")
        id_format = _escaped(id_head) + b"%(i)d\n" if numbered else b""
        self._format = _escaped(event_line) + id_format + data_format

    def render(self, index: int, text: str) -> bytes:
        """The wire bytes of the event for token ``index`` whose text is ``text``."""
        try:
            text_json = orjson.dumps(text)
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate has no UTF-8 form
            # The family names the problem as it would for the whole payload (an SSEFieldError).
            self.event(index, text)
            raise
        return self._format % {b"i": index, b"t": text_json}

    def event(self, index: int, text: str) -> ServerSentEvent:
        """The same event as an object, built the slow way (its bytes are ``render(index, text)``)."""
        n = None if self.family.id_prefix is None else index
        return self.family.json(_filled(self.payload, text, index), n)

    def with_member(self, name: str, value: bytes) -> TokenTemplate:
        """This template with one more member at the end of the JSON object: ``name`` whose value is
        ``value``, written as it is (the caller's JSON, or a placeholder it fills in later)."""
        other = object.__new__(TokenTemplate)
        other.family, other.payload = self.family, self.payload
        if not self._format.endswith(b"}\n\n"):
            raise ValueError("only a template whose data is a JSON object can take a member")
        # The object holds TEXT, so it is not empty: the member follows a comma. The data line ends
        # with "}" and the event with a blank line.
        member = b"," + orjson.dumps(name) + b":" + value
        other._format = self._format[:-3] + _escaped(member) + b"}\n\n"
        return other


def _escaped(wire: bytes) -> bytes:
    return wire.replace(b"%", b"%%")


def _filled(payload: Any, text: str, index: int) -> Any:
    """``payload`` with the holes filled: the event `render` would write (only to name an error)."""
    if payload == TEXT:
        return text
    if payload == INDEX:
        return index
    if isinstance(payload, dict):
        return {key: _filled(value, text, index) for key, value in payload.items()}
    if isinstance(payload, list | tuple):
        return [_filled(value, text, index) for value in payload]
    return payload
