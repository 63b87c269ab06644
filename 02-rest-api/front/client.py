"""The front's only way to data: HTTP calls to the Eve REST API.

Timeouts on every call and one pooled session; an API that is down or slow becomes the
contract's 503, and Eve's errors become the contract's error shape. The user's token rides
along on writes, so the API (not the front) decides who may change what.
"""

import json
from typing import Any

import requests
from flask import Flask, current_app, g
from werkzeug.datastructures import MultiDict

from workshop import logs
from workshop.contract import ApiError
from workshop.documents import public_post
from workshop.job_records import public_job

# Connect fast or fail fast; reads get longer. Ingest does its work inside the call.
TIMEOUT = (1.0, 10.0)
INGEST_TIMEOUT = (1.0, 600.0)
MAX_RETRIES_ON_CONFLICT = 3
# A read (idempotent) that finds no connection is tried once more: the API closes a pooled
# connection it kept idle (gunicorn: after 2 s), and a call can reuse it just then.
READ_ATTEMPTS = 2


def init_app(app: Flask) -> None:
    """Give the app one pooled HTTP session to the API."""
    app.extensions["restapi"] = requests.Session()


def _call(method: str, path: str, **kwargs: Any) -> requests.Response:
    session: requests.Session = current_app.extensions["restapi"]
    headers = {**logs.passed_on(), **kwargs.pop("headers", {})}  # the request id goes along
    if g.get("token"):
        headers["Authorization"] = f"Bearer {g.token}"
    kwargs.setdefault("timeout", TIMEOUT)
    attempts = READ_ATTEMPTS if method == "GET" else 1
    for attempt in range(attempts):
        try:
            return session.request(
                method, current_app.config["RESTAPI_URL"] + path, headers=headers, **kwargs
            )
        except requests.ConnectionError as error:
            if attempt + 1 == attempts or isinstance(error, requests.Timeout):
                break
        except requests.RequestException:
            break
    raise ApiError(503, "upstream_unavailable", "the REST API is not answering")


def _json(answer: requests.Response, *expected: int) -> Any:
    """Return an answer's JSON, or raise the contract's error for Eve's."""
    if answer.status_code in expected:
        return answer.json() if answer.content else None
    try:
        error = answer.json()
    except ValueError:
        error = {}
    issues = error.get("_issues") or {}
    message = "; ".join(f"{k}: {v}" for k, v in issues.items()) or error.get("_error", {}).get(
        "message", f"the REST API answered {answer.status_code}"
    )
    if answer.status_code >= 500:
        raise ApiError(502, "upstream_error", "the REST API failed")
    status = 400 if answer.status_code == 422 else answer.status_code
    raise ApiError(status, error.get("_error", {}).get("reason", "rejected"), message)


def ping() -> dict[str, Any]:
    """Tell whether the API answers (for /readyz)."""
    try:
        answer = _call("GET", "/healthz", timeout=(0.5, 1.0))
    except ApiError:
        return {"ok": False, "url": current_app.config["RESTAPI_URL"]}
    return {"ok": answer.status_code == 200, "url": current_app.config["RESTAPI_URL"]}


# --- posts -------------------------------------------------------------------------------


def get_post(post_id: str) -> dict[str, Any] | None:
    """Return one post, or None."""
    answer = _call("GET", f"/posts/{post_id}")
    if answer.status_code == 404:
        return None
    return public_post(_json(answer, 200))


def search(args: MultiDict[str, str]) -> dict[str, Any]:
    """Return the API's search answer for the query's own arguments (q, page, per_page)."""
    return _json(_call("GET", "/search", params=list(args.items(multi=True))), 200)


def recommendations(topics: list[str], limit: int) -> list[dict[str, Any]]:
    """Return recommended posts, the given topics first."""
    params = {"topics": topics, "limit": limit}
    return _json(_call("GET", "/recommendations", params=params), 200)["items"]


# --- tags --------------------------------------------------------------------------------


def _my_tagging(post_id: str, tag: str) -> dict[str, Any] | None:
    where = json.dumps({"post_id": post_id, "tag": tag})
    items = _json(_call("GET", "/taggings", params={"where": where}), 200)["_items"]
    return items[0] if items else None


