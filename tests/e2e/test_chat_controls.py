"""The chat page's controls: Stop reaches the server, a dropped connection resumes without gaps or
duplicates, errors show with a retry, the keyboard works, history is sent, the view follows politely."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.support import ChatPage, api_answer, metrics, quiet, screenshot, wait_until
from tests.integration.serverproc import RunningServer

PROMPT = "How do I stream tokens to a browser?"


def test_stop_ends_the_stream_on_the_server(page: Any, server: RunningServer) -> None:
    before = quiet(server)
    chat = ChatPage(page).open()
    chat.configure(model="typical", seed=2, max_tokens=500, tokens_per_s=25, ttft_ms=100)
    chat.send(PROMPT)
    wait_until(lambda: len(chat.text()) > 20, what="some text")
    assert metrics(server)["open"] == 1
    page.locator("#stop").click()
    chat.wait_state("stopped")
    # The server saw its client go: the stream closed as client_disconnected, nothing is left open.
    after = wait_until(
        lambda: (
            (m := metrics(server))["open"] == 0
            and m["client_disconnected"] > before["client_disconnected"]
            and m
        ),
        what="the server to close the stream",
    )
    assert after["client_disconnected"] == before["client_disconnected"] + 1
    assert after["complete"] == before["complete"]
    stopped_at = chat.text()
    page.wait_for_timeout(500)
    assert chat.text() == stopped_at, "text kept coming after Stop"
    assert page.locator("#transcript").get_attribute("aria-busy") == "false"


@pytest.mark.parametrize("how", ["reset_after fault", "drop button"])
def test_a_dropped_connection_resumes_without_gaps_or_duplicates(
    page: Any, server: RunningServer, allowed_errors: list[str], how: str
) -> None:
    allowed_errors.append("net::ERR_")  # Chromium logs the cut connection
    chat = ChatPage(page).open()
    # 80 tokens over 4 s: the drop button is clicked after 20, with 3 s of stream left (at 60 tokens/s a
    # loaded machine could reach the end first, and the button is gone once the answer is done).
    body = {"model": "typical", "seed": 5, "max_tokens": 80, "tokens_per_s": 20, "ttft_ms": 100}
    chat.configure(**body, faults="reset_after:25" if how == "reset_after fault" else "")
    chat.send(PROMPT)
    if how == "drop button":
        wait_until(lambda: int(chat.data("tokens") or 0) >= 20, what="20 tokens")
        page.locator("#drop").click()
    assert chat.wait_state("done") == "done"
    assert int(chat.data("resumes") or 0) >= 1
    assert chat.data("duplicates") == "0"
    assert chat.data("gaps") == "0"
    assert chat.data("tokens") == "80"
    # The resumed request was the same body with the last token's id as Last-Event-ID.
    assert len(chat.bodies) >= 2
    assert chat.bodies[1] == chat.bodies[0]
    # (Chromium may lose the last token before a cut connection when the bytes and the end arrive
    # together; the server waits RESET_LINGER between them, but the page must still cope: then it
    # resumes from an earlier token, maybe more than once. Never backwards.)
    assert chat.resume_ids[0] is None
    assert None not in chat.resume_ids[1:]
    indices = [int(str(i).rsplit(":", 1)[1]) for i in chat.resume_ids[1:]]
    assert indices == sorted(indices), chat.resume_ids
    if how == "reset_after fault":
        assert indices[-1] == 24, chat.resume_ids  # the fault struck after 25 tokens (index 24)
    # Same text as the uninterrupted answer, asked of the API directly.
    messages = chat.bodies[0]["messages"]
    uninterrupted = api_answer(server, {**body, "messages": messages})["text"]
    assert chat.assembled_text() == uninterrupted


def test_rate_limit_shows_the_retry_time_and_retries(page: Any, allowed_errors: list[str]) -> None:
    allowed_errors.append("429")
    chat = ChatPage(page).open()
    chat.configure(model="fast", seed=1, max_tokens=20, faults="rate_limit")
    chat.send(PROMPT)
    chat.wait_state("error")
    notice = chat.answer().locator(".notice")
    assert notice.is_visible()
    text = notice.inner_text()
    assert "HTTP 429 rate_limit" in text
    assert "asks to wait 1.0 s before retrying" in text
    assert "fault injection is on" in text
    assert chat.data("retry-after-ms") == "1000"
    wait_until(lambda: "you can retry now" in notice.inner_text(), timeout=3, what="the countdown to end")
    screenshot(page, "rate-limit")
    chat.configure(faults="")
    notice.get_by_role("button", name="Retry").click()
    assert chat.wait_state("done") == "done"
    assert chat.data("tokens") == "20"
    assert not notice.is_visible()
    assert len(page.locator(".message.assistant").all()) == 1  # retried in place


def test_a_mid_stream_error_shows_and_retry_continues(page: Any, server: RunningServer) -> None:
    chat = ChatPage(page).open()
    body = {"model": "fast", "seed": 8, "max_tokens": 30}
    chat.configure(**body, faults="error_after:8")
    chat.send(PROMPT)
    chat.wait_state("error")
    notice = chat.answer().locator(".notice")
    assert "failed after 8 tokens (server_error)" in notice.inner_text()
    partial = chat.text()
    assert partial, "the text before the error is kept"
    screenshot(page, "midstream-error")
    notice.get_by_role("button", name="Retry from here").click()
    assert chat.wait_state("done") == "done"
    assert chat.data("tokens") == "30"
    assert chat.data("duplicates") == "0"
    assert chat.data("gaps") == "0"
    assert chat.text().startswith(partial[:20])
    assert chat.resume_ids[-1] is not None
    assert chat.resume_ids[-1].endswith(":7")
    uninterrupted = api_answer(server, {**body, "messages": chat.bodies[0]["messages"]})["text"]
    assert chat.assembled_text() == uninterrupted


def test_keyboard_flow(page: Any) -> None:
    chat = ChatPage(page).open()
    chat.configure(model="slow", seed=4, max_tokens=300, tokens_per_s=20, ttft_ms=200)
    prompt = page.locator("#prompt")
    prompt.focus()
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    assert prompt.input_value() == "first line\nsecond line"
    # Enter while an input method is composing confirms the candidate: it must not send.
    prompt.dispatch_event(
        "keydown", {"key": "Enter", "isComposing": True, "bubbles": True, "cancelable": True}
    )
    assert page.locator(".message").count() == 0
    page.keyboard.press("Enter")
    assert page.locator(".message.user .bubble").inner_text() == "first line\nsecond line"
    assert prompt.input_value() == ""
    wait_until(lambda: chat.state() == "streaming", what="the answer to stream")
    assert page.locator("#transcript").get_attribute("aria-busy") == "true"
    page.keyboard.press("Escape")
    assert chat.wait_state("stopped") == "stopped"
    assert page.locator("#transcript").get_attribute("aria-busy") == "false"
    # Every control is reachable with Tab, and the settings open from the keyboard.
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()")
        )
    for control in (
        "new-chat",
        "settings-toggle",
        "theme-toggle",
        "transcript",
        "prompt",
        "send",
        "regenerate",
    ):
        assert control in reached, f"{control} not reachable with Tab: {reached}"
    page.locator("#settings-toggle").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "model"


def test_history_regenerate_and_new_chat(page: Any, server: RunningServer) -> None:
    chat = ChatPage(page).open()
    chat.configure(model="fast", seed=24, max_tokens=120)
    chat.send("What makes streaming feel fast?")
    chat.wait_state("done")
    first = chat.bodies[-1]
    chat.configure(max_tokens="")
    chat.send("Show me the code for it, and a table of the numbers")
    chat.wait_state("done")
    second = chat.bodies[-1]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][0]["content"] == "What makes streaming feel fast?"
    assert second["messages"][1]["content"] == api_answer(server, first)["text"]
    assert second["messages"][2]["content"] == "Show me the code for it, and a table of the numbers"
    page.locator("#settings-toggle").click()  # README's picture shows the settings too
    screenshot(page, "chat", readme=True)
    page.locator("#settings-toggle").click()
    # Regenerate: the same question again, in place, with the next seed (the seed is fixed here).
    before = chat.text()
    page.locator("#regenerate").click()
    chat.wait_state("done")
    regenerated = chat.bodies[-1]
    assert regenerated["messages"] == second["messages"]
    assert regenerated["seed"] == 25
    assert page.locator(".message.assistant").count() == 2
    assert chat.text() != before
    # New chat: an empty transcript, and the next question goes alone.
    page.locator("#new-chat").click()
    assert page.locator(".message").count() == 0
    chat.send("Hello again")
    chat.wait_state("done")
    assert [m["role"] for m in chat.bodies[-1]["messages"]] == ["user"]


def test_auto_scroll_follows_only_at_the_bottom(page: Any) -> None:
    page.set_viewport_size({"width": 900, "height": 600})
    chat = ChatPage(page).open()
    # A long answer: the echo model repeats a long prompt, for about eight seconds.
    long_prompt = "\n\n".join(
        f"Paragraph {i}: the view should follow this text only at the bottom." for i in range(90)
    )
    chat.configure(model="echo", seed=6, tokens_per_s=150, ttft_ms=50)
    chat.send(long_prompt)
    transcript = page.locator("#transcript")
    gap = "(t) => t.scrollHeight - t.scrollTop - t.clientHeight"
    wait_until(lambda: len(chat.text()) > 1000, what="a long answer")
    assert transcript.evaluate(gap) < 50, "the view did not follow the answer"
    # The reader scrolls up to reread: the view stays put and offers the way back.
    transcript.evaluate("t => { t.scrollTop = 0; }")
    jump = page.locator("#jump")
    jump.wait_for(state="visible")
    height = transcript.evaluate("t => t.scrollHeight")
    wait_until(lambda: transcript.evaluate("t => t.scrollHeight") > height + 100, what="more text")
    assert transcript.evaluate("t => t.scrollTop") == 0
    jump.click()
    assert transcript.evaluate(gap) < 50
    assert not jump.is_visible()
    page.keyboard.press("Escape")
    chat.wait_state("stopped")
