"""Token templates render exactly the bytes of the event they stand for (llmstream.protocols.templates)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.protocols.templates import INDEX, TEXT, TokenTemplate
from llmstream.protocols.wire import stamped
from llmstream.sources import SEND_TIME_SLOT, fill_send_times
from llmstream.sse import EventFamily, SSEFieldError

# Writable event types and id prefixes, with the characters a format string could trip on.
names = st.text(alphabet="ab%sd()_ é", max_size=6)
id_prefixes = st.one_of(st.none(), names.map(lambda name: name + ":"))
others = st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(alphabet='x%()sd"\\\n', max_size=6), st.none())
payloads = st.one_of(
    st.just(TEXT),
    st.fixed_dictionaries({"text": st.just(TEXT)}, optional={"index": st.just(INDEX), "other": others}),
    st.builds(
        lambda other, text: {"choices": [{"delta": {"content": text}, "n": other}]}, others, st.just(TEXT)
    ),
)
# Any text a tokenizer could hand over, lone surrogates included (no UTF-8 form: refused).
texts = st.text()


@given(st.one_of(st.none(), names), id_prefixes, payloads, st.integers(0, 10**12), texts)
def test_a_rendered_token_is_the_encoding_of_its_event(
    event: str | None, id_prefix: str | None, payload: Any, index: int, text: str
) -> None:
    template = TokenTemplate(EventFamily(event=event, id_prefix=id_prefix), payload)
    assert outcome(lambda: template.render(index, text)) == outcome(
        lambda: template.event(index, text).encode()
    )


def outcome(make: Callable[[], bytes]) -> bytes | str:
    """The bytes made, or the message of the SSEFieldError that refused them."""
    try:
        return make()
    except SSEFieldError as exc:
        return f"refused: {exc}"


@given(
    id_prefixes, st.integers(0, 10**6), texts.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
)
def test_a_send_time_member_is_what_stamped_adds(id_prefix: str | None, index: int, text: str) -> None:
    template = TokenTemplate(EventFamily(event="token", id_prefix=id_prefix), {"index": INDEX, "text": TEXT})
    slotted = template.with_member("t", SEND_TIME_SLOT).render(index, text)
    t = 1_700_000_000.123456
    assert fill_send_times(slotted, t) == stamped(template.event(index, text), t).encode()


def test_a_token_event_renders_as_documented() -> None:
    template = TokenTemplate(EventFamily(event="token", id_prefix="k:"), {"index": INDEX, "text": TEXT})
    assert template.render(7, "Hi") == b'event: token\nid: k:7\ndata: {"index":7,"text":"Hi"}\n\n'
    assert template.with_member("t", b"1.5").render(7, "Hi").endswith(b'"text":"Hi","t":1.5}\n\n')


def test_a_template_needs_its_text_hole_exactly_once() -> None:
    family = EventFamily(event="token")
    with pytest.raises(ValueError, match="exactly once"):
        TokenTemplate(family, {"index": INDEX})
    with pytest.raises(ValueError, match="exactly once"):
        TokenTemplate(family, {"a": TEXT, "b": TEXT})


def test_only_an_object_takes_a_member() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        TokenTemplate(EventFamily(), TEXT).with_member("t", b"1")


def test_a_family_that_cannot_be_written_is_refused_when_the_template_is_made() -> None:
    with pytest.raises(SSEFieldError):
        TokenTemplate(EventFamily(event="token"), {"text": TEXT, "bad": float("nan")})
