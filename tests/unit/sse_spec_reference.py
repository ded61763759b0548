"""A deliberately naive transcription of WHATWG HTML §9.2.5-§9.2.6, used as a test oracle.

It parses a whole byte string at once, one character at a time, in the spec's own words and order,
so that it can be checked by reading it next to the spec. It shares no code with ``llmstream.sse``
and makes no attempt to be fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ASCII_DIGITS = "0123456789"


@dataclass(frozen=True)
class RefEvent:
    """A dispatched event as a browser's MessageEvent would show it."""

    type: str
    data: str
    last_event_id: str
    reconnection_time: int | None  # in force when the event was dispatched


@dataclass
class RefResult:
    events: list[RefEvent] = field(default_factory=list)
    last_event_id: str = ""
    reconnection_time: int | None = None


def parse_stream(stream: bytes) -> RefResult:
    """Parse a complete event stream (one connection, from its first byte to its end)."""
    result = RefResult()

    # §9.2.5 "Streams must be decoded using the UTF-8 decode algorithm." That algorithm drops one
    # leading BOM and turns each invalid sequence into U+FFFD.
    text = stream.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]

    # §9.2.5 "a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a single U+000A LINE
    # FEED (LF) character not preceded by a U+000D CARRIAGE RETURN (CR) character, and a single
    # U+000D CARRIAGE RETURN (CR) character not followed by a U+000A LINE FEED (LF) character being
    # the ways in which a line can end."
    lines: list[str] = []
    current = ""
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\r":
            lines.append(current)
            current = ""
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif char == "\n":
            lines.append(current)
            current = ""
        else:
            current += char
        i += 1
    # "Once the end of the file is reached, any pending data must be discarded." The unterminated
    # `current` line is never processed, and neither is an event without its blank line.

    # "a data buffer, an event type buffer, and a last event ID buffer ... must be initialized to
    # the empty string."
    data_buffer = ""
    event_type_buffer = ""
    last_event_id_buffer = ""

    for line in lines:
        if line == "":
            # "If the line is empty (a blank line): Dispatch the event."
            # 1. "Set the last event ID string of the event source to the value of the last event
            #    ID buffer."
            result.last_event_id = last_event_id_buffer
            # 2. "If the data buffer is an empty string, set the data buffer and the event type
            #    buffer to the empty string and return."
            if data_buffer == "":
                data_buffer = ""
                event_type_buffer = ""
                continue
            # 3. "If the data buffer's last character is a U+000A LINE FEED (LF) character, then
            #    remove the last character from the data buffer."
            if data_buffer[-1] == "\n":
                data_buffer = data_buffer[:-1]
            # 5./6. type "message" unless the event type buffer is not empty.
            event_type = "message"
            if event_type_buffer != "":
                event_type = event_type_buffer
            result.events.append(
                RefEvent(event_type, data_buffer, result.last_event_id, result.reconnection_time)
            )
            # 7. "Set the data buffer and the event type buffer to the empty string."
            data_buffer = ""
            event_type_buffer = ""
            continue
        if line[0] == ":":
            # "If the line starts with a U+003A COLON character (:): Ignore the line."
            continue
        if ":" in line:
            # "Collect the characters on the line before the first U+003A COLON character (:) ...
            # after the first U+003A COLON ... If value starts with a U+0020 SPACE character,
            # remove it from value."
            position = line.index(":")
            name = line[:position]
            value = line[position + 1 :]
            if value.startswith(" "):
                value = value[1:]
        else:
            # "using the whole line as the field name, and the empty string as the field value."
            name = line
            value = ""

        # "Field names must be compared literally, with no case folding performed."
        if name == "event":
            event_type_buffer = value
        elif name == "data":
            data_buffer = data_buffer + value + "\n"
        elif name == "id":
            if "\u0000" not in value:
                last_event_id_buffer = value
        elif name == "retry" and value != "" and all(char in ASCII_DIGITS for char in value):
            # "If the field value consists of only ASCII digits, then interpret the field value as
            # an integer in base ten, and set the event stream's reconnection time to that integer.
            # Otherwise, ignore the field."
            number = 0
            for char in value:
                number = number * 10 + ASCII_DIGITS.index(char)
            result.reconnection_time = number
        # "Otherwise: The field is ignored."
    return result
