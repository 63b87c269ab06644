"""Reading a Quart request's body: thin adapters over the contract's framework-free checks.

workshop/web/bodies.py ported: the same checks (`contract.parse_json_object`,
`ingestion.parse_request`) on bytes and a media type; only reading the body is awaited.
"""

import asyncio
from collections.abc import Collection
from typing import Any

from quart import Request, abort

from workshop import config, ingestion
from workshop.contract import parse_json_object


async def json_object(
    request: Request,
    allowed: Collection[str],
    required: Collection[str] = (),
    max_bytes: int = config.MAX_JSON_BYTES,
) -> dict[str, Any]:
    """Return the request's JSON object (400/413/415 otherwise); see parse_json_object."""
    body = await body_within(request, max_bytes)
    return parse_json_object(body, request.mimetype, allowed, required)


async def ingest_request(request: Request) -> ingestion.IngestRequest:
    """Return what an ingest call asks for (400/413/415 otherwise); see ingest.parse_request."""
    body = await body_within(request, config.MAX_INGEST_BYTES)
    # Checking an upload reads its rows, CPU work: a thread, so the loop keeps serving.
    return await asyncio.to_thread(ingestion.parse_request, body, request.mimetype)


async def body_within(request: Request, max_bytes: int) -> bytes:
    """Return the request's body, or answer 413 if it is larger than this call accepts."""
    # Quart fixes a body's limit when the request arrives (MAX_CONTENT_LENGTH, the largest
    # any call takes): setting request.max_content_length later does not reach it.
    if (request.content_length or 0) > max_bytes:
        abort(413)
    body = await request.get_data(cache=True)
    if len(body) > max_bytes:
        abort(413)
    return body