def add_tag(post_id: str, tag: str) -> None:
    """Tag a post as the calling user (again is fine: nothing changes)."""
    if _my_tagging(post_id, tag) is None:
        answer = _call("POST", "/taggings", json={"post_id": post_id, "tag": tag})
        # A 400 here is the unique index: a concurrent request made the same tagging.
        if answer.status_code != 400 or _my_tagging(post_id, tag) is None:
            _json(answer, 201)


def remove_tag(post_id: str, tag: str) -> None:
    """Withdraw the calling user's tag (absent is fine: nothing changes)."""
    tagging = _my_tagging(post_id, tag)
    if tagging is not None:
        answer = _call(
            "DELETE", f"/taggings/{tagging['_id']}", headers={"If-Match": tagging["_etag"]}
        )
        _json(answer, 204, 404)


def user_tags(post_id: str) -> list[str]:
    """Return the tags the calling user gave a post."""
    where = json.dumps({"post_id": post_id})
    items = _json(_call("GET", "/taggings", params={"where": where}), 200)["_items"]
    return sorted(item["tag"] for item in items)


def tag_counts(limit: int = 0) -> list[dict[str, Any]]:
    """Return every tag with the number of posts carrying it, most used first."""
    items = _json(_call("GET", "/tags"), 200)["items"]
    return items[:limit] if limit else items


def posts_with_tag(tag: str) -> list[dict[str, Any]]:
    """Return the posts carrying a tag, most popular first (following Eve's pages)."""
    params: dict[str, Any] = {
        "where": json.dumps({"tags.tag": tag}),
        "sort": '[("score", -1), ("_id", 1)]',
        "max_results": 100,
    }
    found: list[dict[str, Any]] = []
    while True:
        params["page"] = len(found) // 100 + 1
        body = _json(_call("GET", "/posts", params=params), 200)
        found += [public_post(item) for item in body["_items"]]
        if len(body["_items"]) < 100 or len(found) >= body["_meta"]["total"]:
            return found


# --- users -------------------------------------------------------------------------------


def create_user(username: str, password: str) -> None:
    """Register a user (the API hashes the password), or raise 400/409."""
    answer = _call("POST", "/users", json={"username": username, "password": password})
    if answer.status_code == 422 and "not unique" in str(answer.json().get("_issues", {})):
        raise ApiError(409, "username_taken", f"the username {username!r} is taken")
    _json(answer, 201)


def issue_token(username: str, password: str) -> str | None:
    """Return a token for a username and password, or None if they don't match."""
    answer = _call("POST", "/tokens", json={"username": username, "password": password})
    if answer.status_code == 401:
        return None
    return _json(answer, 200)["token"]


def _my_preferences() -> dict[str, Any] | None:
    items = _json(_call("GET", "/preferences"), 200)["_items"]
    return items[0] if items else None


def get_topics(username: str | None) -> list[str]:
    """Return the calling user's preferred topics (none for a visitor)."""
    if username is None:
        return []
    preferences = _my_preferences()
    return preferences["topics"] if preferences else []


def set_topics(topics: list[str]) -> None:
    """Store the calling user's topics, with the document's ETag (retrying on a conflict)."""
    for _ in range(MAX_RETRIES_ON_CONFLICT):
        current = _my_preferences()
        if current is None:
            answer = _call("POST", "/preferences", json={"topics": topics})
            if answer.status_code == 201:
                return
        else:
            headers = {"If-Match": current["_etag"]}
            answer = _call(
                "PATCH", f"/preferences/{current['_id']}", json={"topics": topics}, headers=headers
            )
            if answer.status_code == 200:
                return
        if answer.status_code not in (400, 412):  # 400: created meanwhile; 412: changed meanwhile
            _json(answer, 200, 201)
    raise ApiError(409, "conflict", "the preferences kept changing; try again")


# --- ingest jobs -------------------------------------------------------------------------


def start_ingest(body: bytes, content_type: str) -> str:
    """Forward an ingest request to the API and return the job id."""
    answer = _call(
        "POST", "/ingest", data=body, headers={"Content-Type": content_type}, timeout=INGEST_TIMEOUT
    )
    return _json(answer, 202)["job_id"]


def get_job(job_id: str) -> dict[str, Any] | None:
    """Return a job's public state, or None."""
    answer = _call("GET", f"/jobs/{job_id}")
    if answer.status_code == 404:
        return None
    return public_job(_json(answer, 200))
