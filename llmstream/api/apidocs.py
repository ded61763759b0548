"""The API described: `/openapi.json` (machine-readable) and `/docs/api` (the same, for people)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, render_template

from llmstream.api.openapi import document

blueprint = Blueprint("apidocs", __name__)

_METHODS = ("get", "post")


@blueprint.get("/openapi.json")
async def openapi_json() -> dict[str, Any]:
    return document()


@blueprint.get("/docs/api")
async def api_page() -> str:
    doc = document()
    operations = [
        {"method": method.upper(), "path": path, **operation}
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    ]
    return await render_template("api.html", doc=doc, operations=operations)
