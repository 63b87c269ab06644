"""Reading a Flask request's body: thin adapters over the contract's framework-free checks.

The checks themselves (`contract.parse_json_object`, `ingestion.parse_request`) take bytes and
a media type, so an async stage reads the body its own way and calls the same checks.
"""

from collections.abc import Collection
from typing import Any

from flask import Request
from flask.json.provider import DefaultJSONProvider

from workshop import config, ingestion, safejson
from workshop.contract import parse_json_object


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading with safejson: `request.get_json()` refuses (400) a body nested
    deeper than safejson.MAX_DEPTH instead of failing with RecursionError (500)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return safejson.loads(s, **kwargs)


def json_object(
    request: Request,
    allowed: Collection[str],
    required: Collection[str] = (),
    max_bytes: int = config.MAX_JSON_BYTES,
) -> dict[str, Any]:
    """Return the request's JSON object (400/413/415 otherwise); see parse_json_object."""
    request.max_content_length = max_bytes  # larger bodies raise 413 before being read
    return parse_json_object(request.get_data(cache=True), request.mimetype, allowed, required)


def ingest_request(request: Request) -> ingestion.IngestRequest:
    """Return what an ingest call asks for (400/413/415 otherwise); see ingestion.parse_request."""
    request.max_content_length = config.MAX_INGEST_BYTES
    return ingestion.parse_request(request.get_data(cache=True), request.mimetype)
