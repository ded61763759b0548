"""SSEDecoder against WHATWG HTML §9.2.5-§9.2.6, one named test per rule."""

from __future__ import annotations

import time

import pytest

from llmstream.sse import ServerSentEvent, SSEDecoder


def ev(data: str, event: str = "message", id: str = "", retry: int | None = None) -> ServerSentEvent:
    """A decoded event as the decoder reports it: the state in force at dispatch."""
    return ServerSentEvent(data=data, event=event, id=id, retry=retry)


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.flush()


def every_split(stream: bytes) -> list[tuple[bytes, bytes]]:
    return [(stream[:i], stream[i:]) for i in range(len(stream) + 1)]


# --- the spec's own examples (§9.2.6) ---------------------------------------------------------


def test_spec_example_multiline_data() -> None:
    assert decode(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [ev("YHOO\n+2\n10")]


def test_spec_example_comment_id_and_reset() -> None:
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
    assert decode(stream) == [ev("first event", id="1"), ev("second event", id=""), ev(" third event")]


def test_spec_example_two_events_from_bare_data_lines() -> None:
    # "The first block fires events with the data set to the empty string, as would the last block if
    # it was followed by a blank line. The middle block fires an event with the data set to a single
    # newline character. The last block is discarded because it is not followed by a blank line."
    assert decode(b"data\n\ndata\ndata\n\ndata:") == [ev(""), ev("\n")]


def test_spec_example_space_after_colon_is_optional() -> None:
    assert decode(b"data:test\n\ndata: test\n\n") == [ev("test"), ev("test")]


def test_spec_example_event_types() -> None:
    stream = b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    assert decode(stream) == [ev("73857293", "add"), ev("2153", "remove"), ev("113411", "add")]


# --- line ends (§9.2.5) -------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_line_ends(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert decode(stream) == [ev("a\nb", "e")]


def test_mixed_line_ends() -> None:
    assert decode(b"data: a\rdata: b\r\ndata: c\n\r\n") == [ev("a\nb\nc")]


def test_lf_cr_is_two_line_ends() -> None:
    assert decode(b"data: a\n\rdata: b\n\n") == [ev("a"), ev("b")]


def test_other_unicode_line_breaks_are_not_line_ends() -> None:
    text = "data: a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei\n\n"
    assert decode(text.encode()) == [ev("a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei")]


def test_cr_at_chunk_end_then_lf_is_one_crlf() -> None:
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [ev("a\nb")]


def test_cr_at_chunk_end_dispatches_without_waiting() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [ev("a")]
    assert decoder.feed(b"\ndata: b\n\n") == [ev("b")]  # that LF completed the CRLF, not a blank line


def test_cr_at_chunk_end_survives_empty_chunks() -> None:
    # Chunks that decode to no text (empty, or half a character) leave the pending CR alone ...
    assert decode(b"data: a\r", b"", b"\n", b"data: b\n\n") == [ev("a\nb")]
    # ... but a character does: the LF after "é" ends that line, the next LF is the blank line.
    assert decode(b"data: a\r", b"\xc3", b"\xa9", b"\n", b"\n") == [ev("a")]


def test_cr_at_chunk_end_then_other_text() -> None:
    assert decode(b"data: a\r", b"data: b\r", b"\r") == [ev("a\nb")]


def test_lf_alone_after_cr_chunk_is_consumed_whole() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [ev("a")]


# --- UTF-8 and the BOM (§9.2.5 "UTF-8 decode") ----------------------------------------------------


def test_bom_stripped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [ev("x")]


@pytest.mark.parametrize(("head", "tail"), every_split(b"\xef\xbb\xbfdata: x\n\n")[:5])
def test_bom_split_across_chunks(head: bytes, tail: bytes) -> None:
    assert decode(head, tail) == [ev("x")]
    assert decode(*[bytes([b]) for b in head + tail]) == [ev("x")]


def test_only_one_bom_stripped() -> None:
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [ev("y")]


def test_bom_only_at_stream_start() -> None:
    assert decode(b"data: x\n\n\xef\xbb\xbfdata: y\n\n") == [ev("x")]
    assert decode(b"d", b"\xef\xbb\xbfata: y\n\n") == []


def test_bom_after_empty_chunk() -> None:
    assert decode(b"", b"\xef\xbb\xbf", b"data: x\n\n") == [ev("x")]


def test_bom_alone_then_line_end() -> None:
    assert decode(b"\xef\xbb\xbf", b"\n", b"data: x\n\n") == [ev("x")]


def test_partial_bom_is_invalid_utf8() -> None:
    assert decode(b"\xef\xbbdata: x\n\ndata: y\n\n") == [ev("y")]


@pytest.mark.parametrize(("head", "tail"), every_split("data: é€🦜\n\n".encode()))
def test_utf8_split_across_chunks(head: bytes, tail: bytes) -> None:
    assert decode(head, tail) == [ev("é€🦜")]


def test_utf8_one_byte_at_a_time() -> None:
    stream = "event: ü\ndata: 🦜\r\n\r\n".encode()
    assert decode(*[bytes([b]) for b in stream]) == [ev("🦜", "ü")]


@pytest.mark.parametrize(
    ("raw", "data"),
    [
        (b"\xff", "\ufffd"),
        (b"\xfe\xff", "\ufffd\ufffd"),
        (b"\xe2\x82", "\ufffd"),  # truncated sequence: one replacement (maximal subpart)
        (b"\xe2\x82a", "\ufffda"),
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # an encoded surrogate is not UTF-8
        (b"\xc0\xaf", "\ufffd\ufffd"),  # overlong
        (b"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"),  # beyond U+10FFFF
    ],
)
def test_invalid_utf8_becomes_replacement_character(raw: bytes, data: str) -> None:
    assert decode(b"data: " + raw + b"\n\n") == [ev(data)]
    assert decode(*[bytes([b]) for b in b"data: " + raw + b"\n\n"]) == [ev(data)]


def test_truncated_utf8_at_end_of_stream_is_discarded() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\ndata: \xe2\x82") == [ev("x")]
    assert decoder.flush() == []


# --- fields (§9.2.6) ----------------------------------------------------------------------------


def test_exactly_one_leading_space_stripped() -> None:
    assert decode(b"data:  two\n\n") == [ev(" two")]
    assert decode(b"data:x\n\n") == [ev("x")]
    assert decode(b"data:\tx\n\n") == [ev("\tx")]
    assert decode(b"event:  e\ndata: x\n\n") == [ev("x", " e")]
    assert decode(b"id:  1\ndata: x\n\n") == [ev("x", id=" 1")]


def test_value_may_contain_colons() -> None:
    assert decode(b"data: a: b:c\n\n") == [ev("a: b:c")]


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert decode(b"data\n\n") == [ev("")]
    assert decode(b"event\ndata: x\n\n") == [ev("x")]
    assert decode(b"id: 1\ndata: x\n\nid\ndata: y\n\n") == [ev("x", id="1"), ev("y", id="")]


def test_unknown_fields_ignored() -> None:
    assert decode(b"foo: bar\nretry2: 5\ndata: x\nfoo\n\n") == [ev("x")]


def test_field_names_are_case_sensitive_and_exact() -> None:
    assert decode(b"Data: x\nDATA: y\ndata : z\n data: w\n\n") == []


def test_comments_ignored() -> None:
    assert decode(b": hello\n:\n:data: x\ndata: y\n: bye\n\n") == [ev("y")]
    assert decode(b": only a comment\n\n") == []


def test_id_with_nul_ignored() -> None:
    assert decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n") == [ev("a", id="1"), ev("b", id="1")]


def test_id_kept_across_events() -> None:
    assert decode(b"id: 7\ndata: a\n\ndata: b\n\n") == [ev("a", id="7"), ev("b", id="7")]


def test_empty_id_resets_last_event_id() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 7\ndata: a\n\nid:\ndata: b\n\n") == [ev("a", id="7"), ev("b", id="")]
    assert decoder.last_event_id == ""


def test_last_id_in_block_wins() -> None:
    assert decode(b"id: 1\nid: 2\ndata: a\n\n") == [ev("a", id="2")]


def test_id_without_data_still_sets_last_event_id() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 5\n\n") == []
    assert decoder.last_event_id == "5"
    assert decoder.feed(b"data: a\n\n") == [ev("a", id="5")]


def test_last_event_id_set_only_at_dispatch() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 5\ndata: a\n")
    assert decoder.last_event_id == ""
    assert decoder.flush() == []
    assert decoder.last_event_id == ""


def test_retry_sets_reconnection_time() -> None:
    decoder = SSEDecoder()
    assert decoder.retry is None
    assert decoder.feed(b"retry: 1500\n\n") == []
    assert decoder.retry == 1500
    assert decoder.feed(b"data: a\n\n") == [ev("a", retry=1500)]


def test_retry_takes_effect_before_the_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\nretry: 10\n") == []
    assert decoder.retry == 10
    assert decoder.feed(b"\n") == [ev("a", retry=10)]


@pytest.mark.parametrize(
    "value",
    [b"", b"-1", b"+1", b"1.5", b"15x", b" 10", b"10 ", b"1_000", b"0x10",
     "\uff11\uff12".encode(), "\u00b2".encode()],
    ids=["empty", "negative", "plus", "float", "suffix", "2-spaces", "trailing-space", "underscore", "hex",
         "fullwidth-digits", "superscript-two"],
)  # fmt: skip
def test_retry_not_ascii_digits_ignored(value: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 7\n\nretry: " + value + b"\ndata: a\n\n") == [ev("a", retry=7)]
    assert decoder.retry == 7


def test_retry_without_colon_ignored() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry\n\n")
    assert decoder.retry is None


def test_retry_leading_zeros() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 007\n")
    assert decoder.retry == 7
    decoder.feed(b"retry: " + b"0" * 5000 + b"5\n")
    assert decoder.retry == 5
    decoder.feed(b"retry: 0\n")
    assert decoder.retry == 0


def test_retry_beyond_python_int_digit_limit_ignored() -> None:
    # Deliberate, documented deviation: more than 4300 significant digits (> 10**4300 ms) would make
    # int() raise; the field is ignored instead of crashing the decoder.
    decoder = SSEDecoder()
    decoder.feed(b"retry: 3\nretry: " + b"9" * 5000 + b"\n")
    assert decoder.retry == 3


def test_empty_data_buffer_not_dispatched_but_event_type_reset() -> None:
    assert decode(b"event: a\n\ndata: x\n\n") == [ev("x")]


def test_event_type_reset_after_dispatch() -> None:
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [ev("1", "a"), ev("2")]


def test_empty_event_type_means_message() -> None:
    assert decode(b"event:\ndata: x\n\n") == [ev("x")]
    assert decode(b"event: a\nevent:\ndata: x\n\n") == [ev("x")]


def test_only_one_trailing_lf_removed_from_data() -> None:
    assert decode(b"data: a\ndata:\ndata:\n\n") == [ev("a\n\n")]


def test_empty_data_line_dispatches_empty_data() -> None:
    assert decode(b"data:\n\n") == [ev("")]


def test_consecutive_blank_lines() -> None:
    assert decode(b"\n\n\ndata: a\n\n\n\n") == [ev("a")]


# --- end of stream (§9.2.6 "any pending data must be discarded") --------------------------------


def test_flush_discards_unfinished_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.flush() == []


def test_flush_discards_unterminated_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [ev("a")]
    assert decoder.flush() == []


def test_final_cr_already_ended_its_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [ev("a")]  # the final CR is the blank line
    assert decoder.flush() == []
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 5\r") == []
    assert decoder.retry == 5  # a CR-terminated final line is processed
    assert decoder.flush() == []


def test_unterminated_retry_line_not_processed() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"retry: 5")
    assert decoder.flush() == []
    assert decoder.retry is None


def test_decoder_reusable_for_next_stream_after_flush() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 9\nid: 3\ndata: a\n\nevent: x\ndata: half\nda") == [ev("a", id="3", retry=9)]
    assert decoder.flush() == []
    assert (decoder.last_event_id, decoder.retry) == ("3", 9)  # they belong to the event source
    # A new stream: BOM allowed again, no pending line, fresh buffers.
    assert decoder.feed(b"\xef\xbb\xbfta: z\ndata: b\n\n") == [ev("b", id="", retry=9)]


def test_new_stream_starts_with_empty_id_buffer() -> None:
    # §9.2.5: the last event ID buffer belongs to the stream and starts empty, so the next dispatch
    # sets the last event ID string back to "" unless the new stream sends an id.
    decoder = SSEDecoder()
    decoder.feed(b"id: 3\n\n")
    decoder.flush()
    assert decoder.last_event_id == "3"
    assert decoder.feed(b"data: a\n\n") == [ev("a", id="")]
    assert decoder.last_event_id == ""


def test_flush_after_cr_forgets_pending_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    decoder.flush()
    assert decoder.feed(b"\ndata: b\n\n") == [ev("b")]  # the LF is a blank line in the new stream


# --- chunking and API -----------------------------------------------------------------------------


def test_feed_returns_only_events_completed_so_far() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\ndata: b\n\nda") == [ev("a"), ev("b")]
    assert decoder.feed(b"ta: c") == []
    assert decoder.feed(b"\n\n") == [ev("c")]


def test_line_split_over_many_chunks() -> None:
    stream = b"event: token\nid: 1\ndata: " + b"x" * 50 + b"\n\n"
    assert decode(*[stream[i : i + 3] for i in range(0, len(stream), 3)]) == [ev("x" * 50, "token", "1")]


def test_long_line_in_tiny_chunks_is_linear() -> None:
    # 4 MB in 40,000 chunks: re-joining the pending line per chunk would copy ~80 GB.
    decoder = SSEDecoder()
    chunk = b"y" * 100
    started = time.perf_counter()
    assert decoder.feed(b"data: ") == []
    for _ in range(40_000):
        decoder.feed(chunk)
    (event,) = decoder.feed(b"\n\n")
    assert len(event.data or "") == 4_000_000
    assert time.perf_counter() - started < 10


def test_feed_accepts_bytes_like() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(bytearray(b"data: a\n")) == []
    assert decoder.feed(memoryview(b"\n")) == [ev("a")]


def test_decoded_events_are_server_sent_events() -> None:
    (event,) = decode(b"retry: 5\nid: 1\nevent: e\ndata: a\ndata: b\n\n")
    assert isinstance(event, ServerSentEvent)
    assert (event.data, event.event, event.id, event.retry, event.comment) == ("a\nb", "e", "1", 5, None)
    assert event.encode() == b"event: e\nid: 1\nretry: 5\ndata: a\ndata: b\n\n"
    assert event.encode() is event.encode()
    assert decode(event.encode()) == [event]


def test_initial_state() -> None:
    decoder = SSEDecoder()
    assert (decoder.last_event_id, decoder.retry) == ("", None)
    assert decoder.feed(b"") == []
    assert decoder.flush() == []
