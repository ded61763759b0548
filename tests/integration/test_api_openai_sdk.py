"""Contract tests: the official `openai` SDK against a live server, as a real client would use it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import serve_command
from tests.integration.serverproc import RunningServer, free_port, running_server

PROMPT = [{"role": "user", "content": "Explain how streaming responses work, with an example."}]
FAST = {"ttft_ms": 0, "tokens_per_s": 5000, "jitter": 0}  # real pacing, quick and without stalls


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("openai-sdk") / "server.log"
    # Heartbeats after 0.2 s of silence: a stalled stream gets comment lines between its events.
    with running_server(serve_command("uvicorn", port, "--heartbeat", "0.2"), port, log_path=log) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-dummy", max_retries=0) as client:
        yield client


def faults_metric(server: RunningServer, kind: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    match = re.search(rf'^llmstream_faults_injected_total{{kind="{kind}"}} ([0-9.e+]+)$', text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


def stream_chunks(client: openai.OpenAI, **options: Any) -> list[Any]:
    options.setdefault("messages", PROMPT)
    options.setdefault("model", "fast")
    return list(client.chat.completions.create(stream=True, **options))


def content(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_streaming_and_not_give_the_same_completion(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="fast", messages=PROMPT, seed=3, extra_body={"llmstream": FAST}
    )
    chunks = stream_chunks(client, seed=3, extra_body={"llmstream": FAST})
    assert whole.object == "chat.completion"
    assert whole.id.startswith("chatcmpl-req_")
    assert whole.choices[0].finish_reason == "stop"
    assert whole.choices[0].message.role == "assistant"
    assert whole.usage is not None
    assert whole.usage.completion_tokens > 20
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert content(chunks) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.usage is None for c in chunks)  # no usage unless asked for


def test_include_usage_adds_a_last_chunk_with_usage_and_no_choices(client: openai.OpenAI) -> None:
    chunks = stream_chunks(client, stream_options={"include_usage": True}, extra_body={"llmstream": FAST})
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    tokens = sum(1 for c in chunks if c.choices and c.choices[0].delta.content)
    assert last.usage.completion_tokens == tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + tokens
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_ends_with_length(client: openai.OpenAI, field: str) -> None:
    chunks = stream_chunks(client, stream_options={"include_usage": True}, **{field: 7})
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 7
    whole = client.chat.completions.create(model="instant", messages=PROMPT, **{field: 7})
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 7


def test_a_stop_sequence_ends_with_stop_before_the_sequence(client: openai.OpenAI) -> None:
    text = client.chat.completions.create(model="instant", messages=PROMPT).choices[0].message.content
    assert text is not None
    stop = text.split()[len(text.split()) // 2]
    chunks = stream_chunks(client, model="instant", stop=[stop, "never-there"])
    assert content(chunks) == text[: text.index(stop)]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


@pytest.mark.slow  # waits out two retry-after-ms delays (2 s) by design
def test_rate_limits_are_retried_after_retry_after_ms(server: RunningServer) -> None:
    before = faults_metric(server, "rate_limit")
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-dummy", max_retries=2) as client:
        start = time.monotonic()
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(
                model="instant", messages=PROMPT, extra_headers={"X-LLMStream-Fault": "rate_limit"}
            )
        elapsed = time.monotonic() - start
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after-ms"] == "1000"
    assert caught.value.code == "rate_limit_exceeded"
    assert faults_metric(server, "rate_limit") - before == 3  # the first attempt and two retries
    # Two waits of retry-after-ms (1 s each); the SDK's own backoff would total at most 1.5 s.
    assert 2.0 <= elapsed < 3.5, elapsed


def test_a_mid_stream_error_raises_api_error_during_iteration(client: openai.OpenAI) -> None:
    received: list[Any] = []
    with pytest.raises(openai.APIError, match=r"failed after 4 tokens") as caught:
        received.extend(
            client.chat.completions.create(
                model="fast",
                messages=PROMPT,
                stream=True,
                extra_body={"llmstream": {**FAST, "faults": "error_after:4"}},
            )
        )
    assert not isinstance(caught.value, openai.APIConnectionError)
    assert caught.value.body == {
        "message": "The model failed after 4 tokens (simulated fault error_after:4).",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert sum(1 for c in received if c.choices[0].delta.content) == 4


def test_truncate_ends_the_stream_quietly_without_a_finish_chunk(client: openai.OpenAI) -> None:
    chunks = stream_chunks(client, extra_body={"llmstream": {**FAST, "faults": "truncate_after:5"}})
    assert len(chunks) == 1 + 5  # the role chunk and five tokens; no finish chunk, no error
    assert all(c.choices[0].finish_reason is None for c in chunks)


def test_reset_surfaces_as_a_connection_error(client: openai.OpenAI) -> None:
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        received.extend(
            client.chat.completions.create(
                model="fast",
                messages=PROMPT,
                stream=True,
                extra_headers={"X-LLMStream-Fault": "reset_after:5"},
            )
        )
    assert type(caught.value.__cause__).__name__ == "RemoteProtocolError"
    assert len(received) == 1 + 5


def test_the_reasoning_model_streams_reasoning_content_first(client: openai.OpenAI) -> None:
    chunks = stream_chunks(
        client,
        model="reasoning",
        max_tokens=400,
        extra_body={"llmstream": FAST},
        stream_options={"include_usage": True},
    )
    kinds = [
        "reasoning" if getattr(c.choices[0].delta, "reasoning_content", None) else "content"
        for c in chunks
        if c.choices
        and (c.choices[0].delta.content or getattr(c.choices[0].delta, "reasoning_content", None))
    ]
    assert kinds[0] == "reasoning"
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning, then all content
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == kinds.count("reasoning")
    whole = client.chat.completions.create(
        model="reasoning", messages=PROMPT, max_tokens=400, extra_body={"llmstream": FAST}
    )
    assert (whole.choices[0].message.model_extra or {}).get("reasoning_content")


def test_the_same_seed_gives_the_same_text(client: openai.OpenAI) -> None:
    def text(seed: int) -> str | None:
        return (
            client.chat.completions.create(model="instant", messages=PROMPT, seed=seed)
            .choices[0]
            .message.content
        )

    assert text(11) == text(11)
    assert text(11) != text(12)
    streamed = stream_chunks(client, model="instant", seed=11)
    assert content(streamed) == text(11)


def test_content_parts_and_system_messages_are_read(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}],
            },
        ],
        temperature=0.2,
        top_p=0.9,
        extra_body={"llmstream": FAST},
    )
    assert whole.choices[0].message.content == "Hello\nthere"


def test_http_faults_map_to_the_sdk_errors(client: openai.OpenAI) -> None:
    for fault, error in [
        ("server_error", openai.InternalServerError),
        ("unavailable", openai.InternalServerError),
        ("overloaded", openai.InternalServerError),
    ]:
        with pytest.raises(error) as caught:
            client.chat.completions.create(
                model="instant", messages=PROMPT, extra_body={"llmstream": {"faults": fault}}
            )
        assert caught.value.status_code == (500 if fault == "server_error" else 503)


def test_heartbeats_during_a_stall_do_not_disturb_the_sdk(
    server: RunningServer, client: openai.OpenAI
) -> None:
    stall = {**FAST, "faults": "stall:3:700"}
    body = {"model": "fast", "messages": PROMPT, "seed": 8, "stream": True, "llmstream": stall}
    raw = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=10).content
    assert b"\n: heartbeat\n" in raw  # the comment lines are really there, between events
    stalled = stream_chunks(client, seed=8, extra_body={"llmstream": stall})
    plain = stream_chunks(client, seed=8, extra_body={"llmstream": FAST})
    assert content(stalled) == content(plain)
    assert len(stalled) == len(plain)


def test_models_are_listed_and_retrieved(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["instant", "fast", "typical", "slow", "reasoning", "echo"]
    assert client.models.retrieve("slow").owned_by == "llmstream"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found"


def test_timestamps_ride_along_unseen_by_code_that_does_not_ask(client: openai.OpenAI) -> None:
    before = time.time()
    chunks = stream_chunks(client, extra_body={"llmstream": {**FAST, "timestamps": True}})
    with_text = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert with_text
    times = [c.model_extra["t"] for c in with_text]
    assert times == sorted(times)
    assert before <= times[0] <= times[-1] <= time.time()
    assert content(chunks)  # the SDK still reads every chunk as before
    plain = stream_chunks(client, extra_body={"llmstream": FAST})
    assert all("t" not in (c.model_extra or {}) for c in plain)
