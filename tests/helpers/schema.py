"""Checking an answer against the OpenAPI document's schema."""

from __future__ import annotations

import asyncio
from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


async def validate(url: str, path: str, method: str = "GET", **kw: Any) -> int:
    """One request to an operation, its answer checked against the document; its status code (no 5xx check:
    the 503s here are meant)."""

    def run() -> int:
        schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json", config=schemathesis.Config())
        case = schema[path][method].Case(**kw)
        response = case.call(base_url=url)
        case.validate_response(response, checks=CONFORMANCE)
        return response.status_code

    return await asyncio.to_thread(run)
