"""What the browser tests share: the chat page as an object, the server's metrics, bounded waiting."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from llmstream import SSEDecoder
from tests.integration.serverproc import RunningServer

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "results" / "e2e"  # gitignored: screenshots and the server's log of each run
DOCS_IMAGES = REPO / "docs" / "images"  # README's screenshots, refreshed by `make screenshots`
# Only on request: a plain `make test` must not rewrite tracked files (the figures differ run to run).
UPDATE_README_IMAGES = os.environ.get("LLMSTREAM_UPDATE_SCREENSHOTS") == "1"

_METRIC = re.compile(r'^(llmstream_[a-z_]+)(?:\{reason="([a-z_]+)"\})? ([0-9.e+-]+)$', re.MULTILINE)


def metrics(server: RunningServer) -> dict[str, float]:
    """The server's stream counters: `open` and one entry per close reason."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    found: dict[str, float] = {}
    for name, reason, value in _METRIC.findall(text):
        if name == "llmstream_open_streams":
            found["open"] = float(value)
        elif name == "llmstream_streams_closed_total":
            found[reason] = float(value)
    return found


def wait_until(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(interval)


def quiet(server: RunningServer) -> dict[str, float]:
    """Wait until no stream is open (earlier tests' pages are gone), and return the metrics then."""
    return wait_until(lambda: (m := metrics(server))["open"] == 0 and m, what="no open streams")


def api_answer(server: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    """The whole answer for `body` from the API directly (not streamed): text and usage."""
    response = httpx.post(f"{server.base_url}/api/chat", json={**body, "stream": False}, timeout=60)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def api_tokens(server: RunningServer, body: dict[str, Any]) -> list[str]:
    """The texts of the answer's token events, streamed from the API and decoded by llmstream's decoder."""
    decoder, texts = SSEDecoder(), []
    with httpx.stream("POST", f"{server.base_url}/api/chat", json=body, timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            texts += [json.loads(e.data or "")["text"] for e in decoder.feed(chunk) if e.event == "token"]
    return texts


def screenshot(page: Any, name: str, *, readme: bool = False, full_page: bool = False) -> Path:
    """Save results/e2e/<name>.png; with `readme`, also docs/images/ when LLMSTREAM_UPDATE_SCREENSHOTS=1."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if readme and UPDATE_README_IMAGES:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / path.name)
    return path


class ChatPage:
    """The chat page at `/`, driven the way a person would: the settings panel, the composer, buttons."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.bodies: list[dict[str, Any]] = []
        self.resume_ids: list[str | None] = []
        page.on("request", self._record)

    @staticmethod
    def _is_chat_request(request: Any) -> bool:
        return request.method == "POST" and bool(request.url.endswith("/api/chat"))

    def _record(self, request: Any) -> None:
        if self._is_chat_request(request):
            self.bodies.append(request.post_data_json)
            self.resume_ids.append(request.headers.get("last-event-id"))

    def open(self) -> ChatPage:
        self.page.goto("/")
        self.page.wait_for_function("document.activeElement?.id === 'prompt'")  # chat.js ran
        return self

    def configure(self, **fields: object) -> None:
        """Fill the settings panel: model, seed, max_tokens, tokens_per_s, ttft_ms, faults."""
        toggle = self.page.locator("#settings-toggle")
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
        for name, value in fields.items():
            field = self.page.locator(f"#{name}")
            if name == "model":
                field.select_option(str(value))
            else:
                field.fill("" if value is None else str(value))
        toggle.click()

    def send(self, text: str) -> None:
        self.page.locator("#prompt").fill(text)
        self.page.locator("#prompt").press("Enter")

    def answer(self, index: int = -1) -> Any:
        answers = self.page.locator(".message.assistant")
        return answers.nth(index) if index >= 0 else answers.last

    def state(self, index: int = -1) -> str | None:
        state: str | None = self.answer(index).get_attribute("data-state")
        return state

    def wait_state(self, *states: str, timeout: float = 30.0) -> str:
        """Wait until the last answer is in one of `states`; return it."""
        return wait_until(
            lambda: (s := self.state()) in states and s, timeout=timeout, what=f"state {states}"
        )

    def text(self, index: int = -1) -> str:
        """The answer's Markdown source as the page holds it (what it would send back as history)."""
        text: str = self.answer(index).evaluate("el => el.querySelector('.markdown').innerText")
        return text

    def assembled_text(self) -> str:
        """The exact text the page assembled for the last answer, from its tokens.

        Read where it matters: the page sends it back as history with the next message. A follow-up is
        sent (and stopped at once) to see the request.
        """
        # Waited for through Playwright, not by polling `bodies`: the sync API delivers the request event
        # only while a Playwright call runs, so a plain sleep loop could wait for it in vain.
        with self.page.expect_request(self._is_chat_request) as follow_up:
            self.send("Thanks.")
        self.page.keyboard.press("Escape")
        # The follow-up carries the test's settings, faults too: it may end in "error" before the Escape.
        self.wait_state("stopped", "done", "error")
        content: str = follow_up.value.post_data_json["messages"][-2]["content"]
        return content

    def data(self, name: str, index: int = -1) -> str | None:
        value: str | None = self.answer(index).get_attribute(f"data-{name}")
        return value
