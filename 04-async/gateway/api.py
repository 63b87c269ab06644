"""The public JSON API, routed by path to the service that owns the answer.

The gateway checks tokens and body sizes, then passes the call on: it holds no data and
no domain rules of its own. The table below is the whole routing, but for POST /api/tokens,
which the gateway takes itself to count failed logins (gateway/auth.py).

Async: the body is read by `await`, and the answer streams back as it arrives.
"""

from typing import Any

from quart import Blueprint, Response, request

from chassis import bodies
from gateway import client
from workshop import config

bp = Blueprint("api", __name__, url_prefix="/api")

# (path, methods, service); "recommend" means the version chosen per request.
ROUTES = [
    ("/search", ["GET"], "search"),
    ("/posts/<post_id>", ["GET"], "search"),
    ("/tags/<tag>/posts", ["GET"], "search"),
    ("/recommendations", ["GET"], "recommend"),
    ("/tags", ["GET"], "tag"),
    ("/posts/<post_id>/tags", ["POST"], "tag"),
    ("/posts/<post_id>/tags/<tag>", ["DELETE"], "tag"),
    ("/users", ["POST"], "users"),
    ("/me/preferences", ["GET", "PUT"], "users"),
    ("/ingest", ["POST"], "ingest"),
    ("/jobs/<job_id>", ["GET"], "ingest"),
]
# Authorization is not passed as sent: `client.call` sends the token the gateway accepted.
PASSED_HEADERS = ("Content-Type", "X-Request-Id")
ANSWER_HEADERS = ("Content-Type", "X-Recommend-Version", "X-Served-By")


async def proxy(service: str, **_: Any) -> Response:
    """Pass the request to the service and its answer back."""
    if service == "recommend":
        service = client.recommend_service()
    long_call = request.path == "/api/ingest"
    body = await bodies.body_within(
        request, config.MAX_INGEST_BYTES if long_call else config.MAX_JSON_BYTES
    )
    response = await client.call(
        service,
        request.method,
        request.full_path if request.query_string else request.path,
        data=body,
        headers={h: request.headers[h] for h in PASSED_HEADERS if h in request.headers},
        timeout=client.timeout_for(request.method, request.path),
        stream=True,
    )
    headers = {h: response.headers[h] for h in ANSWER_HEADERS if h in response.headers}
    return Response(client.body_of(response), status=response.status, headers=headers)


for path, methods, service in ROUTES:
    endpoint = f"{service}_{path}".replace("/", "_").replace("<", "").replace(">", "")
    bp.add_url_rule(path, endpoint, proxy, methods=methods, defaults={"service": service})
