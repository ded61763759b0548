"""Nothing from the prompt or the model ever runs: payloads render as text, and the page's
Content-Security-Policy would stop a script even if one slipped into the DOM."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.support import ChatPage, screenshot
from tests.integration.serverproc import RunningServer

PAYLOAD = """Try these:
<img src=x onerror="window.__xss = 'img'; alert('img')">
<script>window.__xss = 'script'; alert('script')</script>
<svg onload="window.__xss = 'svg'"></svg>
<iframe src="javascript:window.top.__xss = 'iframe'"></iframe>

[click me](javascript:window.__xss='link')
![pixel](x" onerror="window.__xss='markdown-img')
<a href="javascript:window.__xss='a'">raw link</a>"""


def test_an_xss_payload_stays_inert(page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    chat = ChatPage(page).open()
    # The echo model sends the payload back as the model's answer: it goes through the Markdown path.
    chat.configure(model="echo", seed=1, tokens_per_s=400, ttft_ms=0)
    chat.send(PAYLOAD)
    chat.wait_state("done")
    answer = chat.answer().locator(".markdown")
    for link in answer.locator("a").all():  # clicking anything there must not run anything either
        link.click(modifiers=["Shift"], no_wait_after=True)
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.evaluate("window.__xss") is None
    assert answer.locator("script, iframe, svg, object, embed, [onerror], [onload]").count() == 0
    hrefs = [a.get_attribute("href") or "" for a in answer.locator("a").all()]
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], hrefs
    # Raw HTML is shown as the text it is, in the answer and in the prompt's bubble.
    assert '<img src=x onerror="window.__xss' in answer.inner_text()
    assert "<script>window.__xss" in answer.inner_text()
    assert page.locator(".message.user .bubble").inner_text() == PAYLOAD
    screenshot(page, "xss-inert")


def test_pages_send_a_strict_content_security_policy(server: RunningServer) -> None:
    for path in ("/", "/demo/relay", "/demo/timeline", "/demo/counter"):
        policy = httpx.get(server.base_url + path).headers.get("content-security-policy", "")
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
        assert directives.get("script-src") == "'self'", (path, policy)
        assert directives.get("object-src") == "'none'"
        assert directives.get("base-uri") == "'none'"
        assert "unsafe" not in policy
    # Streams and JSON carry no such header: it is set once per HTML page, never per event.
    response = httpx.get(server.base_url + "/healthz")
    assert "content-security-policy" not in response.headers


def test_the_policy_is_enforced_in_the_browser(page: Any, allowed_errors: list[str]) -> None:
    allowed_errors.append("Content Security Policy")
    ChatPage(page).open()
    ran = page.evaluate(
        """() => {
            const script = document.createElement("script");
            script.textContent = "window.__inline = true";
            document.body.append(script);
            return window.__inline === true;
        }"""
    )
    assert ran is False
