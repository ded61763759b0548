"""Contract tests: the official `anthropic` SDK against a live server, as a real client would use it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.integration.conftest import serve_command
from tests.integration.serverproc import RunningServer, free_port, running_server

PROMPT: list[Any] = [{"role": "user", "content": "Explain how streaming responses work, with an example."}]
FAST = {"ttft_ms": 0, "tokens_per_s": 5000, "jitter": 0}  # real pacing, quick and without stalls


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("anthropic-sdk") / "server.log"
    # Heartbeats after 0.2 s of silence: a stalled stream gets comment lines between its events.
    with running_server(serve_command("uvicorn", port, "--heartbeat", "0.2"), port, log_path=log) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-dummy", max_retries=0) as client:
        yield client


def faults_metric(server: RunningServer, kind: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    match = re.search(rf'^llmstream_faults_injected_total{{kind="{kind}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def blocks(content: list[Any]) -> list[dict[str, Any]]:
    # The streaming helper builds Parsed* subclasses: compare what the blocks say, not their classes.
    return [b.model_dump(include={"type", "text", "thinking", "signature"}) for b in content]


def raw_events(client: anthropic.Anthropic, **options: Any) -> list[Any]:
    options.setdefault("messages", PROMPT)
    options.setdefault("model", "fast")
    options.setdefault("max_tokens", 1024)
    return list(client.messages.create(stream=True, **options))


def test_streaming_and_not_give_the_same_message(client: anthropic.Anthropic) -> None:
    extension = {"llmstream": {**FAST, "seed": 5}}
    whole = client.messages.create(model="fast", max_tokens=1024, messages=PROMPT, extra_body=extension)
    with client.messages.stream(
        model="fast", max_tokens=1024, messages=PROMPT, extra_body=extension
    ) as stream:
        streamed_text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert whole.id == f"msg_{whole._request_id}"  # the SDK reads Anthropic's `request-id` header
    assert whole.stop_reason == "end_turn"
    assert whole.stop_sequence is None
    assert [b.type for b in whole.content] == ["text"]
    assert streamed_text == whole.content[0].text  # type: ignore[union-attr]
    assert blocks(final.content) == blocks(whole.content)
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


def test_the_event_sequence_and_cumulative_usage(client: anthropic.Anthropic) -> None:
    events = raw_events(client, extra_body={"llmstream": FAST})
    types = [e.type for e in events]  # ping is consumed by the SDK
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert types[2 : 2 + len(deltas)] == ["content_block_delta"] * len(deltas)
    start, message_delta = events[0], events[-2]
    assert start.message.usage.input_tokens > 0
    # message_delta's usage is cumulative: the whole completion, not the tokens since message_start.
    assert message_delta.usage.output_tokens == len(deltas)
    assert message_delta.delta.stop_reason == "end_turn"


def test_max_tokens_ends_with_max_tokens(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="fast", max_tokens=9, messages=PROMPT, extra_body={"llmstream": FAST}
    ) as s:
        message = s.get_final_message()
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 9


def test_a_stop_sequence_ends_with_stop_sequence(client: anthropic.Anthropic) -> None:
    text = client.messages.create(model="instant", max_tokens=1024, messages=PROMPT).content[0].text  # type: ignore[union-attr]
    stop = text.split()[len(text.split()) // 2]
    with client.messages.stream(
        model="instant", max_tokens=1024, messages=PROMPT, stop_sequences=[stop]
    ) as s:
        message = s.get_final_message()
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == stop
    assert message.content[0].text == text[: text.index(stop)]  # type: ignore[union-attr]


@pytest.mark.slow  # waits out a retry-after-ms delay (1 s) by design
def test_rate_limits_are_retried_after_retry_after_ms(server: RunningServer) -> None:
    before = faults_metric(server, "rate_limit")
    with anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-dummy", max_retries=1) as client:
        start = time.monotonic()
        with pytest.raises(anthropic.RateLimitError) as caught:
            client.messages.create(
                model="instant",
                max_tokens=10,
                messages=PROMPT,
                extra_body={"llmstream": {"faults": "rate_limit"}},
            )
        elapsed = time.monotonic() - start
    assert caught.value.status_code == 429
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Rate limit reached for requests (simulated fault). Please try again in 1s.",
        },
    }
    assert faults_metric(server, "rate_limit") - before == 2  # the first attempt and one retry
    # One wait of retry-after-ms (1 s); the SDK's own first backoff is at most 0.5 s.
    assert 1.0 <= elapsed < 2.0, elapsed


def test_overloaded_is_anthropics_529(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model="instant", max_tokens=10, messages=PROMPT, extra_headers={"X-LLMStream-Fault": "overloaded"}
        )
    assert caught.value.status_code == 529
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_a_mid_stream_error_raises_during_iteration(client: anthropic.Anthropic) -> None:
    received: list[Any] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        received.extend(
            client.messages.create(
                model="fast",
                max_tokens=1024,
                messages=PROMPT,
                stream=True,
                extra_body={"llmstream": {**FAST, "faults": "error_after:4"}},
            )
        )
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "The model failed after 4 tokens (simulated fault error_after:4).",
        },
    }
    assert sum(e.type == "content_block_delta" for e in received) == 4


def test_truncate_ends_the_stream_without_message_stop(client: anthropic.Anthropic) -> None:
    events = raw_events(client, extra_body={"llmstream": {**FAST, "faults": "truncate_after:5"}})
    types = [e.type for e in events]
    assert types == ["message_start", "content_block_start"] + ["content_block_delta"] * 5


def test_reset_surfaces_as_a_broken_connection(client: anthropic.Anthropic) -> None:
    received: list[Any] = []
    with pytest.raises(Exception) as caught:  # noqa: PT011  (the class differs between SDK versions)
        received.extend(
            client.messages.create(
                model="fast",
                max_tokens=1024,
                messages=PROMPT,
                stream=True,
                extra_headers={"X-LLMStream-Fault": "reset_after:5"},
            )
        )
    # The SDK does not wrap errors while reading a stream: the HTTP client's own error surfaces.
    error = caught.value
    assert isinstance(error, anthropic.APIConnectionError) or type(error).__name__ == "RemoteProtocolError"
    assert sum(e.type == "content_block_delta" for e in received) == 5


def test_the_reasoning_model_thinks_in_a_signed_block_first(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="reasoning",
        max_tokens=2000,
        messages=PROMPT,
        thinking={"type": "enabled", "budget_tokens": 1024},
        extra_body={"llmstream": FAST},
    ) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking
    assert thinking.signature
    whole = client.messages.create(
        model="reasoning", max_tokens=2000, messages=PROMPT, extra_body={"llmstream": FAST}
    )
    assert blocks(whole.content) == blocks(message.content)


def test_the_same_seed_gives_the_same_text(client: anthropic.Anthropic) -> None:
    def text(seed: int) -> str:
        message = client.messages.create(
            model="instant", max_tokens=1024, messages=PROMPT, extra_body={"llmstream": {"seed": seed}}
        )
        return message.content[0].text  # type: ignore[union-attr]

    assert text(21) == text(21)
    assert text(21) != text(22)


def test_system_blocks_and_content_blocks_are_read(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="echo",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "you"}]}
        ],
        # Accepted and ignored (extra_body: newer SDKs dropped these keyword arguments for some models).
        extra_body={"llmstream": FAST, "temperature": 0.5, "top_k": 5},
    )
    assert message.content[0].text == "Hello\nyou"  # type: ignore[union-attr]
    assert message.usage.input_tokens > 0


def test_heartbeats_during_a_stall_do_not_disturb_the_sdk(client: anthropic.Anthropic) -> None:
    stalled = raw_events(client, extra_body={"llmstream": {**FAST, "faults": "stall:3:700"}})
    plain = raw_events(client, extra_body={"llmstream": FAST})
    assert [e.model_dump() for e in stalled[1:]] == [e.model_dump() for e in plain[1:]]


def test_models_are_listed_and_retrieved(client: anthropic.Anthropic) -> None:
    models = list(client.models.list())
    assert [m.id for m in models] == ["instant", "fast", "typical", "slow", "reasoning", "echo"]
    assert client.models.retrieve("reasoning").display_name == "Reasoning"
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.models.retrieve("claude-x")
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: claude-x"},
    }


def test_timestamps_ride_on_each_delta_when_asked(client: anthropic.Anthropic) -> None:
    before = time.time()
    events = raw_events(client, extra_body={"llmstream": {**FAST, "timestamps": True}})
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert deltas
    times = [d.model_extra["t"] for d in deltas]
    assert times == sorted(times)
    assert before <= times[0] <= times[-1] <= time.time()
    others = [e for e in events if e.type != "content_block_delta"]
    assert all("t" not in (e.model_extra or {}) for e in others)
