"""The demo pages: the relay (in the browser and on the wire), the timeline, the counter."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from llmstream import ServerSentEvent, SSEDecoder
from llmstream.api.relay import Sentences
from tests.e2e.support import api_answer, metrics, quiet, screenshot, wait_until
from tests.integration.serverproc import RunningServer

CHAT_UPSTREAM = "/api/chat/stream?" + urlencode(
    {"prompt": "Explain streaming", "model": "fast", "seed": 3, "max_tokens": 120}
)


def relay_events(server: RunningServer, upstream: str, transform: str = "none") -> list[ServerSentEvent]:
    """Every event of one relayed stream, read to its end."""
    query = urlencode({"upstream": upstream, "transform": transform})
    decoder, events = SSEDecoder(), []
    with httpx.stream("GET", f"{server.base_url}/demo/relay/stream?{query}", timeout=30) as response:
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            events += decoder.feed(chunk)
    return events


def start_relay(page: Any, upstream: str, transform: str) -> None:
    page.goto("/demo/relay")
    page.locator("#preset").select_option("")
    page.locator("#upstream").fill(upstream)
    page.locator("#transform").select_option(transform)
    page.locator("#start").click()


def test_relay_page_uppercases_a_chat_stream(page: Any, server: RunningServer) -> None:
    start_relay(page, CHAT_UPSTREAM, "uppercase")
    page.wait_for_selector("body[data-status=done]")
    relayed = page.locator("#output").inner_text()
    original = api_answer(
        server, {"prompt": "Explain streaming", "model": "fast", "seed": 3, "max_tokens": 120}
    )
    assert relayed == original["text"].upper()
    assert page.locator("#output .chunk").count() == 120  # one chunk per token
    screenshot(page, "relay", full_page=True)


def test_relay_page_batches_tokens_into_sentences(page: Any) -> None:
    start_relay(page, CHAT_UPSTREAM, "sentences")
    page.wait_for_selector("body[data-status=done]")
    chunks = page.locator("#output .chunk").all_inner_texts()
    assert 3 <= len(chunks) <= 40, chunks
    for chunk in chunks[:-1]:  # every batch but the last ends a sentence or a line
        assert chunk.rstrip(" ")[-1:] in ".!?:\n" or chunk.rstrip()[-1:] in ".!?:)\"'" or len(chunk) > 200, (
            chunk
        )


def test_relay_redacts_digits(server: RunningServer) -> None:
    upstream = "/api/chat/stream?" + urlencode({"prompt": "Call 555-0100 before 9", "model": "echo"})
    events = relay_events(server, upstream, "redact_digits")
    text = "".join(json.loads(e.data or "")["text"] for e in events if e.event == "token")
    assert text == "Call •••-•••• before •"
    assert next(e.event for e in events) == "start"
    assert events[-1].event == "finish"


@pytest.mark.parametrize(
    "upstream",
    [
        "http://example.com/api/chat/stream",
        "https://example.com/api/chat/stream?prompt=x",
        "//example.com/api/chat/stream",
        "file:///etc/passwd",
        "ftp://127.0.0.1/api/chat/stream",
        "/healthz",
        "/metrics",
        "/api/chat/stream/../../metrics",
        "/api/chat/%73tream?prompt=x",
        "/demo/relay/stream?upstream=/api/chat/stream",
        "/api/chat/stream\\@example.com",
        " /api/chat/stream",
        "",
    ],
)
def test_relay_refuses_upstreams_off_the_allowlist(server: RunningServer, upstream: str) -> None:
    response = httpx.get(f"{server.base_url}/demo/relay/stream", params={"upstream": upstream}, timeout=10)
    assert response.status_code == 400, (upstream, response.text)
    assert response.json()["error"]["message"]


def test_relay_refuses_this_servers_own_absolute_url(server: RunningServer) -> None:
    # The default allowlist names paths on this server, never a host: an absolute URL is not on it.
    upstream = f"{server.base_url}/api/chat/stream?prompt=x"
    response = httpx.get(f"{server.base_url}/demo/relay/stream", params={"upstream": upstream}, timeout=10)
    assert response.status_code == 400


def test_relay_page_shows_a_refusal(page: Any, allowed_errors: list[str]) -> None:
    allowed_errors.append("status of 400")
    start_relay(page, "http://example.com/", "none")
    page.wait_for_selector("body[data-status=refused]")
    assert "not on the relay allowlist" in page.locator("#status").inner_text()


@pytest.mark.parametrize(
    ("upstream", "expected"),
    [
        ("/api/chat/stream?prompt=hi&model=fast&faults=reset_after:3", "cut the connection"),
        ("/api/chat/stream?prompt=hi&model=no-such-model", "upstream answered HTTP 404"),
    ],
)
def test_relay_turns_upstream_failure_into_an_error_event(
    server: RunningServer, upstream: str, expected: str
) -> None:
    events = relay_events(server, upstream)
    assert events[-1].event == "error"
    error = json.loads(events[-1].data or "")
    assert error["code"] == "upstream_error"
    assert expected in error["message"]
    if "reset_after" in upstream:
        assert [e.event for e in events] == ["start", "token", "token", "token", "error"]


def test_relay_passes_an_upstream_error_event_through(server: RunningServer) -> None:
    events = relay_events(server, "/demo/counter/stream?interval=0&fail_at=3", "uppercase")
    assert [e.event for e in events] == ["count", "count", "error"]
    # The upstream's own error event, as the counter wrote it (not the relay's upstream_error).
    assert json.loads(events[-1].data or "")["error"]["type"] == "stream_error"


def test_a_browser_leaving_the_relay_closes_the_upstream_at_once(server: RunningServer) -> None:
    before = quiet(server)
    query = urlencode({"upstream": "/demo/counter/stream?interval=0.05", "transform": "none"})
    decoder, counts = SSEDecoder(), []
    with httpx.stream("GET", f"{server.base_url}/demo/relay/stream?{query}", timeout=10) as response:
        for chunk in response.iter_bytes():
            counts += [e for e in decoder.feed(chunk) if e.event == "count"]
            if len(counts) >= 3:
                assert metrics(server)["open"] == 2  # the relay's stream and its upstream
                break  # leaving the loop closes the response: the browser is gone
    # Both streams end as client_disconnected: the relay saw the browser go, the upstream saw the relay go.
    after = wait_until(
        lambda: (m := metrics(server))["open"] == 0 and m, timeout=3, what="the relay and upstream to close"
    )
    assert after["client_disconnected"] == before["client_disconnected"] + 2


def test_sentences_keep_the_last_tokens_id() -> None:
    # A batch carries its last token's id: resuming after it skips exactly the batch's tokens.
    batcher, out = Sentences(), []
    for i, text in enumerate(["Hello", " world", ".", " Next", " one"]):
        out += batcher.feed(ServerSentEvent.json({"index": i, "text": text}, event="token", id=f"k:{i}"))
    out += batcher.flush()
    assert [(e.id, json.loads(e.data or "")["text"]) for e in out] == [
        ("k:2", "Hello world."),
        ("k:4", " Next one"),
    ]


def test_timeline_draws_parallel_streams(page: Any) -> None:
    page.goto("/demo/timeline")
    page.locator("#count").fill("4")
    page.locator("#start").click()
    page.wait_for_selector("body[data-status=done]", timeout=30_000)
    rows = page.locator("#stats tbody tr")
    assert rows.count() == 4
    stats = [rows.nth(i).evaluate("tr => ({...tr.dataset})") for i in range(4)]
    assert all(s["end"] == "finish" and int(s["tokens"]) > 50 for s in stats), stats
    # Stream 2 has a 1.2 s stall, stream 3 a slow first token: both show in the figures.
    assert int(stats[1]["stalls"]) >= 1, stats[1]
    # 1.2 s of stall on top of a token's gap; on the absolute schedule a late token before it (a busy
    # page) shortens the gap seen, so the bound leaves a loaded machine room. Without the stall: ~10 ms.
    assert int(stats[1]["longestGapMs"]) >= 1000, stats[1]
    assert int(stats[2]["ttftMs"]) >= 800 > int(stats[0]["ttftMs"]), stats
    painted = page.evaluate(
        """() => {
            const canvas = document.getElementById("timeline");
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
            return n;
        }"""
    )
    assert painted > 2000, "the timeline canvas is (nearly) empty"
    screenshot(page, "timeline", readme=True, full_page=True)


def test_counter_demo_still_counts(page: Any) -> None:
    page.goto("/demo/counter")
    wait_until(lambda: page.locator("#count").inner_text() not in ("\u2013", "1"), timeout=5, what="a count")
    assert page.locator("#status").inner_text() == "open"
