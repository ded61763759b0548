"""Light and dark themes: the system's by default, a toggle that wins and is remembered."""

from __future__ import annotations

from typing import Any

from tests.e2e.support import ChatPage, screenshot


def luminance(page: Any) -> float:
    """Relative luminance (0 black ... 1 white) of the page's background."""
    rgb = page.evaluate("getComputedStyle(document.body).backgroundColor")
    r, g, b = (int(v) / 255 for v in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_theme_follows_the_system_and_the_toggle_wins(page: Any) -> None:
    page.emulate_media(color_scheme="dark")
    chat = ChatPage(page).open()
    assert luminance(page) < 0.1
    toggle = page.locator("#theme-toggle")
    assert "following the system, dark now" in (toggle.get_attribute("aria-label") or "")
    chat.configure(model="fast", seed=21, max_tokens=120)
    chat.send("What makes streaming feel fast?")
    chat.wait_state("done")
    screenshot(page, "chat-dark")
    # The toggle pins light, which a reload remembers ...
    toggle.click()
    assert luminance(page) > 0.9
    page.reload()
    page.wait_for_function("document.activeElement?.id === 'prompt'")
    assert luminance(page) > 0.9
    assert page.evaluate("localStorage.getItem('llmstream.theme')") == "light"
    # ... then dark, then back to following the system.
    toggle.click()
    assert luminance(page) < 0.1
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    toggle.click()
    assert page.evaluate("document.documentElement.dataset.theme") is None
    page.emulate_media(color_scheme="light")
    assert luminance(page) > 0.9


def test_light_system_gives_the_light_theme(page: Any) -> None:
    ChatPage(page).open()  # the context's scheme is light
    assert luminance(page) > 0.9
