"""The public contract's request rules, shared by every stage's front door.

Reading and checking what a client sends happens here once, so that every stage answers
bad input with the same 4xx error and the same shape: {"error": {"code", "message"}}.
"""

import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from workshop import safejson
from workshop.domain import recommend
from workshop.domain.accounts import MAX_PREFERRED_TOPICS
from workshop.domain.tags import is_valid_tag
from workshop.domain.text import MAX_QUERY_TERMS, query_terms
from workshop.domain.topics import unknown_topics

MAX_QUERY_LENGTH = 200
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000
MAX_TERMS = MAX_QUERY_TERMS
DEFAULT_PER_PAGE = 20
# A number in a query string is ASCII digits only: int() would also take "1_000", " 2 ",
# "+2" and other scripts' digits, which the contract does not.
DIGITS = re.compile(r"[0-9]+")


class ApiError(Exception):
    """An error the client can act on, answered as JSON with its HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})  # e.g. Retry-After on a 429

    def body(self) -> dict[str, Any]:
        """Return the contract's error body."""
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    """Return {"error": {"code", "message"}}."""
    return {"error": {"code": code, "message": message}}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    """Return a 400 error."""
    return ApiError(400, code, message)


def not_found(what: str) -> ApiError:
    """Return a 404 error for a missing resource."""
    return ApiError(404, "not_found", f"{what} not found")


def parse_json_object(
    body: bytes, mimetype: str, allowed: Collection[str], required: Collection[str] = ()
) -> dict[str, Any]:
    """Return a body's JSON object, refusing anything else with 400 (or 415).

    JSON nested deeper than safejson.MAX_DEPTH is malformed too (Python's parser would
    give up with RecursionError). Unknown fields are refused too: a client that sends
    {"username": {"$ne": null}} or an extra field learns at once instead of being
    half-understood. (The size limit, 413, is the web framework's: it refuses a large body
    before it is read.)
    """
    if not is_json_mimetype(mimetype):
        raise ApiError(415, "unsupported_media_type", "send a JSON body (application/json)")
    try:
        data = safejson.loads(body)
    except safejson.TooDeep as error:
        raise bad_request(f"the body is {error}", "malformed_json") from None
    except ValueError:  # UnicodeDecodeError is one too
        raise bad_request("the body is not valid JSON", "malformed_json") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object", "malformed_json")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise bad_request(f"unknown field(s): {', '.join(unknown)}", "unknown_field")
    missing = sorted(set(required) - set(data))
    if missing:
        raise bad_request(f"missing field(s): {', '.join(missing)}", "missing_field")
    return data


def is_json_mimetype(mimetype: str) -> bool:
    """Tell whether a media type is JSON (application/json or application/*+json)."""
    mimetype = mimetype.lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def string_field(data: Mapping[str, Any], name: str) -> str:
    """Return a field that must be a string (operators such as {"$gt": ""} are refused)."""
    value = data.get(name)
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string", "invalid_field")
    return value


def _int_arg(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        if not DIGITS.fullmatch(raw):
            raise ValueError(raw)
        value = int(raw, 10)
    except ValueError:  # int() refuses more than 4,300 digits too
        raise bad_request(f"{name} must be an integer", "invalid_parameter") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}", "invalid_parameter")
    return value


def check_query_string(raw: bytes | str) -> None:
    """Refuse (400) a query string that is not UTF-8 text once its %-escapes are decoded.

    Web frameworks decode it leniently (`?q=%ff%fe` became "%FF%FE" or "\ufffd\ufffd"), so
    a search echoed and looked for words the client never sent.
    """
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the query string is not UTF-8 text", "invalid_parameter") from None


def only_params(args: Mapping[str, str], allowed: Collection[str]) -> None:
    """Refuse query parameters the call does not take (q[$ne]=x among them)."""
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise bad_request(f"unknown parameter(s): {', '.join(unknown)}", "invalid_parameter")


def search_params(args: Mapping[str, str]) -> tuple[str, list[str], int, int]:
    """Return (query, terms, page, per_page) of a search, or raise 400."""
    only_params(args, ("q", "page", "per_page"))
    query = args.get("q", "").strip()
    if not query:
        raise bad_request("q must not be empty", "invalid_parameter")
    if len(query) > MAX_QUERY_LENGTH:
        raise bad_request(f"q must be at most {MAX_QUERY_LENGTH} characters", "invalid_parameter")
    return (query, query_terms(query), *page_params(args))


def page_params(args: Mapping[str, str]) -> tuple[int, int]:
    """Return (page, per_page), or raise 400."""
    page = _int_arg(args, "page", 1, 1, MAX_PAGE)
    per_page = _int_arg(args, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    return page, per_page


def limit_param(args: Mapping[str, str]) -> int:
    """Return the recommendations limit, or raise 400."""
    only_params(args, ("limit",))
    return _int_arg(args, "limit", recommend.DEFAULT_LIMIT, 1, recommend.MAX_LIMIT)


def search_answer(
    query: str, page: int, per_page: int, total: int, items: list[dict[str, Any]]
) -> dict[str, Any]:
    """Return the search answer's shape."""
    return {"query": query, "page": page, "per_page": per_page, "total": total, "items": items}


def checked_tag(tag: Any) -> str:
    """Return a valid tag slug, or raise 400."""
    if not is_valid_tag(tag):
        raise ApiError(400, "invalid_tag", "a tag is 1-32 of a-z, 0-9 and '-', not starting '-'")
    return tag


def checked_topics(topics: Any) -> list[str]:
    """Return a list of known topics without repeats, or raise 400."""
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise bad_request("topics must be a list of strings", "invalid_field")
    if len(topics) > MAX_PREFERRED_TOPICS:
        raise bad_request(f"at most {MAX_PREFERRED_TOPICS} topics", "invalid_field")
    unknown = unknown_topics(topics)
    if unknown:
        raise bad_request(f"unknown topic(s): {', '.join(unknown)}", "unknown_topic")
    return list(dict.fromkeys(topics))
