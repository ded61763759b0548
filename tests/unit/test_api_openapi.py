"""The OpenAPI document describes every route the app serves, and only those."""

from __future__ import annotations

import json
import re
from typing import Any

from llmstream.api.openapi import document
from llmstream.app import create_app
from llmstream.config import load_settings

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def registered_operations() -> set[tuple[str, str]]:
    app = create_app(load_settings({}))
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        # Quart's "<path:model_id>" is OpenAPI's "{model_id}".
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations |= {
            (method.lower(), path) for method in rule.methods or () if method not in IGNORED_METHODS
        }
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {(method, path) for path, item in document()["paths"].items() for method in item}


def test_every_route_is_documented() -> None:
    missing = registered_operations() - documented_operations()
    assert not missing, f"routes missing from llmstream/api/openapi.py: {sorted(missing)}"


def test_nothing_undocumented_is_served_and_nothing_documented_is_missing() -> None:
    extra = documented_operations() - registered_operations()
    assert not extra, f"documented but not served: {sorted(extra)}"


def test_the_document_is_json_with_resolvable_references() -> None:
    doc = document()
    text = json.dumps(doc)
    assert doc["openapi"] == "3.1.0"
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in doc["components"]["schemas"], ref
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            operation_: dict[str, Any] = operation
            assert operation_["summary"], (method, path)
            assert "200" in operation_["responses"], (method, path)
