"""The browser pages' server side: the security headers of every HTML page, and the timeline demo.

The chat page itself (`/`) is rendered by app.py; everything it does happens in static/ (see
templates/index.html). What the server adds here is the Content-Security-Policy that makes the pages'
promise enforceable: even if some model output slipped past the sanitizer, the browser would run no
script that is not one of our own files (`script-src 'self'`, no inline script, no eval).
"""

from __future__ import annotations

from typing import Final

from quart import Blueprint, Response, render_template

from llmstream.simulator import PROFILES

blueprint = Blueprint("pages", __name__)

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


@blueprint.after_app_request
async def _security_headers(response: Response) -> Response:
    # HTML pages only: one header per response, never work per streamed event. A page that sets its own
    # policy keeps it.
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@blueprint.app_context_processor
def _models() -> dict[str, object]:
    """The model profiles, for the pages' model pickers."""
    return {"model_profiles": [(name, profile.description) for name, profile in PROFILES.items()]}


@blueprint.get("/demo/timeline")
async def timeline_page() -> str:
    return await render_template("timeline.html")
