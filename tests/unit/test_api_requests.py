"""Request parsing of the three APIs as plain functions of JSON values (no server); reading the body."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quart import Quart, request
from quart.wrappers.request import Body
from werkzeug.exceptions import RequestTimeout

from llmstream.api import anthropic_api, native_api, openai_api
from llmstream.api.requests import fault_options, json_body, json_type, string_list
from llmstream.simulator import InvalidRequestError, Message, parse_faults

USER = [{"role": "user", "content": "hi"}]
PARSERS = {
    "native": lambda body, headers: native_api.parse_call(body, headers),
    "openai": lambda body, headers: openai_api.parse_call(body, headers),
    "anthropic": lambda body, headers: anthropic_api.parse_call(body, headers),
}
VALID = {
    "native": {"prompt": "hi"},
    "openai": {"model": "fast", "messages": USER},
    "anthropic": {"model": "fast", "max_tokens": 10, "messages": USER},
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "model", "messages", "prompt", "seed", "max_tokens", "max_completion_tokens", "stop", "stop_sequences",
    "stream", "stream_options", "n", "temperature", "top_p", "top_k", "system", "thinking", "llmstream",
    "faults", "fault_rate", "fault_pool", "ttft_ms", "tokens_per_s", "jitter", "timestamps",
]  # fmt: skip


@settings(max_examples=300)
@given(st.sampled_from(sorted(PARSERS)), st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6))
def test_any_json_body_is_accepted_or_refused_never_a_crash(api: str, changes: dict[str, Any]) -> None:
    body = {**VALID[api], **changes}
    refusal: InvalidRequestError | None = None
    try:
        PARSERS[api](body, {})
    except InvalidRequestError as exc:  # anything else (a TypeError, a KeyError ...) fails the test
        refusal = exc
    if refusal is not None:
        assert refusal.message  # every refusal says why ...
        assert refusal.param is None or isinstance(refusal.param, str)  # ... and names the field if it can


@pytest.mark.parametrize("api", sorted(PARSERS))
def test_the_minimal_body_of_each_api(api: str) -> None:
    call = PARSERS[api](VALID[api], {})
    assert call.request.messages[-1] == Message("user", "hi")
    assert call.request.seed == 0  # never random: a resumed request must plan the same stream


def test_native_defaults_and_options() -> None:
    call = native_api.parse_call({"prompt": "hi", "timestamps": True, "stop": "x", "seed": 4.0}, {})
    assert (call.request.model, call.stream, call.timestamps) == ("typical", True, True)
    assert (call.request.stop, call.request.seed) == (("x",), 4)  # 4.0 is the integer 4 in JSON
    assert native_api.parse_call({"prompt": "hi", "stream": False}, {}).stream is False


def test_native_query_parameters_become_the_body_they_stand_for() -> None:
    from werkzeug.datastructures import MultiDict

    args = MultiDict(
        [("prompt", "hi"), ("seed", "7"), ("stop", "a"), ("stop", "b"), ("jitter", "0"), ("timestamps", "on")]
    )
    assert native_api.query_body(args) == {
        "prompt": "hi",
        "seed": 7,
        "stop": ["a", "b"],
        "jitter": 0.0,
        "timestamps": True,
    }


def test_openai_reads_text_parts_and_ignores_what_it_cannot_simulate() -> None:
    body = {
        "model": "echo",
        "messages": [
            {"role": "assistant", "content": None, "tool_calls": []},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}],
            },
        ],
        "max_completion_tokens": 5,
        "max_tokens": 9,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function"}],
        "temperature": 0,
    }
    call = openai_api.parse_call(body, {})
    assert call.request.messages == (Message("assistant", ""), Message("user", "a"))
    assert call.request.max_tokens == 5  # max_completion_tokens wins
    assert (call.stream, call.include_usage) == (True, True)


def test_anthropic_system_blocks_become_a_system_message() -> None:
    body = {**VALID["anthropic"], "system": [{"type": "text", "text": "Be brief."}], "llmstream": {"seed": 9}}
    call = anthropic_api.parse_call(body, {})
    assert call.request.messages == (Message("system", "Be brief."), Message("user", "hi"))
    assert call.request.seed == 9


def test_faults_from_a_field_win_over_the_headers() -> None:
    headers = {"X-LLMStream-Fault": "rate_limit", "X-LLMStream-Fault-Rate": "0.5"}
    assert fault_options({}, headers).faults == parse_faults("rate_limit")
    assert fault_options({}, headers).fault_rate == 0.5
    chosen = fault_options({"faults": "stall:1:5", "fault_rate": 0}, headers)
    assert (chosen.faults, chosen.fault_rate) == (parse_faults("stall:1:5"), 0.0)
    with pytest.raises(InvalidRequestError) as caught:
        fault_options({"fault_pool": "nonsense"}, {}, prefix="llmstream.")
    assert caught.value.param == "llmstream.fault_pool"


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"), (True, "a boolean"), (1, "an integer"), (1.5, "a number"), ("", "a string"),
        ([], "an array"), ({}, "an object"),
    ],
)  # fmt: skip
def test_json_type_names(value: object, name: str) -> None:
    assert json_type(value) == name


def test_string_lists() -> None:
    assert string_list(None, "stop", limit=4) == ()
    assert string_list("x", "stop", limit=4) == ("x",)
    with pytest.raises(InvalidRequestError, match="stop_sequences must be an array of strings, not a string"):
        string_list("x", "stop_sequences", limit=4, single=False)
    with pytest.raises(InvalidRequestError, match="at most 4 sequences, not 5"):
        string_list(list("abcde"), "stop", limit=4)


async def test_a_body_already_received_is_read_without_waiting_for_the_loop() -> None:
    # Regression: Quart's get_data reads the body through asyncio.wait_for, which on Python 3.11 runs
    # it in a task of its own, so every request waited two loop iterations for a body that was there:
    # under load, 0.2 s per request, queued behind each other.
    app = Quart(__name__)
    async with app.test_request_context("/api/chat", method="POST", data=b'{"model": "echo"}'):
        request.body_timeout = app.config["BODY_TIMEOUT"]  # as served (a test request has none)
        reading = json_body()
        with pytest.raises(StopIteration) as done:
            reading.send(None)  # one step, no suspension
        assert done.value.value == {"model": "echo"}


async def test_a_body_that_does_not_come_in_time_is_a_408() -> None:
    app = Quart(__name__)
    async with app.test_request_context("/api/chat", method="POST"):
        request.body = Body(None, None)  # a head with no body after it
        request.body_timeout = 0.05
        with pytest.raises(RequestTimeout):
            await asyncio.wait_for(json_body(), 5)
