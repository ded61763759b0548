"""Browser tests: the app as a real server process, driven in Debian's Chromium by Playwright (sync API).

Run on their own, with their own configuration (tests/e2e/pytest.ini):

    python -m pytest -c tests/e2e/pytest.ini tests/e2e

pytest-asyncio and Playwright's sync API do not mix in one process (Playwright refuses to run inside a
running event loop), so this run loads no asyncio plugin. Only Debian's `chromium` is used: no browser
is ever downloaded. Where it is missing the tests are skipped, except in CI (CI=true), where a missing
browser fails the run: a suite that silently tested nothing would pass.

Artifacts go to results/e2e/ (screenshots, the server's log); the README's screenshots to docs/images/.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import ARTIFACTS, REPO
from tests.integration.serverproc import RunningServer, free_port, running_server

CHROMIUM = Path(os.environ.get("LLMSTREAM_CHROMIUM", "/usr/bin/chromium"))
# Headless Chromium as root in a container, quiet and offline: no sandbox (needs user namespaces), no
# GPU, no first-run UI, no background traffic to Google (there is no network to reach anyway).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, where a browser test that cannot run must not pass."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing browser fails the run)", pytrace=False)
    pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("asyncio"):
        raise pytest.UsageError(
            "the browser tests run without pytest-asyncio: python -m pytest -c tests/e2e/pytest.ini tests/e2e"
        )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob("FAILED-*.png"):  # the artifacts describe this run only
        stale.unlink()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Keep each phase's report on the test, so the page fixture can screenshot a failure.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def server() -> Iterator[RunningServer]:
    """One app server for the whole run, on a free port of 127.0.0.1."""
    port = free_port()
    command = [sys.executable, "-m", "llmstream", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, port, log_path=ARTIFACTS / "server.log", cwd=REPO) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install -e '.[e2e]'")
    if not CHROMIUM.exists():
        unavailable(f"no browser at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        # launch() gives Chromium a fresh temporary --user-data-dir of its own and deletes it on close: no
        # state from an earlier run or from a person's browser.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Any, server: RunningServer) -> Iterator[Any]:
    """A fresh context per test (its own storage), in the light scheme unless a test says otherwise."""
    context = browser.new_context(base_url=server.base_url, viewport=VIEWPORT, color_scheme="light")
    context.set_default_timeout(15_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def allowed_errors() -> list[str]:
    """Console errors a test expects (Chromium logs a 429 or a cut connection): add a part of each."""
    return []


@pytest.fixture
def page(context: Any, request: pytest.FixtureRequest, allowed_errors: list[str]) -> Iterator[Any]:
    """A page that fails its test on any JavaScript error or console error (a CSP violation, a 404)."""
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None,
    )
    yield page
    call = getattr(request.node, "report_call", None)
    if call is not None and call.failed:
        page.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    unexpected = [p for p in problems if not any(a in p for a in allowed_errors)]
    assert not unexpected, "\n".join(unexpected)
