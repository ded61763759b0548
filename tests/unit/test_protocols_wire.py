"""The send timestamp any API's token events can carry (an llmstream extension for load-test clients)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmstream.protocols import anthropic, native, openai
from llmstream.protocols.wire import stamped
from llmstream.sse import ServerSentEvent

from .simulator_strategies import echo_plan


@pytest.mark.parametrize("framing", [native, openai, anthropic], ids=["native", "openai", "anthropic"])
def test_every_api_token_event_takes_a_send_time_and_keeps_everything_else(framing: object) -> None:
    plan = echo_plan()
    events = framing.stream_events(plan, created=1, request_id="r")  # type: ignore[attr-defined]
    token_events = [item.event for item in events if item.token is not None]
    assert token_events
    for event in token_events:
        out = stamped(event, 1_700_000_000.123456)
        assert (out.event, out.id) == (event.event, event.id)
        assert orjson.loads(out.data or "") == {**orjson.loads(event.data or ""), "t": 1_700_000_000.123456}


def test_an_empty_object_gets_no_leading_comma() -> None:
    assert stamped(ServerSentEvent(data="{}"), 2.5).data == '{"t":2.500000}'


@pytest.mark.parametrize("data", [None, "[1,2]", '"text"', "[DONE]"])
def test_only_json_objects_can_carry_a_send_time(data: str | None) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        stamped(ServerSentEvent(data=data, event="x"), 1.0)


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False), st.text(max_size=20))
def test_the_stamp_is_microsecond_exact_whatever_the_text(t: float, text: str) -> None:
    event = ServerSentEvent.json({"text": text})
    assert orjson.loads(stamped(event, t).data or "")["t"] == pytest.approx(t, abs=1e-6)
