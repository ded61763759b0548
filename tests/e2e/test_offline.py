"""The UI needs nothing from elsewhere: no CDN, and the vendored libraries are the pinned ones."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.support import REPO
from tests.integration.serverproc import RunningServer

VENDOR = REPO / "static" / "vendor"


def test_vendored_libraries_are_the_pinned_versions() -> None:
    pins = json.loads((VENDOR / "package.json").read_text())["dependencies"]
    locked = json.loads((VENDOR / "package-lock.json").read_text())["packages"]
    for name, version in pins.items():
        assert locked[f"node_modules/{name}"]["version"] == version, name
        assert locked[f"node_modules/{name}"]["integrity"].startswith("sha512-"), name
    assert f"marked v{pins['marked']} " in (VENDOR / "marked.esm.js").read_text()[:300]
    assert f"DOMPurify {pins['dompurify']} " in (VENDOR / "purify.es.mjs").read_text()[:300]
    for license_file in ("marked.LICENSE", "dompurify.LICENSE"):
        assert (VENDOR / license_file).stat().st_size > 500, license_file


def test_pages_load_nothing_from_another_origin(page: Any, server: RunningServer) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    for path in ("/", "/demo/relay", "/demo/timeline", "/demo/counter"):
        page.goto(path)
        page.wait_for_timeout(300)  # the modules and their imports (the counter's stream never idles)
    assert requested
    assert [url for url in requested if not url.startswith(server.base_url + "/")] == []
    assert any(url.endswith("/static/vendor/marked.esm.js") for url in requested)
